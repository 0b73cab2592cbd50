"""Which API deletes on a registry: a decision from facts (its host name, and images.yaml's ``retention: {api: ...}``).

Retention's verdicts are the same on every registry (:mod:`imagegraph.core.retention`);
how a doomed digest is listed and deleted is not:

- **distribution**: ``DELETE /v2/<name>/manifests/<digest>`` of the OCI
  distribution API (registry:2, Harbor, Zot, and any registry that takes it);
- **github**: ghcr.io answers that DELETE with 405 UNSUPPORTED; each manifest
  is a package version there, listed and deleted through GitHub's REST API
  for packages (untagged versions included, which the registry API cannot list);
- **dockerhub**: Docker Hub deletes through its own Hub API too;
- **gitlab**: GitLab's container registry deletes tags through GitLab's REST
  API (gitlab.com and self-managed), and collects untagged manifests itself;
- **lifecycle**: registries that delete only by rules of their own (Amazon ECR's
  lifecycle policies): imagegraph refuses, and prints the rule it would apply.

A host name decides for the public services; ``retention: {api: ...}`` names
the API for a self-hosted one (GitHub Enterprise's registry, a self-managed
GitLab). Where each API lives (its URL) never comes from images.yaml: a
committed file must not be able to send a token elsewhere (see
:mod:`imagegraph.adapters.registry_apis`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum

from .errors import InputError

__all__ = ["API_NAMES", "ApiChoice", "ApiKind", "choose_api", "lifecycle_rules", "parse_api"]


class ApiKind(StrEnum):
    DISTRIBUTION = "distribution"
    GITHUB = "github"
    DOCKERHUB = "dockerhub"
    GITLAB = "gitlab"
    LIFECYCLE = "lifecycle"


#: What each API is called in what cleanup prints.
API_NAMES = {
    ApiKind.DISTRIBUTION: "the registry API (DELETE /v2/<name>/manifests/<digest>)",
    ApiKind.GITHUB: "GitHub's REST API for packages",
    ApiKind.DOCKERHUB: "Docker Hub's API",
    ApiKind.GITLAB: "GitLab's container registry API",
    ApiKind.LIFECYCLE: "the registry's own lifecycle rules",
}

_HOSTS = {
    "ghcr.io": ApiKind.GITHUB,
    "docker.io": ApiKind.DOCKERHUB,
    "index.docker.io": ApiKind.DOCKERHUB,
    "registry-1.docker.io": ApiKind.DOCKERHUB,
    "registry.gitlab.com": ApiKind.GITLAB,
}
#: Amazon ECR (private: <account>.dkr.ecr.<region>.amazonaws.com[.cn]; public: public.ecr.aws).
_ECR = re.compile(r"^(\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?|public\.ecr\.aws)(:\d+)?$")


@dataclass(frozen=True)
class ApiChoice:
    kind: ApiKind
    #: Why, in words: "ghcr.io is GitHub's registry", "retention: api: gitlab in images.yaml".
    why: str

    @property
    def name(self) -> str:
        return API_NAMES[self.kind]


def parse_api(value: object, origin: str = "retention: api") -> ApiKind:
    """images.yaml's ``retention: {api: ...}``: one of the APIs imagegraph deletes through."""
    choices = [kind.value for kind in ApiKind if kind is not ApiKind.LIFECYCLE]
    if not isinstance(value, str) or value.strip().lower() not in choices:
        shown = value if isinstance(value, str | int | float) else type(value).__name__
        raise InputError(origin, f"is {str(shown)[:40]!r}; use one of {', '.join(choices)}")
    return ApiKind(value.strip().lower())


def choose_api(host: str, override: ApiKind | None = None) -> ApiChoice:
    """The API that lists and deletes on registry ``host`` (``HOST[:PORT]``): images.yaml's override, else the host's own."""
    if override is not None:
        return ApiChoice(override, f"retention: api: {override.value} in images.yaml")
    name = host.lower()
    if name in _HOSTS:
        kind = _HOSTS[name]
        owner = {ApiKind.GITHUB: "GitHub's", ApiKind.DOCKERHUB: "Docker Hub's", ApiKind.GITLAB: "gitlab.com's"}[kind]
        return ApiChoice(kind, f"{host} is {owner} registry")
    if _ECR.match(name):
        return ApiChoice(ApiKind.LIFECYCLE, f"{host} is Amazon ECR, which deletes by lifecycle policy")
    return ApiChoice(ApiKind.DISTRIBUTION, f"{host} takes the distribution API's deletes (name another with retention: api:)")


def lifecycle_rules(keep: int, protected: tuple[str, ...]) -> str:
    """The ECR lifecycle policy that comes closest to ``invoke cleanup``'s verdicts (as JSON, for the refusal to print).

    ECR's rules know tag prefixes and counts, not what a kept image needs; its
    own rules keep a multi-arch image's platform manifests with their index.
    """
    prefixes = sorted({p.rstrip("*") for p in protected if p and "*" not in p.rstrip("*") and "?" not in p and "[" not in p})
    rules = [{"rulePriority": 1, "description": "untagged manifests, a day after they lost their tag",
              "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1},
              "action": {"type": "expire"}}]
    if prefixes:
        rules.append({"rulePriority": 2, "description": "protected tags: kept (a count no repository reaches)",
                      "selection": {"tagStatus": "tagged", "tagPrefixList": prefixes, "countType": "imageCountMoreThan",
                                    "countNumber": 9999},
                      "action": {"type": "expire"}})
    rules.append({"rulePriority": len(rules) + 1, "description": f"keep the {keep} most recent images",
                  "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                  "action": {"type": "expire"}})
    return json.dumps({"rules": rules}, separators=(",", ":"))
