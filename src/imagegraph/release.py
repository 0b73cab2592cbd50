"""`invoke release`: this commit's already-built images get the version's tags, by copying manifests in the registry.

Which tags (``X.Y.Z``; ``X.Y`` and ``latest`` when earned) and when a release
is refused is the tag policy's (:func:`imagegraph.core.tags.plan_release`);
:func:`imagegraph.adapters.tagmove.move_family_tags` moves them all or nothing,
and they are read back afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .adapters.prune import read_deleted
from .adapters.tagmove import move_family_tags, verify_tags
from .core.plan import fingerprint_ref
from .core.tags import Event, Outcome, TagMoves, TagRequest, check_release_event, plan_release, release_event

if TYPE_CHECKING:
    from .adapters.lease import Lease
    from .workspace import Workspace

__all__ = ["release"]


def release(workspace: Workspace, *, version: str | None = None, dry_run: bool = False, force: bool = False,
            say: Callable[[str], None] = print) -> tuple[tuple[TagRequest, ...], TagMoves]:
    """Give this commit's images the version's tags: each image's request, and what the move did.

    A version tag that already names another digest is refused unless
    ``force``. Everything from the first look at the registry to the
    read-back runs under the registry lease ``tags``, so no cleanup deletes a
    digest while it is being released.
    """
    event = release_event(workspace.event(), version)
    for note in event.notes:
        say(note)
    own = str(check_release_event(event))  # no version, or a tag that breaks a rule: refused before the registry is asked
    if dry_run:
        requests = _plan(workspace, event, own, force)
        _say_notes(requests, say)
        return requests, TagMoves(Outcome.UNCHANGED, "tags: dry run: none moved")
    # Under the lease, what is read is what stays: no cleanup deletes a digest between this look and the tag writes.
    with workspace.lease(f"invoke release v{own}", say=say) as lease:
        requests = _plan(workspace, event, own, force)
        _say_notes(requests, say)
        return requests, _promote(workspace, requests, own, force, lease, say)


def _plan(workspace: Workspace, event: Event, own: str, force: bool) -> tuple[TagRequest, ...]:
    """What the release would tag, from the registry as it is now; a missing image is refused with what deleted it, when known."""
    registry = workspace.registry
    digests: dict[str, str | None] = {}
    registry_tags: dict[str, tuple[str, ...]] = {}
    version_digests: dict[str, str | None] = {}
    deleted: dict[str, str] = {}
    for spec in workspace.config.images:
        if spec.push:
            image = fingerprint_ref(workspace.config, workspace.fingerprints, spec.name)
            name, tag = image.repository, image.reference
            digests[spec.name] = registry.manifest_digest(name, tag)
            registry_tags[spec.name] = registry.tags(name)
            if own in registry_tags[spec.name]:
                version_digests[spec.name] = registry.manifest_digest(name, own)
            if digests[spec.name] is None and (gone := read_deleted(registry, name).get(tag)) is not None:
                deleted[spec.name] = gone.at
    return plan_release(workspace.config, workspace.fingerprints, event, digests, registry_tags,
                        version_digests=version_digests, force=force, deleted=deleted)


def _say_notes(requests: Sequence[TagRequest], say: Callable[[str], None]) -> None:
    for request in requests:
        for note in request.notes:
            say(f"[{request.image}] {note}")


def _promote(workspace: Workspace, requests: Sequence[TagRequest], own: str, force: bool, lease: Lease,
             say: Callable[[str], None]) -> TagMoves:
    rerun = f"`invoke release --version v{own}{' --force' if force else ''}`"
    moves = move_family_tags(workspace.registry, requests, rerun=rerun, say=say, guard=lease.check)
    if not moves.ok:
        return moves
    problem = verify_tags(workspace.registry, moves.holds)
    if problem:
        return replace(moves, outcome=Outcome.PARTIAL, line=f"tags: release {own} is not whole: {problem}; rerun {rerun}")
    return moves
