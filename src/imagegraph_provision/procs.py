"""Processes on this machine: reading ``/proc`` and pid files, starting servers that outlive us, stopping them.

Only what imagegraph starts is ever signalled, and only while its pid still
names the program meant (a pid can be reused, a dead child is a zombie until
reaped).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from imagegraph.core.errors import EngineError

from .facts import PidFile, Proc

__all__ = [
    "STOP_TIMEOUT",
    "alive",
    "parse_stat",
    "read_pidfile",
    "read_process",
    "read_processes",
    "spawn_detached",
    "terminate",
]

STOP_TIMEOUT = 20.0

_DETACHED: list[subprocess.Popen[bytes]] = []


def parse_stat(text: str) -> tuple[str, str, int]:
    """``/proc/PID/stat`` -> (comm, state, ppid); comm may hold spaces and parentheses."""
    name = text[text.index("(") + 1:text.rindex(")")]
    rest = text[text.rindex(")") + 2:].split()
    return name, rest[0], int(rest[1])


def read_process(pid: int, proc_root: Path = Path("/proc")) -> Proc | None:
    base = proc_root / str(pid)
    try:
        name, state, ppid = parse_stat((base / "stat").read_text())
        raw = (base / "cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    argv = tuple(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return Proc(pid, ppid, name, argv, zombie=state in ("Z", "X"))


def read_processes(names: Iterable[str], proc_root: Path = Path("/proc")) -> tuple[Proc, ...]:
    wanted = set(names)
    found = []
    for entry in proc_root.iterdir() if proc_root.is_dir() else ():
        if entry.name.isdigit():
            try:
                name = parse_stat((entry / "stat").read_text())[0]
            except (OSError, ValueError, IndexError):
                continue
            if name in wanted and (proc := read_process(int(entry.name), proc_root)) is not None:
                found.append(proc)
    return tuple(sorted(found, key=lambda p: p.pid))


def read_pidfile(path: Path | str) -> PidFile | None:
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return PidFile(str(path), None, None)
    pid = int(text) if text.isdigit() else None
    return PidFile(str(path), pid, read_process(pid) if pid else None)


def spawn_detached(argv: Sequence[str], log: Path, pidfile: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own session, its output appended to ``log``, its pid written to ``pidfile``."""
    # Not through Runner: these servers must outlive this process, so they
    # get their own session and write to a log file instead of a pipe.
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    pidfile.write_text(f"{proc.pid}\n")
    _DETACHED.append(proc)
    return proc


def _reap(pid: int) -> None:
    # Processes we spawned stay zombies (and look alive in /proc) until reaped.
    for spawned in _DETACHED:
        if spawned.pid == pid:
            spawned.poll()
            return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int, name: str) -> bool:
    """``pid`` is a running ``name`` (reaped first when it is a child of ours)."""
    _reap(pid)
    proc = read_process(pid)
    return proc is not None and proc.running and proc.name == name


def terminate(pid: int, name: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL; only if the pid still belongs to the program we mean."""
    if alive(pid, name):
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and alive(pid, name):
                time.sleep(0.2)
            if not alive(pid, name):
                break
        else:
            raise EngineError(f"{name} (pid {pid}) does not stop; kill it by hand (`kill -9 {pid}`)")
