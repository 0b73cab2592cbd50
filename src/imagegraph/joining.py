"""`invoke join`: every planned image's index made in the registry from its platforms' images, then the branch tags moved.

The runs of each platform push each image's part under its platform tag
(:func:`imagegraph.core.join.part_tag`); the join reads what those tags and
the fingerprint tags name, lets :func:`imagegraph.core.join.decide_join`
decide, writes each index to its fingerprint tag and reads the tag back: it
must name exactly the digest written (:mod:`imagegraph.adapters.joins`, the
registry work the executor shares for the classic image store's builds).
Then the branch tags move as after `invoke build`
(:func:`imagegraph.publishing.publish_tags`), from the joined images. A join refused (a platform not pushed yet) writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .adapters.joins import read_join_facts, write_joins
from .core.errors import ImagegraphError
from .core.graph import descendants
from .core.join import JoinPlan, JoinState, JoinStep, decide_join
from .core.plan import Decision, ImagePlan, Plan
from .core.result import ImageResult

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = ["Joined", "join"]


@dataclass(frozen=True)
class Joined:
    """What a join did: the plan it carried out, what it decided, and each image's result (for the tag move and the table)."""

    plan: Plan
    decided: JoinPlan
    results: tuple[ImageResult, ...]
    #: Seconds from the first registry read to the last read-back (the plan not counted).
    seconds: float


def _joinable(plan: Plan) -> list[ImagePlan]:
    """The plan's images the join makes: selected (--target) and pushed (an image kept local has no parts in the registry)."""
    return [entry for entry in plan.images if entry.decision is not Decision.SKIP and entry.push]


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
    # --force: those images' parts were built again, so their index is made afresh whatever the fingerprint tag named
    forced = {*workspace.options.force, *(below for name in workspace.options.force for below in descendants(workspace.config, name))}
    facts = {fact.name: fact for fact in (*read_join_facts(workspace.registry, [e for e in entries if e.name not in forced]),
                                          *read_join_facts(workspace.registry, [e for e in entries if e.name in forced], current=False))}
    decided = decide_join([facts[entry.name] for entry in entries])
    if decided.refusal is not None:
        raise ImagegraphError(decided.refusal)
    if not dry_run:
        write_joins(workspace.registry, decided.to_write)
    by_name = {step.name: step for step in decided.steps}
    return Joined(plan, decided, tuple(_result(entry, by_name[entry.name]) for entry in entries), clock() - started)
