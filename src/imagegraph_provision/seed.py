"""An offline stand-in for ``python:3.11-slim``, served by the local registry.

No public registry is reachable on the machines this project builds on, but
Dockerfiles say ``FROM python:3.11-slim`` as users write them. dockerd runs
with ``--registry-mirror http://127.0.0.1:5000``, so once the registry holds
``library/python:3.11-slim`` (a manifest list, one image per platform) every
pull and BuildKit build resolves through it unchanged.

Each platform's root filesystem comes from ``debootstrap`` (foreign ones run
under QEMU), is made to behave like the official image, and is cached as a
tarball so that a second seed only rebuilds and pushes.

Like :mod:`imagegraph_provision.setup`: facts are observed, :func:`decide_seed`
turns them into actions without I/O (this module: the platforms, the facts,
the actions and the decision), and :class:`~imagegraph_provision.seed_build.SeedSteps`
runs them (:mod:`imagegraph_provision.seed_build`: the commands, the cache, the
registry probes).
"""

from __future__ import annotations

import hashlib
import os
import platform as host_platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagegraph.core.errors import EngineError, ToolMissing
from imagegraph.core.options import PLATFORMS_ENV
from imagegraph.core.request import platform_suffix
from imagegraph.core.values import Platform, escaped, parse_platform

__all__ = [
    "BASE_REPOSITORY",
    "BASE_TAG",
    "SEED_PLATFORMS",
    "BuildImage",
    "BuildRootfs",
    "PushManifestList",
    "SeedAction",
    "SeedFacts",
    "SeedPresent",
    "SkipSeed",
    "base_reference",
    "decide_seed",
    "default_cache_dir",
    "native_platform",
    "recipe_key",
    "seed_platforms",
    "seedable",
]

BASE_REPOSITORY = "library/python"
BASE_TAG = "3.11-slim"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates", "tzdata")
#: Bump when the rootfs customisation changes, so cached tarballs are rebuilt.
RECIPE_REVISION = "1"

#: Platforms a seed can be built for: Debian architecture of each.
SEED_PLATFORMS: Mapping[str, str] = {
    "linux/amd64": "amd64",
    "linux/arm64": "arm64",
    "linux/arm/v7": "armhf",
    "linux/ppc64le": "ppc64el",
    "linux/s390x": "s390x",
    "linux/386": "i386",
}

_MACHINE_PLATFORMS = {
    "x86_64": "linux/amd64",
    "amd64": "linux/amd64",
    "aarch64": "linux/arm64",
    "arm64": "linux/arm64",
    "armv7l": "linux/arm/v7",
    "ppc64le": "linux/ppc64le",
    "s390x": "linux/s390x",
    "i686": "linux/386",
}


# --- platforms -------------------------------------------------------------

def seedable(platform: Platform | str) -> str:
    """The platform as the seed names it, from a value the command line already parsed (or text, parsed here the same way);
    refused when no seed can be made for it."""
    value = platform if isinstance(platform, Platform) else parse_platform(platform.strip(), "--platforms")
    if str(value) not in SEED_PLATFORMS:
        raise EngineError(
            f"cannot seed platform {escaped(str(platform))!r}; use one of {', '.join(SEED_PLATFORMS)} (e.g. --platforms linux/amd64,linux/arm64)"
        )
    return str(value)


def seed_platforms(overridden: Iterable[Platform], family: Iterable[str] | None, native: str) -> tuple[tuple[str, ...], str]:
    """The platforms `engine.up` seeds the base Python image for when none are asked for, and where they came from.

    What a run will build: $IMAGEGRAPH_PLATFORMS when set (it replaces every image's platforms), else every platform
    the family declares, else (no images.yaml) the machine's own. A foreign platform is debootstrapped under QEMU for
    minutes, so nothing is seeded that no build asks for; `engine.up --platforms` adds more later.
    """
    wanted = tuple(dict.fromkeys(str(p) for p in overridden))
    if wanted:
        return wanted, f"${PLATFORMS_ENV}"
    declared = tuple(dict.fromkeys(family or ()))
    if declared:
        return declared, "images.yaml"
    return (native,), "this machine"


def native_platform(machine: str | None = None) -> str:
    machine = machine or host_platform.machine()
    return _MACHINE_PLATFORMS.get(machine.lower(), f"linux/{machine.lower()}")


def recipe_key() -> str:
    recipe = "\n".join((SUITE, *PACKAGES, RECIPE_REVISION))
    return f"python-3.11-slim-{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"


def default_cache_dir(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else (home or Path.home()) / ".cache"
    return base / "imagegraph" / "seed"


def base_reference(registry: str, platform: str | None = None) -> str:
    tag = BASE_TAG if platform is None else f"{BASE_TAG}-{platform_suffix(platform)}"
    return f"{registry}/{BASE_REPOSITORY}:{tag}"


# --- facts -----------------------------------------------------------------

@dataclass(frozen=True)
class SeedFacts:
    registry: str
    registry_reachable: bool
    #: The daemon uses the registry as its Docker Hub mirror.
    mirror_configured: bool
    #: Platforms listed by the registry's library/python:3.11-slim.
    seeded_platforms: tuple[str, ...]
    #: Platforms whose per-platform tag (3.11-slim-arm64, ...) is in the registry.
    pushed_platforms: tuple[str, ...]
    #: Platforms whose rootfs tarball is in the cache.
    cached_platforms: tuple[str, ...]
    emulated_platforms: tuple[str, ...]
    native_platform: str
    is_root: bool
    debootstrap_installed: bool


# --- actions ---------------------------------------------------------------

@dataclass(frozen=True)
class SkipSeed:
    reason: str

    def describe(self) -> str:
        return f"engine: not seeding python:{BASE_TAG}: {self.reason}"


@dataclass(frozen=True)
class SeedPresent:
    registry: str
    platforms: tuple[str, ...]

    def describe(self) -> str:
        return f"engine: reusing python:{BASE_TAG} in {self.registry} ({', '.join(self.platforms)})"


@dataclass(frozen=True)
class BuildRootfs:
    platform: str
    emulated: bool

    def describe(self) -> str:
        how = " under QEMU, takes minutes" if self.emulated else ""
        return f"engine: debootstrapping {SUITE} python3 for {self.platform}{how}"


@dataclass(frozen=True)
class BuildImage:
    """Build one platform's image from its cached rootfs and push it under its own tag."""

    platform: str
    tag: str

    def describe(self) -> str:
        return f"engine: building and pushing {self.tag} ({self.platform})"


@dataclass(frozen=True)
class PushManifestList:
    tag: str
    members: tuple[str, ...]
    platforms: tuple[str, ...]

    def describe(self) -> str:
        return f"engine: pushing {self.tag} for {', '.join(self.platforms)}"


SeedAction = SkipSeed | SeedPresent | BuildRootfs | BuildImage | PushManifestList


def _platform_order(platforms: Iterable[str], native: str) -> tuple[str, ...]:
    # Native first: `docker manifest` lists it first, and tools that ignore
    # the platform (old clients) then pick the runnable image.
    return tuple(sorted(set(platforms), key=lambda p: (p != native, p)))


def decide_seed(facts: SeedFacts, platforms: Sequence[str], enabled: bool = True) -> tuple[SeedAction, ...]:
    """What to do so that the registry serves python:3.11-slim for ``platforms``.

    Pure: raises the user-facing error when seeding is needed but impossible.
    """
    if not enabled:
        return (SkipSeed("disabled (--no-seed)"),)
    if not facts.registry_reachable:
        return (SkipSeed(f"no registry answers at {facts.registry}"),)
    if not facts.mirror_configured:
        return (SkipSeed(
            f"dockerd does not use http://{facts.registry}/ as registry mirror "
            f"(start it with --registry-mirror http://{facts.registry})"
        ),)
    wanted = {seedable(p) for p in platforms}
    if not wanted:
        return (SkipSeed("no platforms asked for"),)
    if wanted <= set(facts.seeded_platforms):
        return (SeedPresent(facts.registry, _platform_order(facts.seeded_platforms, facts.native_platform)),)

    # Keep platforms seeded earlier: the new list replaces the old one.
    target = _platform_order(wanted | set(facts.seeded_platforms), facts.native_platform)
    actions: list[SeedAction] = []
    for platform in target:
        if platform in facts.pushed_platforms:
            continue
        if platform not in facts.cached_platforms:
            if not facts.is_root:
                raise EngineError(f"seeding python:{BASE_TAG} for {platform} needs root for debootstrap; rerun as root or pass --no-seed")
            if not facts.debootstrap_installed:
                raise ToolMissing(
                    "debootstrap is not installed; run `apt-get install -y debootstrap qemu-user-static binfmt-support` "
                    "as root, or pass --no-seed"
                )
            emulated = platform != facts.native_platform
            if emulated and platform not in facts.emulated_platforms:
                raise EngineError(
                    f"cannot seed {platform}: no QEMU emulation is registered for it; install qemu-user-static and "
                    f"binfmt-support as root and rerun, or pass --platforms {facts.native_platform}"
                )
            actions.append(BuildRootfs(platform, emulated))
        actions.append(BuildImage(platform, base_reference(facts.registry, platform)))
    actions.append(PushManifestList(
        base_reference(facts.registry),
        tuple(base_reference(facts.registry, p) for p in target),
        target,
    ))
    return tuple(actions)
