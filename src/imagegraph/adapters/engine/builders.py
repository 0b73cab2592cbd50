"""Builders: the exact commands that build a request on a buildx builder, and the repairs for its engine's known failures.

Every build goes through ``docker buildx build`` (the engine users run:
Docker 23 and later refuse to build with BuildKit without buildx). Which
builder, and in which mode, is :mod:`imagegraph.adapters.engine.builder_choice`.
Where the builder can export a multi-platform image (any container-based
driver, or the docker driver on the containerd image store), each image is
one build pushed as an index. The docker driver on the classic image store
cannot: each platform is built and pushed on its own under its platform tag
(:func:`imagegraph.core.join.part_tag`), and the executor joins them into
the index as `invoke join` does (:meth:`Builder.joins`). Where each build's
registry cache lives is the request's (:mod:`imagegraph.core.cache`); a
builder only renders it, and copies the per-platform cache tags after a push
(:meth:`BuildxBuilder.cache_copies`).

Builders return :class:`~imagegraph.adapters.runner.Command` tuples; nothing runs
here.

A builder also knows its engine's known failures that a repair clears
(:meth:`Builder.repair`): the engine's BuildKit can keep a cache record whose
layer dockerd has lost (after an unclean stop), and then every build that
reuses that step fails with ``layer does not exist`` until the build cache is
pruned. A registry's passing errors are no engine's: the executor tries
those again (:class:`imagegraph.adapters.failures.BuildRetries`).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ...core.cache import BuilderKind
from ...core.config import DEFAULT_COMPRESSION
from ...core.errors import ImagegraphError
from ...core.request import BuildRequest, compression_refused
from ..runner import Command

__all__ = ["Builder", "BuildxBuilder", "Repair", "build_mode", "lost_layer", "push_output"]

#: How dockerd's BuildKit says that a cached step's layer is gone from the engine's layer store.
#: ("failed to get layer sha256:…: layer does not exist", or the bare "ERROR: layer does not exist").
LOST_LAYER = re.compile(r"(?:^|: )layer does not exist$")


class Builder(Protocol):
    name: str
    #: The docker client the builder drives (also used to push an existing image).
    docker: str

    def describe(self) -> str: ...

    def commands(self, request: BuildRequest) -> tuple[Command, ...]: ...

    def bake_command(self, bake_file: Path, targets: Sequence[str], metadata_file: Path) -> Command | None:
        """The command that builds ``targets`` of a bake file in one session, its progress as BuildKit's JSON and what each
        target exported in ``metadata_file`` (:mod:`imagegraph.core.bake_results`); None when this builder builds one image at a time."""
        ...

    def cache_copies(self, request: BuildRequest) -> tuple[tuple[str, str], ...]:
        """(tag, cache tag) pairs to copy inside the registry after a pushed build; () when the build wrote its cache itself."""
        ...

    def joins(self, request: BuildRequest) -> bool:
        """Whether :meth:`commands` push each platform under its platform tag and leave the index to the executor to join."""
        ...

    def repair(self, command: Command, reason: str) -> Repair | None:
        """What clears a known engine failure of ``command`` that ended with ``reason``; None when a retry would fail again."""
        ...


@dataclass(frozen=True)
class Repair:
    """What clears a known failure before the command runs again (None: nothing, a retry is enough), and the line that says so."""

    command: Command | None
    explanation: str


def lost_layer(reason: str) -> bool:
    """Whether a build failed because the engine's build cache names a layer that dockerd no longer has."""
    return LOST_LAYER.search(reason.strip()) is not None


def _prune_lost_layers(docker: str, command: Command, reason: str) -> Repair | None:
    if not command.purpose.startswith("build") or not lost_layer(reason):
        return None
    return Repair(
        Command.of(docker, "builder", "prune", "--all", "--force", purpose="prune",
                   hint="the engine's build cache could not be pruned; run `docker builder prune --all --force` by hand"),
        "the engine's build cache names a layer dockerd no longer has (a known dockerd fault after an unclean stop);"
        " pruning the build cache (images stay, the registry cache still applies) and building again",
    )


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
    if not request.provenance:
        flags.append("--provenance=false")
    return flags


def _cache_flags(request: BuildRequest, platforms: tuple[str, ...]) -> list[str]:
    """The request's cache entries for the build of ``platforms``, as flags; a request made for another kind of builder is refused."""
    if not request.cache:
        return []
    entry = request.cache_of(platforms)
    if entry is None:
        raise ImagegraphError(f"the build request of {request.image} holds no registry cache for {', '.join(platforms)}: it was made "
                              f"for another kind of builder; make the plan afresh")
    return [*(flag for value in entry.cache_from for flag in ("--cache-from", value)),
            *(flag for value in request.cache_exports(entry) for flag in ("--cache-to", value))]


def push_output(request: BuildRequest) -> list[str]:
    """How a build pushes its image: ``--push``, or the registry exporter with the request's compression options."""
    options = request.exporter_options
    return ["--output", ",".join(("type=registry", *options))] if options else ["--push"]


def build_mode(multi_platform: bool) -> str:
    """How a builder builds several platforms, in words (for `invoke build` and `engine.status`)."""
    return ("one build for all platforms, registry cache mode=max" if multi_platform
            else "a build per platform, joined into the index by imagegraph, inline cache")


@dataclass(frozen=True)
class BuildxBuilder:
    """``docker buildx build`` on one buildx builder, in one of two modes the builder's driver allows.

    ``multi_platform``: one build for every platform, pushed as an index,
    with a registry cache (``type=registry,mode=max``) beside the image.
    Otherwise (the docker driver on the classic image store, which can
    neither export a multi-platform image nor a registry cache): one build
    and push per platform under its platform tag, which the executor joins
    into the index (:meth:`joins`), each carrying an inline cache that
    :meth:`cache_copies` points the per-platform cache tags at.
    """

    docker: str = "docker"
    #: The buildx builder to use (``--builder``); None for the current one.
    builder: str | None = None
    multi_platform: bool = True
    #: What `describe` says about the builder, e.g. ``default (docker driver, containerd image store)``.
    summary: str = ""
    name: str = "buildx"

    @property
    def kind(self) -> BuilderKind:
        """Which kind of builder this is, for the build requests it is given (:func:`imagegraph.core.cache.cache_entries`)."""
        return BuilderKind.INDEX if self.multi_platform else BuilderKind.PER_PLATFORM

    def describe(self) -> str:
        return f"buildx {self.summary or self.builder or 'the current builder'}: {build_mode(self.multi_platform)}"

    def _base(self) -> list[str]:
        argv = [self.docker, "buildx", "build", "--progress", "plain"]
        if self.builder:
            argv += ["--builder", self.builder]
        return argv

    def commands(self, request: BuildRequest) -> tuple[Command, ...]:
        if self.multi_platform:
            return (self._multi(request),)
        return self._per_platform(request)

    def bake_command(self, bake_file: Path, targets: Sequence[str], metadata_file: Path) -> Command | None:
        # bake's targets push a multi-platform index and a registry cache: what the classic store's docker driver cannot
        if not self.multi_platform:
            return None
        # rawjson: each target's solve reports its own vertices under its name, which says whose step failed
        return Command.of(self.docker, "buildx", "bake", "--progress", "rawjson", *self._builder_flag(), "--metadata-file",
                          str(metadata_file), "--file", str(bake_file), *targets, purpose="build")

    def _multi(self, request: BuildRequest) -> Command:
        argv = [*self._base(), "--platform", ",".join(request.platforms), *_common_flags(request), "--tag", request.ref,
                *_cache_flags(request, request.platforms)]
        if request.push:
            argv += push_output(request)
        elif len(request.platforms) == 1:
            argv.append("--load")
        argv.append(str(request.context))
        return Command.of(*argv, purpose=f"build {','.join(request.platforms)}")

    def _per_platform(self, request: BuildRequest) -> tuple[Command, ...]:
        if request.push and (request.compression not in (None, DEFAULT_COMPRESSION) or request.force_compression):
            # the classic store's exporter ignores compression options and dockerd pushes gzip: refused, not silently gzip
            raise ImagegraphError(compression_refused(request.image, request.compression or DEFAULT_COMPRESSION))
        steps: list[Command] = []
        for platform in request.platforms:
            argv = [*self._base(), "--platform", platform, *_common_flags(request), "--tag", request.platform_tag(platform),
                    *_cache_flags(request, (platform,))]
            argv += ["--push" if request.push else "--load", str(request.context)]
            steps.append(Command.of(*argv, purpose=f"build {platform}"))
        return tuple(steps)

    def joins(self, request: BuildRequest) -> bool:
        # the classic store's exporter cannot push an index: its parts are pushed apart, and only an image of several platforms
        # has parts (a run of one platform, --only-platform, pushes its part and leaves the join to `invoke join`)
        return not self.multi_platform and request.push and len(request.platforms) > 1

    def _builder_flag(self) -> list[str]:
        return ["--builder", self.builder] if self.builder else []

    def cache_copies(self, request: BuildRequest) -> tuple[tuple[str, str], ...]:
        if not request.push:
            return ()
        return tuple((request.platform_tag(entry.platforms[0]), entry.copy_tag) for entry in request.cache
                     if entry.copy_tag is not None and len(entry.platforms) == 1)

    def repair(self, command: Command, reason: str) -> Repair | None:
        # a container-based builder keeps its own layers; the docker driver is the engine's BuildKit, with its faults
        return _prune_lost_layers(self.docker, command, reason)
