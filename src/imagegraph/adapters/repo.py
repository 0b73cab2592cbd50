"""The git adapter: everything imagegraph asks git.

Inputs and changes come from git rather than from a walk of the disk: git
already knows which files are the project's (ignored ones are not), their
content ids, and what differs from a base commit, so a plan of a large
checkout reads its answers instead of every file.

git is asked directly: one-line answers through :meth:`Repository._ask`,
listings of file names in the NUL-separated forms :mod:`imagegraph.adapters.gitlists`
defines and reads (a name may hold any byte but NUL and ``/``); GitPython,
slow to load, only reads objects by id.

Two questions matter. *What is in the checkout?* (:meth:`Repository.working_tree`
and :meth:`Repository.commit_tree` make the trees of :mod:`imagegraph.adapters.trees`,
which answer with git's own content ids; they get :attr:`Repository.access`,
a small value, not the repository.) *What changed since a base
commit?* (:meth:`Repository.diff`, renames and untracked files included.)

Paths are always relative to the project root (the directory of images.yaml),
which may sit below the repository's top level in a monorepo.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Collection, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..core.changes import Change
from ..core.errors import ImagegraphError
from ..core.gitnames import is_commit_id, is_ref_name
from ..core.values import shown
from . import gitlists
from .inputcache import InputCache, cache_key
from .trees import CommitTree, GitAccess, WorkingTree, read_small

if TYPE_CHECKING:
    import git

__all__ = ["DEFAULT_BRANCHES", "Repository"]

#: The names a default branch goes by, where the remote records none.
DEFAULT_BRANCHES = ("main", "master")
#: How long `git ls-remote` may take to list a remote's branches before cleanup gives up on asking it.
REMOTE_TIMEOUT = 90.0


_KINDS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "T": "type-changed", "C": "added"}


class Repository:
    """A git repository seen from the project root inside it."""

    def __init__(self, root: Path | str, *, cache: InputCache | None = None) -> None:
        self.root = Path(root).resolve()
        #: Where diffs between two commits are kept (they never change); None: computed every time.
        self._cache = cache
        self._head: tuple[str | None] | None = None
        found = subprocess.run(["git", "-C", str(self.root), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
        if found.returncode != 0 or not found.stdout.strip():
            raise ImagegraphError(f"{self.root} is not inside a git repository; imagegraph reads inputs and changes from git: run `git init` there")
        top = Path(found.stdout.strip()).resolve()
        rel = self.root.relative_to(top).as_posix()
        #: The project root relative to the repository's top level, with a trailing slash ("" at the top).
        self.prefix = "" if rel == "." else rel + "/"
        self.top = top
        #: What the trees of this repository are given of it (:mod:`imagegraph.adapters.trees`).
        self.access = GitAccess(self.root, self.prefix, self.git_start, self._read_blob, self.config_value)

    @cached_property
    def repo(self) -> git.Repo:
        """GitPython's view of the repository, opened on first use.

        Diffs, commits, refs and object reads go through it; the working
        tree's listing (:class:`WorkingTree`) does not, so a plan that only
        needs the checkout never loads GitPython (about 70 ms).
        """
        import git

        try:
            return git.Repo(self.top)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise ImagegraphError(f"{self.root} is not inside a git repository; imagegraph reads inputs and changes from git: run `git init` there") from None

    # -- commits --------------------------------------------------------------
    # Questions with a one-line answer go to git directly (a few milliseconds each, no GitPython to load);
    # diffs too (git's raw listing, see committed_changes); fetches and object reads go through GitPython (self.repo).

    def _ask(self, *args: str) -> str | None:
        """What ``git <args>`` prints, stripped; None when it fails (no such ref, no such setting)."""
        asked = self.git_start(*args)
        out, _ = asked.communicate()
        return out.decode("utf-8", "surrogateescape").strip() if asked.returncode == 0 else None

    def head(self) -> str | None:
        """HEAD's commit id; None before the first commit. Asked once: a run builds the commit it started on."""
        if self._head is None:
            self._head = (self._ask("rev-parse", "--verify", "-q", "HEAD^{commit}") or None,)
        return self._head[0]

    def resolve(self, rev: str) -> str | None:
        """The commit ``rev`` names (branch, tag, sha, HEAD~2, ...), or None when it names none."""
        return self._ask("rev-parse", "--verify", "-q", "--end-of-options", f"{rev}^{{commit}}") or None

    def merge_base(self, a: str, b: str) -> str | None:
        return self._ask("merge-base", "--end-of-options", a, b) or None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is ``descendant`` or one of its ancestors (both must be known commits).

        Either may be read from a registry's labels: git is told where its options end.
        """
        asked = self.git_start("merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant)
        _, err = asked.communicate()
        if asked.returncode not in (0, 1):
            detail = err.decode("utf-8", "replace").strip().splitlines()
            raise ImagegraphError(f"`git merge-base --is-ancestor` failed: {shown(detail[-1] if detail else str(asked.returncode), 200)}")
        return asked.returncode == 0

    def commits(self) -> frozenset[str]:
        """Every commit any ref reaches (what this clone can order)."""
        return frozenset((self._ask("rev-list", "--all") or "").split())

    def is_shallow(self) -> bool:
        return self._ask("rev-parse", "--is-shallow-repository") == "true"

    def default_branch(self) -> str | None:
        """What the repository calls its default branch (``origin/main``, ``main``, ...): the remote's HEAD, else a
        ``main`` or ``master`` there or here, else ``init.defaultBranch``; None when it has none of them."""
        branches = self.branches()
        candidates = (self.remote_default_branch(), *(f"origin/{b}" for b in DEFAULT_BRANCHES), *DEFAULT_BRANCHES)
        found = next((name for name in candidates if name in branches), None)
        if found is None and (configured := self.config_value("init", "defaultBranch")) in branches:
            found = configured
        return found

    def remote_default_branch(self, remote: str = "origin") -> str | None:
        """``origin/main`` from ``refs/remotes/origin/HEAD``, when the clone recorded it."""
        return self._ask("symbolic-ref", "--short", "-q", f"refs/remotes/{remote}/HEAD") or None

    def branch(self) -> str | None:
        """The checked-out branch; None on a detached HEAD."""
        return self._ask("symbolic-ref", "--short", "-q", "HEAD") or None

    def branches(self) -> frozenset[str]:
        """Every local and remote-tracking branch, by short name (``main``, ``origin/main``), in one question."""
        listed = self._ask("for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/remotes")
        return frozenset((listed or "").splitlines())

    def tags_at_head(self) -> list[str]:
        return (self._ask("tag", "--points-at", "HEAD") or "").split()

    def commit_time(self, commit: str) -> datetime:
        """When ``commit`` was committed, in the committer's own offset."""
        stamp = self._ask("show", "-s", "--format=%cI", "--end-of-options", f"{commit}^{{commit}}")
        if not stamp:
            raise ImagegraphError(f"git knows no commit {commit}; fetch it, or build from a checkout that has it")
        return datetime.fromisoformat(stamp)

    def remote_url(self, remote: str = "origin") -> str | None:
        return self._ask("config", "--get", f"remote.{remote}.url") or None

    def has_remote(self, remote: str = "origin") -> bool:
        return remote in (self._ask("remote") or "").split()

    def config_value(self, section: str, option: str) -> str | None:
        return self._ask("config", "--get", f"{section}.{option}") or None

    def fetch(self, remote: str, *refs: str, options: Sequence[str] = ()) -> str | None:
        """Run ``git fetch``; the one-line reason on failure (no network, no such remote), None on success.

        ``refs`` (branch and tag names, commit ids) may come from CI variables and
        flags: each must be a ref name or a commit id, and all of them, the
        remote too, sit after ``--end-of-options``, so none is read as an option
        (``--upload-pack=<command>``) or as a refspec that writes a ref.
        """
        for ref in (remote, *refs):
            if not (is_ref_name(ref) or is_commit_id(ref)):
                raise ImagegraphError(f"refusing to fetch {shown(ref)}: neither a ref name nor a commit id")
        if not all(option.startswith("--") for option in options):
            raise ValueError(f"git fetch options must be long options: {options!r}")
        fetched = self.git_start("fetch", "--no-tags", "--quiet", *options, "--end-of-options", remote, *refs)
        _, err = fetched.communicate()
        if fetched.returncode == 0:
            return None
        lines = [line.strip() for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
        return shown(lines[-1], 200)[1:-1] if lines else f"git fetch exited with {fetched.returncode}"

    def remote_heads(self, remote: str = "origin") -> frozenset[str]:
        """The commits the remote's branches point at now (``git ls-remote``), asked of the remote itself, not this
        clone's remote-tracking branches, which keep a deleted branch until a pruning fetch."""
        listed = self.git_start("ls-remote", "--heads", "--end-of-options", remote)
        try:
            out, err = listed.communicate(timeout=REMOTE_TIMEOUT)
        except subprocess.TimeoutExpired:
            listed.kill()
            listed.communicate()
            raise ImagegraphError(f"git ls-remote {remote} did not answer within {REMOTE_TIMEOUT:.0f} s") from None
        if listed.returncode != 0:
            lines = [line.strip() for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
            raise ImagegraphError(f"git ls-remote {remote} failed: {shown(lines[-1], 200)[1:-1] if lines else listed.returncode}")
        ids = (line.split("\t", 1)[0] for line in out.decode("ascii", "replace").splitlines())
        return frozenset(commit for commit in ids if is_commit_id(commit))

    def commits_named(self, names: Collection[str]) -> dict[str, str]:
        """name -> the commit id it names in this clone, for each of ``names`` (ids, abbreviations) that names exactly one.

        One ``git cat-file --batch-check`` for all of them: names go in on its
        input, one a line, never on the command line; an abbreviation that is
        ambiguous or unknown, or a line with blanks, names nothing.
        """
        asked = [name for name in names if name and name.isascii() and name.isalnum()]
        if not asked:
            return {}
        checking = self.git_start("cat-file", "--batch-check=%(objectname) %(objecttype)", stdin=subprocess.PIPE)
        out, _ = checking.communicate("".join(f"{name}^{{commit}}\n" for name in asked).encode())
        found = {}
        for name, line in zip(asked, out.decode("ascii", "replace").splitlines(), strict=False):
            commit, _, kind = line.partition(" ")
            if kind == "commit" and is_commit_id(commit):
                found[name] = commit
        return found

    def reachable(self, commits: Collection[str]) -> frozenset[str]:
        """Every commit ``commits`` (ids this clone has) and their ancestors are: what those branches contain."""
        if not commits:
            return frozenset()
        if not all(is_commit_id(commit) for commit in commits):
            raise ImagegraphError("git rev-list is given commit ids only")  # ids from git itself; anything else is a bug
        return frozenset((self._ask("rev-list", "--end-of-options", *sorted(commits)) or "").split())

    def restart_helpers(self) -> None:
        """Start git's long-lived helper processes (``cat-file --batch``) afresh when next needed.

        A Ctrl-C at the terminal reaches every process of its group, git's
        helpers too: after one, the next object read would meet a broken pipe.
        """
        self.repo.git.clear_cache()

    # -- changes --------------------------------------------------------------

    def diff(self, base: str, worktree: WorkingTree | None = None) -> tuple[Change, ...]:
        """Every path that differs between commit ``base`` (or :data:`EMPTY_TREE`) and the working tree.

        Two cheap questions instead of one expensive one: the commits since
        ``base`` (a tree-to-tree diff, which only walks subtrees that differ)
        and the working tree's own changes against HEAD (the status the
        :class:`WorkingTree` already took). Staged, unstaged and untracked
        files all count; ignored ones never do.
        """
        worktree = worktree if worktree is not None else self.working_tree()
        head = self.head()
        found: dict[str, Change] = {}
        if head is not None:
            for change in self.committed_changes(base, head):
                found[change.path] = change
        for path, xy in worktree.status.items():
            kind = "untracked" if xy == "??" else "deleted" if "D" in xy else "added" if xy[0] == "A" else "modified"
            earlier = found.get(path)
            if earlier is None:
                found[path] = Change(path, kind)
            elif kind == "deleted":  # committed since base, then deleted in the work tree (a rename's old path still counts)
                found[path] = Change(path, "deleted", earlier.old_path)
        return tuple(found[path] for path in sorted(found))

    def committed_changes(self, base: str, head: str) -> tuple[Change, ...]:
        """The paths that differ between two commits: git's tree-to-tree diff, renames found.

        Two commit ids always give the same diff, so with a cache the answer
        is kept by the pair, and the next plan against the same base (every
        plan of a branch until the next commit) neither diffs nor loads GitPython.
        """
        if not (is_commit_id(base) and is_commit_id(head)):  # ids from git itself; anything else is a bug, never passed on
            raise ImagegraphError(f"cannot diff {shown(base)}..{shown(head)}: commit ids expected")

        def diff() -> tuple[Change, ...]:
            # git's raw listing, read here: GitPython's diff makes an object per path with a round trip to git's
            # object reader and a submodule look-up each, milliseconds a path: minutes for 100,000 changed files.
            listing = self.listing(gitlists.diff_commits(base, head))
            return tuple(change for status, old, path in gitlists.raw_diff(listing) for change in self._changes(status, old, path))

        if self._cache is None:
            return diff()
        return self._cache.remember(
            cache_key(f"diff {base} {head} {self.prefix}", "", (__file__,)), diff,
            encode=lambda changes: {"changes": [[c.path, c.kind, c.old_path] for c in changes]},
            decode=lambda entry: tuple(Change(str(path), str(kind), None if old is None else str(old)) for path, kind, old in entry["changes"]))

    def _changes(self, status: str, before: str | None, path: str) -> list[Change]:
        kind = _KINDS.get(status or "M", "modified")
        new = self.access.relative(path)
        if status != "R":
            return [Change(new, kind)] if new is not None else []
        old = self.access.relative(before)
        if old is not None and new is not None:
            return [Change(new, kind, old)]
        # A rename across the project's boundary is an add or a delete from here.
        return [Change(new, "added")] if new is not None else [Change(old, "deleted")] if old is not None else []

    # -- trees ----------------------------------------------------------------

    def working_tree(self) -> WorkingTree:
        return WorkingTree(self.access)

    def commit_tree(self, commit: str) -> CommitTree:
        return CommitTree(self.access, commit)

    def _read_blob(self, path: str, oid: str) -> bytes:
        """The bytes of blob ``oid`` (the file ``path`` of a commit), through GitPython's long-lived object readers.

        Its size is asked first, apart from its content: a blob refused as too
        large is never opened, so git's content reader is never left mid-answer.
        """
        binary = bytes.fromhex(oid)
        return read_small(path, self.repo.odb.info(binary).size, lambda: self.repo.odb.stream(binary).read())

    def listing(self, command: Sequence[str]) -> bytes:
        """What a git command of :mod:`imagegraph.adapters.gitlists` prints, run at the top level; read it there too."""
        return self.access.listing(command)

    def staged(self) -> tuple[str, ...]:
        """The staged files that still exist, by path from the top level (what a pre-commit hook checks)."""
        return tuple(gitlists.items(self.listing(gitlists.staged())))

    def git_start(self, *args: str, stdin: IO[bytes] | int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        """A git command run at the top level, started now; read its output later (several run side by side)."""
        return subprocess.Popen(["git", "-C", str(self.top), "--no-optional-locks", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=stdin, env=_git_env())




def _git_env() -> dict[str, str]:
    """The environment git runs in: the caller's, less what would make git read the project's pathspecs another way.

    A fetch or ``ls-remote`` that needs credentials no helper gives fails at once rather than waiting at a prompt no one
    may see (a CI job, a build's captured output), unless the caller asked for prompts (``GIT_TERMINAL_PROMPT``)."""
    env = {name: value for name, value in os.environ.items() if name not in gitlists.PATHSPEC_VARIABLES}
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    return env
