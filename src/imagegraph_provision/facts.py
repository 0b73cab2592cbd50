"""What the machine has, as frozen values: the facts that the decisions (:mod:`.decide`) read.

Gathering them is :mod:`.observe`'s work (and :mod:`.procs`' for processes);
here they are only data and what follows from the data alone, so tests build
them in memory. Nothing here talks to the engine, the registry or a
subprocess.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from imagegraph.core.errors import InputError, RegistryError
from imagegraph.core.values import escaped, parse_registry

from .install import Distribution, EnginePackages, engine_packages, engine_too_old, parse_os_release

__all__ = [
    "BINFMT_DIR",
    "CONTAINERD_CONFIG",
    "CONTAINERD_PIDFILE",
    "DEFAULT_HOST",
    "DOCKER_PIDFILE",
    "QEMU_PLATFORMS",
    "BinfmtEntry",
    "DaemonFacts",
    "DockerClientInfo",
    "EmulationFacts",
    "MachineFacts",
    "PidFile",
    "Proc",
    "RegistryFacts",
    "emulated_platforms",
    "is_debian_like",
    "mirror_configured",
    "parse_binfmt_entry",
    "parse_registry_address",
]

DEFAULT_HOST = "unix:///var/run/docker.sock"

DOCKER_PIDFILE = "/var/run/docker.pid"
# dockerd supervises its own containerd; these are where it keeps track of it.
CONTAINERD_PIDFILE = "/var/run/docker/containerd/containerd.pid"
CONTAINERD_CONFIG = "/var/run/docker/containerd/containerd.toml"
BINFMT_DIR = "/proc/sys/fs/binfmt_misc"

#: binfmt_misc entry (as qemu-user-static / tonistiigi/binfmt name it) -> platform.
QEMU_PLATFORMS: Mapping[str, str] = {
    "qemu-x86_64": "linux/amd64",
    "qemu-aarch64": "linux/arm64",
    "qemu-arm": "linux/arm/v7",
    "qemu-ppc64le": "linux/ppc64le",
    "qemu-s390x": "linux/s390x",
    "qemu-riscv64": "linux/riscv64",
    "qemu-i386": "linux/386",
    "qemu-mips64el": "linux/mips64le",
    "qemu-loongarch64": "linux/loong64",
}


# === addresses =============================================================

def parse_registry_address(address: str) -> tuple[str, int]:
    """The local registry's (host, port), by the library's one registry-address rule; it is served at a port, with no path."""
    try:
        parsed = parse_registry(address, "--registry")
    except InputError:
        parsed = None
    if parsed is None or parsed.port is None or parsed.path:
        raise RegistryError(f"registry address {escaped(address)!r} is not HOST:PORT; pass e.g. --registry 127.0.0.1:5000")
    return parsed.host, parsed.port


# === processes =============================================================

@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    #: The kernel's ``comm`` (at most 15 characters).
    name: str
    argv: tuple[str, ...]
    zombie: bool = False

    @property
    def running(self) -> bool:
        return not self.zombie


@dataclass(frozen=True)
class PidFile:
    path: str
    #: None when the file does not hold a number.
    pid: int | None
    #: The process with that pid now, if any (it may be an unrelated program).
    proc: Proc | None

    def holds(self, name: str) -> bool:
        return self.proc is not None and self.proc.running and self.proc.name == name


# === the machine ===========================================================

def is_debian_like(os_release: str) -> bool:
    return parse_os_release(os_release).family is not None


@dataclass(frozen=True)
class MachineFacts:
    is_root: bool
    debian_like: bool
    #: Installed programs among those the engine needs, name -> absolute path.
    tools: Mapping[str, str] = field(default_factory=dict)
    distro: Distribution = field(default_factory=lambda: Distribution(""))
    #: ``dockerd --version`` of the installed daemon; None when none is installed.
    dockerd_version: str | None = None
    #: ``docker buildx version`` works for a docker client on this machine.
    buildx: bool = False

    @property
    def can_apt_install(self) -> bool:
        return self.is_root and self.debian_like and "apt-get" in self.tools

    @property
    def engine_current(self) -> bool:
        """A dockerd of 23 or later and the buildx plugin are installed."""
        return "dockerd" in self.tools and not engine_too_old(self.dockerd_version) and self.buildx

    def engine_packages(self) -> EnginePackages:
        return engine_packages(self.distro)

    def has(self, tool: str) -> bool:
        return tool in self.tools

    def tool(self, name: str) -> str:
        return self.tools.get(name, name)


@dataclass(frozen=True)
class DockerClientInfo:
    """One ``docker`` executable found on this machine."""

    path: str
    version: str | None
    #: ``PATH buildx version`` exits 0.
    buildx: bool


# === daemon ================================================================

@dataclass(frozen=True)
class DaemonFacts:
    host: str
    answers: bool
    version: str | None = None
    api_version: str | None = None
    mirrors: tuple[str, ...] = ()
    #: Running dockerd and containerd processes on this machine.
    processes: tuple[Proc, ...] = ()
    docker_pidfile: PidFile | None = None
    containerd_pidfile: PidFile | None = None
    #: Our record of the dockerd we started (STATE/dockerd.pid).
    managed_pidfile: PidFile | None = None
    #: ``containerd`` or ``classic``: where the engine keeps images (None when it does not answer).
    image_store: str | None = None

    @property
    def managed(self) -> bool:
        """We started the dockerd that runs now."""
        ours = self.managed_pidfile
        return ours is not None and ours.holds("dockerd")

    @property
    def local_default(self) -> bool:
        """The engine address is the local socket a dockerd we start would serve."""
        return _socket_path(self.host) == _socket_path(DEFAULT_HOST)


def _socket_path(host: str) -> str | None:
    if not host.startswith("unix://"):
        return None
    path = host.removeprefix("unix://")
    return os.path.join(os.path.realpath(os.path.dirname(path) or "/"), os.path.basename(path))


def mirror_configured(mirrors: Sequence[str], registry: str) -> bool:
    wanted = f"http://{registry}".rstrip("/").lower()
    return any(m.rstrip("/").lower() == wanted for m in mirrors)


# === registry ==============================================================

@dataclass(frozen=True)
class RegistryFacts:
    address: str
    #: /v2/ answers like a registry (200, or 401 when it wants credentials).
    answers: bool
    #: Something accepts connections on the port (a registry or not).
    port_open: bool
    #: Our record of the registry we started (STATE/registry.pid).
    managed_pidfile: PidFile | None = None
    #: ``http.addr`` of STATE/registry.yml, which that registry serves.
    managed_address: str | None = None

    @property
    def managed_running(self) -> bool:
        ours = self.managed_pidfile
        return ours is not None and ours.holds("docker-registry")

    @property
    def managed(self) -> bool:
        return self.managed_running and self.managed_address == self.address


# === emulation =============================================================

@dataclass(frozen=True)
class BinfmtEntry:
    name: str
    enabled: bool
    interpreter: str = ""
    flags: str = ""


def parse_binfmt_entry(name: str, text: str) -> BinfmtEntry:
    lines = text.splitlines()
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    return BinfmtEntry(
        name,
        bool(lines) and lines[0].strip() == "enabled",
        fields.get("interpreter", "").strip(),
        fields.get("flags:", "").strip(),
    )


@dataclass(frozen=True)
class EmulationFacts:
    #: binfmt_misc is mounted (it has its ``register`` and ``status`` files).
    mounted: bool
    #: The global switch in ``status``.
    enabled: bool = True
    entries: tuple[BinfmtEntry, ...] = ()


def emulated_platforms(facts: EmulationFacts, native: str) -> tuple[str, ...]:
    if not facts.mounted or not facts.enabled:
        return ()
    found = {QEMU_PLATFORMS[e.name] for e in facts.entries if e.enabled and e.name in QEMU_PLATFORMS}
    found.discard(native)
    return tuple(sorted(found))
