"""A run that is stopped by SIGINT or SIGTERM: the real CLI on the real engine, one line saying what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagegraph.adapters.registry import Registry
from tests.integration.conftest import commit_all, git, init_repo

pytestmark = [pytest.mark.integration, pytest.mark.host]

#: base builds in a second; slow's RUN sleeps until it is stopped; after waits for slow (never started when slow is stopped:
#: not pushed, so it is no part of a bake with slow).
FAMILY = """
registry: {registry}
namespace: {namespace}
images:
  base:
    dockerfile: docker/Dockerfile.base
    platforms: [linux/amd64]
  slow:
    dockerfile: docker/Dockerfile.slow
    parent: base
    platforms: [linux/amd64]
  after:
    dockerfile: docker/Dockerfile.after
    parent: slow
    platforms: [linux/amd64]
    push: false
"""


def files(registry: str, namespace: str, slow_step: str) -> dict[str, str]:
    return {
        "images.yaml": FAMILY.format(registry=registry, namespace=namespace),
        "docker/Dockerfile.base": f"FROM python:3.11-slim\nRUN echo {namespace} > /family.txt\n",
        "docker/Dockerfile.slow": f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN {slow_step}\n",
        "docker/Dockerfile.after": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN true\n",
        "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n",
    }


def processes(text: str) -> list[str]:
    """``pid args`` of the running processes whose command line contains ``text`` (this test's own marker), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile
            continue
        if text in args:
            found.append(f"{entry.name} {args}")
    return found


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds}s: {what}")


def start_build(repo: Path, **env: str) -> subprocess.Popen[str]:
    # a session of its own, like a shell job: a signal to its group is what Ctrl-C at a terminal sends
    return subprocess.Popen([sys.executable, "-m", "invoke", "build", "--progress", "plain"], cwd=repo, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env}, start_new_session=True)


@pytest.fixture
def sleepy(tmp_path, registry, namespace, monkeypatch):
    """A family whose base is published (edge, sha- tags) and whose next commit changes slow, which sleeps in its RUN."""
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    repo = init_repo(tmp_path / "repo", files(registry, namespace, "true"))
    first = subprocess.run([sys.executable, "-m", "invoke", "build", "--progress", "plain"], cwd=repo, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    marker = f"sleeping-{namespace.rsplit('/', 1)[1]}"
    (repo / "docker/Dockerfile.slow").write_text(f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {marker} && sleep 300\n")
    commit_all(repo, "slow sleeps")
    return repo, marker


@pytest.mark.parametrize(("signum", "to_group"), [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False)],
                         ids=["ctrl-c to the group", "SIGINT to invoke alone", "SIGTERM to invoke alone"])
def test_a_signal_stops_the_running_build_moves_no_tag_and_reports_it(sleepy, registry, namespace, signum, to_group):
    repo, marker = sleepy
    build = start_build(repo)
    try:
        wait_for(lambda: processes(marker), 120, "slow's RUN step started")
        sent = time.monotonic()
        if to_group:
            os.killpg(build.pid, signum)
        else:
            build.send_signal(signum)
        _, stderr = build.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        if build.poll() is None:
            build.kill()
    name = signal.Signals(signum).name
    assert build.returncode == 128 + signum, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: {name}; stopped slow, no tags moved; report: .imagegraph/reports/"), stderr
    assert "Traceback" not in stderr
    assert elapsed < 5, f"{elapsed:.1f}s from {name} to exit"
    # the docker client is gone (its argv names this repository's context folder), and BuildKit cancelled the RUN step
    assert not processes(str(repo / ".imagegraph")), "a docker build client outlived the run"
    wait_for(lambda: not processes(marker), 15, "BuildKit cancelled slow's RUN step")

    report = json.loads((repo / last.rsplit("report: ", 1)[1]).read_text())
    outcome = {image["name"]: (image["ok"], image["stopped"]) for image in report["images"]}
    assert outcome == {"base": (True, None), "slow": (False, "interrupted"), "after": (False, "not built")}
    # on main without the stop, base (reused) would have got this commit's sha- tag
    head = git(repo, "rev-parse", "HEAD").strip()
    assert f"sha-{head[:7]}" not in Registry(registry).tags(f"{namespace}/base")
