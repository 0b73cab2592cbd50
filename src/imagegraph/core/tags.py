"""Which tags each image gets, and why: the whole tag policy, pure (an event and registry facts in, tags and verdicts out).

On a push to the default branch (``main``) every pushed image the run
built or reused gets ``edge`` (``tags: {edge: latest-dev}`` renames it) and
``sha-<7>`` of the commit, copied from its fingerprint tag, and only:

- for the whole family at once, when every image built and pushed and no
  image input has uncommitted changes (:func:`publication`): ``edge`` never
  names a family of which half is new, or images that are not the commit's;
- forward: a tag of a kind in :data:`FORWARD_ONLY` stays where it is when a
  newer commit's run already moved it, or when nothing this clone knows
  shows the move is forward (:func:`decide_branch_tag`), again for the whole
  family;
- all or nothing: tags that exist are moved first, new ones last, and a
  failure puts back what moved (:func:`order_moves`, :func:`rollback_plan`).

Elsewhere: another branch gets ``sha-<7>`` only; a pull or merge request
``pr-<N>``, built and tested, pushed only when asked (``--push-pr``,
``tags: {push_pull_requests: true}``); a version tag ``vX.Y.Z`` moves nothing
in a build: `invoke release` copies the tested digests to ``X.Y.Z``, to
``X.Y`` when it is the newest patch of its line, and to ``latest`` when it
is the highest stable version the registry knows (:func:`version_tags`); a
pre-release gets only its own tag, and a published version never moves
without ``--force`` (:func:`plan_release`). Every image always has its
fingerprint tag: children and tests pin it, nothing moves it.

Each tag is one :class:`PlannedTag` (name, kind, whether it moves, the rule
in words) from the plan (``invoke plan`` shows them) to the registry;
:mod:`imagegraph.adapters.tagmove` carries the moves out. The event comes
from :mod:`imagegraph.core.ci` (GitHub Actions, GitLab CI, or git).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import total_ordering
from typing import TYPE_CHECKING, Protocol

from .errors import ImagegraphError

if TYPE_CHECKING:
    from .config import Config
    from .fingerprint import Fingerprint

__all__ = [
    "DEFAULT_POLICY",
    "FAMILY_RULE",
    "FORWARD_ONLY",
    "Event",
    "FamilyImage",
    "Move",
    "Outcome",
    "PlannedTag",
    "Publication",
    "Relation",
    "ReleaseError",
    "TagError",
    "TagMoves",
    "TagPolicy",
    "TagRequest",
    "Version",
    "Witness",
    "check_release_event",
    "decide_branch_tag",
    "describe_event",
    "oci_labels",
    "order_moves",
    "plan_release",
    "planned_tags",
    "publication",
    "release_event",
    "release_version",
    "rollback_plan",
    "tag_rule",
    "version_tags",
]

_CORE = (r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
         r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?")
# semver.org's grammar, with an optional leading "v" (git tags) and no build metadata in image tags.
_SEMVER = re.compile(rf"^v?{_CORE}$")
# the whole of semver.org's grammar, any prefix letter and build metadata included: to say which project rule a tag breaks
_ANY_SEMVER = re.compile(rf"^(?P<prefix>[vV]?){_CORE}(?P<build>\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$")


class TagError(ImagegraphError):
    """An event that cannot be tagged (a version tag that is not semver)."""


class ReleaseError(ImagegraphError):
    """The release cannot go ahead (an image of this commit is not in the registry, or the event is no release)."""


# -- versions -----------------------------------------------------------------------------------------------------------


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version | None:
        match = _SEMVER.match(text)
        if match is None:
            return None
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())

    @property
    def stable(self) -> bool:
        return not self.prerelease

    @property
    def line(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(self.prerelease)}" if self.prerelease else core

    def _key(self) -> tuple:
        # semver precedence: a pre-release sorts before its release; numeric identifiers below alphanumeric ones.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()


def tag_rule(tag: str) -> str | None:
    """The project rule a version tag breaks, in words; None for a release tag (``vX.Y.Z`` or ``vX.Y.Z-pre``)."""
    if _SEMVER.match(tag) and tag.startswith("v"):
        return None
    loose = _ANY_SEMVER.match(tag)
    if loose is None:
        return (f"{tag!r} is not semver: a release tag is vMAJOR.MINOR.PATCH with an optional -PRERELEASE"
                " (e.g. v1.2.0, v1.2.0-rc.1)")
    broken = []
    if loose.group("prefix") == "":
        broken.append("a leading v is required")
    elif loose.group("prefix") == "V":
        broken.append("the leading v must be lowercase")
    if loose.group("build"):
        broken.append(f"build metadata ({loose.group('build')}) is not allowed in a tag name (image tags cannot hold '+')")
    fixed = "v" + tag.lstrip("vV").split("+", 1)[0]
    return f"{tag!r} is semver, but {' and '.join(broken)}; tag the release {fixed}"


# -- the event and the policy's settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """What is being built: a version tag, a branch, a pull or merge request, or a local checkout (:mod:`imagegraph.core.ci` reads it)."""

    #: "tag", "branch", "pull_request" (a GitLab merge request too) or "local"
    kind: str
    #: The commit being built.
    sha: str
    #: The tag name (v1.2.3), the branch name, or "" for a pull request / local checkout without a branch.
    ref: str = ""
    default_branch: str = "main"
    pr_number: int | None = None
    #: What was chosen over what, in words (another version tag at HEAD, a tag that is no release tag).
    notes: tuple[str, ...] = ()
    #: Version-like tags at HEAD that cannot be released, each with the rule it breaks (for a release's refusal).
    refused: tuple[str, ...] = ()


@dataclass(frozen=True)
class TagPolicy:
    #: The moving tag of the default branch ("edge", or e.g. "latest-dev").
    edge: str = "edge"
    #: Push pull request images (pr-<N>) too; by default they are built and tested only.
    push_pull_requests: bool = False


DEFAULT_POLICY = TagPolicy()


def describe_event(event: Event) -> str:
    """The event in words, for a build report: ``branch main``, ``tag v1.2.0``, ``pull request #42``, ``local``."""
    described = {"tag": f"tag {event.ref}", "branch": f"branch {event.ref}",
                 "pull_request": f"pull request #{event.pr_number}" if event.pr_number else "pull request"}
    return described.get(event.kind, f"local{' ' + event.ref if event.ref else ''}")


def oci_labels(*, revision: str, source: str | None, version: str | None, created: str) -> dict[str, str]:
    """The OCI annotations every image carries (https://github.com/opencontainers/image-spec, annotations.md)."""
    labels = {"org.opencontainers.image.revision": revision, "org.opencontainers.image.created": created}
    if source:
        labels["org.opencontainers.image.source"] = source
    if version:
        labels["org.opencontainers.image.version"] = version
    return labels


# -- which tags an image gets -------------------------------------------------------------------------------------------


#: The kinds of tag: the content address, the default branch's moving tag, a commit's, a pull request's, a release's.
FINGERPRINT, BRANCH, COMMIT, PULL_REQUEST, VERSION = "fingerprint", "branch", "commit", "pull_request", "version"
#: The kinds of tag a build moves only forward: one stays when a newer commit's run already moved it (:func:`decide_branch_tag`).
FORWARD_ONLY = frozenset({BRANCH, COMMIT, PULL_REQUEST})
#: The gate every moving tag of a build passes (:func:`publication` decides it, :mod:`imagegraph.adapters.tagmove` carries it out).
FAMILY_RULE = "moves with the whole family, only when every image built and pushed and the image inputs are committed; all or nothing"


@dataclass(frozen=True)
class PlannedTag:
    """A tag an image gets, and the rule it moves by: what `invoke plan` shows, what a release or a build moves."""

    tag: str
    #: fingerprint (the content address, pushed with the image), branch (edge / latest-dev), commit (sha-<7>),
    #: pull_request (pr-<N>), version (X.Y.Z, X.Y, latest: given by `invoke release`).
    kind: str
    #: Whether it moves in this run (`invoke build` moves no version tag, nor an unpushed pr-<N>; a release no held X.Y or latest).
    moves: bool
    rule: str

    @property
    def forward_only(self) -> bool:
        return self.kind in FORWARD_ONLY

    def to_dict(self) -> dict[str, object]:
        return {"tag": self.tag, "kind": self.kind, "moves": self.moves, "rule": self.rule}


def planned_tags(event: Event, fingerprint: str, policy: TagPolicy = DEFAULT_POLICY, *, push: bool = True) -> tuple[PlannedTag, ...]:
    """The tags an image gets for ``event``, each with the rule it moves by: the decision `invoke build` carries out."""
    if not push:
        return (PlannedTag(fingerprint, FINGERPRINT, False, "local only (push: false): tagged in the engine, never pushed"),)
    own = PlannedTag(fingerprint, FINGERPRINT, True, "pushed with the image: its content address, never moved")
    if event.kind == "tag":
        version = Version.parse(event.ref) if tag_rule(event.ref) is None else None
        if version is None:
            return (own,)
        names = (str(version),) if not version.stable else (str(version), f"{version.major}.{version.minor}", "latest")
        return (own, *(PlannedTag(name, VERSION, False, "given by `invoke release` to the tested digest; X.Y and latest only when it is "
                                                        "the newest of its line / the highest stable version") for name in names))
    if event.kind == "pull_request":
        if event.pr_number is None:
            raise TagError("a pull or merge request event without a number; GitHub sets GITHUB_REF=refs/pull/<N>/merge, "
                           "GitLab CI_MERGE_REQUEST_IID")
        rule = FAMILY_RULE if policy.push_pull_requests else "built and tested, not pushed (push it with --push-pr)"
        return (own, PlannedTag(f"pr-{event.pr_number}", PULL_REQUEST, policy.push_pull_requests, rule))
    if event.kind != "branch":
        return (own,)
    sha = PlannedTag(f"sha-{event.sha[:7]}", COMMIT, True, FAMILY_RULE)
    if event.ref == event.default_branch:
        edge = PlannedTag(policy.edge, BRANCH, True, f"{FAMILY_RULE}; forward only: stays when it names a newer commit than {event.sha[:7]}")
        return (own, edge, sha)
    return (own, sha, PlannedTag(policy.edge, BRANCH, False, f"moves only on {event.default_branch}; this is branch {event.ref}"))


def version_tags(version: Version, registry_tags: Iterable[str]) -> tuple[PlannedTag, ...]:
    """A release's tags for one image whose repository holds ``registry_tags``: ``X.Y.Z`` always, ``X.Y`` and ``latest`` when earned.

    A tag that stays is listed with ``moves`` false and the rule says why
    ("latest stays at 2.1.0: 1.4.3 is not the highest stable version").
    """
    own = str(version)
    mine = PlannedTag(own, VERSION, True, "the version's own tag: a published version never moves (unless forced)")
    if not version.stable:
        return (mine,)
    line = f"{version.major}.{version.minor}"
    known = {v for v in (Version.parse(t) for t in registry_tags if not t.startswith("v")) if v is not None and v.stable}
    known.add(version)
    newest_in_line = max(v for v in known if v.line == version.line)
    highest = max(known)
    return (mine,
            PlannedTag(line, VERSION, True, "the newest patch of its line") if newest_in_line == version else
            PlannedTag(line, VERSION, False, f"{line} stays at {newest_in_line}: {own} is not the newest patch of its line"),
            PlannedTag("latest", VERSION, True, "the highest stable version") if highest == version else
            PlannedTag("latest", VERSION, False, f"latest stays at {highest}: {own} is not the highest stable version"))


# -- a release: the tested digests get the version's tags ---------------------------------------------------------------


def release_version(event: Event) -> Version:
    """The version a tag event releases; a tag that is not ``vX.Y.Z[-pre]`` is refused with the rule it breaks."""
    rule = tag_rule(event.ref)
    version = Version.parse(event.ref)
    if event.kind != "tag" or rule is not None or version is None:
        raise TagError(rule or f"{event.ref!r} is no version tag; tag releases as vX.Y.Z or vX.Y.Z-rc.N (e.g. v1.2.0)")
    return version


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


@dataclass(frozen=True)
class TagRequest:
    """One image's part of a family tag move (a build's or a release's): copy ``source``'s manifest to each moving tag of ``tags``."""

    image: str
    #: The repository inside the registry, e.g. imagegraph/app.
    repository: str
    #: The fingerprint tag the new tags copy.
    source: str
    #: The tags; those that move are written, the others (held, with the rule that holds them) are only said.
    tags: tuple[PlannedTag, ...]
    #: The digest this run pushed, or a release found, for ``source`` (a fingerprint tag that names another one now is said).
    digest: str | None = None
    #: What is worth saying before anything moves ("--force: 1.3.0 replaced: ...").
    notes: tuple[str, ...] = ()

    @property
    def moving(self) -> tuple[PlannedTag, ...]:
        return tuple(tag for tag in self.tags if tag.moves and tag.kind != FINGERPRINT)

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the tags that move."""
        return tuple(tag.tag for tag in self.moving)


def plan_release(config: Config, fingerprints: Mapping[str, Fingerprint], event: Event, digests: Mapping[str, str | None],
                 registry_tags: Mapping[str, tuple[str, ...]], *, version_digests: Mapping[str, str | None] | None = None,
                 force: bool = False, deleted: Mapping[str, str] | None = None) -> tuple[TagRequest, ...]:
    """The version's tags each pushed image gets; every image is checked before the first tag moves.

    Nothing is rebuilt or pulled: each tag is a copy of the fingerprint tag's
    manifest, so the digest users pull is the digest CI tested. ``digests``
    maps image -> its fingerprint tag's digest (None: not in the registry:
    the whole release is refused); ``version_digests`` maps image -> the digest
    the version's own tag already names (absent or None: the tag is new);
    ``deleted`` maps image -> when a cleanup deleted its fingerprint tag, as
    the registry's record of deletions says.
    """
    version = check_release_event(event)
    own = str(version)
    images = [spec for spec in config.images if spec.push]
    missing = [spec.name for spec in images if not digests.get(spec.name)]
    if missing:
        raise ReleaseError(_missing(own, [(name, fingerprints[name].tag) for name in missing], deleted or {}))
    held = {name: digest for name, digest in (version_digests or {}).items() if digest}
    moved = {spec.name: held[spec.name] for spec in images if spec.name in held and held[spec.name] != digests[spec.name]}
    if moved and not force:
        shown = ", ".join(f"{name}:{own} is {digest[:19]}…" for name, digest in moved.items())
        raise ReleaseError(f"{own} is already released on other digests ({shown}); a published version never moves: "
                           f"release a new version, or pass --force to replace it")
    requests = []
    for spec in images:
        tags = version_tags(version, registry_tags.get(spec.name, ()))
        notes = [tag.rule for tag in tags if not tag.moves]
        if not version.stable:
            notes.append(f"{own} is a pre-release: no {version.major}.{version.minor} or latest")
        if spec.name in moved:
            notes.append(f"--force: {own} replaced: it was {moved[spec.name]}, now {digests[spec.name]}")
        elif spec.name in held:
            notes.append(f"{own} already names this digest: re-released, nothing changes for it")
        requests.append(TagRequest(spec.name, config.repository_path(spec.name), fingerprints[spec.name].tag, tags,
                                   digests[spec.name], tuple(notes)))
    return tuple(requests)


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


# -- a build's tag move: the family gate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """One tag write: ``tag`` of ``repository`` is to name ``digest``."""

    image: str
    repository: str
    tag: str
    #: The digest the tag is to name.
    digest: str
    #: The digest it named before; None when the tag is new.
    previous: str | None
    #: It moves only forward from the build's commit (:data:`FORWARD_ONLY`).
    forward_only: bool = False

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


class _Result(Protocol):
    """What the gate reads of an image's build result (:class:`imagegraph.core.result.ImageResult` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def digest(self) -> str | None: ...


@dataclass(frozen=True)
class FamilyImage:
    """One image of the family, as the plan has it: what the tag move needs."""

    name: str
    #: The repository inside the registry, e.g. imagegraph/app.
    repository: str
    #: Its fingerprint tag: the tag the moving tags copy.
    fingerprint: str
    push: bool
    #: The plan's tags for it (:attr:`imagegraph.core.plan.ImagePlan.tags`, made by :func:`planned_tags`).
    tags: tuple[PlannedTag, ...]
    #: Whether the run built or reused it (False: not selected, skipped).
    selected: bool = True


@dataclass(frozen=True)
class Publication:
    """What a build's tag move is to do."""

    #: Lines to say before anything moves: a version-tag event's pointer to `invoke release`, each tag held back and why.
    notes: tuple[str, ...] = ()
    #: Each image's moving tags, for :func:`imagegraph.adapters.tagmove.move_family_tags` (all or nothing).
    requests: tuple[TagRequest, ...] = ()
    #: The outcome when nothing is to move (refused, or fingerprint tags only); None when ``requests`` are to move.
    settled: TagMoves | None = None


def publication(event: Event, images: Sequence[FamilyImage], results: Sequence[_Result], *, dirty: Sequence[str]) -> Publication:
    """The tags this build moves, or why none moves; ``dirty`` are the image inputs with uncommitted changes.

    Never on a version-tag event (version tags come from `invoke release`);
    none when any image failed, or when an image input is uncommitted (the
    images are not the commit's); an image that is not pushed or not selected
    gets none.
    """
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
    for result in results:
        image = family[result.name]
        if not image.push or not image.selected:
            continue
        notes.extend(f"[{image.name}] {held.tag} not moved: {held.rule}" for held in image.tags if not held.moves and held.kind != FINGERPRINT)
        request = TagRequest(image.name, image.repository, image.fingerprint, image.tags, result.digest)
        if request.moving:
            requests.append(request)
    if not requests:
        return Publication(tuple(notes), settled=TagMoves(Outcome.UNCHANGED, "tags: fingerprint tags only"))
    return Publication(tuple(notes), tuple(requests))


# -- moving tags safely: forward only, all or nothing -------------------------------------------------------------------


class Relation(Enum):
    """Where the commit a tag names now stands against this build's commit."""

    SAME = "the same commit"
    OLDER = "an ancestor"
    NEWER = "a descendant"
    UNRELATED = "not in this commit's history"
    UNKNOWN = "not in this clone"


@dataclass(frozen=True)
class Witness:
    """A commit that tells where a branch tag stands: the image's revision label, or a sha tag on the same image."""

    #: What says so, ending where the commit goes: ``app:edge's image was built at`` (the label) or
    #: ``app:edge's image carries app:sha-89abcde, tagged for`` (a sha tag naming the same digest).
    source: str
    commit: str
    relation: Relation


def decide_branch_tag(tag: str, ours: str, witnesses: Mapping[str, Sequence[Witness]]) -> str | None:
    """Why the family's ``tag`` must stay where it is, or None to move it; ``witnesses`` per image whose tag would change.

    Two kinds of witness say which commit a tag stands for: the revision
    label of the image it names (the commit that *built* the image: for a
    reused image an older one, or a pull request's merge commit), and the
    ``sha-<7>`` tags on the same image (the default branch moves them with
    ``edge``, so they name the commits whose runs moved it).

    - any witness newer than ``ours`` holds the tag back for the whole family:
      a newer run already moved it;
    - an image with no witness this clone knows holds it back too: nothing
      says the move is forward (fetching the history fixes it);
    - otherwise (every image has a same, older or unrelated witness) it moves.
      An unrelated commit is history that was rewritten (a force push): what
      edge names is on no line that leads here.
    """
    for _, found in sorted(witnesses.items()):
        for witness in found:
            if witness.relation is Relation.NEWER:
                return (f"{tag} stays: a newer run moved it ({witness.source} {witness.commit[:7]}, "
                        f"a descendant of this build's {ours[:7]})")
    for image, found in sorted(witnesses.items()):
        if all(w.relation is Relation.UNKNOWN for w in found):
            named = f" ({found[0].source} {found[0].commit[:7]})" if found else " (no revision label, no sha tag)"
            return (f"{tag} stays: nothing shows that moving {image}:{tag} is forward{named}, a commit this clone does not have; "
                    f"fetch the branch's history (git fetch origin) and rerun")
    return None


def order_moves(moves: Iterable[Move]) -> tuple[Move, ...]:
    """Tags that exist first (a failure can put them back), new tags last (a registry removes a tag only with its image)."""
    return tuple(sorted(moves, key=lambda m: m.previous is None))


def rollback_plan(written: Sequence[Move], now: Mapping[tuple[str, str], str | None]) -> tuple[tuple[Move, ...], tuple[Move, ...]]:
    """(tags to put back, newest first; new tags that stay), from what was written and what the tags name ``now``.

    A tag that names something else than this run wrote was moved by someone
    else since, or never written (the write failed before the registry
    stored it): it is left alone.
    """
    ours = [m for m in reversed(written) if now.get((m.repository, m.tag)) == m.digest]
    return tuple(m for m in ours if m.previous is not None), tuple(m for m in ours if m.previous is None)
