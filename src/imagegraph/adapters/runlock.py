"""One build at a time in a checkout: a second `invoke build` waits for the first.

Why a lock and not two runs side by side: two builds of one checkout build
and push the same fingerprint tags and move the same branch tags, so running
both only does the work twice and races on the tags; and they share the
checkout's working folders (``.imagegraph/logs/<image>.log``, and the
assembled contexts, where assembling one fingerprint of an image deletes the
image's other ones). Waiting costs nothing: once the first is done, the
second finds its images in the registry and reuses them.

The lock is an ``flock`` on ``.imagegraph/build.lock``: the kernel releases it
when its holder ends, however it ends (SIGKILL, a lost terminal), so the lock
of a dead build is taken over without anyone deleting a file. The holder
writes its pid into the file only so that the waiting one can name it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from ..core.errors import ImagegraphError
from .workdirs import open_own

__all__ = ["BuildLock"]

LOCK_NAME = "build.lock"


class BuildLock:
    """``with BuildLock(state_dir):`` holds the checkout's build lock, waiting (and saying so, once) while another run has it."""

    def __init__(self, state_dir: Path, *, within: Path | None = None, say: Callable[[str], None] = print) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        #: Where the state folder's own parts start (the repository's root): none of them may be a link (:mod:`.workdirs`).
        self.within = Path(within) if within is not None else Path(state_dir).parent
        self.say = say
        self._file: IO[str] | None = None

    def __enter__(self) -> BuildLock:
        try:
            handle = open_own(self.path, self.within, "a+")
        except OSError as err:
            raise ImagegraphError(f"{self.path}: cannot be created ({err.strerror}); make {self.path.parent} a writable folder and run again") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.say(f"waiting for the build in {self._holder(handle)} to finish ({self.path} is locked)")
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

    @staticmethod
    def _holder(handle: IO[str]) -> str:
        handle.seek(0)
        text = handle.read().strip()
        return f"pid {text}" if text.isdigit() else "another process"
