"""Two `invoke build` in one checkout: the second waits for the first, then reuses what it pushed; each keeps its own report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from imagegraph.adapters.runlock import BuildLock
from tests.integration.test_interrupt import processes, wait_for
from tests.integration.test_lost_services import sleeping_repo

pytestmark = pytest.mark.integration


def start(repo) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "invoke", "build", "--progress", "plain"], cwd=repo, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))


@pytest.mark.host
def test_a_second_build_waits_for_the_first_then_reuses_its_images(tmp_path, registry, namespace, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    repo, marker = sleeping_repo(tmp_path, registry, namespace, 4)
    first, second = start(repo), None
    try:
        wait_for(lambda: processes(marker), 120, "the first build's RUN step started")
        second = start(repo)
        outputs = [build.communicate(timeout=300) for build in (first, second)]
    finally:
        for build in (first, second):
            if build is not None and build.poll() is None:
                build.kill()
    assert [build.returncode for build in (first, second)] == [0, 0], outputs
    assert f"waiting for the build in pid {first.pid} to finish" in outputs[1][1]
    reports = sorted((repo / ".imagegraph/reports").glob("*.json"), key=lambda path: path.stem)
    assert len(reports) == 2, reports
    decisions = [[image["decision"] for image in json.loads(path.read_text())["images"]] for path in reports]
    assert decisions == [["build"], ["reuse"]]


def test_a_build_waiting_for_the_lock_stops_at_once_on_sigterm(tmp_path, namespace):
    repo, _ = sleeping_repo(tmp_path, "127.0.0.1:5000", namespace, 1)
    with BuildLock(repo / ".imagegraph", say=lambda line: None):
        waiting = start(repo)
        assert waiting.stderr is not None
        first_line = waiting.stderr.readline()  # printed once the build reached the lock
        waiting.send_signal(signal.SIGTERM)
        _, rest = waiting.communicate(timeout=10)
    assert first_line == f"waiting for the build in pid {os.getpid()} to finish ({repo / '.imagegraph/build.lock'} is locked)\n"
    assert waiting.returncode == 143, rest
    assert rest == "interrupted: SIGTERM before any image started; nothing built, no tags moved, no report\n"
