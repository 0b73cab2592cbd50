"""What the last plans found in the checkout, kept so the next plan of the same content does not look again.

A plan runs before every build and in every CI job, and most of them see a
checkout an earlier plan already saw: looking again would cost a pass over
every input for an answer known already.

Fingerprinting a large checkout is one pass over every input path (globs,
the ignore file, content ids), and the input checks another (the files each
Dockerfile reads, the size of every input). Their results depend on nothing
but the content: every tracked path with its mode and blob id, the content of
the files that differ from the index, the image definitions, and the code
that computes them. :meth:`imagegraph.adapters.trees.WorkingTree.content_key` digests
the first two from what git prints anyway; :func:`cache_key` adds the rest.
Equal key, equal result, so an entry is never stale, only unused; the folder
keeps the newest :data:`KEEP` entries.

The folder holds a ``.gitignore`` of ``*``, so git never sees it. An entry
is a JSON file named by its key, written whole (temporary file,
then rename), so a reader never sees half of one; one that cannot be read
is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .workdirs import no_follow, own_folder, write_own

T = TypeVar("T")

__all__ = ["FORMAT", "KEEP", "InputCache", "cache_key"]

#: Bump when an entry's layout changes.
FORMAT = 1
#: How many entries the folder keeps (a few branches and a few edits in flight).
KEEP = 8


def cache_key(content: str, definition: str, code: Iterable[str]) -> str:
    """The key of one result: the checkout's content key, the image definitions (as text), and the computing modules.

    ``code`` are the source files whose rules the result follows; their
    size and modification time stand for them, so an upgrade (or an edit of
    an editable install) starts afresh.
    """
    digest = hashlib.sha256(f"imagegraph-inputs/{FORMAT}\0{content}\0{definition}".encode())
    for path in code:
        try:
            info = os.stat(path)
        except OSError:
            info = None
        digest.update(f"\0{path} {info.st_size if info else -1} {info.st_mtime_ns if info else -1}".encode())
    return digest.hexdigest()


class InputCache:
    """A folder of results by key (see :func:`cache_key`)."""

    def __init__(self, folder: Path, *, within: Path | None = None) -> None:
        self.folder = folder
        #: Where the folder's own parts start (the repository's root): none of them may be a link (:mod:`.workdirs`).
        self.within = within if within is not None else folder.parent

    def remember(self, key: str, compute: Callable[[], T], *, encode: Callable[[T], dict[str, Any]],
                 decode: Callable[[Mapping[str, Any]], T]) -> T:
        """The value kept under ``key``, else ``compute()``'s, kept for next time.

        An entry ``decode`` cannot read (it raises KeyError, TypeError or
        ValueError: another shape, a damaged file) is computed again.
        """
        known = self.load(key)
        if known is not None:
            try:
                return decode(known)
            except (KeyError, TypeError, ValueError):
                pass
        value = compute()
        self.save(key, encode(value))
        return value

    def load(self, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{key}.json"
        try:
            own_folder(self.folder, self.within, make=False)
            with open(path, "rb", opener=no_follow) as entry:
                data = json.loads(entry.read())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: kept longest
        return data

    def save(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key``; a folder that cannot be written costs the next plan its time, nothing else."""
        try:
            own_folder(self.folder, self.within)  # a link there is refused (not an OSError): it would be written through
            ignore = self.folder / ".gitignore"
            if not os.path.lexists(ignore):  # never a change git reports, nor a file `git add -A` commits, whatever the repository ignores
                write_own(ignore, self.within, "# imagegraph's cache of plan results: nothing here belongs in git\n*\n")
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".entry-", suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                # dumps, not dump: json.dump to a file runs the pure-Python encoder, several times slower on 100,000 files
                out.write(json.dumps({**value, "format": FORMAT}, separators=(",", ":")))
            os.replace(temporary, self.folder / f"{key}.json")
            self._trim()
        except OSError:
            Path(temporary).unlink(missing_ok=True)

    def _trim(self) -> None:
        entries = sorted(self.folder.glob("*.json"), key=lambda p: p.lstat().st_mtime_ns, reverse=True)
        for stale in entries[KEEP:]:
            stale.unlink(missing_ok=True)
