"""The engine's status as one value: what `invoke engine.status` and `invoke engine.up` print.

:class:`EngineStatus` holds what was observed (engine, registry, emulation,
seeded base, docker clients, builder) and renders it as aligned lines; it
observes nothing itself (:func:`.setup.engine_status` does).
"""

from __future__ import annotations

from dataclasses import dataclass

from imagegraph.adapters.engine.builder_choice import BuilderChoice
from imagegraph.adapters.engine.builders import build_mode

from . import seed as seeding
from .facts import DockerClientInfo, mirror_configured

__all__ = ["EngineStatus"]


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
