"""A join's registry work: what the fingerprint and platform tags name, read; each index written, then read back.

Shared by `invoke join` (:mod:`imagegraph.joining`, every planned image after
the runs of each platform) and the executor (one image, right after the
classic image store's builds pushed its platforms one by one). What to write,
or why not, is :func:`imagegraph.core.join.decide_join`'s to say; the
registry client tries a passing error again (a manifest PUT is idempotent:
the same bytes under the same name).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.errors import RegistryError
from ..core.join import JoinImage, JoinStep, Manifest, part_tag
from ..core.manifests import is_index
from ..core.plan import ImagePlan
from ..core.values import shown

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["read_join_facts", "write_joins"]


def _read(registry: Registry, repository: str, tag: str, *, config_platform: bool = False) -> Manifest | None:
    found = registry.read_manifest(repository, tag)
    if found is None:
        return None
    media_type, data = found
    try:
        body = json.loads(data)
    except ValueError:
        raise RegistryError(f"{shown(f'{repository}:{tag}')} is not a JSON manifest; push that image again") from None
    if not isinstance(body, dict):
        raise RegistryError(f"{shown(f'{repository}:{tag}')} is not a JSON manifest; push that image again")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    platform = _config_platform(registry, repository, body) if config_platform and not is_index(media_type, body) else ""
    return Manifest(media_type, digest, len(data), body, config_platform=platform)


def _config_platform(registry: Registry, repository: str, body: dict) -> str:
    """The platform an image manifest's config names (``linux/arm64/v8``); "" when it names none."""
    config = body.get("config")
    digest = config.get("digest") if isinstance(config, dict) else None
    if not isinstance(digest, str):
        return ""
    try:
        named = json.loads(registry.blob(repository, digest))
    except ValueError:
        return ""
    if not isinstance(named, dict):
        return ""
    return "/".join(str(named[key]) for key in ("os", "architecture", "variant") if named.get(key))


def read_join_facts(registry: Registry, entries: Sequence[ImagePlan], *, current: bool = True) -> list[JoinImage]:
    """What the registry holds for each image: its fingerprint tag, and each platform's tag when it has several platforms.

    ``current``: read what the fingerprint tag names, so that an image joined already is left as it is; a build that has
    just pushed its platforms passes False, and its index is made from them whatever the tag named before (a forced rebuild).
    """
    facts = []
    for entry in entries:
        repository, fingerprint = entry.image.repository, entry.fingerprint
        now = _read(registry, repository, fingerprint) if current or len(entry.platforms) == 1 else None
        parts = {}
        if len(entry.platforms) > 1:
            parts = {platform: _read(registry, repository, part_tag(fingerprint, entry.platforms, platform), config_platform=True)
                     for platform in entry.platforms}
        facts.append(JoinImage(entry.name, repository, fingerprint, entry.platforms, now, parts))
    return facts


def write_joins(registry: Registry, steps: Sequence[JoinStep], *, again: str = "invoke join") -> None:
    """Write each index to its fingerprint tag, then read every tag back: each must name exactly the digest written.

    ``again``: the command the error lines say to run again.
    """
    for step in steps:
        written = registry.put_manifest(step.repository, step.fingerprint, step.index, step.media_type)
        if written != step.digest:
            raise RegistryError(f"registry {registry.host} stored {step.repository}:{step.fingerprint} as {written[:19]}…, not the "
                                f"{step.digest[:19]}… written (the index was changed on the way); run `{again}` again")
    for step in steps:
        now = registry.manifest_digest(step.repository, step.fingerprint)
        if now != step.digest:
            where = "is gone" if now is None else f"names {now[:19]}…"
            raise RegistryError(f"{step.repository}:{step.fingerprint} {where} after the join, not the {step.digest[:19]}… written "
                                f"(another run or a cleanup changed it meanwhile); run `{again}` again")
