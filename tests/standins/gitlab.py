"""A stand-in for GitLab (its REST API's container registry endpoints, and its registry) in front of a real docker-registry.

What it answers, as GitLab documents it:

- ``/v2/...``: the backing registry, proxied (the client's ``Host`` kept, so
  upload URLs point back here), except ``DELETE /v2/<name>/manifests/<ref>``:
  GitLab's registry grants the ``delete`` action only to tokens with the
  ``api`` scope (or a job token), so a ``docker login`` with a
  ``read_registry``/``write_registry`` token gets ``401 UNAUTHORIZED``
  (``error="insufficient_scope"``), which is what this answers every such
  DELETE (https://docs.gitlab.com/api/container_registry/#delete-image-tags-by-reference,
  https://distribution.github.io/distribution/spec/auth/token/). ``/jwt/auth``
  hands out the (delete-less) registry token the challenge points to.
- ``/api/v4`` (give it to imagegraph as ``CI_API_V4_URL``), tokens in
  ``PRIVATE-TOKEN`` or ``JOB-TOKEN``:

  - ``GET /personal_access_tokens/self``: the token's scopes
    (https://docs.gitlab.com/api/personal_access_tokens/#get-details-on-a-personal-access-token);
  - ``GET /projects/:id`` (an id or the URL-encoded path), with the token
    user's ``permissions`` (https://docs.gitlab.com/api/projects/#get-a-single-project);
    not open to job tokens (https://docs.gitlab.com/ci/jobs/ci_job_token/#job-token-access);
  - ``GET /projects/:id/registry/repositories``, ``GET .../:repository_id/tags``,
    ``GET .../tags/:tag_name`` (digest, created_at), ``DELETE .../tags/:tag_name``
    (200; 403 without the ``api`` scope or below the Developer role; 404 for an
    unknown tag) (https://docs.gitlab.com/api/container_registry/);
  - offset pagination: ``page``/``per_page`` (a default and a cap of
    :data:`PER_PAGE` where GitLab's are 20 and 100, so that tests cross pages), ``Link``,
    ``X-Next-Page``, ``X-Total`` (https://docs.gitlab.com/api/rest/#pagination);
  - rate limits: ``RateLimit-*`` on every answer; :meth:`GitLabStandIn.limit`
    scripts 429 answers with ``Retry-After`` (https://docs.gitlab.com/user/gitlab_com/#rate-limits-on-gitlabcom).

Registry repositories and tags are read from the backing registry's storage
folder (``docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link``).
The links it answers with (a listing's ``Link``, the token realm) lead to the
address the client used, so that a proxy in front sees every request.
Deleting a tag removes that tag only, as GitLab's tag delete does; the
backing registry deletes only by digest (and with it every tag of the
manifest), so the stand-in deletes the tag's folder, and when no tag names
the manifest any more it deletes the manifest by digest, then each platform
manifest of it that no other tagged image lists: what GitLab's online
garbage collection does to untagged manifests (it deletes them later; here
at once, so that a test can see the outcome).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from tests.standins import Reply, Request, StandIn, remove_tag, repositories, repository_tags, stored_manifest

__all__ = ["PER_PAGE", "GitLabStandIn", "Token", "start_gitlab"]

PER_PAGE = 2


@dataclass(frozen=True)
class Token:
    """A token the stand-in knows: its scopes (a personal/project access token) or the project it belongs to (a job token)."""

    scopes: tuple[str, ...] = ("api",)
    #: The token user's role in every project (GitLab's access levels: 30 Developer, 40 Maintainer).
    access_level: int = 40
    #: A job token's own project (its path); None for an access token.
    job_project: str | None = None


class _Answer(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class GitLabStandIn(StandIn):
    def __init__(self, backing: str, storage: Path, projects: dict[str, int], tokens: dict[str, Token], *,
                 per_page: int = PER_PAGE) -> None:
        super().__init__(backing)
        self.storage = Path(storage)
        self.projects = projects
        self.tokens = tokens
        self.per_page = per_page
        self._limited: list[float] = []
        self._ids: dict[str, int] = {}

    @property
    def api(self) -> str:
        return f"http://{self.address}/api/v4"

    def limit(self, times: int = 1, retry_after: float = 1.0) -> None:
        """Answer the next ``times`` API requests 429 Too Many Requests, asking to wait ``retry_after`` seconds."""
        with self.lock:
            self._limited.extend([retry_after] * times)

    # --- the backing registry's storage --------------------------------------------------

    def tags(self, name: str) -> dict[str, str]:
        return {tag: found.digest for tag, found in repository_tags(self.storage, name).items()}

    def repository_id(self, name: str) -> int:
        with self.lock:
            return self._ids.setdefault(name, 1000 + len(self._ids))

    def children(self, digest: str) -> tuple[str, ...]:
        """The platform manifests an index lists (() for an image)."""
        return tuple(m["digest"] for m in stored_manifest(self.storage, digest).get("manifests") or ()
                     if isinstance(m, dict) and "digest" in m)

    def untag(self, name: str, tag: str) -> None:
        """Delete one tag; then collect what no tag names any more (see the module's note)."""
        digest = self.tags(name).get(tag)
        if digest is not None and remove_tag(self.storage, name, tag):
            self._collect(name, digest)

    def _collect(self, name: str, digest: str) -> None:
        live: set[str] = set()
        pending = list(self.tags(name).values())
        while pending:
            current = pending.pop()
            if current not in live:
                live.add(current)
                pending.extend(self.children(current))
        if digest in live:
            return
        self.delete_manifest(name, digest)
        for child in self.children(digest):
            self._collect(name, child)

    # --- the answers ---------------------------------------------------------------------

    def answer(self, request: Request) -> Reply | None:
        path = request.path
        try:
            if path.startswith("/api/v4/"):
                status, payload, headers = self._api(request, path.removeprefix("/api/v4"))
                return Reply(status, payload if payload is not None else b"", headers)
            if path == "/jwt/auth":
                return Reply(200, {"token": "registry-token-without-delete", "expires_in": 300})
            if path.startswith("/v2/") and request.method == "DELETE" and "/manifests/" in path:
                name = path.removeprefix("/v2/").split("/manifests/")[0]
                challenge = (f'Bearer realm="{self.origin(request)}/jwt/auth",service="container_registry",scope="repository:{name}:delete",'
                             f'error="insufficient_scope"')
                error = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                                     "detail": [{"Type": "repository", "Class": "", "Name": name, "Action": "delete"}]}]}
                return Reply(401, error, {"WWW-Authenticate": challenge})
            if path.startswith("/v2"):
                return None  # to the backing registry
            return Reply(404, {"message": "404 Not Found"})
        except _Answer as answer:
            return Reply(answer.status, answer.body if answer.body is not None else b"", answer.headers)

    def _api(self, request: Request, path: str) -> tuple[int, Any, dict[str, str]]:
        headers = self._rate_headers()
        with self.lock:
            wait = self._limited.pop(0) if self._limited else None
        if wait is not None:
            raise _Answer(429, {"message": "Retry later"}, {**headers, "RateLimit-Remaining": "0",
                                                           "RateLimit-Reset": str(math.ceil(time.time() + wait)),
                                                           "Retry-After": str(math.ceil(wait))})
        token = self._token(request)
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["personal_access_tokens", "self"]:
            if token.job_project is not None:
                raise _Answer(401, {"message": "401 Unauthorized"})
            return 200, {"id": 1, "name": "imagegraph", "revoked": False, "active": True, "scopes": list(token.scopes),
                         "user_id": 1, "expires_at": None}, headers
        if len(parts) < 2 or parts[0] != "projects":
            raise _Answer(404, {"message": "404 Not Found"})
        project = self._project(parts[1], token)
        rest = parts[2:]
        if not rest:
            if token.job_project is not None:
                raise _Answer(401, {"message": "401 Unauthorized"})
            self._need(token, "read_api")
            return 200, {"id": self.projects[project], "path_with_namespace": project, "name": project.rsplit("/", 1)[-1],
                         "permissions": {"project_access": {"access_level": token.access_level, "notification_level": 3},
                                         "group_access": None}}, headers
        if rest[:2] != ["registry", "repositories"]:
            raise _Answer(404, {"message": "404 Not Found"})
        self._need(token, "read_api")
        names = [n for n in repositories(self.storage) if n == project or n.startswith(project + "/")]
        if len(rest) == 2 and request.method == "GET":
            items = [{"id": self.repository_id(n), "name": n.removeprefix(project).strip("/"), "path": n,
                      "project_id": self.projects[project], "location": f"{self.address}/{n}",
                      "created_at": "2026-03-01T00:00:00.000Z", "cleanup_policy_started_at": None, "status": None} for n in names]
            return self._page(request, items, headers)
        by_id = {str(self.repository_id(n)): n for n in names}
        if len(rest) < 4 or rest[2] not in by_id or rest[3] != "tags":
            raise _Answer(404, {"message": "404 Repository Not Found"})
        name = by_id[rest[2]]
        tags = repository_tags(self.storage, name)
        if len(rest) == 4:
            if request.method != "GET":
                raise _Answer(405, {"message": "405 Method Not Allowed"})  # the bulk delete is not stood in for
            items = [{"name": t, "path": f"{name}:{t}", "location": f"{self.address}/{name}:{t}"} for t in sorted(tags)]
            return self._page(request, items, headers)
        tag = rest[4]
        if len(rest) != 5 or tag not in tags:
            raise _Answer(404, {"message": "404 Tag Not Found"})
        if request.method == "GET":
            digest = tags[tag].digest
            created = datetime.fromtimestamp(tags[tag].pushed, UTC).isoformat(timespec="milliseconds")
            return 200, {"name": tag, "path": f"{name}:{tag}", "location": f"{self.address}/{name}:{tag}",
                         "revision": digest.removeprefix("sha256:"), "short_revision": digest[7:16], "digest": digest,
                         "created_at": created, "total_size": 0}, headers
        if request.method == "DELETE":
            self._need(token, "api")
            if token.access_level < 30:
                raise _Answer(403, {"message": "403 Forbidden"})
            self.untag(name, tag)
            return 200, None, headers
        raise _Answer(405, {"message": "405 Method Not Allowed"})

    def _token(self, request: Request) -> Token:
        for header in ("PRIVATE-TOKEN", "JOB-TOKEN"):
            value = request.header(header)
            if value is not None:
                token = self.tokens.get(value)
                if token is None or (header == "JOB-TOKEN") != (token.job_project is not None):
                    raise _Answer(401, {"message": "401 Unauthorized"})
                return token
        raise _Answer(401, {"message": "401 Unauthorized"})

    def _project(self, ident: str, token: Token) -> str:
        found = next((path for path, number in self.projects.items() if ident in (path, str(number))), None)
        if found is None or (token.job_project is not None and token.job_project != found):
            raise _Answer(404, {"message": "404 Project Not Found"})
        return found

    @staticmethod
    def _need(token: Token, scope: str) -> None:
        if token.job_project is not None:
            return  # a job token acts with its user's role on its own project
        enough = {"api": ("api",), "read_api": ("api", "read_api")}[scope]
        if not set(enough) & set(token.scopes):
            raise _Answer(403, {"error": "insufficient_scope",
                                "error_description": "The request requires higher privileges than provided by the access token.",
                                "scope": " ".join(enough)})

    def _rate_headers(self) -> dict[str, str]:
        used = self.count(prefix="/api/v4")
        return {"RateLimit-Limit": "2000", "RateLimit-Observed": str(used), "RateLimit-Remaining": str(max(1, 2000 - used)),
                "RateLimit-Reset": str(int(time.time()) + 60)}

    def _page(self, request: Request, items: list[Any], headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        def number(key: str, default: int) -> int:
            raw = request.query.get(key, str(default))
            return int(raw) if raw.isdigit() and int(raw) > 0 else default

        per_page = min(number("per_page", self.per_page), self.per_page)
        pages = max(1, math.ceil(len(items) / per_page))
        page = number("page", 1)
        base = f"{self.origin(request)}{request.path}"

        def link(n: int) -> str:
            return f"{base}?{urlencode({'page': n, 'per_page': per_page})}"

        links = [f'<{link(page + 1)}>; rel="next"'] if page < pages else []
        links += [f'<{link(1)}>; rel="first"', f'<{link(pages)}>; rel="last"']
        return 200, items[(page - 1) * per_page:page * per_page], {
            **headers, "Link": ", ".join(links), "X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
            "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "", "X-Prev-Page": str(page - 1) if page > 1 else ""}


@contextlib.contextmanager
def start_gitlab(registry, projects: dict[str, int], tokens: dict[str, Token], *, per_page: int = PER_PAGE) -> Iterator[GitLabStandIn]:
    """A GitLab stand-in in front of ``registry`` (a ``private_registry``: ``.address``, ``.data``), closed afterwards."""
    with GitLabStandIn(registry.address, Path(registry.data), dict(projects), dict(tokens), per_page=per_page) as standin:
        yield standin
