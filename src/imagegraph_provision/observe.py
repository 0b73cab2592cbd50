"""Gathering the facts: what this machine, its engine, its registry and its emulation look like now.

Each ``observe_*`` function reads the machine (``/etc/os-release``, installed
tools, ``/proc``, binfmt_misc) or asks the engine (docker-py) and the
registry (HTTP) and returns the frozen values of :mod:`.facts`. Nothing here
changes anything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import docker
import requests
from docker.context import ContextAPI

from imagegraph.adapters.engine.builder_choice import docker_clients
from imagegraph.adapters.engine.images import image_store_of
from imagegraph.adapters.registry_http import RegistryHTTP, RetryPolicy
from imagegraph.adapters.runner import Command, Runner
from imagegraph.core.errors import RegistryError

from . import seed as seeding
from . import seed_build
from .facts import (
    BINFMT_DIR,
    CONTAINERD_PIDFILE,
    DEFAULT_HOST,
    DOCKER_PIDFILE,
    DaemonFacts,
    DockerClientInfo,
    EmulationFacts,
    MachineFacts,
    PidFile,
    RegistryFacts,
    mirror_configured,
    parse_binfmt_entry,
    parse_registry_address,
)
from .install import parse_docker_version, parse_os_release
from .procs import read_pidfile, read_processes
from .seed import SeedFacts
from .state import StatePaths, registry_config_address

__all__ = [
    "ENGINE_TOOLS",
    "connect",
    "observe_clients",
    "observe_daemon",
    "observe_emulation",
    "observe_machine",
    "observe_registry",
    "observe_seed",
    "port_open",
    "probe_registry",
    "resolve_docker_host",
    "which",
]

# Root's tools live in sbin, which a non-login shell may leave off PATH.
_EXTRA_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin")

ENGINE_TOOLS = ("apt-get", "dockerd", "docker-registry", "update-binfmts", "debootstrap", "mount", "tar")


def which(name: str) -> str | None:
    search = os.pathsep.join((os.environ.get("PATH", ""), *_EXTRA_PATH))
    return shutil.which(name, path=search)


def observe_machine(os_release_path: Path = Path("/etc/os-release"), runner: Runner | None = None) -> MachineFacts:
    try:
        text = os_release_path.read_text()
    except OSError:
        text = ""
    tools = {name: path for name in ENGINE_TOOLS if (path := which(name))}
    runner = runner or Runner()
    version = None
    if "dockerd" in tools:
        result = runner.run(Command.of(tools["dockerd"], "--version"), check=False)
        version = parse_docker_version(result.output) if result.returncode == 0 else None
    buildx = any(runner.run(Command.of(client, "buildx", "version"), check=False).returncode == 0 for client in docker_clients())
    distro = parse_os_release(text)
    return MachineFacts(os.geteuid() == 0, distro.family is not None, tools, distro, version, buildx)


def observe_clients(runner: Runner) -> tuple[DockerClientInfo, ...]:
    found = []
    for path in docker_clients():
        version = runner.run(Command.of(path, "--version"), check=False)
        buildx = runner.run(Command.of(path, "buildx", "version"), check=False)
        found.append(DockerClientInfo(
            path,
            parse_docker_version(version.output) if version.returncode == 0 else None,
            buildx.returncode == 0,
        ))
    return tuple(found)


# === daemon ================================================================

def resolve_docker_host(environ: Mapping[str, str] | None = None) -> str:
    """The engine docker-py and the CLI talk to: DOCKER_HOST, else the current context."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"]
    try:
        context = ContextAPI.get_current_context()
    except Exception:  # a broken CLI config must not hide the default engine
        context = None
    if context is not None and context.Name != "default" and context.Host:
        return str(context.Host)
    return DEFAULT_HOST


def connect(host: str, timeout: float = 10.0) -> docker.DockerClient | None:
    """A client that answered ping, or None."""
    try:
        # from_env also honours DOCKER_TLS_VERIFY / DOCKER_CERT_PATH.
        from_env = bool(os.environ.get("DOCKER_HOST"))
        client = docker.from_env(timeout=timeout) if from_env else docker.DockerClient(base_url=host, timeout=timeout)
        client.ping()
        return client
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return None


def observe_daemon(paths: StatePaths, host: str | None = None) -> DaemonFacts:
    host = host or resolve_docker_host()
    facts = DaemonFacts(
        host,
        answers=False,
        processes=read_processes(("dockerd", "containerd")),
        docker_pidfile=read_pidfile(DOCKER_PIDFILE),
        containerd_pidfile=read_pidfile(CONTAINERD_PIDFILE),
        managed_pidfile=read_pidfile(paths.dockerd_pid),
    )
    client = connect(host)
    if client is None:
        return facts
    try:
        version = client.version()
        info = client.info()
    except (docker.errors.DockerException, requests.RequestException):
        return facts
    finally:
        client.close()
    return replace(
        facts,
        answers=True,
        version=version.get("Version"),
        api_version=version.get("ApiVersion"),
        mirrors=tuple((info.get("RegistryConfig") or {}).get("Mirrors") or ()),
        image_store=image_store_of(info),
    )


# === registry ==============================================================

def probe_registry(address: str, timeout: float = 3.0) -> bool:
    """A registry answers at ``address`` (plain HTTP, as dockerd's mirror); passing faults are tried again within ``timeout``."""
    try:
        response = RegistryHTTP(address, scheme="http", timeout=timeout, retry=RetryPolicy(total=timeout)).request("GET", "/")
    except RegistryError:
        return False
    return response.status_code in (200, 401) and "Docker-Distribution-Api-Version" in response.headers


def port_open(address: str, timeout: float = 1.0) -> bool:
    host, port = parse_registry_address(address)
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            return True
    except OSError:
        return False


def observe_registry(address: str, paths: StatePaths) -> RegistryFacts:
    parse_registry_address(address)
    managed_address = None
    with contextlib.suppress(OSError):
        managed_address = registry_config_address(paths.registry_config.read_text())
    ours = read_pidfile(paths.registry_pid)
    if ours is not None and ours.proc is not None and str(paths.registry_config) not in ours.proc.argv:
        # A reused pid: some other docker-registry or program.
        ours = PidFile(ours.path, ours.pid, None)
    answers = probe_registry(address)
    return RegistryFacts(address, answers, answers or port_open(address), ours, managed_address)


# === emulation =============================================================

def observe_emulation(directory: Path = Path(BINFMT_DIR)) -> EmulationFacts:
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError:
        return EmulationFacts(mounted=False)
    if "register" not in names:
        return EmulationFacts(mounted=False)
    entries = []
    for name in names:
        if name in ("register", "status"):
            continue
        try:
            entries.append(parse_binfmt_entry(name, (directory / name).read_text()))
        except OSError:
            continue
    try:
        enabled = (directory / "status").read_text().strip() == "enabled"
    except OSError:
        enabled = True
    return EmulationFacts(True, enabled, tuple(entries))


# === seed ==================================================================

def observe_seed(registry: str, paths: StatePaths, cache: Path, emulated: Sequence[str], native: str,
                 machine: MachineFacts) -> SeedFacts:
    answers = probe_registry(registry)
    return SeedFacts(
        registry=registry,
        registry_reachable=answers,
        mirror_configured=mirror_configured(observe_daemon(paths).mirrors, registry),
        seeded_platforms=seed_build.probe_base_platforms(registry) if answers else (),
        pushed_platforms=seed_build.probe_pushed_platforms(registry, seeding.SEED_PLATFORMS) if answers else (),
        cached_platforms=seed_build.cached_platforms(cache),
        emulated_platforms=tuple(emulated),
        native_platform=native,
        is_root=machine.is_root,
        debootstrap_installed=machine.has("debootstrap"),
    )
