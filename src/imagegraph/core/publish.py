"""Which tags a build moves after it ran: the family gate of the tag policy. Pure: facts go in, the move to make comes out.

A build moves its images' moving tags (``edge`` and ``sha-<7>`` on the
default branch, ``pr-<N>`` when asked; see :func:`imagegraph.core.tags.planned_tags`)
only for the whole family, and only when the images are the commit's:

- never on a version-tag event: version tags come from `invoke release`;
- none when any image failed, so ``edge`` never names a family of which half is new;
- none when an image input has uncommitted changes: the images are not the commit's;
- an image that is not pushed (``push: false``) or not selected (skip) gets none;
- the tags of kinds in :data:`imagegraph.core.tags.FORWARD_ONLY` move only forward
  from the build's commit (:mod:`imagegraph.adapters.tagmove` carries that out).

:func:`publication` decides; :class:`imagegraph.workspace.Workspace` gathers
the facts (the event, the plan's tags, the results, the dirty inputs) and
hands the requests to :func:`imagegraph.adapters.tagmove.move_family_tags`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from .plan import Decision
from .tags import DEFAULT_POLICY, FORWARD_ONLY, Event, PlannedTag, TagPolicy, planned_tags

__all__ = ["FamilyImage", "Move", "Outcome", "Publication", "TagMoves", "TagRequest", "publication"]


@dataclass(frozen=True)
class TagRequest:
    """One image's part of a family tag move: copy ``source``'s manifest to each of ``tags``."""

    image: str
    #: The repository inside the registry, e.g. imagegraph/app.
    repository: str
    #: The fingerprint tag the new tags copy.
    source: str
    tags: tuple[str, ...]
    #: The digest this run pushed or planned for it, when known (a fingerprint tag that names another one now is said).
    expected: str | None = None


@dataclass(frozen=True)
class Move:
    image: str
    repository: str
    tag: str
    #: The digest the tag is to name.
    digest: str
    #: The digest it named before; None when the tag is new.
    previous: str | None

    @property
    def label(self) -> str:
        return f"{self.image}:{self.tag}"


class Outcome(Enum):
    UNCHANGED = "unchanged"
    MOVED = "moved"
    NONE_MOVED = "none moved"
    ROLLED_BACK = "rolled back"
    PARTIAL = "partly moved"


@dataclass(frozen=True)
class TagMoves:
    """What a family tag move did, and the one line that says so."""

    outcome: Outcome
    line: str
    #: The tags that name this run's images now: moved by it, or already there.
    holds: tuple[Move, ...] = ()
    #: Tags held back and why ("edge stays: a newer run moved it ..."), fingerprint tags that name another digest.
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.UNCHANGED, Outcome.MOVED)

    @property
    def tagged(self) -> dict[str, tuple[str, ...]]:
        """image -> the tags (beyond the fingerprint tag) that name its image now, for the table and the report."""
        tagged: dict[str, list[str]] = {}
        for move in self.holds:
            tagged.setdefault(move.image, []).append(move.tag)
        return {image: tuple(tags) for image, tags in tagged.items()}


class Result(Protocol):
    """What the gate reads of an image's build result (:class:`imagegraph.core.result.ImageResult` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def decision(self) -> Decision: ...
    @property
    def digest(self) -> str | None: ...


@dataclass(frozen=True)
class FamilyImage:
    """One image of the family, as the tag move needs it."""

    name: str
    #: The repository inside the registry, e.g. imagegraph/app.
    repository: str
    #: Its fingerprint tag: the tag the moving tags copy.
    fingerprint: str
    push: bool
    #: The plan's tags for it (:attr:`imagegraph.core.plan.ImagePlan.tags`); () without a plan: then decided here, the same way.
    tags: tuple[PlannedTag, ...] = ()


@dataclass(frozen=True)
class Publication:
    """What a build's tag move is to do."""

    #: Lines to say before anything moves: a version-tag event's pointer to `invoke release`, each tag held back and why.
    notes: tuple[str, ...] = ()
    #: Each image's moving tags, for :func:`imagegraph.adapters.tagmove.move_family_tags` (all or nothing).
    requests: tuple[TagRequest, ...] = ()
    #: The requested tags that move only forward from the build's commit.
    forward_only: frozenset[str] = field(default_factory=frozenset)
    #: The outcome when nothing is to move (refused, or fingerprint tags only); None when ``requests`` are to move.
    settled: TagMoves | None = None


def publication(event: Event, images: Sequence[FamilyImage], results: Sequence[Result], *, dirty: Sequence[str],
                policy: TagPolicy = DEFAULT_POLICY) -> Publication:
    """The tags this build moves, or why none moves; ``dirty`` are the image inputs with uncommitted changes."""
    if event.kind == "tag":
        return Publication(
            notes=(f"{event.ref}: version tags are given by `invoke release` (promotion of these digests), not by the build",),
            settled=TagMoves(Outcome.UNCHANGED, "tags: fingerprint tags only (version tags come from `invoke release`)"))
    failed = [r.name for r in results if not r.ok]
    if failed:
        return Publication(settled=TagMoves(Outcome.UNCHANGED, f"tags: none moved: {', '.join(failed)} failed"))
    dirty = sorted(dirty)
    if dirty:
        shown = ", ".join(dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
        return Publication(settled=TagMoves(Outcome.UNCHANGED, f"tags: none moved: uncommitted changes to image inputs ({shown}); "
                                                               f"the images are not {event.sha[:7]}'s, commit first"))
    family = {image.name: image for image in images}
    notes: list[str] = []
    requests: list[TagRequest] = []
    forward: set[str] = set()
    for result in results:
        image = family[result.name]
        if not image.push or result.decision is Decision.SKIP:
            continue
        tags = image.tags or planned_tags(event, image.fingerprint, policy, push=image.push)
        notes.extend(f"[{image.name}] {held.tag} not moved: {held.rule}" for held in tags if not held.moves and held.kind != "fingerprint")
        moving = [t for t in tags if t.moves and t.tag != image.fingerprint]
        forward.update(t.tag for t in moving if t.kind in FORWARD_ONLY)
        if moving:
            requests.append(TagRequest(image.name, image.repository, image.fingerprint, tuple(t.tag for t in moving), expected=result.digest))
    if not requests:
        return Publication(tuple(notes), settled=TagMoves(Outcome.UNCHANGED, "tags: fingerprint tags only"))
    return Publication(tuple(notes), tuple(requests), frozenset(forward))
