"""One tag policy for the whole image family. Pure: the event and the registry's tags go in, tags come out.

- always the fingerprint tag (children and tests pin it);
- a version tag ``vX.Y.Z``: ``X.Y.Z``; ``X.Y`` when it is the newest patch of
  its line; ``latest`` only when it is the highest stable version the
  registry knows (a patch to an older line moves neither ``latest`` nor a
  newer line's ``X.Y``); a pre-release gets only its own tag;
- the default branch: ``edge`` (name configurable, e.g. ``latest-dev``) and
  ``sha-<7>``;
- a pull request: ``pr-<N>``, built and tested, pushed only when asked.

The event comes from the CI environment (GitHub Actions) or from git (a
version tag at HEAD, the branch).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import total_ordering

from .errors import ImagegraphError
from .gitnames import commit_id, ref_name

__all__ = [
    "DEFAULT_POLICY",
    "FORWARD_ONLY",
    "Event",
    "TagError",
    "TagPolicy",
    "TagSet",
    "Version",
    "describe_event",
    "event_from_env",
    "event_from_git",
    "oci_labels",
    "release_version",
    "source_url",
    "tag_rule",
    "tags_for",
]

_CORE = (r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
         r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?")
# semver.org's grammar, with an optional leading "v" (git tags) and no build metadata in image tags.
_SEMVER = re.compile(rf"^v?{_CORE}$")
# the whole of semver.org's grammar, any prefix letter and build metadata included: to say which project rule a tag breaks
_ANY_SEMVER = re.compile(rf"^(?P<prefix>[vV]?){_CORE}(?P<build>\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$")
#: A tag that means to be a version (v1.2, 1.2.3, V1.0.0): never ignored without a word.
_VERSION_LIKE = re.compile(r"^[vV]?\d+(?:\.|$)")


class TagError(ImagegraphError):
    """An event that cannot be tagged (a version tag that is not semver)."""


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


@dataclass(frozen=True)
class Event:
    """What is being built: a version tag, a branch, a pull request, or a local checkout."""

    #: "tag", "branch", "pull_request" or "local"
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


@dataclass(frozen=True)
class TagSet:
    #: Every tag the image gets, the fingerprint tag first.
    tags: tuple[str, ...]
    #: Whether these tags go to the registry (a pull request's do only on request).
    push: bool
    #: The version being released, if any (for the org.opencontainers.image.version label).
    version: str | None = None
    #: Why a tag was held back, in words ("latest stays at 2.1.0: 1.4.3 is not the highest stable version").
    notes: tuple[str, ...] = ()


DEFAULT_POLICY = TagPolicy()


def tags_for(event: Event, fingerprint: str, registry_tags: Iterable[str], policy: TagPolicy = DEFAULT_POLICY) -> TagSet:
    """The tags an image gets for ``event``; ``registry_tags`` are the tags its repository already has."""
    if event.kind == "tag":
        return _release(event, fingerprint, registry_tags)
    if event.kind == "pull_request":
        if event.pr_number is None:
            raise TagError("a pull request event without a number; set GITHUB_REF=refs/pull/<N>/merge")
        return TagSet((fingerprint, f"pr-{event.pr_number}"), push=policy.push_pull_requests,
                      notes=() if policy.push_pull_requests else (f"pr-{event.pr_number} is built and tested, not pushed (push it with --push-pr)",))
    if event.kind == "branch" and event.ref == event.default_branch:
        return TagSet((fingerprint, policy.edge, f"sha-{event.sha[:7]}"), push=True)
    if event.kind == "branch":
        return TagSet((fingerprint, f"sha-{event.sha[:7]}"), push=True, notes=(f"branch {event.ref} is not {event.default_branch}: no {policy.edge} tag",))
    return TagSet((fingerprint,), push=True)


@dataclass(frozen=True)
class PlannedTag:
    """A tag the plan says an image gets, and the rule that lets it move (what `invoke plan` shows)."""

    tag: str
    #: fingerprint (the content address, pushed with the image), branch (edge / latest-dev), commit (sha-<7>),
    #: pull_request (pr-<N>), version (X.Y.Z, X.Y, latest: given by `invoke release`).
    kind: str
    #: Whether `invoke build` moves it in this run (a version tag or an unpushed pr-<N> does not).
    moves: bool
    rule: str

    def to_dict(self) -> dict[str, object]:
        return {"tag": self.tag, "kind": self.kind, "moves": self.moves, "rule": self.rule}


#: The kinds of tag a build moves only forward: one stays when a newer commit's run already moved it (imagegraph.adapters.tagmove).
FORWARD_ONLY = frozenset({"branch", "commit", "pull_request"})

#: The gate every moving tag of a build passes (imagegraph.core.publish decides it, imagegraph.adapters.tagmove carries it out).
FAMILY_RULE = "moves with the whole family, only when every image built and pushed and the image inputs are committed; all or nothing"


def planned_tags(event: Event, fingerprint: str, policy: TagPolicy = DEFAULT_POLICY, *, push: bool = True) -> tuple[PlannedTag, ...]:
    """The tags an image gets for ``event``, each with the rule it moves by: the decision `invoke build` carries out."""
    if not push:
        return (PlannedTag(fingerprint, "fingerprint", False, "local only (push: false): tagged in the engine, never pushed"),)
    own = PlannedTag(fingerprint, "fingerprint", True, "pushed with the image: its content address, never moved")
    if event.kind == "tag":
        rule = tag_rule(event.ref)
        version = Version.parse(event.ref) if rule is None else None
        if version is None:
            return (own,)
        what = (str(version),) if not version.stable else (str(version), f"{version.major}.{version.minor}", "latest")
        return (own, *(PlannedTag(t, "version", False, "given by `invoke release` to the tested digest; X.Y and latest only when it is "
                                                         "the newest of its line / the highest stable version") for t in what))
    tagset = tags_for(event, fingerprint, (), policy)
    planned = [own]
    for tag in tagset.tags[1:]:
        if tag == policy.edge:
            planned.append(PlannedTag(tag, "branch", True, f"{FAMILY_RULE}; forward only: stays when it names a newer commit than {event.sha[:7]}"))
        elif tag.startswith("sha-"):
            planned.append(PlannedTag(tag, "commit", True, FAMILY_RULE))
        elif tag.startswith("pr-"):
            rule = FAMILY_RULE if tagset.push else "built and tested, not pushed (push it with --push-pr)"
            planned.append(PlannedTag(tag, "pull_request", tagset.push, rule))
    if event.kind == "branch" and event.ref != event.default_branch:
        planned.append(PlannedTag(policy.edge, "branch", False, f"moves only on {event.default_branch}; this is branch {event.ref}"))
    return tuple(planned)


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


def release_version(event: Event) -> Version:
    """The version a tag event releases; a tag that is not ``vX.Y.Z[-pre]`` is refused with the rule it breaks."""
    rule = tag_rule(event.ref)
    version = Version.parse(event.ref)
    if event.kind != "tag" or rule is not None or version is None:
        raise TagError(rule or f"{event.ref!r} is no version tag; tag releases as vX.Y.Z or vX.Y.Z-rc.N (e.g. v1.2.0)")
    return version


def _release(event: Event, fingerprint: str, registry_tags: Iterable[str]) -> TagSet:
    version = release_version(event)
    own = str(version)
    if not version.stable:
        return TagSet((fingerprint, own), push=True, version=own, notes=(f"{own} is a pre-release: no {version.major}.{version.minor} or latest",))
    known = {v for v in (Version.parse(t) for t in registry_tags if not t.startswith("v")) if v is not None and v.stable}
    known.add(version)
    tags = [fingerprint, own]
    notes = []
    newest_in_line = max(v for v in known if v.line == version.line)
    if newest_in_line == version:
        tags.append(f"{version.major}.{version.minor}")
    else:
        notes.append(f"{version.major}.{version.minor} stays at {newest_in_line}: {own} is not the newest patch of its line")
    highest = max(known)
    if highest == version:
        tags.append("latest")
    else:
        notes.append(f"latest stays at {highest}: {own} is not the highest stable version")
    return TagSet(tuple(tags), push=True, version=own, notes=tuple(notes))


def event_from_env(env: Mapping[str, str], event_payload: Mapping[str, object]) -> Event | None:
    """The event GitHub Actions describes; None outside GitHub Actions."""
    if env.get("GITHUB_ACTIONS") != "true":
        return None
    # Both reach git (tag moves ask whether a commit descends from GITHUB_SHA) and the output: checked first.
    sha = commit_id(env["GITHUB_SHA"], "GITHUB_SHA", "GitHub sets it to the commit this run is for") if env.get("GITHUB_SHA") else ""
    ref = ref_name(env["GITHUB_REF"], "GITHUB_REF", "GitHub sets it to the branch, tag or pull request ref") if env.get("GITHUB_REF") else ""
    repository = event_payload.get("repository")
    default = str(repository.get("default_branch") or "main") if isinstance(repository, Mapping) else "main"
    if ref.startswith("refs/tags/"):
        return Event("tag", sha, ref.removeprefix("refs/tags/"), default)
    pull = re.match(r"^refs/pull/(\d+)/", ref)
    if pull or env.get("GITHUB_EVENT_NAME", "").startswith("pull_request"):
        number = int(pull.group(1)) if pull else _pr_number(event_payload)
        return Event("pull_request", sha, "", default, number)
    if ref.startswith("refs/heads/"):
        return Event("branch", sha, ref.removeprefix("refs/heads/"), default)
    return Event("local", sha, "", default)


def _pr_number(payload: Mapping[str, object]) -> int | None:
    number = payload.get("number")
    return number if isinstance(number, int) else None


def event_from_git(sha: str, tags_at_head: Iterable[str], branch: str | None, default_branch: str) -> Event:
    """The event a local checkout stands for: the highest version tag at HEAD wins, then the branch.

    Every other version-like tag at HEAD is named in the event's notes: a
    lower version passed over, or a tag that breaks a rule (``1.0.0``,
    ``V1.0.0``, ``v1.0.0+build.5``) and the rule it breaks.
    """
    candidates = sorted(t for t in tags_at_head if _VERSION_LIKE.match(t))
    valid = sorted((t for t in candidates if tag_rule(t) is None), key=lambda t: Version.parse(t), reverse=True)  # type: ignore[arg-type,return-value]
    refused = tuple(f"tag {t} at HEAD is not a release tag: {tag_rule(t)}" for t in candidates if tag_rule(t) is not None)
    notes: list[str] = []
    if len(valid) > 1:
        notes.append(f"several version tags at HEAD: {valid[0]} is the highest, so {', '.join(valid[1:])} "
                     f"{'is' if len(valid) == 2 else 'are'} not released")
    notes.extend(refused)
    if valid:
        return Event("tag", sha, valid[0], default_branch, notes=tuple(notes), refused=refused)
    if branch:
        return Event("branch", sha, branch, default_branch, notes=tuple(notes), refused=refused)
    return Event("local", sha, "", default_branch, notes=tuple(notes), refused=refused)


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



def source_url(remote: str | None, env: Mapping[str, str]) -> str | None:
    """The repository's web address for org.opencontainers.image.source: ``https://host/path``, never a secret in it.

    GitHub Actions names it (``$GITHUB_SERVER_URL/$GITHUB_REPOSITORY``);
    otherwise the ``origin`` remote. Either way only the host and the path
    are kept: the userinfo (``user:token@``, whatever it holds, an ``@``
    included), the query (``?private_token=``) and the fragment are dropped,
    from ``https://``, ``ssh://``, ``git://`` and scp-like ``git@host:org/repo``
    remotes alike, in any case of scheme. A local path, another scheme, or an
    address that is not a plain host and path names no public address: None.
    """
    server, repository = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    if server and repository:
        remote = f"{re.split(r'[?#]', server, maxsplit=1)[0].rstrip('/')}/{repository}"
    if not remote:
        return None
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", remote)
    if scheme:
        kind, rest = scheme.group(1).lower(), remote[scheme.end():]
    elif re.match(r"[^/]+:", remote) and not remote.startswith((".", "/")):
        kind, rest = "scp", remote.replace(":", "/", 1) if "@" not in remote else _scp_path(remote)
    else:
        return None  # a local path: no public address to name
    if kind not in ("https", "http", "ssh", "git", "git+ssh", "ssh+git", "scp"):
        return None
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    rest = rest[rest.rfind("@") + 1:]
    host, _, path = rest.partition("/")
    if kind not in ("https", "http"):
        host = host.split(":", 1)[0]  # an ssh port is not the web server's
    path = path.removesuffix("/").removesuffix(".git").strip("/")
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?", host) or not path or not re.fullmatch(r"[A-Za-z0-9._~/+-]+", path):
        return None
    return f"https://{host}/{path}"


def _scp_path(remote: str) -> str:
    """``user:pass@host:org/repo`` -> ``user:pass@host/org/repo``: the scp-like path starts at the first ':' after the last '@'."""
    at = remote.rfind("@")
    head, tail = remote[:at + 1], remote[at + 1:]
    return head + tail.replace(":", "/", 1)
