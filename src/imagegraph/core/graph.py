"""The image family as a graph: who is whose parent, in which order to build."""

from __future__ import annotations

from collections.abc import Iterable

from .config import Config

__all__ = ["ancestors", "build_order", "children", "descendants", "with_ancestors"]


def build_order(config: Config) -> tuple[str, ...]:
    """Every image after its parent; siblings keep their images.yaml order."""
    order: list[str] = []
    placed: set[str] = set()
    pending = list(config.images)
    while pending:  # config validation guarantees there is no cycle
        for spec in list(pending):
            if spec.parent is None or spec.parent in placed:
                order.append(spec.name)
                placed.add(spec.name)
                pending.remove(spec)
    return tuple(order)


def children(config: Config, name: str) -> tuple[str, ...]:
    return tuple(spec.name for spec in config.images if spec.parent == name)


def ancestors(config: Config, name: str) -> tuple[str, ...]:
    """Parent, grandparent, ... (nearest first)."""
    chain: list[str] = []
    parent = config.image(name).parent
    while parent is not None:
        chain.append(parent)
        parent = config.image(parent).parent
    return tuple(chain)


def descendants(config: Config, name: str) -> tuple[str, ...]:
    found: list[str] = []
    frontier = [name]
    while frontier:
        for child in children(config, frontier.pop()):
            found.append(child)
            frontier.append(child)
    return tuple(found)


def with_ancestors(config: Config, names: Iterable[str]) -> frozenset[str]:
    """The images named plus everything they are built on."""
    selected: set[str] = set()
    for name in names:
        selected.add(config.image(name).name)
        selected.update(ancestors(config, name))
    return frozenset(selected)
