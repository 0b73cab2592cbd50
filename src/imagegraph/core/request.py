"""What the builder is asked for one image: decided with the plan, carried out by the executor.

The request is part of the plan (:attr:`imagegraph.core.plan.ImagePlan.request`):
`invoke plan --json` shows exactly what `invoke build` will send, and a bake
file is written from the same requests. The context folder it names is
assembled by the executor from the plan's file list
(:mod:`imagegraph.adapters.context`), in ``<contexts>/<image>/<fingerprint>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import BuildCache, BuilderKind, cache_entries, platform_suffix
from .defaults import WHEELHOUSE_DIR, wheel_folder

if TYPE_CHECKING:
    from .config import Config, ImageSpec
    from .plan import ImagePlan

__all__ = ["BuildRequest", "ContextLayout", "build_request", "context_folder", "context_layout", "platform_suffix"]


@dataclass(frozen=True)
class ContextLayout:
    """What an image's build context holds, as paths relative to the project root (pure: nothing read yet)."""

    #: (path, content id) of every file, exactly the fingerprint's.
    files: tuple[tuple[str, str], ...]
    #: The wheelhouse folders of the image's declared requirements (``.wheelhouse/<stem>``).
    wheel_folders: tuple[str, ...]
    #: The context directory and the Dockerfile, relative to the assembled root.
    context: str
    dockerfile: str


def context_layout(spec: ImageSpec, files: Sequence[tuple[str, str]]) -> ContextLayout:
    """The context of ``spec`` from its fingerprint's file list (``Fingerprint.files``)."""
    folders = tuple(sorted({f"{WHEELHOUSE_DIR}/{wheel_folder(requirements)}" for requirements in spec.wheels}))
    return ContextLayout(files=tuple(files), wheel_folders=folders, context=spec.context, dockerfile=spec.dockerfile)


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
    #: The registry cache each of its builds reads and writes, exactly as the builder passes it (:mod:`imagegraph.core.cache`).
    cache: tuple[BuildCache, ...] = ()
    #: Attach buildx's provenance attestation (an ``unknown/unknown`` manifest in the index) where the builder makes one.
    provenance: bool = True

    def platform_tag(self, platform: str) -> str:
        """Where one platform's image goes: the reference itself for a single-platform build, else ref-<platform>."""
        return self.ref if len(self.platforms) == 1 else f"{self.ref}-{platform_suffix(platform)}"

    def cache_of(self, platforms: tuple[str, ...]) -> BuildCache | None:
        """The cache entries of the build of ``platforms`` (all of them, or one on a per-platform builder); None: no cache."""
        return next((entry for entry in self.cache if entry.platforms == platforms), None)

    def to_dict(self) -> dict[str, object]:
        return {
            "dockerfile": str(self.dockerfile),
            "context": str(self.context),
            "ref": self.ref,
            "platforms": list(self.platforms),
            "target": self.target,
            "build_args": dict(self.build_args),
            "labels": dict(self.labels),
            "push": self.push,
            "no_cache": self.no_cache,
            "cache": [entry.to_dict() for entry in self.cache],
            "provenance": self.provenance,
        }


def context_folder(contexts: Path, image: str, fingerprint: str) -> Path:
    """Where an image's context is assembled: a folder whose path names its content (see :mod:`imagegraph.adapters.context`)."""
    return Path(contexts) / image / fingerprint


def build_request(config: Config, entry: ImagePlan, layout: ContextLayout, contexts: Path, *, labels: Mapping[str, str],
                  insecure_registry: bool, registry_cache: bool, builder: BuilderKind) -> BuildRequest:
    """What the builder is asked for one planned image: the same for `invoke build`, `invoke plan` and a bake file.

    ``builder`` is the kind of builder that will build it: where its registry cache lives depends on it.
    """
    spec = config.image(entry.name)
    build_args = dict(spec.build_args)
    if entry.parent_ref:
        build_args["BASE_IMAGE"] = entry.parent_ref
    all_labels = {**labels, "org.opencontainers.image.title": entry.name, "imagegraph.fingerprint": entry.fingerprint}
    if entry.parent_ref:
        all_labels["imagegraph.parent"] = entry.parent_ref
    folder = context_folder(contexts, entry.name, entry.fingerprint)
    return BuildRequest(
        image=entry.name,
        dockerfile=folder / layout.dockerfile,
        context=folder / layout.context,
        ref=entry.ref,
        platforms=entry.platforms,
        target=spec.target,
        build_args=tuple(sorted(build_args.items())),
        labels=tuple(sorted(all_labels.items())),
        push=entry.push,
        no_cache=entry.no_cache,
        insecure_registry=insecure_registry,
        cache=cache_entries(config.repository(entry.name) if spec.push and registry_cache else None, entry.platforms, kind=builder,
                             push=entry.push, no_cache=entry.no_cache),
    )
