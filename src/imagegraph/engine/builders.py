"""Builders: turn a build request into the exact commands that perform it.

Two real paths, chosen by :func:`detect_builder`:

* :class:`BuildxBuilder` — ``docker buildx build``: one multi-platform build,
  pushed as a manifest list in one step.
* :class:`EngineBuilder` — the engine's own BuildKit through a client that
  still speaks it without buildx (``DOCKER_BUILDKIT=1``, e.g. Debian's 20.10
  client): one build per platform, each pushed, then a manifest list.

Both return :class:`~imagegraph.runner.Command` tuples; nothing runs here.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ToolMissing
from ..runner import Command, Runner

__all__ = ["BuildRequest", "Builder", "BuildxBuilder", "EngineBuilder", "detect_builder", "platform_suffix"]


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


class Builder(Protocol):
    name: str
    #: The docker client the builder drives (also used to push an existing image).
    docker: str

    def describe(self) -> str: ...

    def commands(self, request: BuildRequest) -> tuple[Command, ...]: ...


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

    def describe(self) -> str:
        return f"buildx ({self.docker} buildx build)"

    def commands(self, request: BuildRequest) -> tuple[Command, ...]:
        argv = [self.docker, "buildx", "build", "--platform", ",".join(request.platforms), *_common_flags(request),
                "--tag", request.ref]
        if request.push:
            argv.append("--push")
        elif len(request.platforms) == 1:
            argv.append("--load")
        argv.append(str(request.context))
        return (Command.of(*argv),)


@dataclass(frozen=True)
class EngineBuilder:
    docker: str = "/usr/bin/docker"
    name: str = "engine"

    def describe(self) -> str:
        return f"engine BuildKit ({self.docker} build, DOCKER_BUILDKIT=1)"

    def commands(self, request: BuildRequest) -> tuple[Command, ...]:
        env = {"DOCKER_BUILDKIT": "1"}
        single = len(request.platforms) == 1
        steps: list[Command] = []
        per_platform: list[str] = []
        for platform in request.platforms:
            tag = request.ref if single else f"{request.ref}-{platform_suffix(platform)}"
            per_platform.append(tag)
            steps.append(Command.of(self.docker, "build", "--platform", platform, *_common_flags(request),
                                    "--tag", tag, str(request.context), env=env))
            if request.push:
                steps.append(Command.of(self.docker, "push", tag))
        if request.push and not single:
            insecure = ["--insecure"] if request.insecure_registry else []
            steps.append(Command.of(self.docker, "manifest", "create", *insecure, "--amend", request.ref, *per_platform))
            steps.append(Command.of(self.docker, "manifest", "push", *insecure, "--purge", request.ref))
        return tuple(steps)


def detect_builder(runner: Runner, *, prefer: str | None = None) -> Builder:
    """buildx when any docker client has it, else a client that drives the engine's BuildKit.

    ``prefer`` (or $IMAGEGRAPH_BUILDER) is ``buildx`` or ``engine`` to choose explicitly.
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
                return BuildxBuilder(docker=client)
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
