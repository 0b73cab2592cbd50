"""Performing the planned actions: installing packages, starting and stopping dockerd and docker-registry, mounting binfmt_misc.

:class:`EngineSteps` runs what the ``decide_*`` functions of :mod:`.decide`
planned, saying each action; it decides nothing beyond the last checks
right before it acts (a daemon that appeared meanwhile, a server that does
not answer in time).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import docker
import requests

from imagegraph.adapters.runner import Command, Runner
from imagegraph.core.errors import EngineError, RegistryError

from .decide import (
    EnableBinfmts,
    InstallPackages,
    MountBinfmt,
    NoEmulation,
    RemovePidfile,
    ReuseDaemon,
    ReuseRegistry,
    StartDockerd,
    StartRegistry,
    StopProcess,
    UpAction,
    WaitForDaemon,
)
from .facts import BINFMT_DIR, MachineFacts
from .install import EnginePackages
from .observe import connect, observe_machine, probe_registry
from .procs import STOP_TIMEOUT, alive, read_processes, spawn_detached, terminate
from .state import StatePaths, daemon_config, registry_config

__all__ = ["EngineSteps", "Say", "stop_process", "unrestored_images"]

Say = Callable[[str], None]

DAEMON_START_TIMEOUT = 30.0
REGISTRY_START_TIMEOUT = 15.0
#: Pruning a build cache of many GB takes a while.
PRUNE_TIMEOUT = 600.0
#: What dockerd logs at start for each image whose layers it no longer has.
UNRESTORED_IMAGE = re.compile(r"layer does not exist, not restoring image (sha256:[0-9a-f]{64})")


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


class EngineSteps:
    """Takes the steps of `engine.up` that the ``decide_*`` functions planned (:meth:`perform`), saying each.

    Steps, not an executor: the build's executor (:class:`imagegraph.execute.BuildExecutor`) runs builds;
    this installs and starts what builds need.
    """

    def __init__(self, runner: Runner, paths: StatePaths, machine: MachineFacts, say: Say,
                 apt_dir: Path = Path("/etc/apt")) -> None:
        self.runner = runner
        self.paths = paths
        self.machine = machine
        self.say = say
        self.apt_dir = apt_dir
        self._binfmt_refused = False

    def perform(self, action: UpAction) -> None:
        self.say(action.describe())
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
                    self.say(NoEmulation("binfmt_misc cannot be mounted here (a container?); run `invoke engine.up` on the host").describe())
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
        self.paths.root.mkdir(parents=True, exist_ok=True)
        return spawn_detached(argv, log, pidfile)

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
            self.say(f"engine: warning: dockerd dropped {lost} image(s) whose layers are gone and its build cache could not be"
                         f" pruned ({err}); run `docker builder prune --all --force` before building")
            return False
        self.say(f"engine: dockerd dropped {lost} image(s) whose layers are gone (an unclean stop); pruned the build cache"
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
            if (proc is not None and proc.poll() is not None) or not alive(pid, "dockerd"):
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
    """Stop the process ``action`` names (:func:`.procs.terminate`), then remove its pid file."""
    terminate(action.pid, action.name, timeout)
    if action.pidfile:
        Path(action.pidfile).unlink(missing_ok=True)
