"""Resolve everything once (config, options, engine, registry) and wire the parts together.

Tasks and sessions build one :class:`Workspace` from their flags and ask it
for a plan or an executor; no task repeats the config/CLI merge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from .config import CONFIG_NAME, Config, load_config, override_platforms
from .engine.builders import Builder, detect_builder
from .engine.images import LocalImages
from .errors import ConfigError
from .execute import Executor
from .fingerprint import Fingerprint, GitSources, fingerprint_images
from .graph import with_ancestors
from .plan import Availability, Plan, make_plan
from .registry import Registry
from .runner import Runner
from .wheelhouse import Wheelhouse

__all__ = ["BuildOptions", "Workspace", "find_root"]

STATE_DIR = ".imagegraph"


@dataclass(frozen=True)
class BuildOptions:
    registry: str | None = None
    platforms: tuple[str, ...] = ()
    force: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    no_cache: bool = False
    jobs: int = 2
    builder: str | None = None


def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` that holds images.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(CONFIG_NAME, f"not found in {here} or any parent; run from the repository that has images.yaml")


class Workspace:
    def __init__(self, root: Path | None = None, options: BuildOptions | None = None, *, runner: Runner | None = None) -> None:
        self.root = find_root(root)
        self.options = options or BuildOptions()
        self.runner = runner or Runner()
        config = load_config(self.root, registry=self.options.registry)
        # --platform wins; $IMAGEGRAPH_PLATFORMS is the same override for a whole environment.
        platforms = self.options.platforms or tuple(p.strip() for p in os.environ.get("IMAGEGRAPH_PLATFORMS", "").split(",") if p.strip())
        if platforms:
            config = override_platforms(config, platforms)
            self.options = replace(self.options, platforms=platforms)
        self.config: Config = config
        for name in (*self.options.force, *self.options.targets):
            self.config.image(name)  # unknown names fail early, with "did you mean"

    @cached_property
    def fingerprints(self) -> dict[str, Fingerprint]:
        return fingerprint_images(self.config, GitSources(self.root))

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.config.registry.split("/", 1)[0])

    @cached_property
    def local(self) -> LocalImages:
        return LocalImages()

    @cached_property
    def builder(self) -> Builder:
        return detect_builder(self.runner, prefer=self.options.builder)

    def ref(self, name: str) -> str:
        return f"{self.config.repository(name)}:{self.fingerprints[name].tag}"

    def plan(self) -> Plan:
        wanted = with_ancestors(self.config, self.options.targets) if self.options.targets else frozenset(self.config.names)
        availability: dict[str, Availability] = {}
        for name in wanted:
            ref = self.ref(name)
            in_registry = self.registry.has(ref) if self.config.image(name).push else False
            availability[ref] = Availability(local=not in_registry and self.local.has(ref), registry=in_registry)
        return make_plan(
            self.config, self.fingerprints, availability,
            selected=self.options.targets, force=self.options.force,
            no_cache=self.options.no_cache, platforms=self.options.platforms,
        )

    def executor(self, *, say=print) -> Executor:
        return Executor(
            self.config, self.builder, self.runner,
            Wheelhouse(self.root, self.runner, python=self.config.python),
            local=self.local, registry=self.registry, log_dir=self.root / STATE_DIR / "logs",
            labels=self._labels(), jobs=self.options.jobs, say=say,
        )

    def _labels(self) -> dict[str, str]:
        import git

        try:
            revision = git.Repo(self.root).head.commit.hexsha
        except (git.InvalidGitRepositoryError, ValueError):  # not a repository, or no commit yet
            return {}
        return {"org.opencontainers.image.revision": revision}
