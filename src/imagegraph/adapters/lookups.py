"""Questions to the registry and the engine, asked side by side: each is a round trip or two, and a family asks one per image."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from ..core.plan import Availability, availability_of

if TYPE_CHECKING:
    from .engine.images import LocalImages
    from .registry import Registry

__all__ = ["look_up_availability", "side_by_side"]

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(ask: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``ask`` of every item, in order; side by side when there is more than one."""
    if len(items) <= 1:
        return [ask(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(8, len(items)), thread_name_prefix="look-up") as pool:
        return list(pool.map(ask, items))


def look_up_availability(pushed: Mapping[str, bool], registry: Registry, local: LocalImages,
                         platforms: Mapping[str, Sequence[str]] | None = None) -> dict[str, Availability]:
    """Where each fingerprint reference exists, by whether its image is pushed (:func:`imagegraph.core.plan.availability_of` says
    whom to ask); in the registry, a reference planned for several ``platforms`` counts only as a list of manifests."""
    items = list(pushed.items())
    wanted = platforms or {}
    return dict(zip(pushed, side_by_side(
        lambda item: availability_of(item[0], push=item[1], in_registry=lambda ref: registry.has(ref, wanted.get(ref, ())),
                                     in_engine=local.has), items), strict=True))
