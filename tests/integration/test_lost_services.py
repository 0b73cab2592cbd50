"""The engine or the registry goes away in the middle of `invoke build`: one line names it and the fix, and the report is written.

The shared engine and registry keep running: the engine is reached through a
socket this test cuts (:class:`EngineProxy`), the registry is the test's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.conftest import init_repo
from tests.integration.engine_proxy import EngineProxy
from tests.integration.test_interrupt import processes, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.host]

ONE_IMAGE = """
registry: {registry}
namespace: {namespace}
images:
  solo:
    dockerfile: Dockerfile
    platforms: [linux/amd64]
"""


def sleeping_repo(tmp_path, registry: str, namespace: str, seconds: int) -> tuple:
    marker = f"lost-{namespace.rsplit('/', 1)[1]}"
    repo = init_repo(tmp_path / "repo", {
        "images.yaml": ONE_IMAGE.format(registry=registry, namespace=namespace),
        "Dockerfile": f"FROM python:3.11-slim\nRUN echo {marker} && sleep {seconds}\n",
        "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n",
    })
    return repo, marker


def build_while(repo, marker: str, cut, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `invoke build`, call ``cut()`` once the RUN step is running, and return how the build ended."""
    build = subprocess.Popen([sys.executable, "-m", "invoke", "build", "--progress", "plain"], cwd=repo, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
    try:
        wait_for(lambda: processes(marker), 120, "the RUN step started")
        cut()
        stdout, stderr = build.communicate(timeout=120)
    finally:
        if build.poll() is None:
            build.kill()
    return subprocess.CompletedProcess(build.args, build.returncode, stdout, stderr)


def report_of(repo, stdout: str) -> dict:
    line = next(line for line in stdout.splitlines() if line.startswith("report: "))
    return json.loads((repo / line.split()[1]).read_text())


def test_an_engine_that_dies_mid_build_is_named_with_its_fix(tmp_path, registry, namespace, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    repo, marker = sleeping_repo(tmp_path, registry, namespace, 60)
    proxy = EngineProxy(tmp_path / "engine.sock")
    result = build_while(repo, marker, proxy.cut, DOCKER_HOST=proxy.docker_host)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: solo: the Docker engine at {proxy.docker_host} (DOCKER_HOST) stopped answering while solo was built ("), last
    assert "start it with `invoke engine.up`, or point DOCKER_HOST at a running engine, then run `invoke build` again (log: " in last
    assert "Traceback" not in result.stderr and "Connection aborted" not in result.stderr and "warning" not in result.stderr
    (image,) = report_of(repo, result.stdout)["images"]
    assert (image["name"], image["ok"], image["stopped"]) == ("solo", False, None)
    assert "stopped answering" in image["error"]


def test_a_registry_that_stops_mid_build_is_named_with_its_fix(tmp_path, private_registry, namespace, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    repo, marker = sleeping_repo(tmp_path, private_registry.address, namespace, 3)
    result = build_while(repo, marker, private_registry.stop)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: solo: registry {private_registry.address} stopped answering while solo was pushed ("), last
    assert "check that it is up and reachable from here, then run `invoke build` again (or build for another registry with --registry)" in last
    assert "Traceback" not in result.stderr
    (image,) = report_of(repo, result.stdout)["images"]
    assert not image["ok"] and f"registry {private_registry.address} stopped answering" in image["error"]
