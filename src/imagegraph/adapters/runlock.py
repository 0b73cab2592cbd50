"""One run at a time: an ``flock`` that a second run waits for, saying once whom it waits for.

:class:`FileLock` is the one lock helper: the checkout's build lock below, and
provisioning's (two `engine.up` with one state folder, two seeds with one
cache) are each one of it.

Why the build takes a lock and does not run beside another: two builds of one
checkout build and push the same fingerprint tags and move the same branch
tags, so running both only does the work twice and races on the tags; and they
share the checkout's working folders (``.imagegraph/logs/<image>.log``, and the
assembled contexts, where assembling one fingerprint of an image deletes the
image's other ones). Waiting costs nothing: once the first is done, the second
finds its images in the registry and reuses them.

The lock is an ``flock`` (on ``.imagegraph/build.lock`` for builds): the kernel
releases it when its holder ends, however it ends (SIGKILL, a lost terminal),
so the lock of a dead run is taken over without anyone deleting a file. The
holder writes its pid into the file only so that the waiting one can name it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from ..core.errors import ImagegraphError
from .workdirs import open_own

__all__ = ["BuildLock", "FileLock"]

LOCK_NAME = "build.lock"


class FileLock:
    """``with FileLock(path, waiting=...):`` holds an exclusive ``flock`` on ``path``, waiting (and saying so, once) while another process has it.

    ``waiting`` makes the line said while waiting from the holder (``pid 123``,
    or ``another process``). With ``within`` (where imagegraph's own folders
    start, the repository's root) no part of the path below it may be a link
    (:mod:`.workdirs`); without it the folder is the user's own (provisioning's
    state and cache folders) and is made as it is.
    """

    def __init__(self, path: Path, *, waiting: Callable[[str], str], say: Callable[[str], None] = print, within: Path | None = None) -> None:
        self.path = Path(path)
        self.within = Path(within) if within is not None else None
        self.waiting = waiting
        self.say = say
        self._file: IO[str] | None = None

    def __enter__(self) -> Self:
        handle = self._open()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.say(self.waiting(self._holder(handle)))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)  # a signal still ends the wait: its handler raises
            except BaseException:
                handle.close()
                raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None

    def _open(self) -> IO[str]:
        try:
            if self.within is not None:
                return open_own(self.path, self.within, "a+")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self.path.open("a+", encoding="utf-8")
        except OSError as err:
            raise ImagegraphError(f"{self.path}: cannot be created ({err.strerror}); make {self.path.parent} a writable folder and run again") from None

    @staticmethod
    def _holder(handle: IO[str]) -> str:
        handle.seek(0)
        text = handle.read().strip()
        return f"pid {text}" if text.isdigit() else "another process"


class BuildLock(FileLock):
    """``with BuildLock(state_dir):`` holds the checkout's build lock, ``<state_dir>/build.lock``."""

    def __init__(self, state_dir: Path, *, within: Path | None = None, say: Callable[[str], None] = print) -> None:
        path = Path(state_dir) / LOCK_NAME
        # Where the state folder's own parts start (the repository's root): none of them may be a link.
        super().__init__(path, within=within if within is not None else Path(state_dir).parent, say=say,
                         waiting=lambda holder: f"waiting for the build in {holder} to finish ({path} is locked)")
