"""`invoke cleanup`: retention over the family's repositories in the registry, and with ``apply`` the deletions.

What may go is the retention policy's (:mod:`imagegraph.core.retention`);
:func:`imagegraph.adapters.prune.prune` looks, records and deletes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .adapters.prune import Pruning, prune
from .core.retention import DEFAULT_PROTECTED, RetentionPolicy

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = ["DEFAULT_GRACE", "cleanup"]

#: How long a digest must have been found doomed before cleanup deletes it: longer than a pipeline takes from build to release.
DEFAULT_GRACE = timedelta(hours=1)


def cleanup(workspace: Workspace, *, keep: int | None = None, protect: Sequence[str] = (), apply: bool = False,
            grace: timedelta = DEFAULT_GRACE, say: Callable[[str], None] = print) -> Pruning:
    """The verdicts over every pushed image's repository, and with ``apply`` the deletions done (indexes first).

    Deletes only digests an earlier run found doomed at least ``grace``
    ago, and none that was tagged after the look (see :mod:`imagegraph.adapters.prune`),
    holding the registry lease ``tags`` from the look to the read-back,
    so that no release or tag move of imagegraph's runs in between.
    """
    config = workspace.config
    policy = RetentionPolicy(keep=keep if keep is not None else config.keep, edge=config.edge_tag,
                             protect=(*DEFAULT_PROTECTED, *config.protect, *protect))
    repositories = [config.repository_path(spec.name) for spec in config.images if spec.push]
    if not apply:  # a dry run deletes nothing and writes only the doomed record: it takes no lease
        return prune(workspace.registry, repositories, policy, apply=False, grace=grace, now=lambda: datetime.now(UTC), say=say)
    # A failed run leaves its lease to expire: a DELETE it gave up on may still be under way in the registry.
    with workspace.lease("invoke cleanup --yes", say=say, expire_on_error=True) as lease:
        return prune(workspace.registry, repositories, policy, apply=True, grace=grace, now=lambda: datetime.now(UTC), say=say,
                     guard=lease.check)
