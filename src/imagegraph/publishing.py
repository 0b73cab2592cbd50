"""A build's tag move: after the plan ran, its images get the event's moving tags (edge and sha-<7> on the default branch).

Which tags, and when none moves, is the tag policy's (:func:`imagegraph.core.tags.publication`,
from the plan's tags); :func:`imagegraph.adapters.tagmove.move_family_tags` moves them,
all or nothing and forward only, under the registry lease ``tags``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .adapters.tagmove import move_family_tags
from .core.plan import Decision, Plan
from .core.tags import FamilyImage, TagMoves, publication

if TYPE_CHECKING:
    from .core.result import ImageResult
    from .workspace import Workspace

__all__ = ["publish_tags"]


def publish_tags(workspace: Workspace, results: Sequence[ImageResult], plan: Plan, *, say: Callable[[str], None] = print,
                 command: str = "invoke build") -> TagMoves:
    """Give every pushed image of ``plan`` the tags the plan gave it, from ``results`` (what the run did); the outcome in one line.

    ``command`` is the run's own (`invoke build`, `invoke join`): the lease names it, and a failed move says to run it again.

    No tag moves when any image failed, when an image input has uncommitted
    changes, or on a version-tag event; a registry error while moving puts
    back what moved; a forward-only tag that a newer commit's run moved stays.
    """
    event = workspace.event()
    images = [FamilyImage(entry.name, workspace.config.repository_path(entry.name), entry.fingerprint, entry.push, entry.tags,
                          selected=entry.decision is not Decision.SKIP) for entry in plan.images]
    inputs = {path for entry in plan.images for path, _ in entry.files}
    decided = publication(event, images, results, dirty=sorted(inputs & set(workspace.sources.status)))
    for note in decided.notes:
        say(note)
    if decided.settled is not None:
        return decided.settled
    with workspace.lease(f"{command} (tag moves)", say=say) as lease:
        return move_family_tags(workspace.registry, decided.requests, rerun=f"`{command}`", commit=event.sha or workspace.git.head(),
                                history=workspace.git, say=say, guard=lease.check)
