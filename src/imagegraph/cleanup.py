"""`invoke cleanup`: retention over the family's repositories in the registry, and with ``apply`` the deletions.

What may go is the retention policy's (:mod:`imagegraph.core.retention`);
:func:`imagegraph.adapters.prune.prune` looks, records and deletes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .adapters.forge_state import expiry_judge
from .adapters.prune import Pruning, prune
from .adapters.registry_apis import DeletionApi, DistributionApi, open_deletion_api
from .core.errors import RegistryError
from .core.registry_api import ApiChoice, ApiKind, choose_api, lifecycle_rules
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
    through the registry's own API where it has one (:mod:`imagegraph.core.registry_api`),
    holding the registry lease ``tags`` from the look to the read-back,
    so that no release or tag move of imagegraph's runs in between.
    """
    config = workspace.config
    policy = RetentionPolicy(keep=keep if keep is not None else config.keep, edge=config.edge_tag,
                             protect=(*DEFAULT_PROTECTED, *config.protect, *protect))
    repositories = [config.repository_path(spec.name) for spec in config.images if spec.push]
    choice = choose_api(config.registry_address.domain, config.retention_api)
    if choice.kind is ApiKind.LIFECYCLE:
        raise RegistryError(f"{choice.why}; imagegraph cannot delete there: give its repositories a lifecycle policy instead, the "
                            f"closest to this retention being {lifecycle_rules(policy.keep, policy.protect)}")
    api = open_deletion_api(choice, workspace.registry, say=say)
    expire = expiry_judge(workspace.git, config.pull_request_age, say=say) if config.pull_request_age is not None else None
    if not apply:  # a dry run deletes nothing and writes only the doomed record: it takes no lease
        pruning = prune(workspace.registry, repositories, policy, apply=False, grace=grace, now=lambda: datetime.now(UTC), say=say,
                        api=api, expire=expire)
        return _counted(pruning, workspace, api, choice)
    # A failed run leaves its lease to expire: a DELETE it gave up on may still be under way in the registry.
    with workspace.lease("invoke cleanup --yes", say=say, expire_on_error=True) as lease:
        pruning = prune(workspace.registry, repositories, policy, apply=True, grace=grace, now=lambda: datetime.now(UTC), say=say,
                        guard=lease.check, api=api, expire=expire)
    return _counted(pruning, workspace, api, choice)


def _counted(pruning: Pruning, workspace: Workspace, api: DeletionApi, choice: ApiChoice) -> Pruning:
    counts = [("the registry API", getattr(workspace.registry, "requests", 0))]
    if not isinstance(api, DistributionApi):  # the distribution API's deletes are the registry client's own requests
        counts.append((api.name, api.requests))
    return replace(pruning, requests=tuple(counts), api=choice)
