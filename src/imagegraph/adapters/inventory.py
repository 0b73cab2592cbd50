"""Read what a registry holds for some repositories, as :class:`~imagegraph.core.retention.Manifest` records.

Only the distribution API is used (tags list, manifests, config blobs), so it
works on any OCI registry. Requests run in a small thread pool: one HEAD per
tag, one GET per distinct manifest and one per image config.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from ..core.errors import RegistryError
from ..core.lease import is_lease_tag
from ..core.manifests import is_index, platform_of
from ..core.media_types import IMAGE_CONFIGS, IMAGE_MANIFESTS, INDEXES, LEASE, RETENTION
from ..core.retention import Manifest
from .registry import Registry

__all__ = ["image_labels", "read_inventory"]

CREATED_LABEL = "org.opencontainers.image.created"
PARENT_LABEL = "imagegraph.parent"


def read_inventory(registry: Registry, repositories: Iterable[str], *, jobs: int = 8, cache: dict | None = None,
                   untagged: Callable[[str], Iterable[str]] | None = None) -> list[Manifest]:
    """Every tagged manifest of ``repositories`` (lease tags aside), and every manifest their indexes list (tagged or not).

    ``untagged`` names, per repository, the untagged manifests a registry's own
    API can list and the distribution API cannot (GitHub's package versions):
    they join the inventory as they are, untagged, with what they list.

    ``cache`` keeps what a digest names across reads (a digest's manifest and
    config never change), so reading again costs the tags only: one list per
    repository and one HEAD per tag.
    """
    known = {} if cache is None else cache
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="inventory") as pool:
        found: list[Manifest] = []
        for repository in repositories:
            extra = tuple(untagged(repository)) if untagged is not None else ()
            found.extend(_repository(registry, repository, pool, known, extra))
        return found


def _repository(registry: Registry, name: str, pool: ThreadPoolExecutor, cache: dict, extra: tuple[str, ...] = ()) -> list[Manifest]:
    def inspect(digest: str) -> tuple[str, str, dict]:
        if ("body", name, digest) not in cache:
            cache["body", name, digest] = registry.inspect(name, digest)
        return cache["body", name, digest]

    def config(digest: str) -> dict[str, str]:
        if ("config", name, digest) not in cache:
            media_type, _, body = bodies[digest]
            cache["config", name, digest] = _config(registry, name, media_type, body)
        return cache["config", name, digest]

    tags = tuple(tag for tag in registry.tags(name) if not is_lease_tag(tag))  # who holds a lease is no image
    digests = dict(zip(tags, pool.map(lambda tag: registry.manifest_digest(name, tag), tags), strict=True))
    tags_of: dict[str, list[str]] = {}
    for tag, digest in digests.items():
        if digest:  # a tag deleted between listing and lookup
            tags_of.setdefault(digest, []).append(tag)
    def still_there(digest: str) -> tuple[str, str, dict] | None:
        try:  # an untagged manifest named from elsewhere may be gone by now (deleted, collected)
            return inspect(digest)
        except RegistryError:
            return None

    others = [digest for digest in dict.fromkeys(extra) if digest not in tags_of]
    bodies = dict(zip(tags_of, pool.map(inspect, tags_of), strict=True))
    bodies.update((digest, body) for digest, body in zip(others, pool.map(still_there, others), strict=True) if body is not None)
    platforms: dict[str, str] = {}
    for media_type, _, body in bodies.values():
        if is_index(media_type, body):
            for entry in body.get("manifests", ()):
                if entry.get("mediaType") in (*IMAGE_MANIFESTS, *INDEXES):
                    platforms[entry["digest"]] = platform_of(entry)
    missing = [digest for digest in platforms if digest not in bodies]
    bodies.update(zip(missing, pool.map(inspect, missing), strict=True))
    configs = dict(zip(bodies, pool.map(config, bodies), strict=True))
    manifests = []
    for digest, (media_type, _, body) in bodies.items():
        children = tuple(e["digest"] for e in body.get("manifests", ()) if e.get("digest") in platforms) if is_index(media_type, body) else ()
        labels_sources = [configs[c] for c in children if c in configs] if children else [configs[digest]]
        created = max((c.get("created", "") for c in labels_sources), default="")
        parents = tuple(sorted({c["parent"] for c in labels_sources if c.get("parent")}))
        manifests.append(Manifest(name, digest, tuple(sorted(tags_of.get(digest, ()))), created, children, parents, platforms.get(digest, ""),
                                  record=_is_record(body)))
    return manifests


def _is_record(body: dict) -> bool:
    """Whether a manifest is imagegraph's own record (cleanup's retention record, a lease claim): an artifact, no image."""
    kinds = (RETENTION, LEASE)
    return body.get("artifactType") in kinds or any(isinstance(layer, dict) and layer.get("mediaType") in kinds
                                                    for layer in body.get("layers", ()) or ())


def _config(registry: Registry, name: str, media_type: str, body: dict) -> dict[str, str]:
    """created and parent of an image manifest, from its config; {} for an index or a non-image (a build cache)."""
    data = _config_data(registry, name, media_type, body)
    if data is None:
        return {}
    labels = (data.get("config") or {}).get("Labels") or {}
    # When it was built (the config's own time) ranks builds; the label (the commit's time) is the fallback.
    return {"created": data.get("created") or labels.get(CREATED_LABEL, ""), "parent": labels.get(PARENT_LABEL, "")}


def _config_data(registry: Registry, name: str, media_type: str, body: dict) -> dict | None:
    """An image manifest's config, parsed; None for an index, a non-image (a build cache) or an unreadable config."""
    config = body.get("config") or {}
    if is_index(media_type, body) or config.get("mediaType") not in IMAGE_CONFIGS:
        return None
    try:
        data = json.loads(registry.blob(name, config["digest"]))
    except (KeyError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def image_labels(registry: Registry, name: str, reference: str) -> dict[str, str]:
    """The labels of the image ``reference`` names; for an index, those of its first platform manifest ({} when none)."""
    media_type, _, body = registry.inspect(name, reference)
    if is_index(media_type, body):
        # buildx's attestations ride along as unknown/unknown entries: they are no image
        first = next((e for e in body.get("manifests", ()) if e.get("mediaType") in IMAGE_MANIFESTS
                      and (e.get("platform") or {}).get("os") != "unknown"), None)
        if first is None:
            return {}
        media_type, _, body = registry.inspect(name, first["digest"])
    data = _config_data(registry, name, media_type, body)
    labels = ((data or {}).get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
