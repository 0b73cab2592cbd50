"""Stopping a run cleanly: SIGINT and SIGTERM end the running commands, and the run says what happened.

A build's commands (``docker buildx build``, its pushes, pip) run in process
groups of their own, so a Ctrl-C at the terminal reaches imagegraph alone and
imagegraph decides the order: first the request is recorded (so a command
that then dies is known to have been stopped, not to have failed), then each
running command's whole group gets SIGTERM (the docker client and its buildx
plugin; BuildKit cancels the solve when its client goes), and SIGKILL after a
grace period. Work not yet started is not started.

While nothing can be stopped piece by piece (planning, waiting for another
build's lock) a signal raises :class:`Interrupted` at once instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

from ..core.errors import ImagegraphError

__all__ = ["Interrupted", "Stop", "Stopped", "exit_code", "signal_name"]

#: Seconds a stopped command's group has between SIGTERM and SIGKILL.
GRACE_SECONDS = 3.0
HANDLED = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_code(signum: int) -> int:
    """What a shell reports for a process a signal ended: 128 + its number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


class Interrupted(BaseException):
    """A signal arrived while nothing could be stopped piece by piece; raised in the main thread.

    A BaseException like KeyboardInterrupt, so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal_name(signum))


class Stopped(ImagegraphError):
    """A command ended because the run was stopped (the image's result says "interrupted", not "failed")."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal_name(signum)}")


class Stop:
    """One run's stop request, shared by the runner (which ends its commands) and the executor (which starts no more work)."""

    def __init__(self, grace: float = GRACE_SECONDS) -> None:
        self.grace = grace
        self.signum: int | None = None
        self._asked = threading.Event()
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        #: While True, a signal raises :class:`Interrupted` in the main thread after ending the commands.
        self._raise = True

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise :class:`Stopped` when the run was asked to stop: called before each command starts."""
        if self.signum is not None:
            raise Stopped(self.signum)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (before a retry, say), or raise :class:`Stopped` as soon as the run is asked to stop."""
        if self._asked.wait(seconds):
            self.check()

    def request(self, signum: int) -> None:
        """Stop: SIGTERM to each running command's group now, SIGKILL to those left after the grace period."""
        with self._lock:
            first = self.signum is None
            if first:
                self.signum = signum
            running = list(self._running)
        self._asked.set()
        # a second signal means "now": no grace
        for proc in running:
            _signal_group(proc, signal.SIGTERM if first else signal.SIGKILL)
        if first and running:
            timer = threading.Timer(self.grace, self._kill_left)
            timer.daemon = True
            timer.start()

    def _kill_left(self) -> None:
        with self._lock:
            running = list(self._running)
        for proc in running:
            _signal_group(proc, signal.SIGKILL)

    @contextmanager
    def tracking(self, proc: subprocess.Popen[bytes]) -> Iterator[None]:
        """Count ``proc`` (started in a session of its own) among the commands a stop ends."""
        with self._lock:
            self._running.add(proc)
            late = self.signum is not None
        if late:  # the stop came between the check and the start
            _signal_group(proc, signal.SIGTERM)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(proc)

    @contextmanager
    def handling(self) -> Iterator[Stop]:
        """Take SIGINT and SIGTERM for the duration (main thread only); the previous handlers come back afterwards."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in HANDLED}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextmanager
    def piecewise(self) -> Iterator[None]:
        """While inside, a signal only stops the commands: the code running decides what to finish (the executor)."""
        self._raise = False
        try:
            yield
        finally:
            self._raise = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)
        if self._raise:
            raise Interrupted(signum)


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(proc.pid, signum)
