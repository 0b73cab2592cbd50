"""Fixtures that talk to the real engine and registry; tests skip (with the reason) when none is up."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.conftest import write_tree


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def init_repo(root: Path, files: dict[str, str]) -> Path:
    write_tree(root, files)
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "initial")
    return root


def commit_all(root: Path, message: str) -> None:
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", message)


def run_invoke(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real CLI (`invoke ...`) in ``root``, with extra environment variables."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line a refused command prints (exit 1, no traceback)."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def local_tags(docker_client) -> list[str]:
    """Every tag in the engine, in one listing: a get per image (docker-py's ``images.list()``) fails with 404 when
    another user of the engine removes one in between.

    On the containerd image store, a listing made while another client deletes
    images can answer 404 for content that just went: then it lists again.
    """
    for attempt in range(3):
        try:
            return [tag for entry in docker_client.api.images() for tag in entry.get("RepoTags") or ()]
        except docker.errors.NotFound:
            if attempt == 2:
                raise
    return []


def remove_local_images(docker_client, wanted: Callable[[str], bool]) -> None:
    """Remove the engine's tags that ``wanted`` picks; an image that another user of the engine removed meanwhile is no error."""
    for tag in local_tags(docker_client):
        if wanted(tag):
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.images.remove(tag, force=True)


@pytest.fixture
def namespace(docker_client, registry):
    """A registry namespace of this test's own; its local images are removed afterwards."""
    name = f"imagegraph-test/{uuid.uuid4().hex[:8]}"
    yield name
    remove_local_images(docker_client, lambda tag: f"/{name}/" in tag)


@pytest.fixture
def private_registry(tmp_path, docker_client):
    """A registry of this test's own (deletes enabled), stopped afterwards."""
    from tests.integration.registries import start_registry

    server = start_registry(tmp_path / "registry")
    yield server
    server.stop()


@pytest.fixture
def fault_proxy(registry):
    """A fault-injecting proxy in front of the shared registry (tests/integration/faultproxy.py); closed afterwards.

    Talk to ``fault_proxy.address`` instead of the registry; script faults with
    ``fault_proxy.inject(Answer(500), "GET", r"/manifests/v1$", nth=2)``; read
    what reached it with ``fault_proxy.seen(...)``. For another registry behind
    it (a ``private_registry``), use ``start_fault_proxy(address)`` as a context manager.
    """
    from tests.integration.faultproxy import start_fault_proxy

    with start_fault_proxy(registry) as proxy:
        yield proxy


def _engine_in_sight() -> bool:
    """Whether dockerd's processes are visible from here (the host), as they are not from inside a container."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in ("dockerd", "containerd"):
                return True
        except OSError:
            continue
    return False


def pytest_collection_modifyitems(config, items):
    """A build's RUN step runs in the engine: where its processes are out of sight (the CI image), `host` tests run in `nox -s host`."""
    if not any("host" in item.keywords for item in items) or _engine_in_sight():
        return
    skip = pytest.mark.skip(reason="watches the engine's processes, which are out of sight here (a container); `nox -s host` runs it on the host")
    for item in items:
        if "host" in item.keywords:
            item.add_marker(skip)
