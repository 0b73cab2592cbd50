"""Invoke entry point: the tasks live in the imagegraph library (src/imagegraph/tasks/)."""

from imagegraph.tasks import namespace

ns = namespace
