"""The README's quick start, checked on this repository's own images.

Builds what this checkout's plan still lacks (normally nothing: `invoke build`
ran first), then checks the promises the images make: the app serves its
health endpoint as a non-root user, no image holds a wheel file, and the app's
build context stays small.
"""

from __future__ import annotations

import socket
import tarfile
import time
from pathlib import Path

import pytest
import requests

from imagegraph.core.options import BuildOptions
from imagegraph.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DATA = ("/site-packages/", "/dist-packages/", "/usr/share/python-wheels/", "/ensurepip/_bundled/")


@pytest.fixture(scope="module")
def family(docker_client, registry) -> dict[str, str]:
    workspace = Workspace(ROOT, BuildOptions(registry=registry))
    results = workspace.executor(say=print).run(workspace.plan())
    failed = [f"{r.name}: {r.error}" for r in results if not r.ok]
    assert not failed, failed
    # A reused image may be in the registry only (a fresh runner, or a pruned engine): fetch it as a user would.
    for result in results:
        if not workspace.local.has(result.ref):
            docker_client.images.pull(result.ref)
    return {r.name: r.ref for r in results}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_app_serves_health_as_non_root(family, docker_client):
    port = free_port()
    container = docker_client.containers.run(family["app"], detach=True, network_mode="host",
                                             environment={"SCORER_HOST": "127.0.0.1", "SCORER_PORT": str(port)})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                container.reload()
                assert container.status == "running", container.logs().decode()[-2000:]
                assert time.monotonic() < deadline, "app did not answer on /healthz within 60s"
                time.sleep(0.5)
        assert reply.status_code == 200 and reply.json()["status"] == "ok"
        prediction = requests.post(f"http://127.0.0.1:{port}/predict", json={"features": [[0.1, 0.2, 0.3, 0.4]]}, timeout=5)
        assert prediction.status_code == 200 and len(prediction.json()["labels"]) == 1
        exit_code, uid = container.exec_run(["id", "-u"])
        assert exit_code == 0 and uid.decode().strip() != "0"
        # The image's own HEALTHCHECK command, run as the container runs it.
        check = docker_client.images.get(family["app"]).attrs["Config"]["Healthcheck"]["Test"]
        assert check[0] == "CMD"
        assert container.exec_run(check[1:], environment={"SCORER_PORT": str(port)}).exit_code == 0
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("image", ["base", "ci", "app", "devcontainer"])
def test_no_wheel_file_in_any_layer(family, docker_client, image):
    container = docker_client.containers.create(family[image], command=["true"])
    try:
        stream = container.export(chunk_size=1 << 20)
        with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as archive:
            wheels = [member.name for member in archive if member.name.endswith(".whl")]
    finally:
        container.remove(force=True)
    # Some installed packages carry wheels as their own data (pip's ensurepip and
    # Debian's python-wheels, virtualenv's seed wheels); any other wheel file would
    # be one that leaked from the wheelhouse into a layer.
    leaked = [name for name in wheels if not any(place in f"/{name}" for place in PACKAGE_DATA)]
    assert leaked == []
    assert not any(name.startswith(("wheels/", "tmp/")) for name in wheels)


def test_app_build_context_is_under_one_megabyte():
    from docker.utils.build import exclude_paths

    spec = Workspace(ROOT).config.image("app")
    patterns = [line.strip() for line in (ROOT / spec.dockerignore).read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    included = exclude_paths(str(ROOT), patterns)
    size = sum((ROOT / path).stat().st_size for path in included if (ROOT / path).is_file())
    assert any(path.startswith("src/scorer") for path in included)
    assert 0 < size < 1_000_000, f"app context is {size} bytes"


class _ChunkReader:
    """A file-like view of docker-py's chunk iterator, for tarfile's stream mode."""

    def __init__(self, chunks) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data
