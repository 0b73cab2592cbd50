"""A plan as a `docker buildx bake` definition: the images it builds, exactly as `invoke build` would.

imagegraph decides what to build; any BuildKit can run it. The bake file
holds one target per image the plan builds, each with the build request
`invoke build` would send (:func:`imagegraph.execute.build_request`):
Dockerfile, context, platforms, target stage, build arguments, labels,
registry cache (the request's own entries: :mod:`imagegraph.core.cache`) and
the fingerprint tag. A child's ``BASE_IMAGE`` is its
parent's fingerprint reference; when the parent is built in the same bake,
a named context maps that reference to the parent's target, so bake builds
the child on the parent's result without waiting for a push.

The format is bake's JSON (``group`` and ``target``, keys as in HCL).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.request import BuildRequest
from .workdirs import write_own

__all__ = ["GROUP", "bake_definition", "bake_json", "write_bake"]

#: The group that holds every target: what `docker buildx bake -f FILE` builds with no target named.
GROUP = "default"


def _target(request: BuildRequest, parent: str | None, parent_ref: str | None) -> dict[str, Any]:
    target: dict[str, Any] = {
        "context": str(request.context),
        "dockerfile": str(request.dockerfile),
        "platforms": list(request.platforms),
        "args": dict(request.build_args),
        "labels": dict(request.labels),
        "tags": [request.ref],
    }
    if request.target:
        target["target"] = request.target
    if request.no_cache:
        target["no-cache"] = True
    if parent is not None and parent_ref is not None:
        # FROM ${BASE_IMAGE} names the parent's reference; in this bake it is the parent target's result.
        target["contexts"] = {parent_ref: f"target:{parent}"}
    if request.cache:
        cache = request.cache_of(request.platforms)
        if cache is None:
            # bake builds every platform of a target at once: a request made for a build per platform has no such cache
            raise InputError("--bake", f"{request.image} is planned for a builder that builds one platform at a time (the docker "
                                        f"driver on the classic image store), which bake cannot use; name a docker-container builder "
                                        f"($BUILDX_BUILDER or images.yaml builder:), or turn on the containerd image store")
        if cache.cache_from:
            target["cache-from"] = list(cache.cache_from)
        if cache.cache_to:
            target["cache-to"] = list(request.cache_exports(cache))
    if request.push:
        target["output"] = [",".join(("type=registry", *request.exporter_options))]
    elif len(request.platforms) == 1:
        target["output"] = ["type=docker"]
    if not request.provenance:
        target["attest"] = ["type=provenance,disabled=true"]
    return target


def bake_definition(requests: Sequence[BuildRequest], parents: Mapping[str, str | None]) -> dict[str, Any]:
    """The bake definition of ``requests`` (parents first); ``parents`` maps an image to its parent image's name."""
    built = {request.image: request for request in requests}
    targets: dict[str, Any] = {}
    for request in requests:
        parent = parents.get(request.image)
        in_bake = parent if parent in built else None
        parent_ref = built[parent].ref if in_bake is not None and parent is not None else None
        targets[request.image] = _target(request, in_bake, parent_ref)
    return {"group": {GROUP: {"targets": list(targets)}}, "target": targets}


def bake_json(definition: Mapping[str, Any]) -> str:
    return json.dumps(definition, indent=2) + "\n"


def write_bake(path: Path, definition: Mapping[str, Any], *, within: Path) -> None:
    """Write the bake file; inside ``within`` (the repository) no folder on the way and not the file itself may be a link."""
    write_own(path, within, bake_json(definition))
