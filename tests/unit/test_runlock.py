"""The checkout's build lock between real processes: a holder makes the next one wait (and say for whom), a dead one does not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from imagegraph.adapters.runlock import BuildLock
from imagegraph.core.errors import ImagegraphError

HOLD = """
import sys, time
from pathlib import Path
from imagegraph.adapters.runlock import BuildLock
with BuildLock(Path(sys.argv[1]), say=print):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def holder(state_dir, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(state_dir), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_the_second_build_waits_for_the_first_and_names_its_pid(tmp_path):
    first = holder(tmp_path, 1.5)
    said: list[str] = []
    started = time.monotonic()
    with BuildLock(tmp_path, say=said.append):
        waited = time.monotonic() - started
        assert (tmp_path / "build.lock").read_text() == f"{os.getpid()}\n"
    assert said == [f"waiting for the build in pid {first.pid} to finish ({tmp_path / 'build.lock'} is locked)"]
    assert waited > 1.0  # until the first let go
    first.wait()


def test_the_lock_of_a_killed_build_is_taken_over_at_once(tmp_path):
    dead = holder(tmp_path, 60)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    assert (tmp_path / "build.lock").read_text() == f"{dead.pid}\n"  # its pid is still in the file
    said: list[str] = []
    with BuildLock(tmp_path, say=said.append):
        assert said == []


def test_a_signal_ends_the_wait(tmp_path):
    first = holder(tmp_path, 60)
    try:
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
        previous = signal.signal(signal.SIGUSR1, lambda *_: (_ for _ in ()).throw(InterruptedError("stop")))
        timer.start()
        with pytest.raises(InterruptedError), BuildLock(tmp_path, say=lambda line: None):
            pass
    finally:
        signal.signal(signal.SIGUSR1, previous)
        first.kill()
        first.wait()


def test_a_state_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    locked = BuildLock(tmp_path / "file", say=print)
    with pytest.raises(ImagegraphError, match=r"/file' is not a folder, and imagegraph keeps its own files there: remove it \(rm '.*/file'\) and run again"):
        locked.__enter__()
