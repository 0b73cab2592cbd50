"""Make a usable container engine: dockerd, a local registry, emulation, a seeded base.

Every stage works the same way: probe functions (:mod:`.observe`) observe
the machine into frozen ``*Facts`` values (:mod:`.facts`), a pure
``decide_*`` function (:mod:`.decide`) turns facts into a tuple of actions
(frozen dataclasses, each with a one-line ``describe()`` that is said),
and :class:`.steps.EngineSteps` performs them. Tests cover the decisions with
facts built in memory. This module composes the stages into the three entry
points: :func:`engine_up`, :func:`engine_status` and :func:`engine_down`.

What imagegraph starts (dockerd, docker-registry) records its pid in the
state directory (:mod:`.state`); :func:`engine_down` stops only those, and a
daemon or registry that someone else runs is reused and left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagegraph.adapters.engine.builder_choice import choose_builder, docker_clients, observe_builder, select_builder
from imagegraph.adapters.runlock import FileLock
from imagegraph.adapters.runner import Runner
from imagegraph.core.defaults import DEFAULT_REGISTRY
from imagegraph.core.errors import EngineError, ImagegraphError
from imagegraph.core.values import Platform

from . import seed as seeding
from . import seed_build
from .decide import DownAction, NoEmulation, StopProcess, UpAction, decide_daemon, decide_down, decide_emulation, decide_registry, install_fix
from .facts import MachineFacts, emulated_platforms, parse_registry_address
from .observe import observe_clients, observe_daemon, observe_emulation, observe_machine, observe_registry, observe_seed
from .procs import read_pidfile
from .state import StatePaths, default_state_dir
from .status import EngineStatus
from .steps import EngineSteps, Say, stop_process

__all__ = [
    "IMAGE_STORES",
    "engine_down",
    "engine_status",
    "engine_up",
]

#: The image stores a dockerd of ours can use: containerd (multi-platform images, registry cache) or the classic one.
IMAGE_STORES = ("containerd", "classic")


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
        seeded_platforms=seed_build.probe_base_platforms(registry) if reg.answers else (),
        clients=observe_clients(runner),
        state_dir=str(paths.root),
        image_store=daemon.image_store,
        buildx_version=facts.buildx_version if facts else None,
        builder=choice,
        builder_problem=problem,
    )


def _waited_for(path: Path, holder: str, say: Say) -> FileLock:
    """The library's one lock helper, saying in provisioning's words whom it waits for."""
    return FileLock(path, say=say, waiting=lambda pid: f"engine: waiting for {holder} ({pid}) to finish (lock {path})")


# === entry points ==========================================================

def engine_up(
    *,
    registry: str = DEFAULT_REGISTRY,
    seed: bool = True,
    platforms: Sequence[Platform | str] | None = None,
    state_dir: Path | str | None = None,
    cache_dir: Path | str | None = None,
    image_store: str | None = None,
    runner: Runner | None = None,
    say: Say = print,
) -> EngineStatus:
    """Make dockerd, the registry at ``registry``, emulation and (``seed``) python:3.11-slim usable.

    Reuses whatever already answers; safe to run again. Returns the status
    afterwards.
    """
    parse_registry_address(registry)
    if image_store is not None and image_store not in IMAGE_STORES:
        raise EngineError(f"--image-store {image_store!r} is not one of {', '.join(IMAGE_STORES)}")
    # None seeds for this machine's own platform; the task passes what it parsed from --platforms, the environment or images.yaml.
    asked = platforms if platforms is not None else (seeding.native_platform(),)
    wanted = tuple(dict.fromkeys(seeding.seedable(p) for p in asked)) if seed else ()
    paths = _resolve(state_dir)
    runner = runner or Runner()
    # Two `engine.up` at once would both see no daemon and both start one.
    with _waited_for(paths.root / "up.lock", "another `engine.up` with this state dir", say):
        machine = observe_machine(runner=runner)
        steps = EngineSteps(runner, paths, machine, say)

        step: UpAction
        for step in decide_daemon(observe_daemon(paths), machine, registry, image_store):
            steps.perform(step)

        for step in decide_registry(observe_registry(registry, paths), steps.machine, paths.root):
            steps.perform(step)

        emulation = decide_emulation(observe_emulation(), steps.machine)
        for step in emulation:
            steps.perform(step)
        native = seeding.native_platform()
        emulated = emulated_platforms(observe_emulation(), native)
        if emulated:
            say(f"engine: emulating {', '.join(emulated)} with QEMU (native {native})")
        elif not any(isinstance(step, NoEmulation) for step in emulation):
            say(f"engine: no foreign platform is emulated; {install_fix('qemu-user-static and binfmt-support')}")

        _seed(registry, seed, wanted, emulated, native, cache_dir, paths, runner, steps.machine, say)
    return engine_status(registry=registry, state_dir=paths.root, runner=runner)


def _seed(registry: str, enabled: bool, platforms: Sequence[str], emulated: Sequence[str], native: str,
          cache_dir: Path | str | None, paths: StatePaths, runner: Runner, machine: MachineFacts,
          say: Say) -> None:
    cache = Path(cache_dir) if cache_dir is not None else seeding.default_cache_dir()

    def decide() -> tuple[seeding.SeedAction, ...]:
        return seeding.decide_seed(observe_seed(registry, paths, cache, emulated, native, machine), platforms, enabled)

    actions = decide()
    if any(isinstance(a, seeding.PushManifestList) for a in actions):
        # Seeds share the rootfs cache and the registry's tags across state
        # dirs; whoever held the lock may have done the work meanwhile.
        with _waited_for(cache / ".lock", "another seed using this cache", say):
            actions = decide()
            if any(isinstance(a, seeding.PushManifestList) for a in actions):
                _run_seed(actions, registry, cache, paths, runner, machine, say)
                return
    for action in actions:
        say(action.describe())


def _run_seed(actions: Sequence[seeding.SeedAction], registry: str, cache: Path, paths: StatePaths, runner: Runner,
              machine: MachineFacts, say: Say) -> None:
    builder = select_builder(runner, image_store=observe_daemon(paths).image_store)
    say(f"engine: seeding with {builder.describe()}; rootfs cache {cache}")
    steps = seed_build.SeedSteps(runner, builder, docker_clients()[0], cache, paths.root, say,
                                    debootstrap=machine.tool("debootstrap"))
    paths.root.mkdir(parents=True, exist_ok=True)
    for action in actions:
        steps.perform(action)
    target = next(a for a in actions if isinstance(a, seeding.PushManifestList)).platforms
    found = steps.verify(registry, target)
    spent = ", ".join(f"{k} {v:.0f} s" for k, v in steps.timings.items())
    say(f"engine: seeded python:{seeding.BASE_TAG} in {registry} for {', '.join(found)} ({spent})")


def engine_down(*, state_dir: Path | str | None = None, say: Say = print) -> tuple[DownAction, ...]:
    """Stop the registry and dockerd that imagegraph started (pids in the state dir); leave others alone.

    Returns the actions taken.
    """
    paths = _resolve(state_dir)
    actions = decide_down(read_pidfile(paths.registry_pid), paths.registry_config, read_pidfile(paths.dockerd_pid))
    if not actions:
        say(f"engine: nothing to stop: imagegraph started no dockerd or registry (state in {paths.root})")
    for action in actions:
        say(action.describe())
        if isinstance(action, StopProcess):
            stop_process(action)
        else:
            Path(action.path).unlink(missing_ok=True)
    return actions
