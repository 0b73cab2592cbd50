"""Release by promotion: the digests already built (and tested) for this commit get the version's tags.

Nothing is rebuilt or pulled: each tag is a copy of the fingerprint tag's
manifest (index included) inside the registry, so the digest users pull is
the digest CI tested. Planning is pure; every image is checked before the
first tag moves, so a release of a commit whose images are not all in the
registry (never built, or deleted by a cleanup since) moves nothing.

Never destructive: a published version tag (``X.Y.Z``, ``X.Y.Z-rc.N``) that
already names another digest is refused unless forced, and then the note
says which digest it replaced. ``X.Y`` and ``latest`` move by design.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .config import Config
from .errors import ImagegraphError
from .fingerprint import Fingerprint
from .tags import DEFAULT_POLICY, Event, TagPolicy, Version, release_version, tags_for

__all__ = ["Promotion", "ReleaseError", "check_release_event", "plan_release", "release_event"]


class ReleaseError(ImagegraphError):
    """The release cannot go ahead (an image of this commit is not in the registry, or the event is no release)."""


@dataclass(frozen=True)
class Promotion:
    image: str
    #: The repository inside the registry, e.g. imagegraph/app.
    repository: str
    #: The fingerprint tag the new tags copy.
    source: str
    digest: str
    tags: tuple[str, ...]
    notes: tuple[str, ...] = ()


def release_event(event: Event, version: str | None = None) -> Event:
    """The event a release is of: this commit's, or ``version`` (`--version`) when given: it wins over the tags at HEAD, unmentioned."""
    if not version:
        return event
    return Event("tag", event.sha, version, event.default_branch)


def check_release_event(event: Event) -> Version:
    """The version a release publishes: a version tag, and one that keeps the project's rules (named when broken)."""
    if event.kind != "tag":
        if event.refused:
            raise ReleaseError(f"nothing to release: {event.refused[0]}")
        raise ReleaseError("nothing to release: HEAD has no version tag; tag it (git tag v1.2.3) or pass --version v1.2.3")
    return release_version(event)


def plan_release(config: Config, fingerprints: Mapping[str, Fingerprint], event: Event, digests: Mapping[str, str | None],
                 registry_tags: Mapping[str, tuple[str, ...]], policy: TagPolicy = DEFAULT_POLICY, *,
                 version_digests: Mapping[str, str | None] | None = None, force: bool = False,
                 deleted: Mapping[str, str] | None = None) -> tuple[Promotion, ...]:
    """The tags each pushed image gets.

    ``digests`` maps image -> its fingerprint tag's digest (None: not in the
    registry); ``version_digests`` maps image -> the digest the version's own
    tag already names in the registry (absent or None: the tag is new);
    ``deleted`` maps image -> when a cleanup deleted its fingerprint tag, as
    the registry's record of deletions says.
    """
    version = str(check_release_event(event))
    images = [spec for spec in config.images if spec.push]
    missing = [spec.name for spec in images if not digests.get(spec.name)]
    if missing:
        raise ReleaseError(_missing(version, [(name, fingerprints[name].tag) for name in missing], deleted or {}))
    held = {name: digest for name, digest in (version_digests or {}).items() if digest}
    moved = {spec.name: held[spec.name] for spec in images if spec.name in held and held[spec.name] != digests[spec.name]}
    if moved and not force:
        shown = ", ".join(f"{name}:{version} is {digest[:19]}…" for name, digest in moved.items())
        raise ReleaseError(f"{version} is already released on other digests ({shown}); a published version never moves: "
                           f"release a new version, or pass --force to replace it")
    promotions = []
    for spec in images:
        fingerprint = fingerprints[spec.name].tag
        tagset = tags_for(event, fingerprint, registry_tags.get(spec.name, ()), policy)
        notes = list(tagset.notes)
        if spec.name in moved:
            notes.append(f"--force: {version} replaced: it was {moved[spec.name]}, now {digests[spec.name]}")
        elif spec.name in held:
            notes.append(f"{version} already names this digest: re-released, nothing changes for it")
        repository = config.repository_path(spec.name)
        promotions.append(Promotion(spec.name, repository, fingerprint, digests[spec.name] or "",
                                    tuple(t for t in tagset.tags if t != fingerprint), tuple(notes)))
    return tuple(promotions)


def _missing(version: str, missing: list[tuple[str, str]], deleted: Mapping[str, str]) -> str:
    """Why the release cannot go ahead, in true words: deleted by a cleanup (when the record says so), else not in the registry.

    Either way the fix is the same: a build of this commit pushes the same
    fingerprints again (the fingerprint is its inputs, not its time), and the
    release then finds them.
    """
    again = f"rebuild them with `invoke build` on this commit (it pushes the same fingerprints again), then run `invoke release --version v{version}`"
    refs = ", ".join(f"{name}:{tag}" + (f" (deleted by `invoke cleanup` at {deleted[name]})" if name in deleted else "")
                     for name, tag in missing)
    if deleted:
        return f"{refs}: this commit's images were deleted from the registry; {again}"
    return f"{refs} not in the registry: this commit was not built, or its images were deleted since; {again}"
