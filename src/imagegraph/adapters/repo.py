"""The git adapter: everything imagegraph asks git, through GitPython.

Two questions matter. *What is in the checkout?* (:class:`WorkingTree` and
:class:`CommitTree` answer with git's own content ids, so planning a large
repository reads almost nothing from disk.) *What changed since a base
commit?* (:meth:`Repository.diff`, renames and untracked files included.)

Paths are always relative to the project root (the directory of images.yaml),
which may sit below the repository's top level in a monorepo.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.changes import EMPTY_TREE, Change
from ..core.errors import ImagegraphError, InputError
from .inputcache import InputCache, cache_key

if TYPE_CHECKING:
    import git

__all__ = ["CommitTree", "Repository", "UnmergedPaths", "WorkingTree", "blob_id", "file_blob_id", "read_small"]


#: porcelain status of a path with a merge conflict (git status --porcelain: "Unmerged" entries).
UNMERGED = frozenset({"DD", "AU", "UD", "UA", "DU", "AA", "UU"})


class UnmergedPaths(ImagegraphError):
    """A merge (rebase, cherry-pick) stopped on conflicts: the checkout is no content anyone can build."""


#: How much of a file is in memory at once while it is hashed or copied, whatever its size.
CHUNK_BYTES = 1 << 20
#: The most a file read whole as text may hold (a requirements or ignore file, images.yaml at a commit): far beyond any real one.
TEXT_LIMIT_BYTES = 16 << 20


def blob_id(data: bytes) -> str:
    """The id git gives a blob with these bytes (what `git hash-object` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def file_blob_id(path: Path, copy_to: Path | None = None) -> str:
    """:func:`blob_id` of a file's content, read in chunks (constant memory at any size); ``copy_to`` gets the same bytes."""
    with path.open("rb") as source, (copy_to.open("wb") if copy_to is not None else nullcontext()) as target:
        size = os.fstat(source.fileno()).st_size
        digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
        seen = 0
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            seen += len(chunk)
            if target is not None:
                target.write(chunk)
    if seen != size:
        raise ImagegraphError(f"{path} changed while it was read ({size} bytes, then {seen}); run this again once nothing writes to it")
    return digest.hexdigest()


def read_small(path: str, size: int, read: Callable[[], bytes]) -> bytes:
    """``read()``, for a file read whole as text; refused in one line when it is far larger than any such file."""
    if size > TEXT_LIMIT_BYTES:
        raise InputError(path, f"is {size / 1e6:.0f} MB, too large to be a requirements or ignore file (read whole, as text); "
                               "name the right file in images.yaml")
    return read()


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
    # diffs, commits and object reads go through GitPython (self.repo).

    def _ask(self, *args: str) -> str | None:
        """What ``git <args>`` prints, stripped; None when it fails (no such ref, no such setting)."""
        done = subprocess.run(["git", "-C", str(self.top), "--no-optional-locks", *args], capture_output=True, stdin=subprocess.DEVNULL)
        return done.stdout.decode("utf-8", "surrogateescape").strip() if done.returncode == 0 else None

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
        """Whether ``ancestor`` is ``descendant`` or one of its ancestors (both must be known commits)."""
        return self.repo.is_ancestor(ancestor, descendant)

    def commits(self) -> frozenset[str]:
        """Every commit any ref reaches (what this clone can order)."""
        return frozenset((self._ask("rev-list", "--all") or "").split())

    def is_shallow(self) -> bool:
        return self._ask("rev-parse", "--is-shallow-repository") == "true"

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

    def fetch(self, remote: str, *args: str) -> str | None:
        """Run ``git fetch``; the one-line reason on failure (no network, no such remote), None on success."""
        import git  # loaded with self.repo
        try:
            self.repo.git.fetch("--no-tags", "--quiet", remote, *args)
        except git.GitCommandError as err:
            lines = [line.strip() for line in str(err.stderr or err).splitlines() if line.strip()]
            return lines[-1].strip("'") if lines else f"git fetch exited with {err.status}"
        return None

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
        """The paths that differ between two commits: GitPython's tree-to-tree diff, renames found.

        Two commit ids always give the same diff, so with a cache the answer
        is kept by the pair, and the next plan against the same base (every
        plan of a branch until the next commit) neither diffs nor loads GitPython.
        """
        def diff() -> tuple[Change, ...]:
            before = self.repo.tree(EMPTY_TREE) if base == EMPTY_TREE else self.repo.commit(base)
            return tuple(change for d in before.diff(self.repo.commit(head)) for change in self._changes(d))

        if self._cache is None:
            return diff()
        return self._cache.remember(
            cache_key(f"diff {base} {head} {self.prefix}", "", (__file__,)), diff,
            encode=lambda changes: {"changes": [[c.path, c.kind, c.old_path] for c in changes]},
            decode=lambda entry: tuple(Change(str(path), str(kind), None if old is None else str(old)) for path, kind, old in entry["changes"]))

    def _changes(self, d: git.Diff) -> list[Change]:
        kind = _KINDS.get(d.change_type or "M", "modified")
        new = self._relative(d.b_path or d.a_path)
        if d.change_type != "R":
            return [Change(new, kind)] if new is not None else []
        old = self._relative(d.a_path)
        if old is not None and new is not None:
            return [Change(new, kind, old)]
        # A rename across the project's boundary is an add or a delete from here.
        return [Change(new, "added")] if new is not None else [Change(old, "deleted")] if old is not None else []

    # -- trees ----------------------------------------------------------------

    def working_tree(self) -> WorkingTree:
        return WorkingTree(self)

    def commit_tree(self, commit: str) -> CommitTree:
        return CommitTree(self, commit)

    def _relative(self, path: str | None) -> str | None:
        if path is None:
            return None
        if not self.prefix:
            return path
        return path[len(self.prefix):] if path.startswith(self.prefix) else None

    def _pathspec(self) -> str:
        return f":(top){self.prefix}" if self.prefix else ":(top)"

    def git_lines(self, *args: str) -> list[str]:
        """NUL-separated output of a git command run at the top level."""
        return _finish(self.git_start(*args), f"git {args[0]}")

    def git_start(self, *args: str) -> subprocess.Popen[bytes]:
        """A git command run at the top level, started now; read its output later (several run side by side)."""
        return subprocess.Popen(["git", "-C", str(self.top), "--no-optional-locks", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


#: One entry of `git ls-files --stage -z`, stage 0: the content id ("<mode> <blob id>") and the path.
_INDEX_ENTRY = re.compile(r"(\d{6} [0-9a-f]{40,64}) \d\t([^\0]*)\0")


def _output(process: subprocess.Popen[bytes], what: str) -> bytes:
    """What a started git command printed; its own error line when it failed."""
    out, err = process.communicate()
    if process.returncode != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise ImagegraphError(f"`{what}` failed: {detail[-1] if detail else f'exit status {process.returncode}'}")
    return out


def _finish(process: subprocess.Popen[bytes], what: str) -> list[str]:
    """The NUL-separated items a started git command printed."""
    return [item for item in _output(process, what).decode("utf-8", "surrogateescape").split("\0") if item]


#: imagegraph's own working folders (logs, reports, assembled contexts, wheels): never an image's input,
#: even where the repository's .gitignore does not list them (an input glob such as `hello.txt` matches at any depth).
OWN_FOLDERS = (".imagegraph/", ".wheelhouse/")


class WorkingTree:
    """The files of the checkout as a build would see them: tracked and untracked-but-not-ignored.

    Ids come from the index (``git ls-files --stage``) for every file git
    knows is unchanged; only files that differ from the index, and untracked
    ones, are read and hashed (as git would, ``blob <size>\\0<bytes>``), and
    only when a fingerprint asks for them.

    Both git commands start when the tree is made and run side by side (on a
    large checkout the status is most of the wait); their output is read when
    the tree is first asked something, so the caller works meanwhile.
    """

    def __init__(self, repository: Repository) -> None:
        self._repo = repository
        self.root = repository.root
        self._status_run = repository.git_start("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames",
                                                "--ignore-submodules", "--", repository._pathspec())
        self._listing_run = repository.git_start("ls-files", "--stage", "-z", "--", repository._pathspec())
        self._status: dict[str, str] | None = None
        self._listing: bytes | None = None
        self._ids: dict[str, str] = {}
        self._paths: tuple[str, ...] | None = None
        #: How many files had to be read from disk to identify them (for reports and benchmarks).
        self.hashed = 0

    @property
    def status(self) -> dict[str, str]:
        """path -> the two-letter porcelain status (index, work tree) of every file that differs from HEAD."""
        if self._status is None:
            status: dict[str, str] = {}
            for entry in _output(self._status_run, "git status").decode("utf-8", "surrogateescape").split("\0"):
                xy, path = entry[:2], entry[3:]
                rel = self._repo._relative(path) if entry else None
                if rel is not None and not (xy == "??" and rel.startswith(OWN_FOLDERS)):
                    status[rel] = xy
            unmerged = sorted(path for path, xy in status.items() if xy in UNMERGED)
            if unmerged:
                shown = ", ".join(unmerged[:3]) + (f" and {len(unmerged) - 3} more" if len(unmerged) > 3 else "")
                raise UnmergedPaths(f"a merge is in progress with unmerged paths ({shown}); resolve them and commit, "
                                    "or abort it (git merge --abort, git rebase --abort), then run this again")
            self._status = status
        return self._status

    def dirty(self) -> tuple[str, ...]:
        """The files whose content the index does not hold: changed in the work tree, or untracked (sorted)."""
        return tuple(sorted(path for path, xy in self.status.items() if xy == "??" or xy[1] in "MT"))

    def content_key(self) -> str:
        """A digest of everything in the checkout a fingerprint can see: equal keys, equal files and content ids.

        The index listing (every tracked path, mode and blob id) and the
        content ids of the files that differ from it. Costs the hashing of the
        listing and of the changed files, not a look at every file.
        """
        digest = hashlib.sha256(self._listing_bytes())
        for path, xy in sorted(self.status.items()):
            digest.update(f"\0{xy} {path}".encode("utf-8", "surrogateescape"))
            if xy == "??" or xy[1] in "MT":
                digest.update(b" " + self.oid(path).encode())
        return digest.hexdigest()

    def _listing_bytes(self) -> bytes:
        if self._listing is None:
            self._listing = _output(self._listing_run, "git ls-files --stage")
        return self._listing

    def _load(self) -> tuple[str, ...]:
        if self._paths is not None:
            return self._paths
        status = self.status
        prefix = self._repo.prefix
        listing = self._listing_bytes().decode("utf-8", "surrogateescape")
        # "<mode> <blob id> <stage>\t<path>": the content id is "<mode> <blob id>", as fingerprints name it.
        # One regular expression over the whole listing: a Python loop per file is most of the cost on 20,000 files.
        entries = _INDEX_ENTRY.findall(listing) if not prefix else [
            (oid, path[len(prefix):]) for oid, path in _INDEX_ENTRY.findall(listing) if path.startswith(prefix)]
        index = {path: oid for oid, path in entries}
        dirty: list[str] = []
        for path, xy in status.items():
            if xy[1] == "D" or xy == "D ":
                index.pop(path, None)
            elif xy == "??" or xy[1] in "MT":
                dirty.append(path)
                index.pop(path, None)
        self._ids = {**index, **self._ids}  # ids already hashed (content_key) stay
        paths = [*index, *dirty]
        paths.sort()  # git lists the index in order already, so this is one linear pass plus the few dirty paths
        self._paths = tuple(paths)
        return self._paths

    def paths(self) -> Sequence[str]:
        return self._load()

    def __contains__(self, path: object) -> bool:
        """Whether ``path`` is a file of the tree, answered without listing the tree when the listing was not needed yet."""
        if not isinstance(path, str):
            return False
        if self._paths is not None:
            return path in self._ids or path in self._paths
        xy = self.status.get(path)
        if xy is not None:
            return not (xy[1] == "D" or xy == "D ")
        # An index entry "<mode> <blob id> 0\t<path>\0", found in the listing as git printed it.
        listing = self._listing_bytes()
        needle = b" 0\t" + path.encode("utf-8", "surrogateescape") + b"\0"
        at = listing.find(needle)
        while at != -1:
            start = listing.rfind(b"\0", 0, at) + 1
            if _INDEX_ENTRY.fullmatch(listing[start:at + len(needle)].decode("utf-8", "surrogateescape")):
                return True
            at = listing.find(needle, at + 1)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def oid(self, path: str) -> str:
        known = self._ids.get(path)
        if known is not None:
            return known
        if self._paths is None and self.status.get(path, "  ")[1] not in "?MT":
            self._load()  # a file the index holds: its id is in the listing
            known = self._ids.get(path)
            if known is not None:
                return known
        full = self.root / path
        info = full.lstat()
        if stat.S_ISLNK(info.st_mode):
            mode, oid = "120000", blob_id(os.readlink(full).encode())
        else:
            mode, oid = ("100755" if info.st_mode & 0o111 else "100644"), file_blob_id(full)
        self.hashed += 1
        self._ids[path] = known = f"{mode} {oid}"
        return known

    def size(self, path: str) -> int:
        """Bytes on disk (a symbolic link: its target's name); 0 when it cannot be seen."""
        try:
            return os.lstat(os.path.join(self.root, path)).st_size
        except OSError:
            return 0

    def read(self, path: str) -> bytes:
        full = self.root / path
        return read_small(path, self.size(path), full.read_bytes)


class CommitTree:
    """The files of one commit, straight from git's object database (nothing on disk is read)."""

    def __init__(self, repository: Repository, commit: str) -> None:
        self._repo = repository
        self.commit = commit
        ids: dict[str, str] = {}
        if commit != EMPTY_TREE:
            for line in repository.git_lines("ls-tree", "-r", "-z", "--full-tree", commit):
                meta, _, path = line.partition("\t")
                mode, kind, oid = meta.split(" ")
                rel = repository._relative(path)
                if rel is not None and kind in ("blob", "commit"):
                    ids[rel] = f"{mode} {oid}"
        self._ids = ids
        self._paths = tuple(sorted(ids))

    def paths(self) -> Sequence[str]:
        return self._paths

    def oid(self, path: str) -> str:
        return self._ids[path]

    def read(self, path: str) -> bytes:
        stream = self._repo.repo.odb.stream(bytes.fromhex(self._ids[path].split(" ", 1)[1]))
        if stream.size > TEXT_LIMIT_BYTES:
            self._repo.restart_helpers()  # git's cat-file is mid-answer: the next read needs a fresh one
        return read_small(path, stream.size, stream.read)
