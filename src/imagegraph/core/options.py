"""One run's options: the flags and environment a task was given, parsed once into typed values.

Tasks parse their flags with :mod:`imagegraph.core.values` and hand the
workspace one :class:`BuildOptions`; ``$IMAGEGRAPH_PLATFORMS`` is read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .values import Platform, RegistryAddress, parse_platforms, parse_registry, split_list

__all__ = ["PLATFORMS_ENV", "BuildOptions", "platforms_from_env"]


@dataclass(frozen=True)
class BuildOptions:
    """One run's overrides, already parsed (tasks parse their flags with :mod:`imagegraph.core.values`)."""

    #: A registry given as text (a library caller's ``BuildOptions(registry="host:5000")``) is parsed here, once.
    registry: RegistryAddress | None = None
    platforms: tuple[Platform, ...] = ()
    force: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    no_cache: bool = False
    jobs: int = 2
    builder: str | None = None
    #: The base ref git compares with (`--since`); None picks it from CI or the default branch.
    since: str | None = None
    #: Push a pull request's pr-<N> tags too (images.yaml's tags: push_pull_requests, for one run).
    push_pr: bool = False
    #: Read and write the registry cache (buildcache tags); off, a cold engine rebuilds every step.
    registry_cache: bool = True
    #: Build only this platform of each image, pushed as its part for `invoke join` (one runner per platform).
    only_platform: Platform | None = None

    def __post_init__(self) -> None:
        if isinstance(self.registry, str):
            object.__setattr__(self, "registry", parse_registry(self.registry, "BuildOptions(registry=...)"))
        if any(isinstance(p, str) for p in self.platforms):
            object.__setattr__(self, "platforms", parse_platforms(map(str, self.platforms), "BuildOptions(platforms=...)"))
        if isinstance(self.only_platform, str):
            object.__setattr__(self, "only_platform", parse_platforms((self.only_platform,), "BuildOptions(only_platform=...)")[0])


PLATFORMS_ENV = "IMAGEGRAPH_PLATFORMS"


def platforms_from_env(environ: Mapping[str, str]) -> tuple[Platform, ...]:
    """$IMAGEGRAPH_PLATFORMS (a comma list), parsed; () when unset. Set but empty is refused, like an empty flag."""
    text = environ.get(PLATFORMS_ENV)
    if text is None:
        return ()
    return parse_platforms(split_list(text, f"${PLATFORMS_ENV}", "linux/amd64,linux/arm64"), f"${PLATFORMS_ENV}")

