"""Builders: turn a build request into the exact commands that perform it.

Two real paths, chosen by :func:`detect_builder`:

* :class:`BuildxBuilder` — ``docker buildx build``: one multi-platform build,
  pushed as a manifest list in one step.
* :class:`EngineBuilder` — the engine's own BuildKit through a client that
  still speaks it without buildx (``DOCKER_BUILDKIT=1``, e.g. Debian's 20.10
  client): one build per platform, each pushed, then a manifest list.

Both return :class:`~imagegraph.runner.Command` tuples; nothing runs here.

Registry cache, so a build on an engine with an empty local cache reuses the
layers of earlier builds: buildx exports a separate cache manifest
(``type=registry``, ``mode=max``, also the stages a target skips) to
``<repository>:buildcache``; the engine's BuildKit can only embed an inline
cache in the image itself, so each platform image carries it and is copied to
``<repository>:buildcache-<platform>`` after its push (:meth:`cache_copies`).

A builder also knows its engine's known failures that a repair clears
(:meth:`Builder.repair`): the engine's BuildKit can keep a cache record whose
layer dockerd has lost (after an unclean stop, or an image removed while the
record was not holding it), and then every build that reuses that step fails
with ``layer does not exist`` until the build cache is pruned.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import EngineError, ToolMissing
from ..runner import Command, Runner
from ..tags import CACHE_TAG

__all__ = [
    "BuildRequest",
    "Builder",
    "BuildxBuilder",
    "EngineBuilder",
    "Repair",
    "StepCount",
    "buildkitd_config",
    "buildx_driver",
    "check_emulation",
    "count_steps",
    "detect_builder",
    "lost_layer",
    "platform_suffix",
]

#: How dockerd's BuildKit says that a cached step's layer is gone from the engine's layer store.
#: ("failed to get layer sha256:…: layer does not exist", or the bare "ERROR: layer does not exist").
LOST_LAYER = re.compile(r"(?:^|: )layer does not exist$")

#: The buildx builder imagegraph creates when the current one (the docker driver) cannot export a registry cache.
BUILDX_BUILDER = "imagegraph"


@dataclass(frozen=True)
class BuildRequest:
    image: str
    dockerfile: Path
    context: Path
    #: The fingerprint reference the result is tagged (and pushed) as.
    ref: str
    platforms: tuple[str, ...]
    target: str | None = None
    build_args: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    push: bool = True
    no_cache: bool = False
    #: The registry speaks plain HTTP (a local registry).
    insecure_registry: bool = False
    #: The image's repository (registry/namespace/name) whose cache tags builds read, and pushed builds write.
    cache_repository: str | None = None

    def platform_tag(self, platform: str) -> str:
        """Where one platform's image goes: the reference itself for a single-platform build, else ref-<platform>."""
        return self.ref if len(self.platforms) == 1 else f"{self.ref}-{platform_suffix(platform)}"


class Builder(Protocol):
    name: str
    #: The docker client the builder drives (also used to push an existing image).
    docker: str

    def describe(self) -> str: ...

    def commands(self, request: BuildRequest) -> tuple[Command, ...]: ...

    def cache_copies(self, request: BuildRequest) -> tuple[tuple[str, str], ...]:
        """(tag, cache tag) pairs to copy inside the registry after a pushed build; () when the build wrote its cache itself."""
        ...

    def repair(self, command: Command, reason: str) -> Repair | None:
        """What clears a known engine failure of ``command`` that ended with ``reason``; None when a retry would fail again."""
        ...


@dataclass(frozen=True)
class Repair:
    """A command that clears a known engine failure, and the line that tells the user what happened."""

    command: Command
    explanation: str


def lost_layer(reason: str) -> bool:
    """Whether a build failed because the engine's build cache names a layer that dockerd no longer has."""
    return LOST_LAYER.search(reason.strip()) is not None


def _prune_lost_layers(docker: str, command: Command, reason: str) -> Repair | None:
    if "build" not in command.argv[1:3] or not lost_layer(reason):
        return None
    return Repair(
        Command.of(docker, "builder", "prune", "--all", "--force",
                   hint="the engine's build cache could not be pruned; run `docker builder prune --all --force` by hand"),
        "the engine's build cache names a layer dockerd no longer has (a known dockerd fault after an unclean stop);"
        " pruning the build cache (images stay, the registry cache still applies) and building again",
    )


@dataclass(frozen=True)
class StepCount:
    """Dockerfile steps a build ran, and how many of them came from a cache (local or registry)."""

    cached: int = 0
    total: int = 0

    def __add__(self, other: StepCount) -> StepCount:
        return StepCount(self.cached + other.cached, self.total + other.total)


# "#7 [2/4] RUN ...", "#9 [runtime 3/5] COPY ...", and buildx's "#9 [linux/arm64 runtime 3/5] COPY ..."
_STEP = re.compile(r"^#(\d+) \[(?:[^\]]* )?\d+/\d+\] (\w+)")
_CACHED = re.compile(r"^#(\d+) CACHED\s*$")


def count_steps(output: str) -> StepCount:
    """Count the Dockerfile steps in BuildKit's plain progress output, and those it answered from cache.

    FROM lines are not steps (they resolve an image, they never run).
    """
    steps: set[str] = set()
    cached: set[str] = set()
    for line in output.splitlines():
        match = _STEP.match(line)
        if match and match.group(2).upper() != "FROM":
            steps.add(match.group(1))
            continue
        match = _CACHED.match(line)
        if match:
            cached.add(match.group(1))
    return StepCount(len(cached & steps), len(steps))


def platform_suffix(platform: str) -> str:
    """``linux/arm64/v8`` -> ``arm64-v8``: the tag suffix of a single-platform image."""
    return "-".join(platform.split("/")[1:])


def _common_flags(request: BuildRequest) -> list[str]:
    flags = ["--file", str(request.dockerfile)]
    if request.target:
        flags += ["--target", request.target]
    for key, value in request.build_args:
        flags += ["--build-arg", f"{key}={value}"]
    for key, value in request.labels:
        flags += ["--label", f"{key}={value}"]
    if request.no_cache:
        flags.append("--no-cache")
    return flags


@dataclass(frozen=True)
class BuildxBuilder:
    docker: str = "docker"
    name: str = "buildx"
    #: The buildx builder to use (--builder); None for the current one.
    builder: str | None = None

    def describe(self) -> str:
        which = f", builder {self.builder}" if self.builder else ""
        return f"buildx ({self.docker} buildx build{which}; registry cache mode=max)"

    def commands(self, request: BuildRequest) -> tuple[Command, ...]:
        argv = [self.docker, "buildx", "build", "--progress", "plain"]
        if self.builder:
            argv += ["--builder", self.builder]
        argv += ["--platform", ",".join(request.platforms), *_common_flags(request), "--tag", request.ref]
        if request.cache_repository:
            cache = f"type=registry,ref={request.cache_repository}:{CACHE_TAG}"
            if not request.no_cache:
                argv += ["--cache-from", cache]
            if request.push:
                # a failed cache export must not fail a build that pushed its image
                argv += ["--cache-to", f"{cache},mode=max,ignore-error=true"]
        if request.push:
            argv.append("--push")
        elif len(request.platforms) == 1:
            argv.append("--load")
        argv.append(str(request.context))
        return (Command.of(*argv),)

    def cache_copies(self, request: BuildRequest) -> tuple[tuple[str, str], ...]:
        return ()

    def repair(self, command: Command, reason: str) -> Repair | None:
        # a buildx builder keeps its own layers; the `docker` driver is the engine's BuildKit, with its faults
        return _prune_lost_layers(self.docker, command, reason)


@dataclass(frozen=True)
class EngineBuilder:
    docker: str = "/usr/bin/docker"
    name: str = "engine"

    def describe(self) -> str:
        return f"engine BuildKit ({self.docker} build, DOCKER_BUILDKIT=1)"

    def commands(self, request: BuildRequest) -> tuple[Command, ...]:
        env = {"DOCKER_BUILDKIT": "1"}
        steps: list[Command] = []
        per_platform: list[str] = []
        for platform in request.platforms:
            tag = request.platform_tag(platform)
            per_platform.append(tag)
            cache: list[str] = []
            if request.cache_repository:
                # inline cache: the image carries its cache metadata; the last pushed build of this platform is the source
                cache = ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
                if not request.no_cache:
                    cache += ["--cache-from", f"{request.cache_repository}:{CACHE_TAG}-{platform_suffix(platform)}"]
            steps.append(Command.of(self.docker, "build", "--progress", "plain", "--platform", platform, *_common_flags(request),
                                    *cache, "--tag", tag, str(request.context), env=env))
            if request.push:
                steps.append(Command.of(self.docker, "push", tag))
        if request.push and len(request.platforms) > 1:
            insecure = ["--insecure"] if request.insecure_registry else []
            steps.append(Command.of(self.docker, "manifest", "create", *insecure, "--amend", request.ref, *per_platform))
            steps.append(Command.of(self.docker, "manifest", "push", *insecure, "--purge", request.ref))
        return tuple(steps)

    def cache_copies(self, request: BuildRequest) -> tuple[tuple[str, str], ...]:
        if not (request.push and request.cache_repository):
            return ()
        return tuple((request.platform_tag(p), f"{CACHE_TAG}-{platform_suffix(p)}") for p in request.platforms)

    def repair(self, command: Command, reason: str) -> Repair | None:
        return _prune_lost_layers(self.docker, command, reason)


def detect_builder(runner: Runner, *, prefer: str | None = None, registry: str | None = None, state_dir: Path | None = None) -> Builder:
    """buildx when any docker client has it, else a client that drives the engine's BuildKit.

    ``prefer`` (or $IMAGEGRAPH_BUILDER) is ``buildx`` or ``engine`` to choose explicitly.
    ``registry`` and ``state_dir`` matter only when buildx's current builder is
    the docker driver, which can export neither a multi-platform image nor a
    registry cache: then a docker-container builder named ``imagegraph`` is
    used, created on first use (host network, plain HTTP for a loopback registry).
    """
    prefer = prefer or os.environ.get("IMAGEGRAPH_BUILDER") or None
    if prefer not in (None, "buildx", "engine"):
        raise ToolMissing(f"unknown builder {prefer!r}; use IMAGEGRAPH_BUILDER=buildx or IMAGEGRAPH_BUILDER=engine")
    clients = _docker_clients()
    if not clients:
        raise ToolMissing("no docker client found; run `invoke engine.up` (installs Debian's docker.io) or install Docker")
    if prefer in (None, "buildx"):
        for client in clients:
            if runner.run(Command.of(client, "buildx", "version"), check=False).returncode == 0:
                return _buildx(runner, client, registry, state_dir)
        if prefer == "buildx":
            raise ToolMissing("buildx is not installed for any docker client; install docker-buildx-plugin or use IMAGEGRAPH_BUILDER=engine")
    for client in clients:
        output = runner.run(Command.of(client, "version", "--format", "{{.Client.Version}}"), check=False).output
        version = output.strip().splitlines()[0] if output.strip() else ""
        # Clients from 23.0 on refuse DOCKER_BUILDKIT=1 without buildx; older ones speak to the engine's BuildKit.
        if version and _major(version) < 23:
            return EngineBuilder(docker=client)
    raise ToolMissing(
        "no BuildKit builder: install the buildx plugin (docker-buildx-plugin), "
        "or a docker client older than 23 (Debian's docker.io: `invoke engine.up` installs it)"
    )


def check_emulation(wanted: Sequence[str], native: str, emulated: Sequence[str]) -> None:
    """One line naming the platforms the engine can neither run natively nor emulate, and the fix."""
    runs = {native, *_COMPATIBLE.get(native, ()), *emulated}
    missing = [p for p in wanted if p not in runs and _variantless(p) not in runs]
    if missing:
        can = ", ".join([native, *emulated])
        raise EngineError(
            f"cannot build for {', '.join(missing)}: this engine runs {native} and emulates only "
            f"{', '.join(emulated) or 'nothing'}; register QEMU (`invoke engine.up`, as root) or build for what it can ({can}) with --platform"
        )


#: What a host runs without emulation besides its own platform (as BuildKit reports it).
_COMPATIBLE = {"linux/amd64": ("linux/386",)}


def _variantless(platform: str) -> str:
    return "/".join(platform.split("/")[:2])


def buildx_driver(inspect_output: str) -> str | None:
    """The ``Driver:`` of `docker buildx inspect` output."""
    match = re.search(r"^Driver:\s*(\S+)", inspect_output, re.MULTILINE)
    return match.group(1) if match else None


def buildkitd_config(registry: str | None) -> str:
    """buildkitd.toml for imagegraph's builder: plain HTTP for a loopback registry (as dockerd assumes for 127.0.0.0/8)."""
    if registry and re.match(r"^(localhost|127\.\d+\.\d+\.\d+)(:\d+)?$", registry):
        return f'[registry."{registry}"]\n  http = true\n  insecure = true\n'
    return ""


def _buildx(runner: Runner, client: str, registry: str | None, state_dir: Path | None) -> BuildxBuilder:
    if buildx_driver(runner.run(Command.of(client, "buildx", "inspect"), check=False).output) != "docker":
        return BuildxBuilder(docker=client)
    if runner.run(Command.of(client, "buildx", "inspect", BUILDX_BUILDER), check=False).returncode != 0:
        argv = [client, "buildx", "create", "--name", BUILDX_BUILDER, "--driver", "docker-container", "--driver-opt", "network=host"]
        config = buildkitd_config(registry)
        if config and state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            (state_dir / "buildkitd.toml").write_text(config)
            argv += ["--buildkitd-config", str(state_dir / "buildkitd.toml")]
        hint = "buildx could not create a docker-container builder; create one (docker buildx create --use) or use IMAGEGRAPH_BUILDER=engine"
        runner.run(Command.of(*argv, hint=hint))
    return BuildxBuilder(docker=client, builder=BUILDX_BUILDER)


def _docker_clients() -> list[str]:
    found: list[str] = []
    for candidate in (shutil.which("docker"), "/usr/bin/docker", "/usr/local/bin/docker"):
        if candidate and os.access(candidate, os.X_OK):
            real = os.path.realpath(candidate)
            if real not in (os.path.realpath(f) for f in found):
                found.append(candidate)
    return found


def _major(version: str) -> int:
    try:
        return int(version.split(".", 1)[0])
    except ValueError:
        return 0
