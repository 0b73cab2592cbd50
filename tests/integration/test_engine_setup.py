"""engine.up / status / down against the real engine and registry of this machine.

Skipped when no Docker engine answers. Nothing here needs --privileged, and
every registry a test starts runs on a spare loopback port from a temporary
state directory and is stopped again: a daemon or registry already running
(other people's builds) is only ever reused.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from imagegraph.adapters.engine.builder_choice import docker_clients, parse_inspect, select_builder
from imagegraph.adapters.engine.images import image_store_of
from imagegraph.adapters.runner import Command, Runner
from imagegraph.core.defaults import DEFAULT_REGISTRY
from imagegraph.core.errors import EngineError
from imagegraph_provision import seed, seed_build
from imagegraph_provision.decide import StartDockerd
from imagegraph_provision.facts import DEFAULT_HOST, mirror_configured
from imagegraph_provision.observe import connect, observe_machine, resolve_docker_host
from imagegraph_provision.setup import engine_down, engine_status, engine_up
from imagegraph_provision.state import StatePaths
from imagegraph_provision.steps import EngineSteps
from tests.integration.conftest import local_tags

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    host = resolve_docker_host()
    client = connect(host)
    if client is None:
        pytest.skip(f"no Docker engine answers at {host}; run `invoke engine.up` first")
    yield client
    client.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A private state dir; whatever a test started from it is stopped afterwards."""
    yield tmp_path / "state"
    engine_down(state_dir=tmp_path / "state", say=lambda line: None)


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def registry_answers(address: str) -> bool:
    try:
        return requests.get(f"http://{address}/v2/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_up_twice_reuses_everything_and_is_quick(engine, state_dir):
    if not registry_answers(DEFAULT_REGISTRY):
        pytest.skip(f"no registry at {DEFAULT_REGISTRY} to reuse; this test must not start one there")
    first: list[str] = []
    engine_up(seed=False, state_dir=state_dir, say=first.append)
    second: list[str] = []
    started = time.monotonic()
    status = engine_up(seed=False, state_dir=state_dir, say=second.append)
    seconds = time.monotonic() - started
    print(f"engine_up when everything runs: {seconds:.2f} s")
    assert first == second
    assert second[0].startswith("engine: reusing dockerd ")
    assert second[1] == f"engine: reusing registry at http://{DEFAULT_REGISTRY}/ (not started by imagegraph)"
    assert second[-1] == "engine: not seeding python:3.11-slim: disabled (--no-seed)"
    assert not any("starting" in line for line in first + second)
    assert status.daemon_reachable and status.registry_reachable
    assert not status.daemon_managed and not status.registry_managed
    assert seconds < 10


def test_status_matches_what_docker_py_sees(engine, state_dir):
    status = engine_status(state_dir=state_dir)
    version = engine.version()
    info = engine.info()
    assert status.daemon_version == version["Version"]
    assert status.api_version == version["ApiVersion"]
    assert status.mirrors == tuple(info["RegistryConfig"]["Mirrors"] or ())
    assert status.host == resolve_docker_host()
    assert [c.path for c in status.clients] == list(docker_clients())
    on_path = Runner().run(Command.of(status.clients[0].path, "buildx", "version"), check=False) if status.clients else None
    assert status.buildx == (on_path is not None and on_path.returncode == 0)
    assert not status.daemon_managed  # nothing in a fresh state dir
    # the image store, buildx and the builder as docker itself reports them
    assert status.image_store == image_store_of(info)
    assert status.buildx_version == Runner().run(Command.of("docker", "buildx", "version")).output.strip()
    current = parse_inspect(Runner().run(Command.of("docker", "buildx", "inspect")).output)
    assert status.builder is not None and current is not None
    assert (status.builder.driver, status.builder.platforms) == (current.driver, current.platforms)
    assert status.builder.multi_platform == (current.driver != "docker" or status.image_store == "containerd")
    lines = status.lines()
    assert f"store:     {status.image_store} image store" in lines
    assert any(line.startswith("builder:   ") and f"{current.driver} driver" in line for line in lines)


def test_a_registry_on_a_spare_port_is_started_reused_and_stopped(engine, state_dir):
    address = f"127.0.0.1:{spare_port()}"
    lines: list[str] = []
    status = engine_up(registry=address, seed=False, state_dir=state_dir, say=lines.append)
    assert f"engine: starting docker-registry at http://{address}/" in lines
    assert status.registry_reachable and status.registry_managed
    assert registry_answers(address)
    config = (state_dir / "registry.yml").read_text()
    assert f'addr: "{address}"' in config and str(state_dir / "registry-data") in config
    # The daemon's mirror is 127.0.0.1:5000, not this registry: never seeded.
    assert not mirror_configured(status.mirrors, address)

    again: list[str] = []
    engine_up(registry=address, seed=True, state_dir=state_dir, say=again.append)
    assert f"engine: reusing registry at http://{address}/ (ours)" in again
    assert any(line.startswith("engine: not seeding python:3.11-slim: dockerd does not use") for line in again)

    stopped = engine_down(state_dir=state_dir, say=lambda line: None)
    assert [a.name for a in stopped] == ["docker-registry"]  # type: ignore[union-attr]
    assert not registry_answers(address)
    assert not (state_dir / "registry.pid").exists()
    assert engine.ping()  # the daemon someone else runs is untouched


def test_down_without_anything_started_leaves_the_engine_alone(engine, tmp_path):
    lines: list[str] = []
    assert engine_down(state_dir=tmp_path, say=lines.append) == ()
    assert lines == [f"engine: nothing to stop: imagegraph started no dockerd or registry (state in {tmp_path})"]
    assert engine.ping()


@pytest.mark.slow
def test_seeded_python_serves_amd64_and_arm64_through_the_mirror(engine):
    """Seeds 127.0.0.1:5000/library/python:3.11-slim when missing (minutes: arm64 debootstraps under QEMU)."""
    if not mirror_configured(engine.info()["RegistryConfig"]["Mirrors"] or (), DEFAULT_REGISTRY):
        pytest.skip(f"dockerd does not use http://{DEFAULT_REGISTRY} as registry mirror")
    if not registry_answers(DEFAULT_REGISTRY):
        pytest.skip(f"no registry at {DEFAULT_REGISTRY}")
    status = engine_up(seed=True, platforms=("linux/amd64", "linux/arm64"))
    assert {"linux/amd64", "linux/arm64"} <= set(status.seeded_platforms)
    assert set(seed_build.probe_base_platforms(DEFAULT_REGISTRY)) == set(status.seeded_platforms)

    # Again: nothing to build.
    lines: list[str] = []
    engine_up(seed=True, say=lines.append)
    assert any(line.startswith("engine: reusing python:3.11-slim in 127.0.0.1:5000") for line in lines)

    docker_cli = docker_clients()[0]
    run = Runner().run
    # No public registry is reachable: this pull can only come through the
    # mirror. Native only, so the plain name others build FROM keeps its platform.
    engine.images.pull("python", tag="3.11-slim", platform=seed.native_platform())
    check = run(Command.of(docker_cli, "run", "--rm", "python:3.11-slim", "sh", "-c",
                           "python --version && pip --version && test ! -e /usr/lib/python3.11/EXTERNALLY-MANAGED "
                           "&& test -s /etc/ssl/certs/ca-certificates.crt && test -e /usr/share/zoneinfo/UTC && echo $LANG"))
    assert "Python 3.11" in check.output and "pip " in check.output and "C.UTF-8" in check.output
    # The arm64 image by its registry name: pulling the plain name for arm64
    # would retag python:3.11-slim as arm64 for everyone on this engine.
    arm = run(Command.of(docker_cli, "run", "--rm", "--platform", "linux/arm64", f"{DEFAULT_REGISTRY}/library/python:3.11-slim",
                         "uname", "-m"))
    assert arm.output.strip().splitlines()[-1] == "aarch64"


@pytest.mark.slow
def test_a_second_seed_builds_from_the_rootfs_cache_without_debootstrap(engine, state_dir):
    """Seeds a registry on a spare port from the cached root filesystems (seconds, not minutes)."""
    cache = seed.default_cache_dir()
    platforms = ("linux/amd64", "linux/arm64")
    if set(seed_build.cached_platforms(cache)) < set(platforms):
        pytest.skip(f"no cached rootfs for {', '.join(platforms)} in {cache}; run `invoke engine.up` first")
    address = f"127.0.0.1:{spare_port()}"
    engine_up(registry=address, seed=False, state_dir=state_dir, say=lambda line: None)
    # The daemon mirrors 127.0.0.1:5000 only, so engine_up would not seed this
    # registry: drive the seed plan for it directly.
    facts = seed.SeedFacts(
        registry=address, registry_reachable=True, mirror_configured=True, seeded_platforms=(), pushed_platforms=(),
        cached_platforms=seed_build.cached_platforms(cache), emulated_platforms=("linux/arm64",), native_platform="linux/amd64",
        is_root=True, debootstrap_installed=True,
    )
    actions = seed.decide_seed(facts, platforms)
    assert not any(isinstance(a, seed.BuildRootfs) for a in actions)
    lines: list[str] = []
    builder = select_builder(Runner(), image_store=image_store_of(engine.info()))
    steps = seed_build.SeedSteps(Runner(), builder, docker_clients()[0], cache, state_dir, lines.append)
    tags = [a.tag for a in actions if isinstance(a, seed.BuildImage)]
    try:
        started = time.monotonic()
        for action in actions:
            steps.perform(action)
        print(f"seed from cache: {time.monotonic() - started:.1f} s {steps.timings}")
        assert steps.verify(address, platforms) == platforms
    finally:
        for tag in tags:  # only our own tags: the images stay under the names others use
            with contextlib.suppress(docker.errors.ImageNotFound):
                engine.images.remove(tag)


def test_the_engine_steps_refuse_to_start_dockerd_beside_one_that_answers(engine, state_dir):
    """The last guard before spawning: even a wrong plan never starts a second daemon."""
    steps = EngineSteps(Runner(), StatePaths(state_dir), observe_machine(), lambda line: None)
    with pytest.raises(EngineError, match="a dockerd appeared"):
        steps.perform(StartDockerd(DEFAULT_HOST, f"http://{DEFAULT_REGISTRY}"))
    assert not (state_dir / "dockerd.pid").exists()
    assert engine.ping()


def test_a_container_builder_is_made_only_when_asked_and_an_unpullable_one_leaves_nothing(engine, tmp_path):
    if any("moby/buildkit" in tag for tag in local_tags(engine)):
        pytest.skip("moby/buildkit is in this engine: the builder would start")
    name = f"imagegraph-test-{tmp_path.name[-12:].replace('_', '-').strip('-')}"
    result = subprocess.run([sys.executable, "-m", "invoke", "engine.builder", "--name", name, "--state-dir", str(tmp_path)],
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stdout + result.stderr
    assert lines[0].startswith(f"error: the docker-container builder {name} needs the image moby/buildkit"), lines[0]
    assert lines[0].endswith("the half-made builder was removed")
    listed = Runner().run(Command.of("docker", "buildx", "ls")).output
    assert name not in listed
