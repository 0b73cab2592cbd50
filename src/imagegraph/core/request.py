"""What the builder is asked for one image: decided with the plan, carried out by the executor.

The request is part of the plan (:attr:`imagegraph.core.plan.BuiltImage.request`):
`invoke plan --json` shows exactly what `invoke build` will send, and a bake
file is written from the same requests. The context folder it names is
assembled by the executor from the plan's file list
(:mod:`imagegraph.adapters.context`), in ``<contexts>/<image>/<fingerprint>``.
It takes plain values (names, references, settings), never a plan entry: the
plan is made of requests, not the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import BuildCache, BuilderKind, cache_entries, platform_suffix
from .config import DEFAULT_COMPRESSION, Compression
from .defaults import CONFIG_NAME, STATE_DIR, WHEELHOUSE_DIR, wheel_folder
from .errors import InputError
from .tags import Event, Version, oci_labels

if TYPE_CHECKING:
    from .config import Config, ImageSpec

__all__ = ["BuildRequest", "BuildSettings", "ContextLayout", "Revision", "build_request", "compression_refused", "context_folder",
           "context_layout", "image_labels", "platform_suffix"]


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
    #: The parent reference to pin to the digest it names when the build starts (:meth:`pinned`): a run of one platform builds
    #: a child FROM its parent's part, which another runner may push again; None: the reference is used as it is.
    pin_parent: str | None = None
    #: How the pushed layers are compressed (images.yaml ``compression:``, :func:`build_request`); None: nothing asked, as the push
    #: compresses them (BuildKit's gzip; dockerd's on the classic image store's builder, which takes no exporter options).
    compression: Compression | None = None
    #: Compress every layer afresh, those taken from the parent and the FROM image too: set where the image's compression
    #: type is not gzip, or differs from its parent's, so that no layer keeps a compression a client of this image cannot read.
    force_compression: bool = False

    @property
    def exporter_options(self) -> tuple[str, ...]:
        """BuildKit's image exporter options for the push (and its registry cache); () where none is passed (classic store)."""
        if self.compression is None:
            return ()
        options = [f"compression={self.compression.type}"]
        if self.compression.effective_level is not None:
            options.append(f"compression-level={self.compression.effective_level}")
        if self.force_compression:
            options.append("force-compression=true")
        if self.compression.type == "zstd":
            # zstd layers have OCI media types only; said outright, not left to the exporter's silent switch
            options.append("oci-mediatypes=true")
        return tuple(options)

    def pinned(self, digest: str) -> BuildRequest:
        """The request with its parent named by ``digest`` too (``<ref>@sha256:…``): the build argument it is built FROM and the
        ``imagegraph.parent`` label, so the child stands on, and names, exactly the image it was built on."""
        if self.pin_parent is None:
            return self
        exact = f"{self.pin_parent}@{digest}"

        def pin(pairs: tuple[tuple[str, str], ...], key: str) -> tuple[tuple[str, str], ...]:
            return tuple((k, exact if k == key and v == self.pin_parent else v) for k, v in pairs)

        return replace(self, build_args=pin(self.build_args, "BASE_IMAGE"), labels=pin(self.labels, "imagegraph.parent"),
                       pin_parent=None)

    def platform_tag(self, platform: str) -> str:
        """Where one platform's image goes: the reference itself for a single-platform build, else ref-<platform>."""
        return self.ref if len(self.platforms) == 1 else f"{self.ref}-{platform_suffix(platform)}"

    def cache_of(self, platforms: tuple[str, ...]) -> BuildCache | None:
        """The cache entries of the build of ``platforms`` (all of them, or one on a per-platform builder); None: no cache."""
        return next((entry for entry in self.cache if entry.platforms == platforms), None)

    def cache_exports(self, entry: BuildCache) -> tuple[str, ...]:
        """``entry``'s registry cache exports with the image's compression: left at gzip, BuildKit would compress each new layer
        twice, once for the image and once for the cache."""
        options = self.exporter_options
        return tuple(",".join((value, *options)) if options and value.startswith("type=registry,") else value
                     for value in entry.cache_to)

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
            "cache": [{**entry.to_dict(), "cache_to": list(self.cache_exports(entry))} for entry in self.cache],
            "provenance": self.provenance,
            "compression": None if self.compression is None else {"type": self.compression.type, "level": self.compression.effective_level,
                                                                  "force": self.force_compression},
        }


def context_folder(contexts: Path, image: str, fingerprint: str) -> Path:
    """Where an image's context is assembled: a folder whose path names its content (see :mod:`imagegraph.adapters.context`)."""
    return Path(contexts) / image / fingerprint


@dataclass(frozen=True)
class Revision:
    """The commit a run builds, as the images' OCI labels name it (facts git gave; nothing read here)."""

    commit: str
    #: When it was committed: the created label, so that a rebuild of the same commit labels its image the same.
    time: datetime
    #: Its public web address (:func:`imagegraph.core.ci.source_url`); None when it has none.
    source: str | None = None


def image_labels(revision: Revision | None, event: Event) -> dict[str, str]:
    """The OCI labels every image of the run carries: revision, source, created, and version on a release; none before a first commit."""
    if revision is None:
        return {}
    version = Version.parse(event.ref) if event.kind == "tag" else None
    return oci_labels(revision=revision.commit, source=revision.source, version=str(version) if version else None,
                      created=revision.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


@dataclass(frozen=True)
class BuildSettings:
    """How this run's builds are asked for, the same for every image (from the options and the registry's address)."""

    #: Where contexts are assembled (``<contexts>/<image>/<fingerprint>``); the workspace gives the project's own folder.
    contexts: Path = Path(STATE_DIR, "contexts")
    #: The registry speaks plain HTTP (a local registry).
    insecure_registry: bool = False
    #: Builds of pushed images read (and pushed builds write) the registry cache.
    registry_cache: bool = True
    #: The kind of builder that builds: where the registry cache lives depends on it (:mod:`imagegraph.core.cache`).
    builder: BuilderKind = BuilderKind.INDEX


def build_request(config: Config, image: str, layout: ContextLayout, settings: BuildSettings, *, fingerprint: str, ref: str,
                  parent_ref: str | None, labels: Mapping[str, str], no_cache: bool = False,
                  only_platform: str | None = None) -> BuildRequest:
    """What the builder is asked for one planned image: the same for `invoke build`, `invoke plan` and a bake file.

    ``labels`` are the run's (:func:`image_labels`); the image's title, fingerprint and parent are added here.
    ``only_platform``: the run builds that one of the image's platforms (``ref`` is then its part's, see
    :func:`imagegraph.core.join.part_tag`), with that platform's own registry cache.
    """
    spec = config.image(image)
    platforms = (only_platform,) if only_platform is not None else spec.platforms
    part = only_platform is not None and len(spec.platforms) > 1
    build_args = dict(spec.build_args)
    if parent_ref:
        build_args["BASE_IMAGE"] = parent_ref
    all_labels = {**labels, "org.opencontainers.image.title": image, "imagegraph.fingerprint": fingerprint}
    if parent_ref:
        all_labels["imagegraph.parent"] = parent_ref
    folder = context_folder(settings.contexts, image, fingerprint)
    parent_type = config.image(spec.parent).compression.type if spec.parent else "gzip"
    force = spec.compression.type != "gzip" or parent_type != spec.compression.type
    per_platform = settings.builder is BuilderKind.PER_PLATFORM
    if per_platform and spec.push and (spec.compression != DEFAULT_COMPRESSION or force):
        raise InputError(CONFIG_NAME, compression_refused(image, spec.compression))
    return BuildRequest(
        image=image,
        dockerfile=folder / layout.dockerfile,
        context=folder / layout.context,
        ref=ref,
        platforms=platforms,
        target=spec.target,
        build_args=tuple(sorted(build_args.items())),
        labels=tuple(sorted(all_labels.items())),
        push=spec.push,
        no_cache=no_cache,
        insecure_registry=settings.insecure_registry,
        cache=cache_entries(config.repository(image) if spec.push and settings.registry_cache else None, platforms,
                            kind=settings.builder, push=spec.push, no_cache=no_cache, part=part),
        # the classic store's builder pushes through dockerd, which gzips as it does: nothing asked, nothing claimed
        compression=None if per_platform else spec.compression,
        force_compression=force,
        pin_parent=parent_ref if only_platform is not None else None,
    )


def compression_refused(image: str, compression: Compression) -> str:
    """Why a builder that pushes through dockerd (the docker driver on the classic image store) cannot build ``image``, and the fix."""
    return (f"image {image!r}: compression {compression} needs a builder whose exporter pushes the image, but this one (the docker "
            f"driver on the classic image store) pushes through dockerd, which always uses gzip at its own level; turn on the "
            f"containerd image store, name a docker-container builder (images.yaml builder: or $BUILDX_BUILDER), or remove "
            f"compression: from images.yaml")
