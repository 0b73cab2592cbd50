"""How cleanup lists and deletes on each registry: one :class:`DeletionApi` per API (:mod:`imagegraph.core.registry_api` chooses).

Cleanup reads tags and manifests through the distribution API on every
registry (they all answer it); what differs is what that API cannot do:

- list the untagged manifests a registry holds (GitHub's package versions,
  Docker Hub's images): :meth:`DeletionApi.untagged`;
- say whether the credentials may delete, before anything is deleted:
  :meth:`DeletionApi.check_rights` (one line naming the scope it needs);
- delete a manifest with its tags: :meth:`DeletionApi.delete`.

The verdicts, the grace period, the second look before each delete and the
read-back afterwards are the same on all of them (:mod:`imagegraph.adapters.prune`).

Tokens: each API takes its own (``GITHUB_TOKEN`` on Actions, ``CI_JOB_TOKEN``
or a personal token on GitLab, a Docker Hub access token), else the
registry's ``docker login`` credentials. An API's URL comes from the CI
service's own variables or the public default, never from images.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from ...core.errors import RegistryError
from ...core.registry_api import ApiChoice, ApiKind

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["DeletionApi", "DistributionApi", "open_deletion_api"]


class DeletionApi(Protocol):
    """What cleanup asks of a registry's own API, beyond the distribution API's reads."""

    #: In words, for what cleanup prints: "GitHub's REST API for packages".
    name: str
    #: The registry deletes untagged manifests itself once nothing names them (GitLab's garbage collection): cleanup
    #: then deletes tags only, and leaves an index's untagged platform manifests to it.
    collects_untagged: bool

    @property
    def requests(self) -> int:
        """How many requests this API was sent so far (the distribution API's reads are counted by the registry client)."""
        ...

    def untagged(self, repository: str) -> tuple[str, ...]:
        """Digests of manifests ``repository`` holds that no tag names and the distribution API cannot list; () where none can be known."""
        ...

    def check_rights(self, repositories: Sequence[str]) -> None:
        """Raise :class:`RegistryError` (one line naming the scope or role needed) when the credentials cannot delete there."""
        ...

    def delete(self, repository: str, digest: str, tags: Sequence[str]) -> bool:
        """Delete manifest ``digest`` of ``repository`` and the ``tags`` that name it; False when it was gone already."""
        ...


class DistributionApi:
    """The OCI distribution API's own delete: ``DELETE /v2/<name>/manifests/<digest>`` (registry:2, Harbor, Zot, ...)."""

    name = "the registry API"
    collects_untagged = False

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._sent = 0

    @property
    def requests(self) -> int:
        return self._sent

    def untagged(self, repository: str) -> tuple[str, ...]:
        return ()  # the distribution API lists tags only; what no tag or listed index names is out of its sight

    def check_rights(self, repositories: Sequence[str]) -> None:
        return None  # a token's delete scope shows only in the answer to a DELETE: the first one says it (405, 401)

    def delete(self, repository: str, digest: str, tags: Sequence[str]) -> bool:
        self._sent += 1
        return self.registry.delete_manifest(repository, digest)


def open_deletion_api(choice: ApiChoice, registry: Registry, *, environ: Mapping[str, str] = os.environ,
                      say: Callable[[str], None] = lambda line: None) -> DeletionApi:
    """The :class:`DeletionApi` for ``choice`` on ``registry``; a one-line error for a registry that deletes only by its own rules."""
    if choice.kind is ApiKind.DISTRIBUTION:
        return DistributionApi(registry)
    if choice.kind is ApiKind.GITHUB:
        from .github import GitHubPackages

        return GitHubPackages.from_environment(registry, environ=environ, say=say)
    if choice.kind is ApiKind.DOCKERHUB:
        from .dockerhub import DockerHub

        return DockerHub.from_environment(registry, environ=environ, say=say)
    if choice.kind is ApiKind.GITLAB:
        from .gitlab import GitLabRegistry

        return GitLabRegistry.from_environment(registry, environ=environ, say=say)
    raise RegistryError(f"{choice.why}: imagegraph cannot delete there")
