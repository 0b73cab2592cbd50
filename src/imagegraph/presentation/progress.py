"""Live progress for the long steps of a run: wheel downloads, image builds, pushes.

Two parts. *Trackers* are pure: each reads the output lines of one tool
(pip download, BuildKit's plain progress, docker push) and keeps a short
description of where that tool is ("step 3/5 RUN pip install ...",
"4/9 layers pushed"), plus the lines worth keeping in a log (a step that
finished, and how long it took). The :class:`Progress` board shows what the
trackers say for every image at work:

- on a terminal, one status line at the bottom, redrawn in place every
  second with each image's elapsed time; messages print above it;
- anywhere else (a CI log, a pipe), never a cursor movement: a line per
  finished step, and every ``heartbeat`` seconds one line per image still at
  work, with its elapsed time and current step.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from ..adapters.runner import Command
from ..core.buildkit import parse as parse_buildkit
from ..core.values import escaped

__all__ = ["BuildKitTracker", "PipTracker", "Progress", "PushTracker", "Tracker", "elapsed", "failure_context", "phase_of",
           "tracker_for"]

#: Characters of a step's command shown in progress lines.
DETAIL_WIDTH = 72


def elapsed(seconds: float) -> str:
    """``7s``, ``1m05s``, ``1h02m``: short enough for a status line."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _shorten(text: str, width: int = DETAIL_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


class Tracker(Protocol):
    def feed(self, line: str) -> list[str]:
        """Read one output line; return the lines worth printing in a log (often none)."""

    def describe(self) -> str:
        """Where the tool is now, in a few words."""


@dataclass
class _Step:
    label: str
    number: int
    total: int
    text: str
    cached: bool = False


#: What BuildKit says while a vertex is at work that no step line says: the phase after the last step.
_BK_PHASES = ("exporting to image", "exporting cache", "pushing layers", "writing image", "naming to", "importing cache manifest",
              "transferring context")


@dataclass
class BuildKitTracker:
    """BuildKit's ``--progress plain`` output: which Dockerfile step runs, and each step's time when it ends."""

    image: str = ""
    steps: dict[str, _Step] = field(default_factory=dict)
    current: str = "starting"

    def feed(self, line: str) -> list[str]:
        parsed = parse_buildkit(line)
        vertex = parsed.vertex
        if parsed.kind == "step" and vertex is not None:
            if parsed.instruction == "FROM":
                return []
            step = self.steps.setdefault(vertex, _Step(parsed.label, parsed.number, parsed.total, parsed.text))
            self.current = self._title(step)
            return []
        step = self.steps.get(vertex) if vertex is not None else None
        if parsed.kind == "cached" and step is not None:
            if step.cached:
                return []
            step.cached = True  # BuildKit prints no DONE for a cached step
            return [f"{self._title(step)}: cached"]
        if parsed.kind == "done" and step is not None and parsed.seconds is not None:
            if step.cached:
                return []
            how = f"done in {elapsed(parsed.seconds)}" if parsed.seconds >= 1 else "done"
            return [f"{self._title(step)}: {how}"]
        if parsed.kind == "error" and step is not None:
            return [f"{self._title(step)}: failed"]
        if parsed.kind == "pushed":
            return [f"pushed {parsed.ref}"]
        if parsed.kind == "other":
            phase = next((p for p in _BK_PHASES if parsed.text.startswith(p)), None)
            if phase is not None:
                self.current = parsed.text if phase == "transferring context" else phase
        return []

    def describe(self) -> str:
        return self.current

    @staticmethod
    def _title(step: _Step) -> str:
        where = f"{step.label} " if step.label else ""
        return f"step {where}{step.number}/{step.total} {_shorten(step.text)}"


def failure_context(output: str, limit: int = 3) -> tuple[str, ...]:
    """What explains a failed command beyond its last line (which its error message already ends with).

    For BuildKit, the last lines the failed step itself printed (a RUN's
    stderr, without BuildKit's vertex and time prefix); for anything else
    (pip, docker push), the lines just before the last.
    """
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    parsed = [parse_buildkit(line) for line in lines]
    failed = next((line.vertex for line in reversed(parsed) if line.kind == "error"), None)
    if failed is not None:
        printed = [line.text for line in parsed if line.kind == "log" and line.vertex == failed]
        return tuple(printed[-limit:])
    return tuple(lines[-limit - 1 : -1])


_PUSH_LAYER = re.compile(r"^([0-9a-f]{12}): (Preparing|Waiting|Pushing|Pushed|Layer already exists|Mounted from .*|Retrying.*)\s*$")
_PUSH_DIGEST = re.compile(r"^(\S+): digest: (sha256:[0-9a-f]{64}) size: \d+")


@dataclass
class PushTracker:
    """``docker push`` output: how many layers are in the registry so far."""

    layers: dict[str, str] = field(default_factory=dict)
    digest: str | None = None

    def feed(self, line: str) -> list[str]:
        match = _PUSH_LAYER.match(line.strip())
        if match:
            self.layers[match.group(1)] = match.group(2)
            return []
        match = _PUSH_DIGEST.match(line.strip())
        if match:
            self.digest = match.group(2)
            done = self._done()
            return [f"pushed {match.group(1)} ({done} layer(s), {sum(1 for s in self.layers.values() if s == 'Pushed')} uploaded)"]
        return []

    def _done(self) -> int:
        return sum(1 for state in self.layers.values() if state in ("Pushed", "Layer already exists") or state.startswith("Mounted from"))

    def describe(self) -> str:
        if not self.layers:
            return "pushing"
        return f"pushing: {self._done()}/{len(self.layers)} layers in the registry"


_PIP_COLLECT = re.compile(r"^(?:Collecting|Processing) (\S+)")
_PIP_DOWNLOAD = re.compile(r"^\s*Downloading (\S+?)(?: \(([\d.]+ \w?B)\))?\s*$")
_PIP_SAVED = re.compile(r"^(?:Saved|File was already downloaded) (\S+)")


@dataclass
class PipTracker:
    """``pip download`` output (without ``--quiet``): packages resolved, wheels saved, the download in flight."""

    requirements: str = ""
    collected: int = 0
    saved: int = 0
    downloading: str = ""

    def feed(self, line: str) -> list[str]:
        if _PIP_COLLECT.match(line):
            self.collected += 1
            return []
        match = _PIP_DOWNLOAD.match(line)
        if match:
            name = match.group(1).rsplit("/", 1)[-1]
            self.downloading = f"{name} ({match.group(2)})" if match.group(2) else name
            return []
        if _PIP_SAVED.match(line):
            self.saved += 1
            self.downloading = ""
        return []

    def describe(self) -> str:
        what = f"wheels {self.requirements}".strip()
        state = f"{what}: {self.collected} resolved, {self.saved} saved"
        return f"{state}, downloading {_shorten(self.downloading, 48)}" if self.downloading else state


def phase_of(command: Command) -> str:
    """What a command does, as a phase name (``build linux/amd64``, ``push``, ``prune``): what it was made for."""
    return command.purpose or command.argv[0]


def tracker_for(command: Command) -> Tracker | None:
    """The tracker that understands what ``command`` prints, by what it was made for; None when nothing is worth following."""
    kind, _, detail = command.purpose.partition(" ")
    if kind == "wheels":
        return PipTracker(detail)
    if kind == "build":
        return BuildKitTracker()
    if kind == "push":
        return PushTracker()
    return None


@dataclass
class _Work:
    started: float
    phase: str = ""
    detail: str = ""
    phase_started: float = 0.0


class Progress:
    """What every image of a run is doing, shown live on a terminal and as plain lines in a log.

    Thread-safe: the executor's workers call it at once. Use as a context
    manager; the ticker (redraw or heartbeat) runs while it is open.
    """

    def __init__(self, out: TextIO | None = None, *, say: Callable[[str], None] | None = None, live: bool | None = None,
                 heartbeat: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Lines go to ``out`` (stdout by default), or to ``say`` when given (never live then)."""
        self.out = out or sys.stdout
        self._say = say
        self.live = False if say is not None else _is_terminal(self.out) if live is None else live
        self.heartbeat = heartbeat
        self.clock = clock
        self._work: dict[str, _Work] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._status_shown = False

    # -- what workers call ----------------------------------------------------

    def say(self, line: str) -> None:
        """A message: printed on its own line (above the status line on a terminal), escaped: what a build prints (a file
        name in a COPY step) cannot move the cursor, clear the screen or start a line of its own."""
        line = escaped(line)
        with self._lock:
            if self._say is not None:
                self._say(line)
                return
            self._clear()
            self.out.write(line + "\n")
            self._draw()
            self.out.flush()

    def begin(self, image: str) -> None:
        with self._lock:
            self._work[image] = _Work(started=self.clock())

    def phase(self, image: str, phase: str, detail: str = "") -> None:
        """``image`` starts a new phase (wheels, build linux/amd64, push): its elapsed time restarts."""
        with self._lock:
            work = self._work.setdefault(image, _Work(started=self.clock()))
            work.phase, work.detail, work.phase_started = phase, detail, self.clock()

    def detail(self, image: str, detail: str) -> None:
        with self._lock:
            if image in self._work:
                self._work[image].detail = detail

    def end(self, image: str) -> None:
        with self._lock:
            self._work.pop(image, None)
            if self.live:
                self._clear()
                self._draw()
                self.out.flush()

    def follow(self, image: str, tracker: Tracker | None) -> Callable[[str], None] | None:
        """An ``on_line`` callback for the runner: feeds ``tracker`` and shows what it says under ``image``."""
        if tracker is None:
            return None

        def on_line(line: str) -> None:
            for note in tracker.feed(line):
                self.say(f"[{image}] {note}")
            self.detail(image, tracker.describe())

        return on_line

    # -- rendering --------------------------------------------------------------

    def status(self) -> str:
        """One line: every image at work, its elapsed time, what it does."""
        now = self.clock()
        with self._lock:
            parts = [f"{name} {elapsed(now - w.started)} {w.phase}{': ' + w.detail if w.detail else ''}".rstrip()
                     for name, w in sorted(self._work.items())]
        return " | ".join(parts)

    def heartbeat_lines(self) -> list[str]:
        now = self.clock()
        with self._lock:
            return [f"[{name}] still working, {elapsed(now - w.started)} in: {w.phase}"
                    f"{' ' + elapsed(now - w.phase_started) if w.phase_started else ''}{': ' + w.detail if w.detail else ''}"
                    for name, w in sorted(self._work.items())]

    def _clear(self) -> None:
        if self.live and self._status_shown:
            self.out.write("\r\x1b[2K")
            self._status_shown = False

    def _draw(self) -> None:
        if not self.live or not self._work:
            return
        width = shutil.get_terminal_size((120, 20)).columns - 1
        line = escaped(self.status())
        self.out.write(line if len(line) <= width else line[: width - 3] + "...")
        self._status_shown = True

    def _tick(self) -> None:
        interval = 1.0 if self.live else self.heartbeat
        while not self._stop.wait(interval):
            if self.live:
                with self._lock:
                    self._clear()
                    self._draw()
                    self.out.flush()
            else:
                for line in self.heartbeat_lines():
                    self.say(line)

    def __enter__(self) -> Progress:
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="imagegraph-progress", daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self.live:
            with self._lock:
                self._clear()
                self.out.flush()


def _is_terminal(out: TextIO) -> bool:
    """A terminal that understands a carriage return and an erase-line: not a pipe, a file, a dumb terminal or CI."""
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb" and not os.environ.get("CI")
