"""Every listing of file names imagegraph asks git for, and how each is read: one place, one rule.

A file name is any bytes but NUL and ``/``: a newline, a tab, quotes, a
backslash, bytes that are not UTF-8, a leading dash or blanks at either end.
So every listing is git's NUL-separated form (``-z``: names exactly as
stored, whatever ``core.quotePath`` says), its names decoded with
surrogate escapes (the bytes come back unchanged through ``os.fsencode``),
and every revision or path in a command sits after ``--end-of-options`` or
``--``, where git never reads it as an option. Kept in one module because a
single listing read another way (a newline split, a quoted name) would
misname a hostile file. The commands are data (argv tuples, compared as such
in tests); :class:`imagegraph.adapters.repo.Repository` and the trees of
:mod:`imagegraph.adapters.trees` run them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = [
    "CONVERTING_ATTRIBUTES", "INDEX_ENTRY", "PATHSPEC_VARIABLES", "attributes", "check_attr", "converting", "decoded", "diff_commits",
    "index", "is_lfs_pointer", "items", "names", "raw_diff", "staged", "status", "status_entries", "tree", "tree_entries",
]

#: Environment variables that change how git reads a pathspec: with one set, ``:(top,literal)dir/`` would mean another thing.
PATHSPEC_VARIABLES = ("GIT_LITERAL_PATHSPECS", "GIT_GLOB_PATHSPECS", "GIT_NOGLOB_PATHSPECS", "GIT_ICASE_PATHSPECS")

#: The attributes that make a checked-out file's bytes differ from its blob (gitattributes(5), "Checking-out and checking-in").
#: ``export-subst`` is not one: only ``git archive`` applies it.
CONVERTING_ATTRIBUTES = ("filter", "ident", "text", "eol", "crlf", "working-tree-encoding")


# -- the commands -------------------------------------------------------------

def status(pathspec: str) -> tuple[str, ...]:
    """The checkout's files that differ from HEAD: staged, unstaged, untracked (``XY <path>``; renames as a delete and an add)."""
    return ("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules", "--", pathspec)


def names(pathspec: str) -> tuple[str, ...]:
    """The index's paths alone (what :func:`check_attr` reads)."""
    return ("ls-files", "-z", "--", pathspec)


def index(pathspec: str) -> tuple[str, ...]:
    """The index: ``<mode> <blob id> <stage>\\t<path>`` per file."""
    return ("ls-files", "--stage", "-z", "--", pathspec)


def tree(commit: str) -> tuple[str, ...]:
    """A commit's files: ``<mode> <kind> <id>\\t<path>`` per file, submodules (``commit``) included."""
    return ("ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit)


def diff_commits(base: str, head: str) -> tuple[str, ...]:
    """What differs between two commits, renames found: git's raw listing (see :func:`raw_diff`)."""
    return ("diff-tree", "-r", "-z", "-M", "--raw", "--no-color", "--abbrev=40", "--full-index", "--end-of-options", base, head)


def staged() -> tuple[str, ...]:
    """The staged files that still exist (added, copied, modified, renamed), by path from the top level."""
    return ("diff", "--cached", "--name-only", "-z", "--no-renames", "--diff-filter=ACM", "--no-relative", "--no-color")


def check_attr() -> tuple[str, ...]:
    """Every attribute set on the paths given on standard input (NUL-separated): nothing at all where no attributes are."""
    return ("check-attr", "--all", "-z", "--stdin")


# -- reading what they print ------------------------------------------------

def decoded(name: bytes) -> str:
    """A file name as git stored it (bytes), as Python names files: invalid UTF-8 kept as surrogate escapes."""
    return name.decode("utf-8", "surrogateescape")


def items(data: bytes) -> list[str]:
    """The NUL-separated names (or fields) a listing holds."""
    return [decoded(item) for item in data.split(b"\0") if item]


def status_entries(data: bytes) -> Iterator[tuple[str, str]]:
    """``(XY, path)`` per entry of :func:`status`; the origin of a rename or copy (if renames were on) as a deletion."""
    fields = iter(data.split(b"\0"))
    for entry in fields:
        if len(entry) < 4:
            continue  # the empty field after the last NUL
        xy, path = decoded(entry[:2]), decoded(entry[3:])
        yield xy, path
        if "R" in xy or "C" in xy:
            origin = next(fields, b"")
            if origin and "R" in xy:
                yield "D ", decoded(origin)


#: One entry of :func:`index`, stage 0: the content id ("<mode> <blob id>") and the path.
INDEX_ENTRY = re.compile(r"(\d{6} [0-9a-f]{40,64}) \d\t([^\0]*)\0")


def tree_entries(data: bytes) -> Iterator[tuple[str, str, str, str]]:
    """``(mode, kind, id, path)`` per entry of :func:`tree`."""
    for entry in data.split(b"\0"):
        meta, tab, path = entry.partition(b"\t")
        if tab:
            mode, kind, oid = meta.decode("ascii").split(" ")
            yield mode, kind, oid, decoded(path)


def raw_diff(data: bytes) -> Iterator[tuple[str, str | None, str]]:
    """``(status letter, old path or None, path)`` per entry of :func:`diff_commits`.

    Each entry is ``:<mode> <mode> <id> <id> <status>``, then the path, or
    for a rename or copy (status ``R<score>``, ``C<score>``) the old path and the new.
    """
    fields = iter(data.split(b"\0"))
    for meta in fields:
        if not meta.startswith(b":"):
            continue
        letter = meta.rsplit(b" ", 1)[-1][:1].decode("ascii")
        old = decoded(next(fields)) if letter in ("R", "C") else None
        yield letter, old, decoded(next(fields))


def converting(found: dict[str, dict[str, str]]) -> dict[str, str]:
    """path -> ``attribute=value`` of the paths whose checked-out bytes may differ from their blob (``-text`` converts nothing)."""
    converted: dict[str, str] = {}
    for path, attrs in found.items():
        for name, value in attrs.items():
            if value != "unset" and name in CONVERTING_ATTRIBUTES:
                converted[path] = f"{name}={value}"
                break
    return converted


#: How a Git LFS pointer file starts (its spec, and the spec's first name): the file it stands for is elsewhere.
LFS_POINTER_STARTS = (b"version https://git-lfs.github.com/spec/v1\n", b"version https://hawser.github.com/spec/v1\n")
#: A pointer is a few lines; git-lfs reads no more than this.
LFS_POINTER_MAX_BYTES = 1024


def is_lfs_pointer(start: bytes, size: int) -> bool:
    """Whether a file of ``size`` bytes that begins with ``start`` is a Git LFS pointer, not content."""
    return size < LFS_POINTER_MAX_BYTES and start.startswith(LFS_POINTER_STARTS)


def attributes(data: bytes) -> dict[str, dict[str, str]]:
    """path -> {attribute: value} from :func:`check_attr`, of the :data:`CONVERTING_ATTRIBUTES` alone (none ``unspecified``)."""
    fields = decoded(data).split("\0")  # decoded whole, then split: one call, not three per entry (200,000 paths under `* text`)
    found: dict[str, dict[str, str]] = {}
    for path, name, value in zip(fields[0::3], fields[1::3], fields[2::3], strict=False):  # the last field: the empty one after the final NUL
        if name in CONVERTING_ATTRIBUTES and value != "unspecified":
            found.setdefault(path, {})[name] = value
    return found

