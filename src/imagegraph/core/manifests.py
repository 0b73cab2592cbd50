"""What a manifest a tag names holds: which platforms, and whether that is the whole image a build planned.

A tag that exists is not yet a whole image. BuildKit writes a multi-platform
image's platform manifests by digest and its index to the tag last, but the
second push that buildx adds on the docker driver (``pushing REF with docker``,
the engine's own push of what the exporter stored) writes every platform
manifest to the tag itself before the index. Cut short, it leaves the tag
naming one platform's manifest. So "pushed" is decided here, from the
manifest's body: an index that lists every planned platform, or, for a build
of one platform, an image manifest.

Attestations (buildx's provenance) ride in an index as ``unknown/unknown``
entries: they are no platform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .media_types import IMAGE_MANIFESTS, INDEXES

__all__ = ["is_index", "missing_platforms", "platform_of", "same_platform"]


def is_index(media_type: str, body: Mapping[str, Any]) -> bool:
    """Whether a manifest is an index (a list of manifests); a registry that names no type is judged by the body."""
    return media_type in INDEXES or (not media_type and "manifests" in body)


def platform_of(descriptor: Mapping[str, Any]) -> str:
    """An index entry's platform as ``os/architecture[/variant]``; "" when it names none."""
    platform = descriptor.get("platform") or {}
    if not isinstance(platform, Mapping):
        return ""
    parts = [platform.get("os", ""), platform.get("architecture", ""), platform.get("variant", "")]
    return "/".join(str(p) for p in parts if p)


def same_platform(listed: str, planned: str) -> bool:
    """Whether a platform a manifest lists is the planned one (``linux/arm64`` plans take ``linux/arm64/v8`` and back)."""
    # arm64's only variant is v8: a registry or builder may write it or leave it out
    def norm(platform: str) -> tuple[str, ...]:
        parts = tuple(platform.lower().split("/"))
        return parts[:2] if parts[1:3] == ("arm64", "v8") else parts
    listed_parts, planned_parts = norm(listed), norm(planned)
    if len(planned_parts) == 2:
        return listed_parts[:2] == planned_parts  # a plan without a variant takes the architecture's any
    return listed_parts == planned_parts


def missing_platforms(media_type: str, body: Mapping[str, Any], planned: Sequence[str]) -> tuple[str, ...]:
    """The planned platforms the manifest (``media_type``, parsed ``body``) does not hold; () when it is the whole image.

    An image manifest holds one platform: it is whole only for a build of one
    (its platform is in its config, which a build of one platform has just written).
    """
    if is_index(media_type, body):
        listed = [platform_of(entry) for entry in body.get("manifests", ()) if isinstance(entry, Mapping)
                  and entry.get("mediaType") in (*IMAGE_MANIFESTS, *INDEXES)]
        listed = [platform for platform in listed if platform and not platform.startswith("unknown")]
        return tuple(p for p in planned if not any(same_platform(found, p) for found in listed))
    if media_type in IMAGE_MANIFESTS or (not media_type and "layers" in body):
        return () if len(planned) <= 1 else tuple(planned)
    return tuple(planned)
