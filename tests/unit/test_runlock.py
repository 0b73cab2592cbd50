"""The one lock helper between real processes: a holder makes the next one wait (and say for whom), a dead one does not.

The checkout's build lock is one of it; provisioning's locks (two `engine.up`, two seeds) are another, in the user's folders.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from imagegraph.adapters.runlock import BuildLock, FileLock
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


HOLD_FILE = """
import sys, time
from pathlib import Path
from imagegraph.adapters.runlock import FileLock
with FileLock(Path(sys.argv[1]), waiting=str):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_lock_in_a_folder_of_the_users_own_is_made_through_its_link_and_waited_for_in_the_callers_words(tmp_path):
    # provisioning's state folder: made where it is missing, and a link to it is the user's choice, followed
    (tmp_path / "real").mkdir()
    (tmp_path / "state").symlink_to(tmp_path / "real")
    lock = tmp_path / "state" / "engine" / "up.lock"
    first = subprocess.Popen([sys.executable, "-c", HOLD_FILE, str(lock), "1.5"], stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None and first.stdout.readline() == "held\n"
    said: list[str] = []
    with FileLock(lock, say=said.append, waiting=lambda holder: f"engine: waiting for another `engine.up` ({holder}) to finish"):
        assert (tmp_path / "real" / "engine" / "up.lock").read_text() == f"{os.getpid()}\n"
    assert said == [f"engine: waiting for another `engine.up` (pid {first.pid}) to finish"]
    first.wait()


def test_a_lock_whose_folder_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ImagegraphError, match=r"/file/up.lock: cannot be created \(.*\); make .*/file a writable folder and run again$"), \
            FileLock(tmp_path / "file" / "up.lock", waiting=str):
        pass
