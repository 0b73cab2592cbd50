"""The plan: for each image, what to do and why. Pure: no I/O happens here.

``make_plan`` takes what the world looks like (fingerprints, which fingerprint
tags already exist locally or in the registry, what the user asked for) and
decides; the executor then carries the plan out without deciding anything.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from .config import Config
from .fingerprint import Fingerprint
from .graph import build_order, descendants, with_ancestors

__all__ = ["Availability", "Decision", "ImagePlan", "Plan", "make_plan"]


class Decision(enum.Enum):
    BUILD = "build"
    REUSE = "reuse"
    SKIP = "skip"


@dataclass(frozen=True)
class Availability:
    """Where an image with a given fingerprint tag already exists."""

    local: bool = False
    registry: bool = False


@dataclass(frozen=True)
class ImagePlan:
    name: str
    decision: Decision
    reason: str
    fingerprint: str
    #: The fingerprint reference, e.g. 127.0.0.1:5000/imagegraph/base:3f2c...
    ref: str
    #: The parent's exact fingerprint reference the child is built FROM.
    parent_ref: str | None
    platforms: tuple[str, ...]
    push: bool
    #: True when the image exists only in the local engine and must be pushed.
    push_existing: bool = False
    no_cache: bool = False


@dataclass(frozen=True)
class Plan:
    images: tuple[ImagePlan, ...]
    registry: str
    options: Mapping[str, str] = field(default_factory=dict)

    def image(self, name: str) -> ImagePlan:
        for entry in self.images:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def to_build(self) -> tuple[ImagePlan, ...]:
        return tuple(e for e in self.images if e.decision is Decision.BUILD)


def make_plan(
    config: Config,
    fingerprints: Mapping[str, Fingerprint],
    availability: Mapping[str, Availability],
    *,
    selected: Collection[str] = (),
    force: Collection[str] = (),
    no_cache: bool = False,
    platforms: tuple[str, ...] = (),
) -> Plan:
    """Decide build / reuse / skip for every image.

    ``selected`` limits the work to those images and what they stand on
    (all images when empty); ``force`` rebuilds those images and their
    dependents even when their fingerprint tags exist. ``platforms`` is the
    override that was already folded into the fingerprints, echoed in the plan.
    """
    wanted = with_ancestors(config, selected) if selected else frozenset(config.names)
    forced: dict[str, str] = {}
    for name in force:
        config.image(name)  # unknown names fail with "did you mean"
        forced.setdefault(name, f"forced (--force {name})")
        for child in descendants(config, name):
            forced.setdefault(child, f"parent {name} is forced")
    entries: list[ImagePlan] = []
    for name in build_order(config):
        spec = config.image(name)
        fp = fingerprints[name]
        ref = f"{config.repository(name)}:{fp.tag}"
        parent_ref = f"{config.repository(spec.parent)}:{fingerprints[spec.parent].tag}" if spec.parent else None
        found = availability.get(ref, Availability())
        push_existing = False
        if name not in wanted:
            decision, reason = Decision.SKIP, "not selected"
        elif name in forced:
            decision, reason = Decision.BUILD, forced[name]
        elif found.registry:
            decision, reason = Decision.REUSE, "fingerprint tag already in the registry"
        elif found.local:
            decision, reason = Decision.REUSE, "fingerprint tag already in the local engine"
            push_existing = spec.push
        else:
            decision, reason = Decision.BUILD, _why_build(spec.parent, entries)
        entries.append(ImagePlan(
            name=name,
            decision=decision,
            reason=reason,
            fingerprint=fp.tag,
            ref=ref,
            parent_ref=parent_ref,
            platforms=spec.platforms,
            push=spec.push,
            push_existing=push_existing,
            no_cache=no_cache and decision is Decision.BUILD,
        ))
    options = {"platforms": ",".join(platforms)} if platforms else {}
    return Plan(images=tuple(entries), registry=config.registry, options=options)


def _why_build(parent: str | None, planned: list[ImagePlan]) -> str:
    for entry in planned:
        if entry.name == parent and entry.decision is Decision.BUILD:
            return f"parent {parent} is rebuilt"
    return "no image with this fingerprint yet (inputs changed)"
