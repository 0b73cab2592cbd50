"""A Docker Hub stand-in: Docker Hub's API and its registry's rules, in front of a real distribution registry.

One loopback HTTP server answers, as Docker documents them:

- **The registry** (``/v2/...``, https://docs.docker.com/reference/api/registry/latest/):
  every request is proxied to the backing registry, behind the bearer-token
  flow of https://docs.docker.com/reference/api/registry/auth/ (``/v2/``
  answers 401 with ``WWW-Authenticate: Bearer realm=.../token,service=registry.docker.io``;
  ``/token`` grants the subset of the asked actions the credentials hold, in
  the JWT's ``access`` claim; a request whose token lacks the action is
  answered 401 ``insufficient_scope``). ``DELETE /v2/<name>/manifests/<digest>``
  is answered as Docker Hub's registry answers it
  (https://docs.docker.com/reference/api/registry/latest/#tag/delete): 403
  while a tag or an image index in the repository still names the manifest,
  202 otherwise, and then it is really deleted on the backing registry.
- **The Hub API** (under ``/hub``; https://docs.docker.com/reference/api/hub/latest/):
  ``POST /v2/auth/token`` (``identifier``/``secret`` → ``access_token``;
  #tag/authentication-api), ``POST /v2/users/login`` (the deprecated one:
  ``username``/``password`` → ``token``), ``GET /v2/namespaces/{ns}/repositories/{repo}/tags``
  (pages of at most :attr:`DockerHubStandIn.page_size` whatever is asked, the
  next page's URL in ``next``; #tag/repositories), ``GET .../tags/{tag}``, and
  ``DELETE /v2/repositories/{ns}/{repo}/tags/{tag}/`` (the path Docker's
  hub-tool deletes tags by: 204, 404 for no such tag, 403 without the delete
  scope), which removes the tag from the backing registry's storage as the
  registry's own untag does.
- **Access scopes** of personal access tokens
  (https://docs.docker.com/security/access-tokens/reference/): each token is
  ``read``, ``write`` or ``delete`` (Read-only, Read & Write, Read, Write &
  Delete); only ``delete`` may delete, on either side.
- **Rate limits** (https://docs.docker.com/reference/api/hub/latest/#tag/rate-limiting):
  every Hub answer carries ``X-RateLimit-Limit``/``-Remaining``/``-Reset``;
  :meth:`DockerHubStandIn.limit` scripts 429 answers with ``Retry-After``.

Tags and digests are read from the backing registry's storage folder
(``_manifests/tags/<tag>/current/link``, ``_manifests/revisions/sha256/<hex>/link``),
which lists every manifest, untagged ones included. Requests are counted per
side in :attr:`DockerHubStandIn.counts`. The links it answers with (the token
realm, a listing's ``next``) lead to the address the client used, so that a
proxy in front (tests/integration/faultproxy.py) sees every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote, unquote

from tests.standins import Reply, Request, StandIn, manifest_revisions, remove_tag, repository_tags, stored_manifest

__all__ = ["DockerHubStandIn", "start_dockerhub"]

_KEY = b"dockerhub-standin"
_ACTIONS = {"anonymous": {"pull"}, "read": {"pull"}, "write": {"pull", "push"}, "delete": {"pull", "push", "delete"}}
_SERVICE = "registry.docker.io"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(hmac.new(_KEY, head.encode(), hashlib.sha256).digest())


def _verify(token: str) -> dict | None:
    head, _, signature = token.rpartition(".")
    if not head or not hmac.compare_digest(signature, _b64(hmac.new(_KEY, head.encode(), hashlib.sha256).digest())):
        return None
    payload = head.partition(".")[2]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims if claims.get("exp", 0) > time.time() else None


class DockerHubStandIn(StandIn):
    def __init__(self, backing: str, storage: Path, users: dict[str, dict[str, str]], *, page_size: int = 3) -> None:
        super().__init__(backing)
        self.storage = Path(storage)
        #: {username: {token: scope}}, scope one of "read", "write", "delete".
        self.users = users
        #: The most tags a listing page holds, whatever page_size asks (small, so clients cross pages).
        self.page_size = page_size
        #: Hub request numbers (1-based) answered 429, with the Retry-After to send.
        self.limits: dict[int, int] = {}
        self.hub_sent = 0
        self._hub_lock = threading.Lock()

    @property
    def hub_url(self) -> str:
        return f"http://{self.address}/hub"

    @property
    def counts(self) -> Counter:
        """Requests per side: ``registry``, ``token`` (its token service), ``hub`` (and ``hub GET``, ...), ``tag deleted``."""
        found: Counter = Counter()
        with self.lock:
            seen = list(self.seen)
        for request in seen:
            if request.path.startswith("/v2/"):
                found["registry"] += 1
            elif request.path == "/token":
                found["token"] += 1
            elif request.path.startswith("/hub/"):
                found["hub"] += 1
                found[f"hub {request.method}"] += 1
                found["tag deleted"] += request.method == "DELETE" and request.status == 204
        return found

    def limit(self, nth: int, retry_after: int = 1) -> None:
        """Answer the ``nth`` Hub request from now 429 with ``Retry-After: retry_after``."""
        with self._hub_lock:
            self.limits[self.hub_sent + nth] = retry_after

    # -- the backing registry's storage ---------------------------------------------------------------------------

    def tags(self, name: str) -> dict[str, tuple[str, float]]:
        """{tag: (digest, when it was pushed)} of repository ``name``."""
        return {tag: (found.digest, found.pushed) for tag, found in repository_tags(self.storage, name).items()}

    def revisions(self, name: str) -> set[str]:
        """Every manifest digest repository ``name`` holds, untagged ones included."""
        return {revision.digest for revision in manifest_revisions(self.storage, name)}

    def referenced(self, name: str, digest: str) -> str | None:
        """What still names ``digest`` in ``name`` (a tag, or an index), as Docker Hub's registry checks before a delete."""
        for tag, (target, _) in self.tags(name).items():
            if target == digest:
                return f"tag {tag}"
        for other in self.revisions(name) - {digest}:
            if any(entry.get("digest") == digest for entry in stored_manifest(self.storage, other).get("manifests") or ()):
                return f"index {other[:19]}"
        return None

    # -- the answers ------------------------------------------------------------------------------------------------

    def answer(self, request: Request) -> Reply | None:
        if request.path.startswith("/hub/"):
            return self._hub(request, request.path[len("/hub"):])
        if request.path == "/token":
            return self._token(request)
        if request.path.startswith("/v2/"):
            return self._registry(request)
        return Reply(404, {"detail": "not found"})

    @staticmethod
    def _basic(request: Request) -> tuple[str, str] | None:
        scheme, _, value = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, secret = base64.b64decode(value).decode().partition(":")
        return user, secret

    def _scope_of(self, user: str, secret: str) -> str | None:
        return self.users.get(user, {}).get(secret)

    @staticmethod
    def _bearer(request: Request) -> dict | None:
        scheme, _, value = (request.header("Authorization") or "").partition(" ")
        return _verify(value) if scheme.lower() == "bearer" else None

    # -- the registry's token service and the registry --------------------------------------------------------------

    def _token(self, request: Request) -> Reply:
        basic = self._basic(request)
        scope = "anonymous"
        if basic is not None:
            scope = self._scope_of(*basic)
            if scope is None:
                return Reply(401, {"details": "incorrect username or password"})
        access = []
        for item in request.query_all("scope"):
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = sorted(set(actions.split(",")) & _ACTIONS[scope])
            access.append({"type": kind, "name": name, "actions": granted})
        token = _jwt({"iss": "auth.docker.io", "sub": basic[0] if basic else "", "aud": _SERVICE, "access": access,
                      "exp": time.time() + 300})
        return Reply(200, {"token": token, "access_token": token, "expires_in": 300})

    def _challenge(self, request: Request, scope: str = "", error: str = "") -> Reply:
        header = f'Bearer realm="{self.origin(request)}/token",service="{_SERVICE}"'
        header += f',scope="{scope}"' if scope else ""
        header += f',error="{error}"' if error else ""
        return Reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}, {"WWW-Authenticate": header})

    def _registry(self, request: Request) -> Reply | None:
        claims = self._bearer(request)
        if request.path == "/v2/":
            return self._challenge(request) if claims is None else Reply(200, {})
        rest = request.path[len("/v2/"):]
        cut = max(rest.rfind(marker) for marker in ("/manifests/", "/blobs/", "/tags/"))
        name = rest[:cut] if cut > 0 else rest
        needed = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(request.method, "push")
        granted = {a for entry in (claims or {}).get("access", ()) if entry.get("name") == name for a in entry.get("actions", ())}
        if needed not in granted:
            return self._challenge(request, f"repository:{name}:{needed}", "insufficient_scope" if claims else "")
        if request.method == "DELETE" and "/manifests/" in rest:
            reference = unquote(rest[cut + len("/manifests/"):])
            if not reference.startswith("sha256:"):
                return Reply(400, {"errors": [{"code": "DIGEST_INVALID", "message": "a manifest is deleted by digest"}]})
            if reference not in self.revisions(name):
                return Reply(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
            holder = self.referenced(name, reference)
            if holder is not None:
                return Reply(403, {"errors": [{"code": "DENIED", "message": f"manifest is still referenced by {holder}"}]})
        return None  # to the backing registry

    # -- the Hub API ------------------------------------------------------------------------------------------------

    def _hub(self, request: Request, path: str) -> Reply:
        with self._hub_lock:
            self.hub_sent += 1
            retry_after = self.limits.pop(self.hub_sent, None)
        reset = str(int(time.time()) + 60)
        if retry_after is not None:
            return Reply(429, {"detail": "Rate limit exceeded", "error": False},
                         {"Retry-After": str(retry_after), "X-RateLimit-Limit": "180", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
        limits = {"X-RateLimit-Limit": "180", "X-RateLimit-Remaining": "179", "X-RateLimit-Reset": reset}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if request.method == "POST" and parts in (["v2", "auth", "token"], ["v2", "users", "login"]):
            body = json.loads(request.body or b"{}")
            login = parts[1] == "users"
            user, secret = (body.get("username"), body.get("password")) if login else (body.get("identifier"), body.get("secret"))
            scope = self._scope_of(user or "", secret or "")
            if scope is None:
                return Reply(401, {"detail": "Incorrect authentication credentials"}, limits)
            token = _jwt({"sub": user, "scope": scope, "exp": time.time() + 300})
            return Reply(200, {"token": token} if login else {"access_token": token}, limits)
        claims = self._bearer(request)
        if claims is None or "scope" not in claims:
            return Reply(401, {"detail": "Authentication credentials were not provided"}, limits)
        if request.method == "GET" and len(parts) in (6, 7) and parts[:2] == ["v2", "namespaces"] and parts[3] == "repositories" and parts[5] == "tags":
            return self._list_tags(request, f"{parts[2]}/{parts[4]}", parts[6] if len(parts) == 7 else None, limits)
        if request.method == "DELETE" and len(parts) == 6 and parts[:2] == ["v2", "repositories"] and parts[4] == "tags":
            if claims["scope"] != "delete":
                return Reply(403, {"detail": "access denied: insufficient scope"}, limits)
            if not remove_tag(self.storage, f"{parts[2]}/{parts[3]}", parts[5]):
                return Reply(404, {"detail": "Object not found"}, limits)
            return Reply(204, b"", limits)
        return Reply(404, {"detail": "Object not found"}, limits)

    def _entry(self, tag: str, digest: str, when: float) -> dict:
        body = stored_manifest(self.storage, digest)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(when))
        children = [entry for entry in body.get("manifests") or ()] or [{"digest": digest, "platform": {}}]
        images = [{"digest": child.get("digest"), "architecture": child.get("platform", {}).get("architecture", "amd64"),
                   "os": child.get("platform", {}).get("os", "linux"), "status": "active", "last_pushed": stamp} for child in children]
        return {"name": tag, "digest": digest, "media_type": body.get("mediaType", ""), "images": images, "tag_status": "active",
                "last_updated": stamp, "tag_last_pushed": stamp, "repository": 1, "full_size": 0}

    def _list_tags(self, request: Request, name: str, single: str | None, limits: dict[str, str]) -> Reply:
        if not (self.storage / "docker/registry/v2/repositories" / name).is_dir():
            return Reply(404, {"message": "object not found", "errinfo": {}}, limits)
        tags = self.tags(name)
        if single is not None:
            if single not in tags:
                return Reply(404, {"message": "tag not found", "errinfo": {}}, limits)
            return Reply(200, self._entry(single, *tags[single]), limits)
        page = max(1, int(request.query.get("page", "1")))
        size = min(int(request.query.get("page_size", "10")), 100, self.page_size)
        ordered = sorted(tags.items(), key=lambda item: (-item[1][1], item[0]))
        chunk = ordered[(page - 1) * size: page * size]
        namespace, _, repository = name.partition("/")
        base = f"{self.origin(request)}/hub/v2/namespaces/{quote(namespace)}/repositories/{quote(repository)}/tags"
        following = f"{base}?page={page + 1}&page_size={size}" if page * size < len(ordered) else None
        previous = f"{base}?page={page - 1}&page_size={size}" if page > 1 else None
        return Reply(200, {"count": len(ordered), "next": following, "previous": previous,
                           "results": [self._entry(tag, digest, when) for tag, (digest, when) in chunk]}, limits)


def start_dockerhub(backing, users: dict[str, dict[str, str]], *, page_size: int = 3) -> DockerHubStandIn:
    """A running stand-in in front of ``backing`` (a PrivateRegistry), on a free loopback port; close() it afterwards."""
    return DockerHubStandIn(backing.address, Path(backing.data), users, page_size=page_size)
