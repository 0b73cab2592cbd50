"""Retention: which manifests of a registry may go, and why. Pure: an inventory goes in, verdicts come out.

A distribution registry deletes by digest, and deleting a digest takes every
tag that names it, so every decision here is about a digest (a manifest or an
index), never a tag alone. A digest is kept when any of these holds:

- one of its tags is protected: ``latest``, the edge tag, the registry cache
  tags, or a configured pattern;
- it carries the newest stable release;
- it is among the ``keep`` most recent: versioned digests first (by version,
  then by creation time), then the rest by creation time. A pre-release whose
  release exists does not count;
- a kept index lists it (the platform manifests of a multi-arch image);
- a kept image was built on it (its ``imagegraph.parent`` label names it),
  followed down the whole chain, so a kept app keeps the base it stands on.

Everything else goes. That includes untagged manifests the registry shows:
the platform manifests of an index that goes and that no kept index lists.
Indexes are deleted before the manifests they list, so an interrupted run
leaves no index pointing at a deleted manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

from .cache import CACHE_TAG
from .errors import ImagegraphError, InputError
from .tags import Version
from .values import ImageRef, image_name_of

__all__ = [
    "DEFAULT_PROTECTED",
    "RETENTION_TAG",
    "Manifest",
    "RetentionError",
    "RetentionPolicy",
    "Verdict",
    "check_kept_closure",
    "deletion_order",
    "note_doomed",
    "plan_retention",
    "ripe",
]

#: The tag of the small document in each repository that records which digests cleanup found doomed, and when.
RETENTION_TAG = "imagegraph-retention"
DEFAULT_PROTECTED = ("latest", f"{CACHE_TAG}*", RETENTION_TAG)


class RetentionError(ImagegraphError):
    """A retention plan that would break a kept image (a bug guard), or a policy that makes no sense."""


@dataclass(frozen=True)
class Manifest:
    """One manifest or index in one repository, as the registry shows it."""

    repository: str
    digest: str
    tags: tuple[str, ...] = ()
    #: When the image was made (ISO 8601, e.g. the org.opencontainers.image.created label); "" when unknown.
    created: str = ""
    #: For an index: the digests it lists.
    children: tuple[str, ...] = ()
    #: The references of the images it was built on (the imagegraph.parent label), e.g. host/ns/base:<fingerprint>.
    parents: tuple[str, ...] = ()
    #: e.g. linux/arm64, for a platform manifest of an index.
    platform: str = ""
    #: imagegraph's own record, no image, never shown as one: cleanup's retention record (:data:`RETENTION_TAG`) or a lease
    #: claim, or an earlier one left untagged where the registry keeps every manifest pushed (GitHub's package versions).
    record: bool = False

    @property
    def is_index(self) -> bool:
        return bool(self.children)

    @property
    def name(self) -> str:
        """The image's name: its repository's last part."""
        return image_name_of(self.repository)

    def label(self) -> str:
        """``app:1.2.0`` (its most telling tag), or ``app@sha256:1234abcd5678`` when untagged."""
        if not self.tags:
            return f"{self.name}@{self.digest[:19]}"
        return f"{self.name}:{_telling_tag(self.tags)}"


@dataclass(frozen=True)
class RetentionPolicy:
    #: How many digests per repository to keep beyond the protected ones.
    keep: int = 10
    #: Tags (fnmatch patterns) that are never deleted.
    protect: tuple[str, ...] = DEFAULT_PROTECTED
    #: The default branch's moving tag, protected too.
    edge: str = "edge"

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise RetentionError(f"keep must be at least 1 (got {self.keep}); the newest build is never deleted")

    def protected(self, tag: str) -> bool:
        return tag in (self.edge, RETENTION_TAG) or any(fnmatchcase(tag, pattern) for pattern in self.protect)


@dataclass(frozen=True)
class Verdict:
    manifest: Manifest
    keep: bool
    reason: str


@dataclass
class _Repo:
    name: str
    manifests: dict[str, Manifest] = field(default_factory=dict)
    by_tag: dict[str, str] = field(default_factory=dict)
    listed_by: dict[str, list[str]] = field(default_factory=dict)


def plan_retention(manifests: Iterable[Manifest], policy: RetentionPolicy,
                   pinned: Mapping[tuple[str, str], str] | None = None) -> tuple[Verdict, ...]:
    """A verdict for every manifest, keep or delete, with the reason in words.

    ``pinned`` maps (repository, digest) to why it is kept whatever the policy
    says (e.g. tagged after cleanup looked); what it needs is kept with it.
    """
    repos = _index(manifests)
    kept: dict[tuple[str, str], str] = {}
    gone: dict[tuple[str, str], str] = {}
    for repo in repos.values():
        _keep_roots(repo, policy, kept, gone)
    for key, why in (pinned or {}).items():
        if key[0] in repos and key[1] in repos[key[0]].manifests:
            kept[key] = why
    _close(repos, kept)
    verdicts = []
    for repo in repos.values():
        for digest, manifest in repo.manifests.items():
            key = (repo.name, digest)
            if key in kept:
                verdicts.append(Verdict(manifest, True, kept[key]))
            else:
                verdicts.append(Verdict(manifest, False, gone.get(key) or _why_untagged(repo, manifest)))
    check_kept_closure(verdicts)
    return tuple(verdicts)


def _index(manifests: Iterable[Manifest]) -> dict[str, _Repo]:
    repos: dict[str, _Repo] = {}
    for manifest in manifests:
        repo = repos.setdefault(manifest.repository, _Repo(manifest.repository))
        repo.manifests[manifest.digest] = manifest
        for tag in manifest.tags:
            repo.by_tag[tag] = manifest.digest
    for repo in repos.values():
        for manifest in repo.manifests.values():
            for child in manifest.children:
                repo.listed_by.setdefault(child, []).append(manifest.digest)
    return repos


def _keep_roots(repo: _Repo, policy: RetentionPolicy, kept: dict[tuple[str, str], str], gone: dict[tuple[str, str], str]) -> None:
    candidates = []
    for digest, manifest in repo.manifests.items():
        key = (repo.name, digest)
        protected = sorted(tag for tag in manifest.tags if policy.protected(tag))
        if protected:
            kept[key] = f"protected tag {', '.join(protected)}"
        elif manifest.tags and digest not in repo.listed_by:
            candidates.append(manifest)
        # Platform manifests of an index (tagged or not) follow their index: they are not builds of their own.
    versions = {digest: _versions(repo.manifests[digest].tags) for digest in repo.manifests}
    stable = [(max(v for v in vs if v.stable), digest) for digest, vs in versions.items() if any(v.stable for v in vs)]
    if stable:
        newest, digest = max(stable)
        kept.setdefault((repo.name, digest), f"newest release {newest}")
    released = {v for vs in versions.values() for v in vs if v.stable}
    ranked = []
    for manifest in candidates:
        own = versions[manifest.digest]
        if own and all(not v.stable for v in own) and all(_release_of(v) in released for v in own):
            gone[(repo.name, manifest.digest)] = f"pre-release superseded by {max(_release_of(v) for v in own)}"
            continue
        ranked.append(manifest)
    # Versioned first (highest version, then newest), then unversioned by creation time, newest first.
    ranked.sort(key=lambda m: (bool(versions[m.digest]), max(versions[m.digest], default=Version(0, 0, 0)), m.created), reverse=True)
    for position, manifest in enumerate(ranked):
        key = (repo.name, manifest.digest)
        if position < policy.keep:
            what = f"version {max(versions[manifest.digest])}" if versions[manifest.digest] else "build"
            kept.setdefault(key, f"{what}, {_ordinal(position + 1)} most recent (keep {policy.keep})")
        else:
            gone[key] = f"beyond the {policy.keep} most recent"


def _close(repos: Mapping[str, _Repo], kept: dict[tuple[str, str], str]) -> None:
    """Keep what kept images need: the manifests a kept index lists, the images a kept one was built on."""
    queue = list(kept)
    while queue:
        name, digest = queue.pop()
        repo = repos[name]
        manifest = repo.manifests[digest]
        needs = [(name, child, f"platform manifest ({repo.manifests[child].platform or '?'}) of kept {manifest.label()}")
                 for child in manifest.children if child in repo.manifests]
        for ref in manifest.parents:
            found = _resolve(repos, ref)
            if found is not None:
                needs.append((*found, f"base of kept {manifest.label()}"))
        for parent_name, parent_digest, reason in needs:
            key = (parent_name, parent_digest)
            if key not in kept:
                kept[key] = reason
                queue.append(key)


def _resolve(repos: Mapping[str, _Repo], ref: str) -> tuple[str, str] | None:
    """``host/ns/base:tag`` or ``host/ns/base@sha256:...`` -> (repository, digest) when this inventory has it.

    The registry is matched by the repository path only: the label was
    written when the image was built, perhaps under another address of the
    same registry. A label that is no reference names nothing here.
    """
    try:
        image = ImageRef.parse(ref, "imagegraph.parent label")
    except InputError:
        return None
    repo = repos.get(image.repository)
    if repo is None:
        return None
    digest = image.digest or repo.by_tag.get(image.tag, "")
    return (image.repository, digest) if digest in repo.manifests else None


def _why_untagged(repo: _Repo, manifest: Manifest) -> str:
    owners = [repo.manifests[d].label() for d in repo.listed_by.get(manifest.digest, ())]
    if owners:
        return f"platform manifest ({manifest.platform or '?'}) of deleted {', '.join(sorted(owners))}"
    if manifest.record:
        return "an earlier record of imagegraph's own (retention, lease), replaced"
    return "untagged: no tag and no kept index names it"


def check_kept_closure(verdicts: Sequence[Verdict]) -> None:
    """Refuse a plan in which a kept manifest lists, or was built on, one that goes."""
    repos = _index(v.manifest for v in verdicts)
    status = {(v.manifest.repository, v.manifest.digest): v.keep for v in verdicts}
    for verdict in verdicts:
        if not verdict.keep:
            continue
        manifest = verdict.manifest
        for child in manifest.children:
            if status.get((manifest.repository, child)) is False:
                raise RetentionError(f"refusing: kept {manifest.label()} lists {child[:19]}, which the plan deletes")
        for ref in manifest.parents:
            if status.get(_resolve(repos, ref) or ("", "")) is False:
                raise RetentionError(f"refusing: kept {manifest.label()} was built on {ref}, which the plan deletes")


def note_doomed(seen: Mapping[str, str], doomed: Iterable[str], now: datetime) -> dict[str, str]:
    """digest -> when a cleanup first found it doomed (ISO 8601, UTC), after this run found ``doomed``.

    A digest doomed before keeps its first time; a newly doomed one gets
    ``now``; one no longer doomed is forgotten (if it is doomed again later,
    its grace period starts again), and so does one whose time is unreadable.
    """
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {digest: seen[digest] if _when(seen.get(digest, "")) is not None else stamp for digest in doomed}


def ripe(seen: Mapping[str, str], now: datetime, grace: timedelta) -> frozenset[str]:
    """The digests first found doomed at least ``grace`` before ``now`` (all of them with no grace)."""
    return frozenset(digest for digest, first in seen.items()
                     if grace <= timedelta(0) or ((when := _when(first)) is not None and when <= now - grace))


def _when(stamp: str) -> datetime | None:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def deletion_order(verdicts: Iterable[Verdict]) -> tuple[Manifest, ...]:
    """What goes, indexes before the manifests they list, so no index ever points at a deleted manifest."""
    doomed = [v.manifest for v in verdicts if not v.keep]
    return tuple(sorted(doomed, key=lambda m: (not m.is_index, m.repository, m.created, m.digest)))


def _versions(tags: Iterable[str]) -> tuple[Version, ...]:
    # Image tags carry versions without the v (1.2.0); X.Y and other moving tags do not parse.
    return tuple(v for v in (Version.parse(t) for t in tags if not t.startswith("v")) if v is not None)


def _release_of(version: Version) -> Version:
    return Version(version.major, version.minor, version.patch)


def _telling_tag(tags: Sequence[str]) -> str:
    versions = sorted((v, t) for t in tags if (v := Version.parse(t)) is not None and not t.startswith("v"))
    if versions:
        return versions[-1][1]
    for prefix in ("pr-", "sha-"):
        for tag in tags:
            if tag.startswith(prefix):
                return tag
    return sorted(tags, key=len)[0]


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
