"""Pure decisions: observed facts (:mod:`.facts`) in, a tuple of actions out.

Each ``decide_*`` function turns facts into actions (frozen dataclasses,
each with a one-line ``describe()`` that is said); :mod:`.steps`
performs them. Nothing here reads the machine or talks to the engine or the
registry, so tests cover every branch with facts built in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagegraph.core.errors import EngineError, RegistryError, ToolMissing
from imagegraph.core.values import is_loopback

from .facts import (
    BINFMT_DIR,
    CONTAINERD_CONFIG,
    DEFAULT_HOST,
    DaemonFacts,
    EmulationFacts,
    MachineFacts,
    PidFile,
    Proc,
    RegistryFacts,
    parse_registry_address,
)
from .install import EnginePackages, engine_too_old

__all__ = [
    "DaemonAction",
    "DownAction",
    "EmulationAction",
    "EnableBinfmts",
    "InstallPackages",
    "MountBinfmt",
    "NoEmulation",
    "RegistryAction",
    "RemovePidfile",
    "ReuseDaemon",
    "ReuseRegistry",
    "StartDockerd",
    "StartRegistry",
    "StopProcess",
    "UpAction",
    "WaitForDaemon",
    "decide_daemon",
    "decide_down",
    "decide_emulation",
    "decide_registry",
    "install_fix",
]


def install_fix(tools: str) -> str:
    """The fix to name when ``tools`` are missing."""
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


# === registry ==============================================================

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
            raise ToolMissing(f"docker-registry is not installed; {install_fix('the docker-registry package')}")
        actions.append(InstallPackages(EnginePackages(engine=())))
    ours = facts.managed_pidfile
    if facts.managed_running and ours is not None and ours.pid is not None:
        actions.append(StopProcess(ours.pid, "docker-registry", "ours, but it does not answer", ours.path))
    elif ours is not None:
        actions.append(RemovePidfile(ours.path, "the registry it names is gone"))
    actions.append(StartRegistry(facts.address))
    return tuple(actions)


# === emulation =============================================================

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
        return (MountBinfmt(), NoEmulation(f"update-binfmts is missing; {install_fix('qemu-user-static and binfmt-support')}"))
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
