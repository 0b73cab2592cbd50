"""Which buildx builder builds: observed (:func:`observe_builder`), then chosen from those facts alone (:func:`choose_builder`).

A builder the user names (``--builder``, ``$BUILDX_BUILDER``, images.yaml's
``builder:``) is used as it is (docker-container, kubernetes, remote, a
hosted BuildKit); otherwise the current builder. Whether it builds every
platform in one build with a registry cache, or one platform at a time (the
docker driver on the classic image store), is decided here and carried out
by :class:`~imagegraph.adapters.engine.builders.BuildxBuilder`.

No builder is ever created here: a docker-container builder needs the image
``moby/buildkit``, which an offline machine cannot pull, so one is made only
when asked, by provisioning (`invoke engine.builder`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...core.cache import BuilderKind
from ...core.errors import EngineError, ToolMissing
from ...core.values import parse_builder_name
from ..runner import Command, CommandResult, Runner
from .builders import BuildxBuilder
from .images import image_store_of

__all__ = [
    "BuilderChoice",
    "BuilderFacts",
    "BuilderInfo",
    "check_platforms",
    "choose_builder",
    "docker_clients",
    "named_builder",
    "observe_builder",
    "parse_inspect",
    "select_builder",
]


@dataclass(frozen=True)
class BuilderInfo:
    """What `docker buildx inspect [NAME]` says of a builder."""

    name: str
    driver: str
    platforms: tuple[str, ...] = ()
    #: e.g. ``running``, ``inactive`` (a container builder not started yet).
    status: str = ""


def parse_inspect(output: str) -> BuilderInfo | None:
    """The builder's name, driver, status and platforms (``*`` marks the ones asked for at creation); None when unreadable.

    A builder of several nodes (a BuildKit farm: `docker buildx create --append`) lists each node with its own platforms;
    the builder builds the union, each platform on a node that runs it (buildx sends each there), so all of them count.
    """
    fields: dict[str, str] = {}
    listed: list[str] = []
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key == "Platforms":
            listed += value.split(",")
        if sep and key in ("Name", "Driver", "Status") and key not in fields:
            fields[key] = value.strip()
    if "Name" not in fields or "Driver" not in fields:
        return None
    platforms = tuple(dict.fromkeys(p.strip().rstrip("*") for p in listed if p.strip()))
    return BuilderInfo(fields["Name"], fields["Driver"], platforms, fields.get("Status", ""))


@dataclass(frozen=True)
class BuilderFacts:
    """What the choice of builder depends on, observed once (see :func:`observe_builder`)."""

    #: The docker client that has buildx; None when none has it.
    client: str | None
    #: ``docker buildx version`` of that client.
    buildx_version: str | None = None
    #: The builder the user named, and where the name came from (``--builder``, ``$BUILDX_BUILDER``, ``images.yaml``).
    named: str | None = None
    named_from: str = ""
    #: `docker buildx inspect` of the named builder, or of the current one; None when there is no such builder.
    builder: BuilderInfo | None = None
    #: The engine's image store (``containerd`` or ``classic``); it matters for the docker driver only.
    image_store: str | None = None


@dataclass(frozen=True)
class BuilderChoice:
    """The decision: which builder, how it builds several platforms, and the line that says why."""

    client: str
    #: The ``--builder`` value; None for the current builder.
    builder: str | None
    driver: str
    multi_platform: bool
    platforms: tuple[str, ...]
    reason: str

    def make(self) -> BuildxBuilder:
        return BuildxBuilder(docker=self.client, builder=self.builder, multi_platform=self.multi_platform, summary=self.summary)

    @property
    def kind(self) -> BuilderKind:
        """The kind of builder the build requests are made for: where their registry cache lives (:mod:`imagegraph.core.cache`)."""
        return BuilderKind.INDEX if self.multi_platform else BuilderKind.PER_PLATFORM

    @property
    def summary(self) -> str:
        return f"{self.builder or 'current builder'} ({self.driver} driver)"


def choose_builder(facts: BuilderFacts) -> BuilderChoice:
    """The builder imagegraph uses, from facts alone.

    A builder the user names is used as it is: any driver (a shared BuildKit
    is how a team outgrows one machine). Otherwise the current builder. The
    docker driver does one multi-platform build with a registry cache on the
    containerd image store; on the classic store it cannot (Docker's
    documented limits), so it builds and pushes each platform and joins them.
    No builder is ever created here.
    """
    if facts.client is None:
        raise ToolMissing(
            "no docker client here has the buildx plugin; `invoke engine.up` installs it (as root on Debian/Ubuntu), "
            "or install docker-buildx (Debian/Ubuntu) or docker-buildx-plugin (Docker's packages)"
        )
    info = facts.builder
    if info is None:
        if facts.named:
            raise ToolMissing(
                f"no buildx builder named {facts.named!r} ({facts.named_from}); `docker buildx ls` lists the builders, "
                f"`invoke engine.builder --name {facts.named}` creates a docker-container one"
            )
        raise EngineError("buildx has no current builder (`docker buildx inspect` failed); run `invoke engine.up`, or pick one with --builder")
    chosen = f"{info.name}, named by {facts.named_from}" if facts.named else f"{info.name}, the current builder"
    if info.driver != "docker":
        return BuilderChoice(facts.client, facts.named, info.driver, True, info.platforms,
                             f"builder {chosen}: {info.driver} driver, one build for all platforms with a registry cache")
    if facts.image_store == "containerd":
        return BuilderChoice(facts.client, facts.named, "docker", True, info.platforms,
                             f"builder {chosen}: docker driver on the containerd image store, one build for all platforms with a registry cache")
    return BuilderChoice(
        facts.client, facts.named, "docker", False, info.platforms,
        f"builder {chosen}: the docker driver on the classic image store builds one platform at a time with an inline cache "
        f"(turn on the containerd image store, or name a docker-container builder with --builder, for one build and a registry cache)",
    )


def named_builder(flag: str | None, environ: Mapping[str, str], configured: str | None) -> tuple[str | None, str]:
    """The builder the user named and where: ``--builder`` wins over ``$BUILDX_BUILDER`` over images.yaml's ``builder:``.

    The flag and images.yaml are checked where they are read; the variable is
    checked here, so no name reaches buildx's command line as an option.
    """
    for value, origin in ((flag, "--builder"), (environ.get("BUILDX_BUILDER"), "$BUILDX_BUILDER"), (configured, "images.yaml builder:")):
        if value:
            return parse_builder_name(value, origin), origin
    return None, ""


def observe_builder(runner: Runner, *, named: str | None = None, named_from: str = "", image_store: str | None = None) -> BuilderFacts:
    """Ask buildx (through ``runner``) what :func:`choose_builder` needs. Creates nothing.

    The engine's image store matters only for the docker driver; when not given, it is asked of the same client
    (`docker info`), cheaper than loading an engine API client. The three questions go out side by side: a plan
    that builds asks them all, and waits for the slowest instead of their sum.
    """
    for client in docker_clients():
        questions = [Command.of(client, "buildx", "version"), Command.of(client, "buildx", "inspect", *([named] if named else []))]
        if image_store is None:
            questions.append(_info_command(client))
        with ThreadPoolExecutor(max_workers=len(questions), thread_name_prefix="buildx") as pool:
            answers = list(pool.map(lambda command: runner.run(command, check=False), questions))
        version, inspect = answers[0], answers[1]
        if version.returncode != 0:
            continue
        info = parse_inspect(inspect.output) if inspect.returncode == 0 else None
        if image_store is None and info is not None and info.driver == "docker":
            image_store = _image_store(answers[2])
        return BuilderFacts(client, version.output.strip() or None, named, named_from, info, image_store)
    return BuilderFacts(None, named=named, named_from=named_from, image_store=image_store)


def _info_command(client: str) -> Command:
    """What the engine ``client`` talks to says of its storage: the image store is read from it."""
    return Command.of(client, "info", "--format", "{{json .DriverStatus}}")


def _image_store(done: CommandResult) -> str | None:
    """``containerd`` or ``classic``, from `docker info`'s answer (:func:`_info_command`); None when the engine could not be asked."""
    try:
        status = json.loads(done.output) if done.returncode == 0 else None
    except ValueError:
        return None
    return image_store_of({"DriverStatus": status}) if isinstance(status, list) else None


def select_builder(runner: Runner, *, named: str | None = None, named_from: str = "", image_store: str | None = None) -> BuildxBuilder:
    """The builder to build on, observed and chosen in one call."""
    return choose_builder(observe_builder(runner, named=named, named_from=named_from, image_store=image_store)).make()


def check_platforms(wanted: Sequence[str], choice: BuilderChoice) -> None:
    """One line naming the platforms the builder can neither run natively nor emulate, and the fix.

    The builder's own list (`docker buildx inspect`) speaks for it wherever it
    runs: the engine's emulation for the docker driver, a farm's nodes for a
    remote one. An empty list (a container builder not started yet) says nothing.
    """
    if not choice.platforms:
        return
    runs = set(choice.platforms) | {p for native, compatible in _COMPATIBLE.items() if native in choice.platforms for p in compatible}
    missing = [p for p in wanted if p not in runs and _variantless(p) not in runs]
    if missing:
        raise EngineError(
            f"cannot build for {', '.join(missing)}: the builder {choice.builder or 'in use'} ({choice.driver} driver) runs only "
            f"{', '.join(choice.platforms)}; register QEMU (`invoke engine.up`, as root), name another builder with --builder, "
            f"or build for what it can with --platform"
        )


#: What a platform runs without emulation besides itself, though BuildKit may not list it.
_COMPATIBLE = {"linux/amd64": ("linux/386",)}


def _variantless(platform: str) -> str:
    return "/".join(platform.split("/")[:2])


def docker_clients() -> tuple[str, ...]:
    """Every distinct ``docker`` executable: PATH order, then the usual install places."""
    seen: dict[str, str] = {}
    for directory in (*os.environ.get("PATH", "").split(os.pathsep), "/usr/local/bin", "/usr/bin"):
        candidate = Path(directory or ".") / "docker"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            seen.setdefault(os.path.realpath(candidate), str(candidate))
    return tuple(seen.values())
