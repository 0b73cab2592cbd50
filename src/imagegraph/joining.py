"""`invoke join`: every planned image's index made in the registry from its platforms' images, then the branch tags moved.

The runs of each platform push each image's part under its platform tag
(:func:`imagegraph.core.join.part_tag`); the join reads what those tags and
the fingerprint tags name, lets :func:`imagegraph.core.join.decide_join`
decide, writes each index to its fingerprint tag and reads the tag back: it
must name exactly the digest written. Then the branch tags move as after
`invoke build` (:func:`imagegraph.publishing.publish_tags`), from the joined
images. A join refused (a platform not pushed yet) writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .core.errors import ImagegraphError, RegistryError
from .core.join import JoinImage, JoinPlan, JoinState, JoinStep, Manifest, decide_join, part_tag
from .core.manifests import is_index
from .core.plan import Decision, ImagePlan, Plan
from .core.result import ImageResult
from .core.values import shown

if TYPE_CHECKING:
    from .adapters.registry import Registry
    from .workspace import Workspace

__all__ = ["Joined", "join", "read_join_facts", "write_joins"]


@dataclass(frozen=True)
class Joined:
    """What a join did: the plan it carried out, what it decided, and each image's result (for the tag move and the table)."""

    plan: Plan
    decided: JoinPlan
    results: tuple[ImageResult, ...]
    #: Seconds from the first registry read to the last read-back (the plan not counted).
    seconds: float


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


def _joinable(plan: Plan) -> list[ImagePlan]:
    """The plan's images the join makes: selected (--target) and pushed (an image kept local has no parts in the registry)."""
    return [entry for entry in plan.images if entry.decision is not Decision.SKIP and entry.push]


def read_join_facts(registry: Registry, entries: Sequence[ImagePlan]) -> list[JoinImage]:
    """What the registry holds for each image: its fingerprint tag, and each platform's tag when it has several platforms."""
    facts = []
    for entry in entries:
        repository, fingerprint = entry.image.repository, entry.fingerprint
        current = _read(registry, repository, fingerprint)
        parts = {}
        if len(entry.platforms) > 1:
            parts = {platform: _read(registry, repository, part_tag(fingerprint, entry.platforms, platform), config_platform=True)
                     for platform in entry.platforms}
        facts.append(JoinImage(entry.name, repository, fingerprint, entry.platforms, current, parts))
    return facts


def write_joins(registry: Registry, steps: Sequence[JoinStep]) -> None:
    """Write each index to its fingerprint tag, then read every tag back: each must name exactly the digest written."""
    for step in steps:
        written = registry.put_manifest(step.repository, step.fingerprint, step.index, step.media_type)
        if written != step.digest:
            raise RegistryError(f"registry {registry.host} stored {step.repository}:{step.fingerprint} as {written[:19]}…, not the "
                                f"{step.digest[:19]}… written (the index was changed on the way); run `invoke join` again")
    for step in steps:
        now = registry.manifest_digest(step.repository, step.fingerprint)
        if now != step.digest:
            where = "is gone" if now is None else f"names {now[:19]}…"
            raise RegistryError(f"{step.repository}:{step.fingerprint} {where} after the join, not the {step.digest[:19]}… written "
                                f"(another run or a cleanup changed it meanwhile); run `invoke join` again")


def _result(entry: ImagePlan, step: JoinStep) -> ImageResult:
    made = f"{', '.join(step.platforms)}" + (f" + {step.attestations} attestation(s)" if step.attestations else "")
    reason = f"joined: {made}" if step.state is JoinState.JOIN else "already joined: the fingerprint tag names every platform"
    return ImageResult(entry.name, entry.decision, entry.ref, reason, digest=step.digest, pushed=step.state is JoinState.JOIN)


def join(workspace: Workspace, *, dry_run: bool = False, clock: Callable[[], float], say: Callable[[str], None] = print) -> Joined:
    """Join every planned image whose parts are pushed; a refusal is one :class:`ImagegraphError` line, and nothing is written.

    The branch tags are the caller's to move next, from :attr:`Joined.results`
    (:func:`imagegraph.publishing.publish_tags`, as after a build).
    """
    plan = workspace.plan(say=say)
    started = clock()
    entries = _joinable(plan)
    decided = decide_join(read_join_facts(workspace.registry, entries))
    if decided.refusal is not None:
        raise ImagegraphError(decided.refusal)
    if not dry_run:
        write_joins(workspace.registry, decided.to_write)
    by_name = {step.name: step for step in decided.steps}
    return Joined(plan, decided, tuple(_result(entry, by_name[entry.name]) for entry in entries), clock() - started)
