"""ghcr.io and GitHub's REST API for packages, stood in for in front of a real docker-registry.

What it answers, as the documentation says GitHub does:

- ``/v2/``: the registry, passed through, except a manifest ``DELETE``,
  answered as ghcr.io answers it: ``405`` with the distribution error code
  ``UNSUPPORTED`` (``{"errors":[{"code":"UNSUPPORTED","message":"The operation
  is unsupported."}]}``, as reported in podman-container-tools/skopeo#1880).
- Under :attr:`GitHubStandIn.api_url` (what ``GITHUB_API_URL`` names), the
  packages endpoints, https://docs.github.com/rest/packages/packages:

  - ``GET /orgs/{org}/packages/container/{package_name}/versions``
    ("List package versions for a package owned by an organization"),
    ``GET /users/{username}/...`` ("... owned by a user"),
    ``GET /user/...`` ("... owned by the authenticated user"). The
    ``/users/`` one "Lists package versions for a public package owned by a
    specified user" (https://docs.github.com/rest/packages/packages#list-package-versions-for-a-package-owned-by-a-user):
    a user's private package (:attr:`GitHubStandIn.private`) answers 404
    there, its versions too, and is seen only as ``/user/...`` with its
    owner's token. Listings take ``page`` and
    ``per_page`` (GitHub's maximum is 100; this stand-in's default and
    maximum is :attr:`GitHubStandIn.per_page`, small, so that a test of a
    few versions crosses pages), a ``Link`` header with ``next``/``last``
    (https://docs.github.com/rest/using-the-rest-api/using-pagination-in-the-rest-api);
    each version ``{id, name: <digest>, created_at, metadata: {package_type:
    container, container: {tags}}}``, newest first. Every manifest revision
    of the backing repository is a version, untagged ones included, with an
    id that stays the same while it exists. ``package_name`` is the path
    below the owner, URL-encoded (``repo%2Fapp``).
  - ``DELETE .../versions/{package_version_id}`` ("Delete package version
    for an organization / a user / the authenticated user"): 204, and the
    manifest really is deleted on the backing registry (by digest).
  - ``GET /users/{username}`` (``type``: ``User`` or ``Organization``),
    ``GET /user`` (the token's own account; 403 for a token that is no
    user's, as the job's ``GITHUB_TOKEN``), ``GET /rate_limit``.

- **Tokens** (``Authorization: Bearer|token``): a personal access token
  (classic) shows its scopes in ``X-OAuth-Scopes`` on every answer
  (https://docs.github.com/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps);
  listing needs ``read:packages``, deleting ``read:packages`` and
  ``delete:packages``. A token that shows no scopes (``GITHUB_TOKEN``, a
  fine-grained token) is refused a delete with 403 unless it was given
  the right (``Token.may_delete``: ``packages: write`` and the package's
  Actions access). No token: 401.
- **Rate limits** (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api):
  every answer carries ``X-RateLimit-Limit/Remaining/Used/Reset``; scripted
  with :meth:`GitHubStandIn.limit`: a secondary limit (403 with
  ``Retry-After``) or an exhausted primary one (403 with
  ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset``).

What GitHub's own messages say in a refusal is paraphrased; the statuses and
headers are the documented ones.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

from tests.standins import Reply, Request, StandIn, manifest_revisions

__all__ = ["GitHubStandIn", "Token"]

UNSUPPORTED = {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]}
_VERSIONS = re.compile(r"^/(?:(orgs|users)/([^/]+)|user)/packages/container/([^/]+)/versions(?:/(\d+))?$")
_MANIFEST_DELETE = re.compile(r"^/v2/.+/manifests/[^/]+$")


@dataclass(frozen=True)
class Token:
    """An account's token: a classic one with ``scopes``, or (``scopes=None``) one that shows none, like ``GITHUB_TOKEN``."""

    login: str | None
    scopes: tuple[str, ...] | None = ("read:packages", "write:packages", "delete:packages")
    #: For a token without scopes: whether the job's permissions and the package's settings let it delete.
    may_delete: bool = True


@dataclass
class _Limit:
    kind: str
    seconds: int
    method: str | None
    left: int


class GitHubStandIn(StandIn):
    def __init__(self, backing: str, storage: Path, *, tokens: dict[str, Token], users: tuple[str, ...] = (),
                 private: tuple[str, ...] = (), per_page: int = 3, prefix: str = "/api") -> None:
        super().__init__(backing)
        self.storage = storage
        self.tokens = tokens
        #: Owners that are users; every other owner is an organization.
        self.users = set(users) | {token.login for token in tokens.values() if token.login}
        #: Users' private packages (``OWNER/PACKAGE``): not found under ``/users/OWNER``, only as the owner's ``/user``.
        self.private = set(private)
        self.per_page = per_page
        self.prefix = prefix
        self._ids: dict[tuple[str, str], int] = {}
        self._next_id = 1000
        self._limits: list[_Limit] = []
        self._used = 0
        #: Answers that were a rate limit, by kind.
        self.limited: dict[str, int] = {}

    @property
    def api_url(self) -> str:
        return f"http://{self.address}{self.prefix}"

    def limit(self, kind: str, *, seconds: int = 1, method: str | None = None, times: int = 1) -> None:
        """The next ``times`` API requests (of ``method``) are rate-limited: ``secondary`` (Retry-After) or ``primary`` (reset)."""
        assert kind in ("secondary", "primary")
        with self.lock:
            self._limits.append(_Limit(kind, seconds, method, times))

    def api_requests(self, method: str | None = None) -> int:
        return self.count(method, self.prefix + "/")

    # --- the answers -------------------------------------------------------------------------------------------

    def answer(self, request: Request) -> Reply | None:
        if request.method == "DELETE" and _MANIFEST_DELETE.match(request.path):
            return Reply(405, UNSUPPORTED)
        if not request.path.startswith(self.prefix + "/"):
            return None
        token = self._token(request)
        reply = self._limited(request) or self._api(request, request.path[len(self.prefix):], token)
        return Reply(reply.status, reply.body, {**self._limit_headers(), **self._scope_headers(token), **reply.headers})

    def _token(self, request: Request) -> Token | None:
        scheme, _, value = (request.header("Authorization") or "").partition(" ")
        return self.tokens.get(value.strip()) if scheme.lower() in ("bearer", "token") else None

    def _limited(self, request: Request) -> Reply | None:
        with self.lock:
            self._used += 1
            for limit in self._limits:
                if limit.left > 0 and limit.method in (None, request.method):
                    limit.left -= 1
                    self.limited[limit.kind] = self.limited.get(limit.kind, 0) + 1
                    if limit.kind == "secondary":
                        return Reply(403, {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."},
                                     {"Retry-After": str(limit.seconds)})
                    return Reply(403, {"message": "API rate limit exceeded."},
                                 {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + limit.seconds)})
        return None

    def _limit_headers(self) -> dict[str, str]:
        with self.lock:
            used = self._used
        return {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(max(0, 5000 - used)), "X-RateLimit-Used": str(used),
                "X-RateLimit-Reset": str(int(time.time()) + 3600), "X-RateLimit-Resource": "core"}

    @staticmethod
    def _scope_headers(token: Token | None) -> dict[str, str]:
        if token is None or token.scopes is None:
            return {}
        return {"X-OAuth-Scopes": ", ".join(token.scopes), "X-Accepted-OAuth-Scopes": "read:packages"}

    def _api(self, request: Request, path: str, token: Token | None) -> Reply:
        if token is None:
            return Reply(401, {"message": "Requires authentication" if request.header("Authorization") is None else "Bad credentials"})
        if path == "/rate_limit" and request.method == "GET":
            return Reply(200, {"rate": {"limit": 5000, "used": self._used}})
        if path == "/user" and request.method == "GET":
            if token.login is None:
                return Reply(403, {"message": "Resource not accessible by integration"})
            return Reply(200, {"login": token.login, "type": "User"})
        account = re.fullmatch(r"/users/([^/]+)", path)
        if account and request.method == "GET":
            login = unquote(account.group(1))
            return Reply(200, {"login": login, "type": "User" if login in self.users else "Organization"})
        found = _VERSIONS.match(path)
        if found is None:
            return Reply(404, {"message": "Not Found"})
        kind, owner, package, version = found.groups()
        if kind is None:
            owner = token.login
            if owner is None:
                return Reply(403, {"message": "Resource not accessible by integration"})
        owner = unquote(owner)
        if (kind == "orgs") == (owner in self.users):  # an organization's packages are not a user's, and the other way round
            return Reply(404, {"message": "Package not found."})
        repository = f"{owner}/{unquote(package)}"
        if kind == "users" and repository in self.private:
            return Reply(404, {"message": "Package not found."})  # /users/OWNER/... shows public packages only
        if token.scopes is not None and not {"read:packages", "write:packages"} & set(token.scopes):
            return Reply(403, {"message": "You need at least read:packages scope to list packages."})
        revisions = manifest_revisions(self.storage, repository)
        if not revisions:
            return Reply(404, {"message": "Package not found."})
        if version is None:
            return self._listing(request, path, repository, revisions) if request.method == "GET" else Reply(404, {"message": "Not Found"})
        chosen = next((r for r in revisions if self._id(repository, r.digest) == int(version)), None)
        if chosen is None:
            return Reply(404, {"message": "Package version not found."})
        if request.method == "GET":
            return Reply(200, self._version(request, repository, chosen))
        if request.method != "DELETE":
            return Reply(404, {"message": "Not Found"})
        if token.scopes is not None and not {"read:packages", "delete:packages"} <= set(token.scopes) | (
                {"read:packages"} if "write:packages" in token.scopes else set()):
            return Reply(403, {"message": "You need delete:packages and read:packages scopes to delete a package version."})
        if token.scopes is None and not token.may_delete:
            return Reply(403, {"message": "Resource not accessible by integration"})
        gone = self.delete_manifest(repository, chosen.digest)
        if gone == 404:
            return Reply(404, {"message": "Package version not found."})
        if gone != 202:
            return Reply(500, {"message": f"the backing registry answered {gone}"})
        return Reply(204, b"")

    def _id(self, repository: str, digest: str) -> int:
        with self.lock:
            if (repository, digest) not in self._ids:
                self._next_id += 1
                self._ids[(repository, digest)] = self._next_id
            return self._ids[(repository, digest)]

    def _version(self, request: Request, repository: str, revision) -> dict:
        owner, _, package = repository.partition("/")
        api_url = self.origin(request) + self.prefix
        number = self._id(repository, revision.digest)
        when = datetime.fromtimestamp(revision.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"id": number, "name": revision.digest, "created_at": when, "updated_at": when,
                "url": f"{api_url}/orgs/{owner}/packages/container/{quote(package, safe='')}/versions/{number}",
                "package_html_url": f"https://github.com/orgs/{owner}/packages/container/package/{quote(package, safe='')}",
                "metadata": {"package_type": "container", "container": {"tags": list(revision.tags)}}}

    def _listing(self, request: Request, path: str, repository: str, revisions) -> Reply:
        query = request.query
        try:
            per_page = min(self.per_page, 100, max(1, int(query.get("per_page", self.per_page))))
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            return Reply(422, {"message": "Invalid request."})
        for revision in revisions:
            self._id(repository, revision.digest)  # ids in the order versions were pushed
        newest = sorted(revisions, key=lambda r: (-r.created, -self._id(repository, r.digest)))
        chunk = newest[(page - 1) * per_page: page * per_page]
        last = max(1, -(-len(newest) // per_page))
        state = f"&state={query['state']}" if "state" in query else ""
        link = lambda n, rel: f'<{self.origin(request)}{self.prefix}{path}?per_page={per_page}&page={n}{state}>; rel="{rel}"'  # noqa: E731
        links = ([link(page + 1, "next"), link(last, "last")] if page < last else []) + (
            [link(page - 1, "prev"), link(1, "first")] if page > 1 else [])
        return Reply(200, [self._version(request, repository, r) for r in chunk], {"Link": ", ".join(links)} if links else {})
