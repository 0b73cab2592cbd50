"""The image family as a graph: who is whose parent, in which order to build.

Every function here costs about the size of its answer (or n log n for the
whole order): a family thousands of images wide or a chain thousands deep is
walked once, never once per image.
"""

from __future__ import annotations

from collections.abc import Iterable

from .config import Config

__all__ = ["ancestors", "build_order", "children", "depths", "descendants", "with_ancestors"]


def build_order(config: Config) -> tuple[str, ...]:
    """Every image after its parent; siblings keep their images.yaml order.

    The order is that of passes over images.yaml, each placing the images
    whose parent is placed (earlier in the same pass, or before): an image
    goes in its parent's pass when it comes later in the file, else in the
    pass after. Computed per image, then sorted by (pass, place in the file).
    """
    position = {spec.name: index for index, spec in enumerate(config.images)}
    parent_of = {spec.name: spec.parent for spec in config.images}
    passes: dict[str, int] = {}
    for spec in config.images:  # config validation guarantees there is no cycle and every parent exists
        walk: list[str] = []
        name: str | None = spec.name
        while name is not None and name not in passes:
            walk.append(name)
            name = parent_of[name]
        for child in reversed(walk):
            parent = parent_of[child]
            passes[child] = 0 if parent is None else passes[parent] + (position[parent] > position[child])
    return tuple(sorted(position, key=lambda name: (passes[name], position[name])))


def children(config: Config, name: str) -> tuple[str, ...]:
    return config.children_of.get(name, ())


def ancestors(config: Config, name: str) -> tuple[str, ...]:
    """Parent, grandparent, ... (nearest first)."""
    chain: list[str] = []
    parent = config.image(name).parent
    while parent is not None:
        chain.append(parent)
        parent = config.image(parent).parent
    return tuple(chain)


def depths(config: Config) -> dict[str, int]:
    """How many ancestors each image has (0: no parent), in build order."""
    found: dict[str, int] = {}
    for name in build_order(config):
        parent = config.image(name).parent
        found[name] = 0 if parent is None else found[parent] + 1
    return found


def descendants(config: Config, name: str) -> tuple[str, ...]:
    found: list[str] = []
    frontier = [name]
    below = config.children_of
    while frontier:
        for child in below.get(frontier.pop(), ()):
            found.append(child)
            frontier.append(child)
    return tuple(found)


def with_ancestors(config: Config, names: Iterable[str]) -> frozenset[str]:
    """The images named plus everything they are built on (a walk up stops where an earlier one went)."""
    selected: set[str] = set()
    for name in names:
        parent = config.image(name).parent
        selected.add(name)
        while parent is not None and parent not in selected:
            selected.add(parent)
            parent = config.image(parent).parent
    return frozenset(selected)
