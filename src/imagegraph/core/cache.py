"""The registry cache: which cache each build reads and writes, for the kind of builder that runs it. Decided here alone.

A builder that exports a multi-platform image (any container-based driver,
or the docker driver on the containerd image store) builds all of an image's
platforms at once and reads and writes one registry cache,
``<repository>:buildcache``, in ``mode=max`` (the stages a target skips too).
The docker driver on the classic image store can export neither a
multi-platform image nor a registry cache (Docker's documented limits): each
platform is its own build, carrying an inline cache in the image it pushes,
and that image is then tagged ``<repository>:buildcache-<platform>`` inside
the registry, where the next build of that platform reads it.

A run that builds one platform of each image (`invoke build --only-platform`,
one runner per platform) reads and writes that platform's own cache,
``<repository>:buildcache-<platform>``, so that runners of two platforms
never overwrite each other's; it reads the whole image's cache too, which
holds that platform's layers when a run of every platform wrote it last.

The build request carries the result (:attr:`imagegraph.core.request.BuildRequest.cache`):
`invoke plan --json`, the builder's argv and a bake file all show the same
entries. A registry that speaks plain HTTP (a loopback one) needs no cache
attribute: the builder is told so where it is made (dockerd treats
127.0.0.0/8 as insecure; `invoke engine.builder` writes it in buildkitd.toml).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

__all__ = ["CACHE_TAG", "BuildCache", "BuilderKind", "cache_entries", "platform_suffix"]

#: The registry cache's tag in every image repository (the classic store's builds write CACHE_TAG-<platform>).
CACHE_TAG = "buildcache"


class BuilderKind(Enum):
    """How a builder builds several platforms, which decides where its cache lives."""

    #: One build for every platform, pushed as an index, with a registry cache (mode=max): container drivers, containerd store.
    INDEX = "index"
    #: One build per platform, each pushed under its platform tag with an inline cache, then joined into the index by imagegraph:
    #: the docker driver on the classic image store.
    PER_PLATFORM = "per-platform"


@dataclass(frozen=True)
class BuildCache:
    """The cache of one build: of all the image's platforms (one build), or of one platform (a build per platform)."""

    #: The image's repository (registry/namespace/name) the cache tags live in.
    repository: str
    #: The platforms of the build these entries are for.
    platforms: tuple[str, ...]
    #: ``--cache-from`` / ``cache-from`` entries, as buildx takes them.
    cache_from: tuple[str, ...] = ()
    #: ``--cache-to`` / ``cache-to`` entries.
    cache_to: tuple[str, ...] = ()
    #: The tag the pushed image is copied to inside the registry after its build (its inline cache is the cache); None: none.
    copy_tag: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "platforms": list(self.platforms),
            "cache_from": list(self.cache_from),
            "cache_to": list(self.cache_to),
            "copy_to": f"{self.repository}:{self.copy_tag}" if self.copy_tag else None,
        }


def platform_suffix(platform: str) -> str:
    """``linux/arm64/v8`` -> ``arm64-v8``: the tag suffix of a single-platform image and of its cache."""
    return "-".join(platform.split("/")[1:])


def cache_entries(repository: str | None, platforms: Sequence[str], *, kind: BuilderKind, push: bool,
                   no_cache: bool = False, part: bool = False) -> tuple[BuildCache, ...]:
    """The cache entries of an image's builds on a builder of ``kind``: one for all platforms, or one per platform.

    ``repository`` None (the registry cache is off, or the image is not
    pushed) means no entries. ``no_cache`` reads no cache, but a pushed result
    still feeds it; a build that is not pushed reads the cache and writes none.
    ``part``: ``platforms`` is the one platform of a run that builds one
    (:func:`imagegraph.core.join.part_tag`), which keeps a cache of its own.
    """
    if repository is None:
        return ()
    if kind is BuilderKind.INDEX:
        whole = f"type=registry,ref={repository}:{CACHE_TAG}"
        ref = f"type=registry,ref={repository}:{CACHE_TAG}-{platform_suffix(platforms[0])}" if part else whole
        cache_from = () if no_cache else ((ref, whole) if part else (ref,))
        # a failed cache export must not fail a build that pushed its image
        cache_to = (f"{ref},mode=max,ignore-error=true",) if push else ()
        return (BuildCache(repository, tuple(platforms), cache_from, cache_to),) if cache_from or cache_to else ()
    entries = []
    for platform in platforms:
        tag = f"{CACHE_TAG}-{platform_suffix(platform)}"
        # the image carries its cache metadata; the last pushed build of this platform is the source
        entries.append(BuildCache(repository, (platform,), () if no_cache else (f"type=registry,ref={repository}:{tag}",),
                                  ("type=inline",), tag if push else None))
    return tuple(entries)
