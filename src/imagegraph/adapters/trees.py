"""What is in a tree, as fingerprints see it: the checkout (:class:`WorkingTree`) or one commit (:class:`CommitTree`).

Both answer with git's own content ids (``"<mode> <blob id>"``), so
planning a large repository reads almost nothing from disk: the checkout's
ids come from the index, and only files that differ from it are hashed
(:func:`file_blob_id`, a chunk at a time). Paths are relative to the project root.

A tree is given what it needs of git as one small value, :class:`GitAccess`
(the repository adapter makes it), so it depends on four plain answers, not on
the whole repository object and its state.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import stat
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from ..core.changes import EMPTY_TREE
from ..core.defaults import STATE_DIR, WHEELHOUSE_DIR
from ..core.errors import ImagegraphError, InputError
from ..core.fingerprint import GITLINK_MODE
from ..core.links import LINK_MODE, inside
from . import gitlists

__all__ = [
    "CHUNK_BYTES", "OWN_FOLDERS", "TEXT_LIMIT_BYTES", "CommitTree", "GitAccess", "UnmergedPaths", "WorkingTree", "blob_id",
    "file_blob_id", "git_output", "read_small",
]

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


def git_output(process: subprocess.Popen[bytes], what: str) -> bytes:
    """What a started git command printed; its own error line when it failed."""
    out, err = process.communicate()
    if process.returncode != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise ImagegraphError(f"`{what}` failed: {detail[-1] if detail else f'exit status {process.returncode}'}")
    return out


class StartGit(Protocol):
    """Starts ``git <args>`` at the repository's top level and returns at once; its output is read later."""

    def __call__(self, *args: str, stdin: IO[bytes] | int = ...) -> subprocess.Popen[bytes]: ...


@dataclass(frozen=True)
class GitAccess:
    """What a tree needs of its repository, and nothing more: where the project is, and three ways to ask git.

    Paths from git are relative to the repository's top level; the project
    may sit below it in a monorepo (``prefix``), and a tree sees only the
    project's files, named from the project root.
    """

    #: The project root (the directory of images.yaml): where the checkout's files are read.
    root: Path
    #: The project root relative to the repository's top level, with a trailing slash ("" at the top).
    prefix: str
    #: Starts a git command at the top level (the one place that sets its environment).
    start: StartGit
    #: ``(path, "<blob id>")`` -> the blob's bytes, refused when far larger than a text file (:func:`read_small`).
    read_blob: Callable[[str, str], bytes]
    #: ``(section, option)`` -> the repository's setting, None when unset.
    setting: Callable[[str, str], str | None]

    def relative(self, path: str | None) -> str | None:
        """A path from the top level, named from the project root; None when it lies outside the project."""
        if path is None:
            return None
        if not self.prefix:
            return path
        return path[len(self.prefix):] if path.startswith(self.prefix) else None

    def pathspec(self) -> str:
        """The project's files, as a pathspec read from the top level."""
        # literal: a folder named with *, ? or [ is that folder, not a pattern
        return f":(top,literal){self.prefix}" if self.prefix else ":(top)"

    def listing(self, command: Sequence[str]) -> bytes:
        """What a git command of :mod:`imagegraph.adapters.gitlists` prints; its own error line when it fails."""
        return git_output(self.start(*command), f"git {command[0]}")


#: How many questions :meth:`WorkingTree.__contains__` answers by scanning git's listing before it lists the tree
#: instead: a plan that asks about a few ignore files pays a few scans; one that asks about every path pays one listing.
SCANS_BEFORE_LISTING = 16

#: imagegraph's own working folders (logs, reports, assembled contexts, wheels): never an image's input,
#: even where the repository's .gitignore does not list them (an input glob such as `hello.txt` matches at any depth).
OWN_FOLDERS = (f"{STATE_DIR}/", f"{WHEELHOUSE_DIR}/")


class WorkingTree:
    """The files of the checkout as a build would see them: tracked and untracked-but-not-ignored.

    Ids come from the index (``git ls-files --stage``) for every file git
    knows is unchanged; only files that differ from the index, and untracked
    ones, are read and hashed (as git would, ``blob <size>\\0<bytes>``), and
    only when a fingerprint asks for them.

    A file whose checkout converts its blob (a ``.gitattributes`` filter,
    ``ident``, end-of-line conversion, ``working-tree-encoding``; any text
    file under ``core.autocrlf``) is on disk in other bytes than the index
    says: those bytes are what a build context receives, so such a file is
    identified by them, as a changed one is (:meth:`converted`). A Git LFS
    pointer left where its file should be is refused.

    The git commands start when the tree is made and run side by side (on a
    large checkout the status is most of the wait); their output is read when
    the tree is first asked something, so the caller works meanwhile.
    """

    def __init__(self, git: GitAccess) -> None:
        self._git = git
        self.root = git.root
        pathspec = git.pathspec()
        self._status_run = git.start(*gitlists.status(pathspec))
        self._listing_run = git.start(*gitlists.index(pathspec))
        self._names_run = git.start(*gitlists.names(pathspec))
        self._attributes_run = git.start(*gitlists.check_attr(), stdin=self._names_run.stdout)
        self._names_run.stdout.close()  # check-attr reads the names now; git ls-files sees a closed pipe if it stops early
        self._converted: dict[str, str] | None = None
        self._attributes: dict[str, dict[str, str]] = {}
        self._status: dict[str, str] | None = None
        self._listing: bytes | None = None
        self._ids: dict[str, str] = {}
        self._paths: tuple[str, ...] | None = None
        self._scans = 0
        #: How many files had to be read from disk to identify them (for reports and benchmarks).
        self.hashed = 0

    @property
    def status(self) -> dict[str, str]:
        """path -> the two-letter porcelain status (index, work tree) of every file that differs from HEAD."""
        if self._status is None:
            status: dict[str, str] = {}
            for xy, path in gitlists.status_entries(git_output(self._status_run, "git status")):
                rel = self._git.relative(path)
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
        converted = self.converted()
        stamps = [""]
        root = f"{self.root}/"
        for path in sorted(converted):  # identified by their bytes: a new checkout of one is a new stat
            try:
                info = os.lstat(root + path)
            except OSError:
                continue
            stamps.append(f"{converted[path]} {path} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns} {info.st_ino}")
        digest.update("\0converted\0".join(stamps).encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def converted(self) -> dict[str, str]:
        """path -> what converts it (``eol=crlf``, ``filter=lfs``, ``core.autocrlf=true``, ...), for every tracked file whose
        checkout may hold other bytes than its blob; one `git check-attr` over the index, which prints nothing without attributes."""
        if self._converted is not None:
            return self._converted
        found = gitlists.attributes(git_output(self._attributes_run, "git check-attr"))
        self._names_run.wait()
        self._attributes = {rel: attrs for path, attrs in found.items() if (rel := self._git.relative(path)) is not None}
        converted = gitlists.converting(self._attributes)
        autocrlf = self._git.setting("core", "autocrlf")
        if autocrlf in ("true", "input"):  # a text file converts without any attribute (-text, binary: never)
            listing = self._listing_bytes().decode("utf-8", "surrogateescape")
            for _, path in gitlists.INDEX_ENTRY.findall(listing):
                rel = self._git.relative(path)
                attrs = self._attributes.get(rel, {}) if rel is not None else {}
                if rel is not None and rel not in converted and attrs.get("text") != "unset" and attrs.get("crlf") != "unset":
                    converted[rel] = f"core.autocrlf={autocrlf}"
        self._converted = converted
        return converted

    def _listing_bytes(self) -> bytes:
        if self._listing is None:
            self._listing = git_output(self._listing_run, "git ls-files --stage")
        return self._listing

    def _load(self) -> tuple[str, ...]:
        if self._paths is not None:
            return self._paths
        status = self.status
        prefix = self._git.prefix
        listing = self._listing_bytes().decode("utf-8", "surrogateescape")
        # "<mode> <blob id> <stage>\t<path>": the content id is "<mode> <blob id>", as fingerprints name it.
        # One regular expression over the whole listing: a Python loop per file is most of the cost on 20,000 files.
        entries = gitlists.INDEX_ENTRY.findall(listing) if not prefix else [
            (oid, path[len(prefix):]) for oid, path in gitlists.INDEX_ENTRY.findall(listing) if path.startswith(prefix)]
        index = {path: oid for oid, path in entries}
        dirty: list[str] = []
        for path in self.converted():
            if path in index and path not in status and not index[path].startswith((LINK_MODE, GITLINK_MODE)):
                dirty.append(path)  # its id comes from its bytes on disk, as the context's copy will
                del index[path]
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
        if self._paths is None and self._scans >= SCANS_BEFORE_LISTING:
            self._load()  # asked often: one listing costs less than a scan of it per question
        if self._paths is not None:
            if path in self._ids:
                return True
            at = bisect.bisect_left(self._paths, path)  # sorted: a look-up, where `in` on the tuple would scan it
            return at < len(self._paths) and self._paths[at] == path
        xy = self.status.get(path)
        if xy is not None:
            return not (xy[1] == "D" or xy == "D ")
        # An index entry "<mode> <blob id> 0\t<path>\0", found in the listing as git printed it.
        self._scans += 1
        listing = self._listing_bytes()
        needle = b" 0\t" + path.encode("utf-8", "surrogateescape") + b"\0"
        at = listing.find(needle)
        while at != -1:
            start = listing.rfind(b"\0", 0, at) + 1
            if gitlists.INDEX_ENTRY.fullmatch(listing[start:at + len(needle)].decode("utf-8", "surrogateescape")):
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
            mode, oid = LINK_MODE, blob_id(os.fsencode(os.readlink(full)))  # a target is bytes, as a name is
        elif stat.S_ISDIR(info.st_mode):
            # git lists a repository of its own inside the checkout (cloned, or a submodule not yet added) as one untracked
            # folder and never looks in: like a submodule, one entry whose files are not this repository's (the fingerprint
            # refuses it as an input).
            mode, oid = GITLINK_MODE, "0" * 40
        else:
            if self._attributes.get(path, {}).get("filter") == "lfs":
                _refuse_lfs_pointer(path, full, info.st_size)
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
        full = inside(self.root, path)  # a link out of the repository is refused, its target never read
        return read_small(path, self.size(path), full.read_bytes)


def _refuse_lfs_pointer(path: str, full: Path, size: int) -> None:
    """An input under ``filter=lfs`` that holds a Git LFS pointer: the builder would receive the pointer, not the file."""
    with full.open("rb") as file:
        start = file.read(len(gitlists.LFS_POINTER_STARTS[0]))
    if gitlists.is_lfs_pointer(start, size):
        raise InputError(path, "is a Git LFS pointer, not the file it stands for (.gitattributes: filter=lfs); "
                               "fetch the content with `git lfs install && git lfs pull`, then run this again")


class CommitTree:
    """The files of one commit, straight from git's object database (nothing on disk is read)."""

    def __init__(self, git: GitAccess, commit: str) -> None:
        self._git = git
        self.commit = commit
        ids: dict[str, str] = {}
        if commit != EMPTY_TREE:
            for mode, kind, oid, path in gitlists.tree_entries(git.listing(gitlists.tree(commit))):
                rel = git.relative(path)
                if rel is not None and kind in ("blob", "commit"):
                    ids[rel] = f"{mode} {oid}"
        self._ids = ids
        self._paths = tuple(sorted(ids))

    def paths(self) -> Sequence[str]:
        return self._paths

    def oid(self, path: str) -> str:
        return self._ids[path]

    def read(self, path: str) -> bytes:
        return self._git.read_blob(path, self._ids[path].split(" ", 1)[1])
