"""Adapters to the container engine: builders (commands as data), image queries, engine setup."""
