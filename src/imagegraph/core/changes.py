"""What changed, since when, and which images it touches: git explains the plan.

Three steps, kept apart so each can be tested on its own:

1. :func:`imagegraph.core.ci.choose_base` (pure) picks the base ref the way users expect:
   ``--since REF``; in CI (GitHub Actions, GitLab CI) the pull or merge
   request's merge base or the previous pushed commit; locally the merge
   base with the default branch.
2. :func:`locate_base` finds that commit in the repository, deepening a
   shallow clone as far as needed, or says why it cannot (then the plan falls
   back to fingerprints alone and says so).
3. :func:`direct_causes` (pure) maps the changed paths onto the images whose
   declared inputs they are.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .config import Config
from .defaults import CONFIG_NAME
from .errors import ImagegraphError
from .fingerprint import Fingerprint, images_matching
from .gitnames import is_commit_id, is_ref_name

__all__ = [
    "EMPTY_TREE",
    "PREVIOUS_COMMIT",
    "REMOTE_DEFAULT",
    "BaseRef",
    "BaseRequest",
    "Change",
    "Explanation",
    "UnknownRef",
    "direct_causes",
    "locate_base",
    "same_as_base",
    "unlisted_causes",
]

#: git's id of the empty tree: the base of "everything is new" (a first commit).
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


@dataclass(frozen=True)
class Change:
    """One path that differs between the base commit and the working tree."""

    path: str
    #: added, modified, deleted, renamed, type-changed or untracked.
    kind: str
    #: The path before a rename; None otherwise.
    old_path: str | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        """Both sides of a rename count: the old path stops being an input, the new one starts."""
        return (self.old_path, self.path) if self.old_path else (self.path,)

    def describe(self) -> str:
        return f"{self.old_path} → {self.path} {self.kind}" if self.old_path else f"{self.path} {self.kind}"


#: The base when no default branch is known here: the remote's, fetched by `git fetch origin HEAD`.
REMOTE_DEFAULT = "origin/HEAD"
#: The first parent of HEAD: the commit before it on its branch, or the one a merge commit was made onto.
PREVIOUS_COMMIT = "HEAD^1"


class UnknownRef(ImagegraphError):
    """``--since`` names nothing git knows."""


@dataclass(frozen=True)
class BaseRequest:
    """Which commit to compare with, before looking in the repository."""

    #: A revision git can resolve (branch, tag, sha, HEAD~3), or EMPTY_TREE for "everything is new".
    rev: str
    #: How it was chosen, for people: "--since v1.2.0", "pull request #12: merge base with main", ...
    how: str
    #: Compare with merge-base(rev, HEAD) rather than rev itself (what a branch changed, not what main gained since).
    merge_base: bool = True
    #: The images of this commit were published (CI built it, or the user says so with --since): images
    #: whose inputs did not change since need not be looked up in the registry.
    trusted: bool = False
    #: What to fetch from the remote when the commit is missing (a shallow or partial clone).
    fetch: str | None = None
    #: Whether an unresolvable rev is the user's mistake (--since) rather than a missing default branch.
    explicit: bool = False


@dataclass(frozen=True)
class BaseRef:
    """The base commit found in the repository."""

    commit: str
    how: str
    trusted: bool

    @property
    def short(self) -> str:
        return "the empty tree" if self.commit == EMPTY_TREE else self.commit[:7]


@dataclass(frozen=True)
class Explanation:
    """What git says about the working tree compared with the base commit."""

    #: None when no base could be found: the plan then rests on fingerprints alone.
    base: BaseRef | None
    changes: tuple[Change, ...] = ()
    #: image -> the changed paths that are its declared inputs (direct causes only).
    causes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Images whose fingerprint is the one the base commit had: nothing that matters changed.
    same_as_base: frozenset[str] = frozenset()
    #: Why the explanation is partial (e.g. a shallow clone that could not be deepened).
    note: str = ""

    @property
    def ignored(self) -> tuple[str, ...]:
        """Changed paths that are no image's input (docs, README, tests, ...)."""
        used = {path for paths in self.causes.values() for path in paths}
        return tuple(sorted({p for change in self.changes for p in change.paths} - used - {CONFIG_NAME}))

    def to_dict(self) -> dict[str, object]:
        return {
            "base": None if self.base is None else {"commit": self.base.commit, "how": self.base.how, "trusted": self.base.trusted},
            "changed": [{"path": c.path, "kind": c.kind, **({"old_path": c.old_path} if c.old_path else {})} for c in self.changes],
            "ignored": list(self.ignored),
            "note": self.note,
        }


# -- 2. finding it in the repository -----------------------------------------------


class History(Protocol):
    """The git operations locating a base needs (the seam: :class:`imagegraph.adapters.repo.Repository`)."""

    def head(self) -> str | None: ...
    def resolve(self, rev: str) -> str | None: ...
    def merge_base(self, a: str, b: str) -> str | None: ...
    def is_shallow(self) -> bool: ...
    def has_remote(self, remote: str = "origin") -> bool: ...
    def fetch(self, remote: str, *refs: str, options: Sequence[str] = ()) -> str | None: ...


#: How far a shallow clone is deepened, step by step, before fetching all history.
DEEPEN_STEPS = (50, 200, 1000)


def locate_base(history: History, request: BaseRequest, *, remote: str = "origin", say=lambda line: None) -> tuple[BaseRef | None, str]:
    """The base commit for ``request``, deepening a shallow clone as needed.

    Returns (base, note): base None with a note when it cannot be found and
    the plan must rest on fingerprints alone. An unknown ``--since`` ref in a
    complete clone is the user's mistake and raises :class:`UnknownRef`.

    A base fetched by name is pinned to its commit id at once: every later
    ``git fetch`` (deepening) rewrites FETCH_HEAD, and a base read from it
    then would be HEAD itself, an empty plan while the branch changed code.
    """
    head = history.head()
    if request.rev == EMPTY_TREE:
        return BaseRef(EMPTY_TREE, request.how, request.trusted), ""
    if head is None:
        if request.explicit:
            raise UnknownRef(f"--since {request.rev}: this repository has no commit yet; commit first or drop --since")
        return BaseRef(EMPTY_TREE, "no commit yet: everything is new", False), ""
    how = request.how
    commit = history.resolve(request.rev)
    if commit is None and "/" not in request.rev and is_ref_name(request.rev) and history.resolve(f"{remote}/{request.rev}") is not None:
        # `--since main` in a clone that only has origin/main (a CI checkout of another branch)
        commit = history.resolve(f"{remote}/{request.rev}")
        how = f"{how} (as {remote}/{request.rev})"
    steps = list(DEEPEN_STEPS)
    while True:
        if commit is not None:
            base = history.merge_base(commit, head) if request.merge_base else commit
            if base is not None:
                return BaseRef(base, how, request.trusted), ""
        shallow = history.is_shallow()
        if commit is not None and not shallow:
            # Complete history and still no merge base: unrelated histories, so everything is new.
            return BaseRef(EMPTY_TREE, f"{how} (no common history: everything is new)", False), ""
        if commit is None and not shallow and request.rev == PREVIOUS_COMMIT:
            return BaseRef(EMPTY_TREE, f"{how} (HEAD is the first commit: everything is new)", False), ""
        if not history.has_remote(remote):
            return _not_found(request, f"{request.rev} is not in this clone and there is no remote {remote!r} to fetch it from")
        if commit is None and _fetch_target(request, remote) is not None:
            commit, error = _fetch_base(history, request, remote, shallow, say)
            if error:
                return _not_found(request, error)
            continue
        if not shallow:
            return _not_found(request, f"{request.rev} is not in this repository")
        if steps:
            step = steps.pop(0)
            say(f"shallow clone: deepening by {step} commits to reach the base commit")
            error = history.fetch(remote, options=(f"--deepen={step}",))
        else:
            say("shallow clone: fetching the whole history to reach the base commit")
            error = history.fetch(remote, options=("--unshallow",))
            if error is None and history.is_shallow():
                error = "still shallow after --unshallow"
            if error is None:
                steps = []  # one more look with the whole history, then the complete-clone rules apply
        if error:
            return _not_found(request, f"shallow clone without the base commit, and deepening failed: {error}")
        if commit is None:  # a revision no fetch can name (HEAD^1, v1.0~2): deepening may have brought it
            commit = history.resolve(request.rev)


def _fetch_target(request: BaseRequest, remote: str) -> str | None:
    """What to fetch for the base: a branch, tag or commit id (the remote calls origin/main "main"); None for a revision like HEAD^1."""
    what = (request.fetch or request.rev).removeprefix(f"{remote}/")
    return what if is_ref_name(what) or is_commit_id(what) else None


def _fetch_base(history: History, request: BaseRequest, remote: str, shallow: bool, say) -> tuple[str | None, str]:
    """Fetch the base from the remote and pin it: (its commit id, "") or (None, why not)."""
    what = _fetch_target(request, remote)
    assert what is not None
    say(f"fetching {what} from {remote} to find the base commit")
    depth = (f"--depth={DEEPEN_STEPS[0]}",) if shallow else ()
    error = history.fetch(remote, what, options=depth)
    if error:
        return None, f"cannot fetch {what} from {remote}: {error}"
    # Read FETCH_HEAD now, before any other fetch overwrites it; a rev with a local name (a sha, origin/x) wins.
    commit = history.resolve(request.rev) or history.resolve("FETCH_HEAD")
    if commit is None:
        return None, f"fetched {what} from {remote}, but it names no commit"
    return commit, ""


def _not_found(request: BaseRequest, why: str) -> tuple[BaseRef | None, str]:
    if request.explicit:
        raise UnknownRef(f"--since {request.rev}: unknown revision ({why}); give a branch, tag or commit that exists (see `git log --oneline`)")
    return None, f"base ({request.how}) not found: {why}; deciding by fingerprints alone"


# -- 3. which images the changes touch ------------------------------------------------


def direct_causes(config: Config, changes: Sequence[Change], base_config: Config | None, *, config_changed: bool,
                  present: Collection[str] | None = None) -> dict[str, tuple[str, ...]]:
    """image -> the changed paths that are its inputs; images.yaml counts for an image whose settings changed.

    ``base_config`` is images.yaml as the base commit had it (None when it
    had none or it cannot be read: then every image counts as changed).
    ``present`` are the paths of the working tree, which say which ignore
    file each image's builder reads (None: both count).
    """
    touched: dict[str, set[str]] = {name: set() for name in config.names}
    which = images_matching(config.images, present)
    for change in changes:
        for path in change.paths:
            for name in which(path):
                touched[name].add(path)
    if config_changed:
        for spec in config.images:
            if _settings_changed(config, base_config, spec.name):
                touched[spec.name].add(CONFIG_NAME)
    return {name: tuple(sorted(paths)) for name, paths in touched.items() if paths}


def _settings_changed(config: Config, base_config: Config | None, name: str) -> bool:
    """Whether images.yaml says something else about ``name`` than it did at the base (its Python, for wheels, included)."""
    before = _image_or_none(base_config, name)
    if before is None or before != config.image(name) or base_config.repository(name) != config.repository(name):  # type: ignore[union-attr]
        return True
    return bool(before.wheels) and base_config.python != config.python  # type: ignore[union-attr]


def _image_or_none(config: Config | None, name: str):
    if config is None or name not in config.names:
        return None
    return config.image(name)


def same_as_base(config: Config, current: Mapping[str, Fingerprint], base_config: Config | None,
                 at_base: Mapping[str, str]) -> frozenset[str]:
    """The images whose fingerprint is exactly the one the base commit had: the only images a published base vouches for.

    ``at_base`` maps each image of the base commit to its fingerprint digest
    there (computed over the base commit's tree with ``base_config``, its
    images.yaml). Compared, never inferred from the paths git lists as
    changed: an image's content can move on without git listing any of its
    inputs (a file its fingerprint follows, a rule that reads the tree), and
    reusing then would name an image nobody built. Equal digests mean equal
    parents too (the Merkle chain).
    """
    if base_config is None:
        return frozenset()
    return frozenset(name for name in config.names
                     if at_base.get(name) == current[name].digest and base_config.repository(name) == config.repository(name))


def unlisted_causes(config: Config, current: Mapping[str, Fingerprint], at_base: Mapping[str, Fingerprint],
                    causes: Mapping[str, Sequence[str]], same: Collection[str]) -> dict[str, tuple[str, ...]]:
    """For an image whose fingerprint differs from the base's though no changed path git lists is its input: the inputs whose content ids differ.

    Only where the difference starts (a root, or a parent that is the same):
    below it the chain from the parent explains the rest. Nothing git lists
    should ever leave such a gap; when something does, the plan still names
    the file rather than giving no reason.
    """
    found: dict[str, tuple[str, ...]] = {}
    for spec in config.images:
        name = spec.name
        if name in same or name in causes or name not in at_base or (spec.parent is not None and spec.parent not in same):
            continue
        differ = tuple(sorted({path for path, _ in set(current[name].files) ^ set(at_base[name].files)}))
        if differ:
            found[name] = differ
    return found
