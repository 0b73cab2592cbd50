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
  (pages of at most :attr:`DockerHubStandin.page_size` whatever is asked, the
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
  :meth:`DockerHubStandin.limit` scripts 429 answers with ``Retry-After``.

Tags and digests are read from the backing registry's storage folder
(``_manifests/tags/<tag>/current/link``, ``_manifests/revisions/sha256/<hex>/link``),
which lists every manifest, untagged ones included. Requests are counted per
side in :attr:`DockerHubStandin.counts`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import requests

__all__ = ["DockerHubStandin", "start_dockerhub"]

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


@dataclass
class DockerHubStandin:
    backing: object  # tests.integration.registries.PrivateRegistry
    #: {username: {token: scope}}, scope one of "read", "write", "delete".
    users: dict[str, dict[str, str]]
    #: The most tags a listing page holds, whatever page_size asks (small, so clients cross pages).
    page_size: int = 3
    counts: Counter = field(default_factory=Counter)
    #: Hub request numbers (1-based) answered 429, with the Retry-After to send.
    limits: dict[int, int] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None
    hub_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    @property
    def hub_url(self) -> str:
        return f"http://{self.address}/hub"

    def limit(self, nth: int, retry_after: int = 1) -> None:
        """Answer the ``nth`` Hub request from now 429 with ``Retry-After: retry_after``."""
        with self.lock:
            self.limits[self.hub_sent + nth] = retry_after

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- the backing registry's storage ---------------------------------------------------------------------------

    def _repo(self, name: str) -> Path:
        return Path(self.backing.data) / "docker/registry/v2/repositories" / name

    def tags(self, name: str) -> dict[str, tuple[str, float]]:
        """{tag: (digest, when it was pushed)} of repository ``name``."""
        found = {}
        folder = self._repo(name) / "_manifests/tags"
        for link in folder.glob("*/current/link") if folder.is_dir() else ():
            found[link.parent.parent.name] = (link.read_text().strip(), link.stat().st_mtime)
        return found

    def revisions(self, name: str) -> set[str]:
        """Every manifest digest repository ``name`` holds, untagged ones included."""
        folder = self._repo(name) / "_manifests/revisions/sha256"
        return {f"sha256:{link.parent.name}" for link in folder.glob("*/link")} if folder.is_dir() else set()

    def manifest(self, digest: str) -> dict:
        algorithm, _, hexa = digest.partition(":")
        data = Path(self.backing.data) / "docker/registry/v2/blobs" / algorithm / hexa[:2] / hexa / "data"
        try:
            return json.loads(data.read_bytes())
        except (OSError, ValueError):
            return {}

    def referenced(self, name: str, digest: str) -> str | None:
        """What still names ``digest`` in ``name`` (a tag, or an index), as Docker Hub's registry checks before a delete."""
        for tag, (target, _) in self.tags(name).items():
            if target == digest:
                return f"tag {tag}"
        for other in self.revisions(name) - {digest}:
            if any(entry.get("digest") == digest for entry in self.manifest(other).get("manifests") or ()):
                return f"index {other[:19]}"
        return None


class _Handler(BaseHTTPRequestHandler):
    standin: DockerHubStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        return

    def _send(self, status: int, body: bytes | dict | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if isinstance(body, dict):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _basic(self) -> tuple[str, str] | None:
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, secret = base64.b64decode(value).decode().partition(":")
        return user, secret

    def _scope_of(self, user: str, secret: str) -> str | None:
        return self.standin.users.get(user, {}).get(secret)

    def _bearer(self) -> dict | None:
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        return _verify(value) if scheme.lower() == "bearer" else None

    def do_GET(self) -> None:
        self._route()

    do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def _route(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path.startswith("/hub/"):
                self._hub(path[len("/hub"):])
            elif path == "/token":
                self._token()
            elif path.startswith("/v2/"):
                self._registry(path)
            else:
                self._send(404, {"detail": "not found"})
        except (ConnectionError, BrokenPipeError):
            pass

    # -- the registry's token service and the registry --------------------------------------------------------------

    def _token(self) -> None:
        self.standin.counts["token"] += 1
        query = parse_qs(urlsplit(self.path).query)
        basic = self._basic()
        scope = "anonymous"
        if basic is not None:
            scope = self._scope_of(*basic)
            if scope is None:
                self._send(401, {"details": "incorrect username or password"})
                return
        access = []
        for item in query.get("scope", []):
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = sorted(set(actions.split(",")) & _ACTIONS[scope])
            access.append({"type": kind, "name": name, "actions": granted})
        token = _jwt({"iss": "auth.docker.io", "sub": basic[0] if basic else "", "aud": _SERVICE, "access": access,
                      "exp": time.time() + 300})
        self._send(200, {"token": token, "access_token": token, "expires_in": 300})

    def _challenge(self, scope: str = "", error: str = "") -> None:
        header = f'Bearer realm="http://{self.standin.address}/token",service="{_SERVICE}"'
        header += f',scope="{scope}"' if scope else ""
        header += f',error="{error}"' if error else ""
        self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}, {"WWW-Authenticate": header})

    def _registry(self, path: str) -> None:
        self.standin.counts["registry"] += 1
        claims = self._bearer()
        if path == "/v2/":
            if claims is None:
                self._challenge()
            else:
                self._send(200, {})
            return
        rest = path[len("/v2/"):]
        cut = max(rest.rfind(marker) for marker in ("/manifests/", "/blobs/", "/tags/"))
        name = rest[:cut] if cut > 0 else rest
        needed = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(self.command, "push")
        granted = {a for entry in (claims or {}).get("access", ()) if entry.get("name") == name for a in entry.get("actions", ())}
        if needed not in granted:
            self._body()
            self._challenge(f"repository:{name}:{needed}", "insufficient_scope" if claims else "")
            return
        if self.command == "DELETE" and "/manifests/" in rest:
            reference = unquote(rest[cut + len("/manifests/"):])
            if not reference.startswith("sha256:"):
                self._send(400, {"errors": [{"code": "DIGEST_INVALID", "message": "a manifest is deleted by digest"}]})
                return
            if reference not in self.standin.revisions(name):
                self._send(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
                return
            holder = self.standin.referenced(name, reference)
            if holder is not None:
                self._send(403, {"errors": [{"code": "DENIED", "message": f"manifest is still referenced by {holder}"}]})
                return
        self._proxy()

    def _proxy(self) -> None:
        backing = self.standin.backing.address
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "host", "content-length", "connection")}
        answer = requests.request(self.command, f"http://{backing}{self.path}", headers=headers, data=self._body(),
                                  allow_redirects=False, timeout=30)
        out = {k: v for k, v in answer.headers.items()
               if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")}
        if "Location" in out:
            out["Location"] = out["Location"].replace(f"http://{backing}", f"http://{self.standin.address}")
        self._send(answer.status_code, answer.content, out)

    # -- the Hub API ------------------------------------------------------------------------------------------------

    def _hub(self, path: str) -> None:
        standin = self.standin
        with standin.lock:
            standin.hub_sent += 1
            nth = standin.hub_sent
            retry_after = standin.limits.pop(nth, None)
        standin.counts["hub"] += 1
        standin.counts[f"hub {self.command}"] += 1
        reset = str(int(time.time()) + 60)
        if retry_after is not None:
            self._body()
            self._send(429, {"detail": "Rate limit exceeded", "error": False},
                       {"Retry-After": str(retry_after), "X-RateLimit-Limit": "180", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
            return
        limits = {"X-RateLimit-Limit": "180", "X-RateLimit-Remaining": "179", "X-RateLimit-Reset": reset}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if self.command == "POST" and parts in (["v2", "auth", "token"], ["v2", "users", "login"]):
            body = json.loads(self._body() or b"{}")
            login = parts[1] == "users"
            user, secret = (body.get("username"), body.get("password")) if login else (body.get("identifier"), body.get("secret"))
            scope = self._scope_of(user or "", secret or "")
            if scope is None:
                self._send(401, {"detail": "Incorrect authentication credentials"}, limits)
                return
            token = _jwt({"sub": user, "scope": scope, "exp": time.time() + 300})
            self._send(200, {"token": token} if login else {"access_token": token}, limits)
            return
        claims = self._bearer()
        if claims is None or "scope" not in claims:
            self._body()
            self._send(401, {"detail": "Authentication credentials were not provided"}, limits)
            return
        if self.command == "GET" and len(parts) in (6, 7) and parts[:2] == ["v2", "namespaces"] and parts[3] == "repositories" and parts[5] == "tags":
            self._list_tags(f"{parts[2]}/{parts[4]}", parts[6] if len(parts) == 7 else None, limits)
            return
        if self.command == "DELETE" and len(parts) == 6 and parts[:2] == ["v2", "repositories"] and parts[4] == "tags":
            name, tag = f"{parts[2]}/{parts[3]}", parts[5]
            if claims["scope"] != "delete":
                self._send(403, {"detail": "access denied: insufficient scope"}, limits)
                return
            folder = standin._repo(name) / "_manifests/tags" / tag
            if not (folder / "current/link").is_file():
                self._send(404, {"detail": "Object not found"}, limits)
                return
            shutil.rmtree(folder)
            standin.counts["tag deleted"] += 1
            self._send(204, None, limits)
            return
        self._send(404, {"detail": "Object not found"}, limits)

    def _entry(self, name: str, tag: str, digest: str, when: float) -> dict:
        body = self.standin.manifest(digest)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(when))
        children = [entry for entry in body.get("manifests") or ()] or [{"digest": digest, "platform": {}}]
        images = [{"digest": child.get("digest"), "architecture": child.get("platform", {}).get("architecture", "amd64"),
                   "os": child.get("platform", {}).get("os", "linux"), "status": "active", "last_pushed": stamp} for child in children]
        return {"name": tag, "digest": digest, "media_type": body.get("mediaType", ""), "images": images, "tag_status": "active",
                "last_updated": stamp, "tag_last_pushed": stamp, "repository": 1, "full_size": 0}

    def _list_tags(self, name: str, single: str | None, limits: dict[str, str]) -> None:
        if not self.standin._repo(name).is_dir():
            self._send(404, {"message": "object not found", "errinfo": {}}, limits)
            return
        tags = self.standin.tags(name)
        if single is not None:
            if single not in tags:
                self._send(404, {"message": "tag not found", "errinfo": {}}, limits)
            else:
                self._send(200, self._entry(name, single, *tags[single]), limits)
            return
        query = parse_qs(urlsplit(self.path).query)
        page = max(1, int(query.get("page", ["1"])[0]))
        size = min(int(query.get("page_size", ["10"])[0]), 100, self.standin.page_size)
        ordered = sorted(tags.items(), key=lambda item: (-item[1][1], item[0]))
        chunk = ordered[(page - 1) * size: page * size]
        base = f"http://{self.standin.address}/hub/v2/namespaces/{quote(name.split('/')[0])}/repositories/{quote(name.split('/')[1])}/tags"
        following = f"{base}?page={page + 1}&page_size={size}" if page * size < len(ordered) else None
        previous = f"{base}?page={page - 1}&page_size={size}" if page > 1 else None
        self._send(200, {"count": len(ordered), "next": following, "previous": previous,
                         "results": [self._entry(name, tag, digest, when) for tag, (digest, when) in chunk]}, limits)


def start_dockerhub(backing, users: dict[str, dict[str, str]], *, page_size: int = 3) -> DockerHubStandin:
    """A running stand-in in front of ``backing`` (a PrivateRegistry), on a free loopback port; stop() it afterwards."""
    standin = DockerHubStandin(backing, users, page_size=page_size)
    handler = type("Handler", (_Handler,), {"standin": standin})
    standin.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    standin.server.daemon_threads = True
    threading.Thread(target=standin.server.serve_forever, daemon=True).start()
    return standin
