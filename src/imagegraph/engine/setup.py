"""Make a usable container engine: dockerd, a local registry, emulation, a seeded base.

Every stage works the same way: probe functions observe the machine into
frozen ``*Facts`` values, a pure ``decide_*`` function turns facts into a
tuple of actions (frozen dataclasses, each with a one-line ``describe()``
that is narrated), and :class:`Executor` performs them. Tests cover the
decisions with facts built in memory.

What imagegraph starts (dockerd, docker-registry) records its pid in the
state directory; :func:`engine_down` stops only those, and a daemon or
registry that someone else runs is reused and left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import docker
import requests
from docker.context import ContextAPI

from ..errors import EngineError, ImagegraphError, RegistryError, ToolMissing
from ..registry import RegistryHTTP, RetryPolicy
from ..runner import Command, Runner
from . import seed as seeding
from .builders import BuilderChoice, build_mode, choose_builder, observe_builder, select_builder
from .builders import docker_clients as find_docker_clients
from .images import image_store_of
from .install import (
    Distribution,
    EnginePackages,
    engine_packages,
    engine_too_old,
    parse_docker_version,
    parse_os_release,
)
from .seed import DEFAULT_SEED_PLATFORMS, SeedFacts

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_REGISTRY",
    "IMAGE_STORES",
    "EngineStatus",
    "default_state_dir",
    "engine_down",
    "engine_status",
    "engine_up",
]

Narrate = Callable[[str], None]

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_REGISTRY = "127.0.0.1:5000"
#: The image stores a dockerd of ours can use: containerd (multi-platform images, registry cache) or the classic one.
IMAGE_STORES = ("containerd", "classic")

DOCKER_PIDFILE = "/var/run/docker.pid"
# dockerd supervises its own containerd; these are where it keeps track of it.
CONTAINERD_PIDFILE = "/var/run/docker/containerd/containerd.pid"
CONTAINERD_CONFIG = "/var/run/docker/containerd/containerd.toml"
BINFMT_DIR = "/proc/sys/fs/binfmt_misc"

DAEMON_START_TIMEOUT = 30.0
REGISTRY_START_TIMEOUT = 15.0
STOP_TIMEOUT = 20.0
#: Pruning a build cache of many GB takes a while.
PRUNE_TIMEOUT = 600.0
#: What dockerd logs at start for each image whose layers it no longer has.
UNRESTORED_IMAGE = re.compile(r"layer does not exist, not restoring image (sha256:[0-9a-f]{64})")

# Root's tools live in sbin, which a non-login shell may leave off PATH.
_EXTRA_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin")

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


# === paths =================================================================

def default_state_dir(environ: Mapping[str, str] | None = None, is_root: bool | None = None,
                      home: Path | None = None) -> Path:
    env = os.environ if environ is None else environ
    root = os.geteuid() == 0 if is_root is None else is_root
    if root:
        return Path("/var/lib/imagegraph")
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else (home or Path.home()) / ".local" / "state"
    return base / "imagegraph"


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def dockerd_pid(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def dockerd_log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def unrestored_images(self) -> Path:
        """Images dockerd could not restore whose build cache imagegraph already pruned (one ID per line)."""
        return self.root / "unrestored-images"

    @property
    def registry_pid(self) -> Path:
        return self.root / "registry.pid"

    @property
    def registry_log(self) -> Path:
        return self.root / "registry.log"

    @property
    def registry_config(self) -> Path:
        return self.root / "registry.yml"

    @property
    def registry_data(self) -> Path:
        return self.root / "registry-data"

    @property
    def apt_log(self) -> Path:
        return self.root / "apt.log"

    @property
    def daemon_config(self) -> Path:
        """The daemon.json of the dockerd we start (the system's /etc/docker/daemon.json is left alone)."""
        return self.root / "daemon.json"


def daemon_config(mirror: str, image_store: str) -> str:
    """dockerd's configuration: the registry mirror, and the containerd image store unless asked for the classic one."""
    return json.dumps({
        "registry-mirrors": [mirror],
        "features": {"containerd-snapshotter": image_store == "containerd"},
    }, indent=2) + "\n"


def parse_registry_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in address:
        raise RegistryError(f"registry address {address!r} is not HOST:PORT; pass e.g. --registry 127.0.0.1:5000")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def registry_config(address: str, data_dir: Path) -> str:
    """Our own config: the packaged one listens on all interfaces with htpasswd auth."""
    return "\n".join((
        "version: 0.1",
        "log:",
        "  level: info",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {json.dumps(str(data_dir))}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {json.dumps(address)}",
        "",
    ))


def registry_config_address(text: str) -> str | None:
    """``http.addr`` of a config written by :func:`registry_config`."""
    in_http = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_http = line.strip() == "http:"
            continue
        key, _, value = line.strip().partition(":")
        if in_http and key == "addr":
            return value.strip().strip('"')
    return None


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


def parse_stat(text: str) -> tuple[str, str, int]:
    """``/proc/PID/stat`` -> (comm, state, ppid); comm may hold spaces and parentheses."""
    name = text[text.index("(") + 1:text.rindex(")")]
    rest = text[text.rindex(")") + 2:].split()
    return name, rest[0], int(rest[1])


def read_process(pid: int, proc_root: Path = Path("/proc")) -> Proc | None:
    base = proc_root / str(pid)
    try:
        name, state, ppid = parse_stat((base / "stat").read_text())
        raw = (base / "cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    argv = tuple(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return Proc(pid, ppid, name, argv, zombie=state in ("Z", "X"))


def read_processes(names: Iterable[str], proc_root: Path = Path("/proc")) -> tuple[Proc, ...]:
    wanted = set(names)
    found = []
    for entry in proc_root.iterdir() if proc_root.is_dir() else ():
        if entry.name.isdigit():
            try:
                name = parse_stat((entry / "stat").read_text())[0]
            except (OSError, ValueError, IndexError):
                continue
            if name in wanted and (proc := read_process(int(entry.name), proc_root)) is not None:
                found.append(proc)
    return tuple(sorted(found, key=lambda p: p.pid))


@dataclass(frozen=True)
class PidFile:
    path: str
    #: None when the file does not hold a number.
    pid: int | None
    #: The process with that pid now, if any (it may be an unrelated program).
    proc: Proc | None

    def holds(self, name: str) -> bool:
        return self.proc is not None and self.proc.running and self.proc.name == name


def read_pidfile(path: Path | str) -> PidFile | None:
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return PidFile(str(path), None, None)
    pid = int(text) if text.isdigit() else None
    return PidFile(str(path), pid, read_process(pid) if pid else None)


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
    buildx = any(runner.run(Command.of(client, "buildx", "version"), check=False).returncode == 0 for client in find_docker_clients())
    distro = parse_os_release(text)
    return MachineFacts(os.geteuid() == 0, distro.family is not None, tools, distro, version, buildx)


def _install_fix(tools: str) -> str:
    return f"install {tools}, or rerun `invoke engine.up` as root on Debian/Ubuntu to let imagegraph install it"


# === actions shared by stages ==============================================

@dataclass(frozen=True)
class InstallPackages:
    packages: EnginePackages
    #: Why, when it replaces what is installed (an engine too old, no buildx).
    reason: str = ""

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"engine: installing {self.packages.describe()} with apt-get{why}"


@dataclass(frozen=True)
class RemovePidfile:
    path: str
    reason: str

    def describe(self) -> str:
        return f"engine: removing {self.path} ({self.reason})"


@dataclass(frozen=True)
class StopProcess:
    pid: int
    name: str
    reason: str
    pidfile: str | None = None

    def describe(self) -> str:
        return f"engine: stopping {self.name} (pid {self.pid}, {self.reason})"


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


@dataclass(frozen=True)
class ReuseDaemon:
    host: str
    version: str
    api_version: str
    managed: bool
    image_store: str | None = None
    #: A warning to add, e.g. that no buildx plugin is installed for this engine's clients.
    note: str = ""

    def describe(self) -> str:
        whose = "ours" if self.managed else "not started by imagegraph"
        store = f", {self.image_store} image store" if self.image_store else ""
        note = f"; {self.note}" if self.note else ""
        return f"engine: reusing dockerd {self.version} (API {self.api_version}{store}, {whose}) at {self.host}{note}"


@dataclass(frozen=True)
class WaitForDaemon:
    host: str
    pid: int

    def describe(self) -> str:
        return f"engine: waiting for dockerd (pid {self.pid}, started by imagegraph) to answer at {self.host}"


@dataclass(frozen=True)
class StartDockerd:
    host: str
    mirror: str
    image_store: str = "containerd"

    def argv(self, config_file: Path | str) -> tuple[str, ...]:
        # The mirror and the image store live in our own daemon.json (see daemon_config).
        return ("dockerd", "--host", self.host, "--config-file", str(config_file))

    def describe(self) -> str:
        return f"engine: starting dockerd at {self.host} ({self.image_store} image store, registry mirror {self.mirror})"


DaemonAction = ReuseDaemon | InstallPackages | RemovePidfile | StopProcess | WaitForDaemon | StartDockerd


def _is_docker_containerd(proc: Proc) -> bool:
    return proc.name == "containerd" and CONTAINERD_CONFIG in proc.argv


def decide_daemon(facts: DaemonFacts, machine: MachineFacts, registry: str, image_store: str | None = None) -> tuple[DaemonAction, ...]:
    """Reuse a current daemon that answers; otherwise clear what a dead one left, install, and start one.

    A daemon older than Docker 23 (no buildx: 20.10 is out of support) is
    never reused: ours is stopped and upgraded, anyone else's is an error
    that names the fix. ``image_store`` None keeps whatever store a running
    engine uses (containerd for one we start); a store named explicitly
    restarts our dockerd on it.

    Never plans a second dockerd: one that runs but does not answer is an
    error for the user (two daemons fight over the docker0 bridge).
    """
    mirror = f"http://{registry}"
    store = image_store or "containerd"
    if facts.answers:
        return _decide_running(facts, machine, mirror, image_store)
    if not facts.local_default:
        raise EngineError(
            f"no Docker engine answers at {facts.host} (DOCKER_HOST or the current docker context); start that engine, "
            f"or unset DOCKER_HOST (and `docker context use default`) to let imagegraph run a local dockerd"
        )
    actions: list[DaemonAction] = []
    if not machine.engine_current:
        if not machine.can_apt_install:
            raise EngineError(_no_current_engine(machine))
        actions.append(InstallPackages(machine.engine_packages(), _outdated_reason(machine)))
    elif not machine.is_root:
        raise EngineError(
            f"no Docker engine answers at {facts.host}: start Docker (Docker Desktop, or `sudo systemctl start docker`), "
            f"or rerun `invoke engine.up` as root to let imagegraph start dockerd"
        )

    live = [p for p in facts.processes if p.name == "dockerd" and p.running]
    if live:
        starting = [p for p in live if facts.managed_pidfile is not None and p.pid == facts.managed_pidfile.pid]
        if starting and len(live) == 1:
            return (WaitForDaemon(facts.host, starting[0].pid),)
        pids = " ".join(str(p.pid) for p in live)
        raise EngineError(
            f"dockerd (pid {pids}) runs but does not answer at {facts.host}; wait for it to finish starting, "
            f"or stop it (`kill {pids}`) and rerun `invoke engine.up`"
        )

    # Left by a dockerd that was killed: dockerd refuses to start while its
    # pid file names a live process (a reused pid, or a zombie).
    stale = facts.docker_pidfile
    if stale is not None and stale.proc is not None:
        actions.append(RemovePidfile(stale.path, f"pid {stale.pid} is {stale.proc.name}, not a running dockerd"))

    # A containerd orphaned by a killed dockerd would be adopted through its
    # pid file, or (pid file gone) clash with the fresh one over its database.
    orphans = [p for p in facts.processes if _is_docker_containerd(p) and p.running]
    for orphan in orphans:
        actions.append(StopProcess(orphan.pid, "containerd", "orphaned by a dockerd that is gone"))
    # Whatever its pid file names now (that orphan, a zombie, a reused pid)
    # is not a containerd for the new dockerd to adopt.
    cpid = facts.containerd_pidfile
    if cpid is not None and cpid.proc is not None:
        actions.append(RemovePidfile(cpid.path, f"pid {cpid.pid} is not a containerd to adopt"))

    ours = facts.managed_pidfile
    if ours is not None and not ours.holds("dockerd"):
        actions.append(RemovePidfile(ours.path, "the dockerd it names is gone"))
    actions.append(StartDockerd(DEFAULT_HOST, mirror, store))
    return tuple(actions)


def _decide_running(facts: DaemonFacts, machine: MachineFacts, mirror: str, image_store: str | None) -> tuple[DaemonAction, ...]:
    version = facts.version or "?"
    outdated = engine_too_old(facts.version)
    switch = image_store is not None and facts.image_store is not None and facts.image_store != image_store
    no_buildx = not machine.buildx
    if not (outdated or switch or (no_buildx and facts.managed)):
        note = "no docker client here has the buildx plugin: install docker-buildx (or docker-buildx-plugin)" if no_buildx else ""
        return (ReuseDaemon(facts.host, version, facts.api_version or "?", facts.managed, facts.image_store, note),)
    if not facts.managed:
        if outdated:
            raise EngineError(
                f"dockerd {version} answers at {facts.host}, but imagegraph builds with Docker 23 or later and buildx; "
                f"upgrade that engine, or stop it and rerun `invoke engine.up` as root to let imagegraph install a current one"
            )
        raise EngineError(
            f"the engine at {facts.host} uses the {facts.image_store} image store and imagegraph did not start it; "
            f"set features.containerd-snapshotter in its daemon.json and restart it, or drop --image-store"
        )
    pidfile = facts.managed_pidfile
    assert pidfile is not None and pidfile.pid is not None  # managed
    actions: list[DaemonAction] = []
    if outdated or not machine.engine_current:
        if not machine.can_apt_install:
            raise EngineError(_no_current_engine(machine))
        reason = f"dockerd {version} is older than Docker 23" if outdated else _outdated_reason(machine)
        actions += [StopProcess(pidfile.pid, "dockerd", f"{reason}: upgrading", pidfile.path), InstallPackages(machine.engine_packages(), reason)]
    else:
        actions.append(StopProcess(pidfile.pid, "dockerd", f"switching to the {image_store} image store", pidfile.path))
    # an upgraded engine starts on the containerd store unless asked otherwise; a switch is always named
    actions.append(StartDockerd(DEFAULT_HOST, mirror, image_store or "containerd"))
    return tuple(actions)


def _outdated_reason(machine: MachineFacts) -> str:
    if not machine.has("dockerd"):
        return "no engine installed"
    if engine_too_old(machine.dockerd_version):
        return f"dockerd {machine.dockerd_version} is older than Docker 23"
    return "no buildx plugin"


def _no_current_engine(machine: MachineFacts) -> str:
    if not machine.has("dockerd"):
        return ("Docker is not installed and no engine answers: install Docker Engine (23 or later, with buildx) or Docker Desktop "
                "(https://docs.docker.com/get-docker/), or rerun `invoke engine.up` as root on Debian/Ubuntu")
    if engine_too_old(machine.dockerd_version):
        return (f"the installed dockerd {machine.dockerd_version} is older than Docker 23 (no buildx); upgrade Docker "
                f"(https://docs.docker.com/engine/install/), or rerun `invoke engine.up` as root on Debian/Ubuntu to let imagegraph upgrade it")
    return ("no docker client on this machine has the buildx plugin; install docker-buildx (Debian/Ubuntu) or docker-buildx-plugin "
            "(Docker's packages), or rerun `invoke engine.up` as root on Debian/Ubuntu")


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


@dataclass(frozen=True)
class ReuseRegistry:
    address: str
    managed: bool

    def describe(self) -> str:
        whose = "ours" if self.managed else "not started by imagegraph"
        return f"engine: reusing registry at http://{self.address}/ ({whose})"


@dataclass(frozen=True)
class StartRegistry:
    address: str

    def describe(self) -> str:
        return f"engine: starting docker-registry at http://{self.address}/"


RegistryAction = ReuseRegistry | InstallPackages | RemovePidfile | StopProcess | StartRegistry


def decide_registry(facts: RegistryFacts, machine: MachineFacts, state_dir: Path) -> tuple[RegistryAction, ...]:
    if facts.answers:
        return (ReuseRegistry(facts.address, facts.managed),)
    host, port = parse_registry_address(facts.address)
    if facts.managed_running and facts.managed_address != facts.address:
        raise RegistryError(
            f"imagegraph already runs a registry at {facts.managed_address} from {state_dir}; "
            f"stop it with `invoke engine.down` or pass another --state-dir"
        )
    if not is_loopback(host):
        raise RegistryError(
            f"no registry answers at {facts.address}, and imagegraph only starts one on this machine; "
            f"start it yourself or pass --registry 127.0.0.1:{port}"
        )
    if facts.port_open and not facts.managed_running:
        raise RegistryError(
            f"{facts.address} is taken by something that is not a registry; free the port or pass --registry 127.0.0.1:OTHER_PORT"
        )
    actions: list[RegistryAction] = []
    if not machine.has("docker-registry"):
        if not machine.can_apt_install:
            raise ToolMissing(f"docker-registry is not installed; {_install_fix('the docker-registry package')}")
        actions.append(InstallPackages(EnginePackages(engine=())))
    ours = facts.managed_pidfile
    if facts.managed_running and ours is not None and ours.pid is not None:
        actions.append(StopProcess(ours.pid, "docker-registry", "ours, but it does not answer", ours.path))
    elif ours is not None:
        actions.append(RemovePidfile(ours.path, "the registry it names is gone"))
    actions.append(StartRegistry(facts.address))
    return tuple(actions)


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


def emulated_platforms(facts: EmulationFacts, native: str) -> tuple[str, ...]:
    if not facts.mounted or not facts.enabled:
        return ()
    found = {QEMU_PLATFORMS[e.name] for e in facts.entries if e.enabled and e.name in QEMU_PLATFORMS}
    found.discard(native)
    return tuple(sorted(found))


@dataclass(frozen=True)
class MountBinfmt:
    def describe(self) -> str:
        return f"engine: mounting binfmt_misc at {BINFMT_DIR}"


@dataclass(frozen=True)
class EnableBinfmts:
    def describe(self) -> str:
        return "engine: registering QEMU emulators (update-binfmts --enable)"


@dataclass(frozen=True)
class NoEmulation:
    reason: str

    def describe(self) -> str:
        return f"engine: no emulation of foreign platforms: {self.reason}"


EmulationAction = MountBinfmt | EnableBinfmts | NoEmulation


def decide_emulation(facts: EmulationFacts, machine: MachineFacts) -> tuple[EmulationAction, ...]:
    if facts.mounted:
        if not facts.enabled:
            return (NoEmulation(f"binfmt_misc is switched off (as root: `echo 1 > {BINFMT_DIR}/status`)"),)
        return ()
    if not machine.is_root:
        return (NoEmulation("binfmt_misc is not mounted; rerun `invoke engine.up` as root"),)
    if not machine.has("update-binfmts"):
        return (MountBinfmt(), NoEmulation(f"update-binfmts is missing; {_install_fix('qemu-user-static and binfmt-support')}"))
    return (MountBinfmt(), EnableBinfmts())


UpAction = DaemonAction | RegistryAction | EmulationAction


# === down ==================================================================

DownAction = StopProcess | RemovePidfile


def decide_down(registry: PidFile | None, registry_config_path: Path, dockerd: PidFile | None) -> tuple[DownAction, ...]:
    """Stop what imagegraph started, the registry first: dockerd may be pushing to it."""
    actions: list[DownAction] = []
    if registry is not None:
        proc = registry.proc
        if registry.holds("docker-registry") and proc is not None and str(registry_config_path) in proc.argv:
            actions.append(StopProcess(proc.pid, "docker-registry", "started by imagegraph", registry.path))
        else:
            actions.append(RemovePidfile(registry.path, "the registry it names is gone"))
    if dockerd is not None:
        if dockerd.holds("dockerd") and dockerd.pid is not None:
            actions.append(StopProcess(dockerd.pid, "dockerd", "started by imagegraph", dockerd.path))
        else:
            actions.append(RemovePidfile(dockerd.path, "the dockerd it names is gone"))
    return tuple(actions)


# === execution =============================================================

_DETACHED: list[subprocess.Popen[bytes]] = []


def unrestored_images(log_text: str) -> frozenset[str]:
    """The images dockerd dropped at start because their layers are gone from its layer store.

    That happens after an unclean stop (a machine restored from a snapshot, a
    killed daemon). The engine's BuildKit may still hold cache records that
    name those layers, and a build that reuses one fails with ``layer does not
    exist``: the build cache has to go too. dockerd never forgets such an
    image, so it names the same ones at every start: the caller compares.
    """
    return frozenset(match.group(1) for match in UNRESTORED_IMAGE.finditer(log_text))


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    tail = " | ".join(line.strip() for line in text[-lines:] if line.strip())
    return tail[-400:] or "(empty log)"


def _reap(pid: int) -> None:
    # Processes we spawned stay zombies (and look alive in /proc) until reaped.
    for spawned in _DETACHED:
        if spawned.pid == pid:
            spawned.poll()
            return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int, name: str) -> bool:
    _reap(pid)
    proc = read_process(pid)
    return proc is not None and proc.running and proc.name == name


class Executor:
    """Performs the actions the ``decide_*`` functions plan, narrating each."""

    def __init__(self, runner: Runner, paths: StatePaths, machine: MachineFacts, narrate: Narrate,
                 apt_dir: Path = Path("/etc/apt")) -> None:
        self.runner = runner
        self.paths = paths
        self.machine = machine
        self.narrate = narrate
        self.apt_dir = apt_dir
        self._binfmt_refused = False

    def execute(self, action: UpAction) -> None:
        self.narrate(action.describe())
        match action:
            case ReuseDaemon() | ReuseRegistry() | NoEmulation():
                pass
            case InstallPackages(packages=packages):
                self._install(packages)
            case RemovePidfile(path=path):
                Path(path).unlink(missing_ok=True)
            case StopProcess():
                stop_process(action)
            case WaitForDaemon(host=host, pid=pid):
                self._wait_for_daemon(host, pid, None)
            case StartDockerd():
                self._start_dockerd(action)
            case StartRegistry(address=address):
                self._start_registry(address)
            case MountBinfmt():
                mount = Command.of(self.machine.tool("mount"), "-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR)
                # Emulation is a convenience, not a precondition: inside a container (the CI image
                # driving the host's engine) the mount is refused, and the host's handlers still apply.
                if self.runner.run(mount, check=False).returncode != 0:
                    self._binfmt_refused = True
                    self.narrate(NoEmulation("binfmt_misc cannot be mounted here (a container?); run `invoke engine.up` on the host").describe())
            case EnableBinfmts():
                if not self._binfmt_refused:
                    self.runner.run(Command.of(self.machine.tool("update-binfmts"), "--enable"))

    def _install(self, packages: EnginePackages) -> None:
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        apt = self.machine.tool("apt-get")
        hint = f"see {self.paths.apt_log}"
        if packages.source is not None:
            source = packages.source
            Path(self.apt_dir, "sources.list.d", source.list_name).write_text(source.list_text())
            Path(self.apt_dir, "preferences.d", source.preferences_name).write_text(source.preferences_text())
        self.runner.run(Command.of(apt, "update", env=env, hint=hint), log_path=self.paths.apt_log)
        # Keep a config file the admin changed (docker.io's /etc/default/docker...) rather than stop on a prompt.
        options = ("-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")
        self.runner.run(Command.of(apt, "install", "-y", *options, *packages.apt_arguments(), env=env, hint=hint),
                        log_path=self.paths.apt_log)
        self.machine = observe_machine(runner=self.runner)
        if packages.engine and not self.machine.engine_current:
            raise EngineError(
                f"after installing {packages.describe()}, dockerd is {self.machine.dockerd_version or 'missing'} and buildx "
                f"{'works' if self.machine.buildx else 'does not'}; see {self.paths.apt_log}"
            )

    def _spawn(self, argv: Sequence[str], log: Path, pidfile: Path) -> subprocess.Popen[bytes]:
        # Not through Runner: these servers must outlive this process, so they
        # get their own session and write to a log file instead of a pipe.
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        pidfile.write_text(f"{proc.pid}\n")
        _DETACHED.append(proc)
        return proc

    def _start_dockerd(self, action: StartDockerd) -> None:
        # Checked again right before starting: a package's postinst or another
        # `engine.up` may have started one since we looked.
        if connect(action.host, timeout=3) is not None or any(
            p.running for p in read_processes(("dockerd",))
        ):
            raise EngineError("a dockerd appeared while imagegraph was about to start one; rerun `invoke engine.up` to reuse it")
        dockerd = self.machine.tool("dockerd")
        log = self.paths.dockerd_log
        start = log.stat().st_size if log.exists() else 0
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.daemon_config.write_text(daemon_config(action.mirror, action.image_store))
        proc = self._spawn((dockerd, *action.argv(self.paths.daemon_config)[1:]), log, self.paths.dockerd_pid)
        self._wait_for_daemon(action.host, proc.pid, proc)
        with log.open("rb") as out:
            out.seek(start)
            dropped = unrestored_images(out.read().decode("utf-8", "replace"))
        known = self.paths.unrestored_images
        answered = frozenset(known.read_text().split()) if known.exists() else frozenset()
        if dropped - answered and self._prune_build_cache(action.host, len(dropped - answered)):
            known.write_text("".join(f"{image}\n" for image in sorted(dropped | answered)))

    def _prune_build_cache(self, host: str, lost: int) -> bool:
        client = connect(host, timeout=PRUNE_TIMEOUT)
        if client is None:
            raise EngineError(f"dockerd at {host} stopped answering right after it started; see {self.paths.dockerd_log}")
        try:
            with contextlib.closing(client):
                client.api.prune_builds(all=True)
        except (docker.errors.DockerException, requests.RequestException) as err:
            self.narrate(f"engine: warning: dockerd dropped {lost} image(s) whose layers are gone and its build cache could not be"
                         f" pruned ({err}); run `docker builder prune --all --force` before building")
            return False
        self.narrate(f"engine: dockerd dropped {lost} image(s) whose layers are gone (an unclean stop); pruned the build cache"
                     " so that no build reuses a step whose layer is gone (the registry cache still applies)")
        return True

    def _wait_for_daemon(self, host: str, pid: int, proc: subprocess.Popen[bytes] | None) -> None:
        log = self.paths.dockerd_log
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        while time.monotonic() < deadline:
            client = connect(host, timeout=2)
            if client is not None:
                client.close()
                return
            if (proc is not None and proc.poll() is not None) or not _alive(pid, "dockerd"):
                raise EngineError(f"dockerd exited while starting; see {log}: {_tail(log)}")
            time.sleep(0.5)
        raise EngineError(f"dockerd (pid {pid}) did not answer at {host} within {DAEMON_START_TIMEOUT:.0f} s; see {log}: {_tail(log)}")

    def _start_registry(self, address: str) -> None:
        paths = self.paths
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.registry_data.mkdir(parents=True, exist_ok=True)
        paths.registry_config.write_text(registry_config(address, paths.registry_data))
        argv = (self.machine.tool("docker-registry"), "serve", str(paths.registry_config))
        proc = self._spawn(argv, paths.registry_log, paths.registry_pid)
        deadline = time.monotonic() + REGISTRY_START_TIMEOUT
        while time.monotonic() < deadline:
            if probe_registry(address, timeout=1):
                return
            if proc.poll() is not None:
                paths.registry_pid.unlink(missing_ok=True)
                raise RegistryError(f"docker-registry exited while starting; see {paths.registry_log}: {_tail(paths.registry_log)}")
            time.sleep(0.3)
        stop_process(StopProcess(proc.pid, "docker-registry", "did not answer", str(paths.registry_pid)))
        raise RegistryError(
            f"docker-registry did not answer at http://{address}/v2/ within {REGISTRY_START_TIMEOUT:.0f} s; "
            f"see {paths.registry_log}: {_tail(paths.registry_log)}"
        )


def stop_process(action: StopProcess, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL; only if the pid still belongs to the program we mean."""
    if _alive(action.pid, action.name):
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.kill(action.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _alive(action.pid, action.name):
                time.sleep(0.2)
            if not _alive(action.pid, action.name):
                break
        else:
            raise EngineError(f"{action.name} (pid {action.pid}) does not stop; kill it by hand (`kill -9 {action.pid}`)")
    if action.pidfile:
        Path(action.pidfile).unlink(missing_ok=True)


# === status ================================================================

@dataclass(frozen=True)
class EngineStatus:
    """What the engine looks like now, as one value the tasks print."""

    host: str
    daemon_version: str | None
    api_version: str | None
    #: imagegraph started this dockerd (and ``engine.down`` would stop it).
    daemon_managed: bool
    registry: str
    registry_reachable: bool
    registry_managed: bool
    mirrors: tuple[str, ...]
    emulated_platforms: tuple[str, ...]
    #: Platforms the registry serves for library/python:3.11-slim.
    seeded_platforms: tuple[str, ...]
    #: Every ``docker`` client found, the one on PATH first.
    clients: tuple[DockerClientInfo, ...]
    state_dir: str
    #: ``containerd`` or ``classic`` (None when no engine answers).
    image_store: str | None = None
    #: ``docker buildx version``; None without buildx.
    buildx_version: str | None = None
    #: The builder `invoke build` would use (name, driver, platforms) and why; or why there is none.
    builder: BuilderChoice | None = None
    builder_problem: str = ""

    @property
    def daemon_reachable(self) -> bool:
        return self.daemon_version is not None

    @property
    def mirror_configured(self) -> bool:
        return mirror_configured(self.mirrors, self.registry)

    @property
    def seeded(self) -> bool:
        return bool(self.seeded_platforms)

    @property
    def buildx(self) -> bool:
        """``docker buildx version`` succeeds for the ``docker`` on PATH."""
        return bool(self.clients) and self.clients[0].buildx

    def lines(self) -> tuple[str, ...]:
        def whose(managed: bool) -> str:
            return "started by imagegraph" if managed else "not started by imagegraph"

        daemon = (
            f"dockerd {self.daemon_version} (API {self.api_version}) at {self.host}, {whose(self.daemon_managed)}"
            if self.daemon_reachable else f"no engine answers at {self.host}"
        )
        registry = (
            f"http://{self.registry}/ answers, {whose(self.registry_managed)}"
            if self.registry_reachable else f"nothing answers at http://{self.registry}/"
        )
        clients = ", ".join(
            f"{c.path} {c.version or '?'}{' +buildx' if c.buildx else ''}" for c in self.clients
        ) or "none"
        if self.builder is not None:
            choice = self.builder
            builder = (f"{choice.builder or 'the current builder'}, {choice.driver} driver, {build_mode(choice.multi_platform)}; "
                       f"platforms {', '.join(choice.platforms) or 'not known until it starts'}")
        else:
            builder = self.builder_problem or "none"
        return (
            f"engine:    {daemon}",
            f"store:     {self.image_store + ' image store' if self.image_store else 'unknown (no engine)'}",
            f"buildx:    {self.buildx_version or 'missing'}",
            f"builder:   {builder}",
            f"mirrors:   {', '.join(self.mirrors) or 'none'}",
            f"registry:  {registry}",
            f"emulation: {', '.join(self.emulated_platforms) or 'none'}",
            f"base:      python:{seeding.BASE_TAG} "
            + (f"seeded for {', '.join(self.seeded_platforms)}" if self.seeded else "not seeded"),
            f"clients:   {clients}",
            f"state:     {self.state_dir}",
        )


@dataclass(frozen=True)
class DockerClientInfo:
    """One ``docker`` executable found on this machine."""

    path: str
    version: str | None
    #: ``PATH buildx version`` exits 0.
    buildx: bool


def observe_clients(runner: Runner) -> tuple[DockerClientInfo, ...]:
    found = []
    for path in find_docker_clients():
        version = runner.run(Command.of(path, "--version"), check=False)
        buildx = runner.run(Command.of(path, "buildx", "version"), check=False)
        found.append(DockerClientInfo(
            path,
            parse_docker_version(version.output) if version.returncode == 0 else None,
            buildx.returncode == 0,
        ))
    return tuple(found)


@contextlib.contextmanager
def exclusive(lock_path: Path, narrate: Narrate, holder: str) -> Iterator[None]:
    """Hold an advisory lock on ``lock_path``; say so when someone else holds it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            narrate(f"engine: waiting for {holder} to finish (lock {lock_path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _resolve(state_dir: Path | str | None) -> StatePaths:
    return StatePaths(Path(state_dir) if state_dir is not None else default_state_dir())


def engine_status(
    *,
    registry: str = DEFAULT_REGISTRY,
    state_dir: Path | str | None = None,
    runner: Runner | None = None,
) -> EngineStatus:
    """Observe the engine, registry, emulation, seeded base, clients and builder; changes nothing."""
    paths = _resolve(state_dir)
    runner = runner or Runner()
    daemon = observe_daemon(paths)
    reg = observe_registry(registry, paths)
    facts = observe_builder(runner, image_store=daemon.image_store) if daemon.answers else None
    choice, problem = None, "no engine answers"
    if facts is not None:
        try:
            choice, problem = choose_builder(facts), ""
        except ImagegraphError as err:
            problem = str(err)
    return EngineStatus(
        host=daemon.host,
        daemon_version=daemon.version,
        api_version=daemon.api_version,
        daemon_managed=daemon.answers and daemon.managed,
        registry=registry,
        registry_reachable=reg.answers,
        registry_managed=reg.answers and reg.managed,
        mirrors=daemon.mirrors,
        emulated_platforms=emulated_platforms(observe_emulation(), seeding.native_platform()),
        seeded_platforms=seeding.probe_base_platforms(registry) if reg.answers else (),
        clients=observe_clients(runner),
        state_dir=str(paths.root),
        image_store=daemon.image_store,
        buildx_version=facts.buildx_version if facts else None,
        builder=choice,
        builder_problem=problem,
    )



# === entry points ==========================================================

def engine_up(
    *,
    registry: str = DEFAULT_REGISTRY,
    seed: bool = True,
    platforms: Sequence[str] = DEFAULT_SEED_PLATFORMS,
    state_dir: Path | str | None = None,
    cache_dir: Path | str | None = None,
    image_store: str | None = None,
    runner: Runner | None = None,
    narrate: Narrate = print,
) -> EngineStatus:
    """Make dockerd, the registry at ``registry``, emulation and (``seed``) python:3.11-slim usable.

    Reuses whatever already answers; safe to run again. Returns the status
    afterwards.
    """
    parse_registry_address(registry)
    if image_store is not None and image_store not in IMAGE_STORES:
        raise EngineError(f"--image-store {image_store!r} is not one of {', '.join(IMAGE_STORES)}")
    wanted = tuple(dict.fromkeys(seeding.normalize_platform(p) for p in platforms)) if seed else ()
    paths = _resolve(state_dir)
    runner = runner or Runner()
    # Two `engine.up` at once would both see no daemon and both start one.
    with exclusive(paths.root / "up.lock", narrate, "another `engine.up` with this state dir"):
        machine = observe_machine(runner=runner)
        executor = Executor(runner, paths, machine, narrate)

        step: UpAction
        for step in decide_daemon(observe_daemon(paths), machine, registry, image_store):
            executor.execute(step)

        for step in decide_registry(observe_registry(registry, paths), executor.machine, paths.root):
            executor.execute(step)

        emulation = decide_emulation(observe_emulation(), executor.machine)
        for step in emulation:
            executor.execute(step)
        native = seeding.native_platform()
        emulated = emulated_platforms(observe_emulation(), native)
        if emulated:
            narrate(f"engine: emulating {', '.join(emulated)} with QEMU (native {native})")
        elif not any(isinstance(step, NoEmulation) for step in emulation):
            narrate(f"engine: no foreign platform is emulated; {_install_fix('qemu-user-static and binfmt-support')}")

        _seed(registry, seed, wanted, emulated, native, cache_dir, paths, runner, executor.machine, narrate)
    return engine_status(registry=registry, state_dir=paths.root, runner=runner)


def observe_seed(registry: str, paths: StatePaths, cache: Path, emulated: Sequence[str], native: str,
                 machine: MachineFacts) -> SeedFacts:
    answers = probe_registry(registry)
    return SeedFacts(
        registry=registry,
        registry_reachable=answers,
        mirror_configured=mirror_configured(observe_daemon(paths).mirrors, registry),
        seeded_platforms=seeding.probe_base_platforms(registry) if answers else (),
        pushed_platforms=seeding.probe_pushed_platforms(registry, seeding.SEED_PLATFORMS) if answers else (),
        cached_platforms=seeding.cached_platforms(cache),
        emulated_platforms=tuple(emulated),
        native_platform=native,
        is_root=machine.is_root,
        debootstrap_installed=machine.has("debootstrap"),
    )


def _seed(registry: str, enabled: bool, platforms: Sequence[str], emulated: Sequence[str], native: str,
          cache_dir: Path | str | None, paths: StatePaths, runner: Runner, machine: MachineFacts,
          narrate: Narrate) -> None:
    cache = Path(cache_dir) if cache_dir is not None else seeding.default_cache_dir()

    def decide() -> tuple[seeding.SeedAction, ...]:
        return seeding.decide_seed(observe_seed(registry, paths, cache, emulated, native, machine), platforms, enabled)

    actions = decide()
    if any(isinstance(a, seeding.PushManifestList) for a in actions):
        # Seeds share the rootfs cache and the registry's tags across state
        # dirs; whoever held the lock may have done the work meanwhile.
        with exclusive(cache / ".lock", narrate, "another seed using this cache"):
            actions = decide()
            if any(isinstance(a, seeding.PushManifestList) for a in actions):
                _run_seed(actions, registry, cache, paths, runner, machine, narrate)
                return
    for action in actions:
        narrate(action.describe())


def _run_seed(actions: Sequence[seeding.SeedAction], registry: str, cache: Path, paths: StatePaths, runner: Runner,
              machine: MachineFacts, narrate: Narrate) -> None:
    builder = select_builder(runner, image_store=observe_daemon(paths).image_store)
    narrate(f"engine: seeding with {builder.describe()}; rootfs cache {cache}")
    executor = seeding.SeedExecutor(runner, builder, find_docker_clients()[0], cache, paths.root, narrate,
                                    debootstrap=machine.tool("debootstrap"))
    paths.root.mkdir(parents=True, exist_ok=True)
    for action in actions:
        executor.execute(action)
    target = next(a for a in actions if isinstance(a, seeding.PushManifestList)).platforms
    found = executor.verify(registry, target)
    spent = ", ".join(f"{k} {v:.0f} s" for k, v in executor.timings.items())
    narrate(f"engine: seeded python:{seeding.BASE_TAG} in {registry} for {', '.join(found)} ({spent})")


def engine_down(*, state_dir: Path | str | None = None, narrate: Narrate = print) -> tuple[DownAction, ...]:
    """Stop the registry and dockerd that imagegraph started (pids in the state dir); leave others alone.

    Returns the actions taken.
    """
    paths = _resolve(state_dir)
    actions = decide_down(read_pidfile(paths.registry_pid), paths.registry_config, read_pidfile(paths.dockerd_pid))
    if not actions:
        narrate(f"engine: nothing to stop: imagegraph started no dockerd or registry (state in {paths.root})")
    for action in actions:
        narrate(action.describe())
        if isinstance(action, StopProcess):
            stop_process(action)
        else:
            Path(action.path).unlink(missing_ok=True)
    return actions
