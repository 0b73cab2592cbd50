"""The join: each planned image's index made from its platforms' images, pushed apart under their platform tags.

A run that builds one platform (a native runner per platform) pushes each
image's part under its platform tag, ``<fingerprint>-<platform suffix>``
(:func:`part_tag`), and leaves the fingerprint tag alone; so do the classic
image store's builds of each platform in one run, which the executor then
joins the same way, image by image. The join then decides, per image, from
what those tags name (:class:`JoinImage`):

- **joined** already: the fingerprint tag names an index of every planned
  platform (:func:`imagegraph.core.manifests.missing_platforms`); nothing is
  written, so a second join does nothing;
- **join**: every platform tag names that platform's image, as an image
  manifest or as an index of it and its attestations (BuildKit's provenance);
  the index to write lists each image with its platform, then the
  attestations, byte for byte as they were, so nothing is lost;
- refused otherwise, for the whole family in one line (:attr:`JoinPlan.refusal`):
  a platform not pushed yet, with the run that pushes it, or a platform tag
  that names something else (another platform's image, a whole
  multi-platform index). Nothing is written when anything is refused.

Pure: the registry is read and written by :mod:`imagegraph.joining`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cache import platform_suffix
from .manifests import is_index, missing_platforms, platform_of, same_platform
from .media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, IMAGE_MANIFESTS, OCI_INDEX, OCI_MANIFEST

__all__ = ["JoinImage", "JoinPlan", "JoinState", "JoinStep", "Manifest", "decide_join", "part_tag", "run_for"]

#: How BuildKit marks an attestation manifest in an index (beside its ``unknown/unknown`` platform).
_REFERENCE_TYPE = "vnd.docker.reference.type"


def part_tag(fingerprint: str, platforms: Sequence[str], platform: str) -> str:
    """The tag one platform's image is pushed under: the fingerprint tag itself for an image of one platform, else
    ``<fingerprint>-<suffix>`` (as :meth:`imagegraph.core.request.BuildRequest.platform_tag` names it)."""
    return fingerprint if len(platforms) == 1 else f"{fingerprint}-{platform_suffix(platform)}"


def run_for(platform: str) -> str:
    """Who pushes ``platform``'s images: the run that builds that platform (any build that pushes it under its platform tag)."""
    return f"the run that builds {platform}"


@dataclass(frozen=True)
class Manifest:
    """A manifest as a tag names it in the registry: what the join reads."""

    media_type: str
    digest: str
    size: int
    body: Mapping[str, Any]
    #: For an image manifest, the platform its config names (``linux/arm64``); "" when it was not read.
    config_platform: str = ""

    @property
    def kind(self) -> str:
        """The media type, from the registry's answer or else the body's own (a parameter such as ``; charset`` dropped)."""
        return (self.media_type.split(";")[0].strip() or str(self.body.get("mediaType", ""))).strip()


@dataclass(frozen=True)
class JoinImage:
    """One planned image of the join, and what the registry holds for it."""

    name: str
    #: The repository inside the registry, e.g. imagegraph/app.
    repository: str
    #: The fingerprint tag: the tag the joined index is written to.
    fingerprint: str
    platforms: tuple[str, ...]
    #: What the fingerprint tag names now; None when it names nothing.
    current: Manifest | None
    #: What each platform's tag names (:func:`part_tag`); a platform absent or None was not pushed.
    parts: Mapping[str, Manifest | None] = field(default_factory=dict)


class JoinState(enum.Enum):
    JOIN = "join"
    JOINED = "already joined"


@dataclass(frozen=True)
class JoinStep:
    """One image's part of the join: the index to write, or the index that is already there."""

    name: str
    repository: str
    fingerprint: str
    state: JoinState
    #: The digest the fingerprint tag names when the join is done: the index written, or the one already there.
    digest: str
    #: The index's bytes and media type (JOIN only): written as they are, so the digest is :attr:`digest`.
    index: bytes = b""
    media_type: str = ""
    #: The platforms the index lists, and how many attestation manifests ride along.
    platforms: tuple[str, ...] = ()
    attestations: int = 0


@dataclass(frozen=True)
class JoinPlan:
    steps: tuple[JoinStep, ...] = ()
    #: The one line that refuses the whole join (nothing is written); None when it may go ahead.
    refusal: str | None = None

    @property
    def to_write(self) -> tuple[JoinStep, ...]:
        return tuple(step for step in self.steps if step.state is JoinState.JOIN)


@dataclass(frozen=True)
class _Missing:
    image: str
    platform: str
    ref: str


class _Refused(Exception):
    """A platform tag that names something the join cannot take; the message is the reason (no image name)."""


def _shown(names: Sequence[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:3])} and {len(names) - 3} more"


def _platform_field(platform: str) -> dict[str, str]:
    os_, arch, *rest = platform.split("/")
    return {"architecture": arch, "os": os_, **({"variant": rest[0]} if rest else {})}


def _is_attestation(entry: Mapping[str, Any]) -> bool:
    annotations = entry.get("annotations")
    marked = isinstance(annotations, Mapping) and annotations.get(_REFERENCE_TYPE) == "attestation-manifest"
    return marked or platform_of(entry) == "unknown/unknown"


def _members(platform: str, ref: str, part: Manifest, planned: Sequence[str], run: str) -> tuple[dict, list[dict]]:
    """The index entry of ``part``'s image and its attestations' entries, or :class:`_Refused` with the reason."""
    kind = part.kind
    if kind in IMAGE_MANIFESTS or (not kind and "layers" in part.body and "manifests" not in part.body):
        if part.config_platform and not same_platform(part.config_platform, platform):
            raise _Refused(f"{ref} holds a {part.config_platform} image, not {platform}; {run} pushes {platform} there")
        return ({"mediaType": kind or OCI_MANIFEST, "digest": part.digest, "size": part.size,
                 "platform": _platform_field(part.config_platform or platform)}, [])
    if not is_index(kind, part.body):
        raise _Refused(f"{ref} is {kind or 'no manifest'}, not an image; {run} pushes {platform} there")
    entries = [entry for entry in part.body.get("manifests") or () if isinstance(entry, Mapping)]
    images = [entry for entry in entries if not _is_attestation(entry)]
    held = sorted({platform_of(entry) or "an entry without a platform" for entry in images})
    if len(held) > 1 or len(images) > 1:
        whole = "" if missing_platforms(kind, part.body, planned) else "the whole image "
        raise _Refused(f"{ref} names an index of {whole}{', '.join(held)}, not {platform}'s image alone (a multi-platform push to a "
                       f"platform tag); {run} pushes {platform} alone there")
    if not images:
        raise _Refused(f"{ref} names an index without an image (attestations only); {run} pushes {platform} there")
    image = images[0]
    if not same_platform(platform_of(image) or "-/-", platform):
        raise _Refused(f"{ref} names an index of {platform_of(image) or 'an image without a platform'}, not {platform}; "
                       f"{run} pushes {platform} there")
    if image.get("mediaType") not in IMAGE_MANIFESTS:
        raise _Refused(f"{ref} names an index whose {platform} entry is {image.get('mediaType') or 'untyped'}, not an image manifest; "
                       f"{run} pushes {platform} there")
    return dict(image), [dict(entry) for entry in entries if _is_attestation(entry)]


def _index(members: Sequence[dict], attestations: Sequence[dict]) -> tuple[bytes, str]:
    """The index of ``members`` then ``attestations``, as bytes that are the same for the same parts (two joins, one digest)."""
    entries = [*members, *attestations]
    docker_only = all(entry.get("mediaType") == DOCKER_MANIFEST for entry in entries)
    media_type = DOCKER_MANIFEST_LIST if docker_only else OCI_INDEX
    body = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), media_type


def _step(image: JoinImage, run: Callable[[str], str], missing: list[_Missing]) -> JoinStep | None:
    """The image's step; None (with what is missing added to ``missing``) when a platform is not pushed yet."""
    common = {"name": image.name, "repository": image.repository, "fingerprint": image.fingerprint}
    current = image.current
    if current is not None and not missing_platforms(current.kind, current.body, image.platforms):
        return JoinStep(**common, state=JoinState.JOINED, digest=current.digest, platforms=image.platforms)
    members: list[dict] = []
    attestations: list[dict] = []
    absent = []
    for platform in image.platforms:
        tag = part_tag(image.fingerprint, image.platforms, platform)
        ref = f"{image.repository}:{tag}"
        part = current if tag == image.fingerprint else image.parts.get(platform)
        if part is None:
            absent.append(_Missing(image.name, platform, ref))
            continue
        if len(image.platforms) == 1:  # its part is the fingerprint tag itself, which is not whole: it holds another platform
            raise _Refused(f"{ref} names no {platform} image ({part.kind or 'an untyped manifest'}); {run(platform)} pushes it there")
        member, attested = _members(platform, ref, part, image.platforms, run(platform))
        members.append(member)
        attestations.extend(entry for entry in attested if entry.get("digest") not in {a.get("digest") for a in attestations})
    if absent:
        missing.extend(absent)
        return None
    data, media_type = _index(members, attestations)
    return JoinStep(**common, state=JoinState.JOIN, digest="sha256:" + hashlib.sha256(data).hexdigest(), index=data,
                    media_type=media_type, platforms=image.platforms, attestations=len(attestations))


def _missing_line(missing: Sequence[_Missing], run: Callable[[str], str], then: str) -> str:
    by_platform: dict[str, list[_Missing]] = {}
    for entry in missing:
        by_platform.setdefault(entry.platform, []).append(entry)
    what = "; ".join(f"{platform} is not pushed for {_shown([m.image for m in entries])} (no {entries[0].ref})"
                     for platform, entries in by_platform.items())
    runs = " and ".join(run(platform) for platform in by_platform)
    return f"cannot join: {what}; {runs} must push {'it' if len(by_platform) == 1 else 'them'} first, then {then}; nothing was written"


def decide_join(images: Sequence[JoinImage], *, run: Callable[[str], str] = run_for, then: str = "join again") -> JoinPlan:
    """Each image's join step, or the one line that refuses the join (nothing may be written then).

    ``run`` names who pushes a platform (:func:`run_for`): the run of that
    platform, and later the runner ``images.yaml`` gives it; ``then`` what to
    do once it has (the executor, joining the platforms its own builds just
    pushed, says to build again).
    """
    steps: list[JoinStep] = []
    missing: list[_Missing] = []
    for image in images:
        try:
            step = _step(image, run, missing)
        except _Refused as err:
            return JoinPlan(refusal=f"cannot join {image.name}: {err}; nothing was written")
        if step is not None:
            steps.append(step)
    if missing:
        return JoinPlan(refusal=_missing_line(missing, run, then))
    return JoinPlan(steps=tuple(steps))
