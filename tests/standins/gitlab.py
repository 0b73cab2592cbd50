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
import json
import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import requests

__all__ = ["PER_PAGE", "GitLabStandIn", "Seen", "Token", "start_gitlab"]

PER_PAGE = 2
INDEX_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")
ACCEPT = ", ".join((*INDEX_TYPES, "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"))
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"})


@dataclass(frozen=True)
class Token:
    """A token the stand-in knows: its scopes (a personal/project access token) or the project it belongs to (a job token)."""

    scopes: tuple[str, ...] = ("api",)
    #: The token user's role in every project (GitLab's access levels: 30 Developer, 40 Maintainer).
    access_level: int = 40
    #: A job token's own project (its path); None for an access token.
    job_project: str | None = None


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    status: int


@dataclass
class GitLabStandIn:
    backing: str
    storage: Path
    projects: dict[str, int]
    tokens: dict[str, Token]
    per_page: int = PER_PAGE
    address: str = ""
    seen: list[Seen] = field(default_factory=list)
    _limited: list[float] = field(default_factory=list)
    _ids: dict[str, int] = field(default_factory=dict)
    _children: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _local: threading.local = field(default_factory=threading.local)

    @property
    def http(self) -> requests.Session:
        """This thread's connection to the backing registry (kept open: a cleanup sends thousands of requests)."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    @property
    def api(self) -> str:
        return f"http://{self.address}/api/v4"

    def limit(self, times: int = 1, retry_after: float = 1.0) -> None:
        """Answer the next ``times`` API requests 429 Too Many Requests, asking to wait ``retry_after`` seconds."""
        with self._lock:
            self._limited.extend([retry_after] * times)

    def count(self, method: str | None = None, prefix: str = "/api/v4") -> int:
        return sum(1 for s in self.seen if (method is None or s.method == method) and s.path.startswith(prefix))

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- the backing registry's storage --------------------------------------------------

    @property
    def _root(self) -> Path:
        return self.storage / "docker/registry/v2/repositories"

    def repositories(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(str(p.parent.relative_to(self._root)) for p in self._root.rglob("_manifests") if p.is_dir())

    def tags(self, name: str) -> dict[str, str]:
        folder = self._root / name / "_manifests/tags"
        found = {}
        for link in sorted(folder.glob("*/current/link")) if folder.is_dir() else ():
            with contextlib.suppress(OSError):
                found[link.parent.parent.name] = link.read_text().strip()
        return found

    def repository_id(self, name: str) -> int:
        with self._lock:
            return self._ids.setdefault(name, 1000 + len(self._ids))

    def children(self, name: str, digest: str) -> tuple[str, ...]:
        """The platform manifests an index lists (() for an image); content is immutable, so each digest is read once."""
        if digest not in self._children:
            response = self.http.get(f"http://{self.backing}/v2/{name}/manifests/{digest}", headers={"Accept": ACCEPT}, timeout=10)
            body = response.json() if response.status_code == 200 else {}
            self._children[digest] = tuple(m["digest"] for m in body.get("manifests") or () if isinstance(m, dict) and "digest" in m)
        return self._children[digest]

    def untag(self, name: str, tag: str) -> None:
        """Delete one tag; then collect what no tag names any more (see the module's note)."""
        digest = self.tags(name).get(tag)
        if digest is None:
            return
        shutil.rmtree(self._root / name / "_manifests/tags" / tag)
        self._collect(name, digest)

    def _collect(self, name: str, digest: str) -> None:
        live: set[str] = set()
        pending = list(self.tags(name).values())
        while pending:
            current = pending.pop()
            if current not in live:
                live.add(current)
                pending.extend(self.children(name, current))
        if digest in live:
            return
        children = self.children(name, digest)
        self.http.delete(f"http://{self.backing}/v2/{name}/manifests/{digest}", timeout=10)
        for child in children:
            self._collect(name, child)


# --- HTTP ----------------------------------------------------------------------------------


class _Answer(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _handler(standin: GitLabStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._handle()

        do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _handle(self) -> None:
            path = urlsplit(self.path).path
            body = self._body()
            try:
                if path.startswith("/api/v4/"):
                    status, payload, headers = self._api(path.removeprefix("/api/v4"), parse_qs(urlsplit(self.path).query))
                    self._reply(status, json.dumps(payload).encode() if payload is not None else b"", headers, "application/json")
                elif path == "/jwt/auth":
                    self._reply(200, json.dumps({"token": "registry-token-without-delete", "expires_in": 300}).encode(), {}, "application/json")
                elif path.startswith("/v2/") and self.command == "DELETE" and "/manifests/" in path:
                    name = path.removeprefix("/v2/").split("/manifests/")[0]
                    realm = f"http://{self.headers.get('Host') or standin.address}/jwt/auth"
                    challenge = (f'Bearer realm="{realm}",service="container_registry",scope="repository:{name}:delete",'
                                 f'error="insufficient_scope"')
                    error = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                                         "detail": [{"Type": "repository", "Class": "", "Name": name, "Action": "delete"}]}]}
                    self._reply(401, json.dumps(error).encode(), {"WWW-Authenticate": challenge}, "application/json")
                elif path.startswith("/v2"):
                    self._forward(body)
                else:
                    self._reply(404, b'{"message":"404 Not Found"}', {}, "application/json")
            except _Answer as answer:
                self._reply(answer.status, json.dumps(answer.body).encode() if answer.body is not None else b"", answer.headers,
                            "application/json")

        def _reply(self, status: int, data: bytes, headers: dict[str, str], content_type: str) -> None:
            standin.seen.append(Seen(self.command, urlsplit(self.path).path, status))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _forward(self, body: bytes) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP and k.lower() != "content-length"}
            response = standin.http.request(self.command, f"http://{standin.backing}{self.path}", headers=headers, data=body or None,
                                        allow_redirects=False, timeout=60)
            data = b"" if self.command == "HEAD" else response.content
            standin.seen.append(Seen(self.command, urlsplit(self.path).path, response.status_code))
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in _HOP and key.lower() not in ("content-length", "content-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", response.headers.get("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        # --- the API ----------------------------------------------------------------------

        def _api(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
            headers = self._rate_headers()
            with standin._lock:
                wait = standin._limited.pop(0) if standin._limited else None
            if wait is not None:
                raise _Answer(429, {"message": "Retry later"}, {**headers, "RateLimit-Remaining": "0",
                                                               "RateLimit-Reset": str(math.ceil(time.time() + wait)),
                                                               "Retry-After": str(math.ceil(wait))})
            token = self._token()
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
                return 200, {"id": standin.projects[project], "path_with_namespace": project, "name": project.rsplit("/", 1)[-1],
                             "permissions": {"project_access": {"access_level": token.access_level, "notification_level": 3},
                                             "group_access": None}}, headers
            if rest[:2] != ["registry", "repositories"]:
                raise _Answer(404, {"message": "404 Not Found"})
            self._need(token, "read_api")
            names = [n for n in standin.repositories() if n == project or n.startswith(project + "/")]
            if len(rest) == 2 and self.command == "GET":
                items = [{"id": standin.repository_id(n), "name": n.removeprefix(project).strip("/"), "path": n,
                          "project_id": standin.projects[project], "location": f"{standin.address}/{n}",
                          "created_at": "2026-03-01T00:00:00.000Z", "cleanup_policy_started_at": None, "status": None} for n in names]
                return self._page(items, query, headers)
            by_id = {str(standin.repository_id(n)): n for n in names}
            if len(rest) < 4 or rest[2] not in by_id or rest[3] != "tags":
                raise _Answer(404, {"message": "404 Repository Not Found"})
            name = by_id[rest[2]]
            tags = standin.tags(name)
            if len(rest) == 4:
                if self.command != "GET":
                    raise _Answer(405, {"message": "405 Method Not Allowed"})  # the bulk delete is not stood in for
                items = [{"name": t, "path": f"{name}:{t}", "location": f"{standin.address}/{name}:{t}"} for t in sorted(tags)]
                return self._page(items, query, headers)
            tag = rest[4]
            if len(rest) != 5 or tag not in tags:
                raise _Answer(404, {"message": "404 Tag Not Found"})
            if self.command == "GET":
                link = standin._root / name / "_manifests/tags" / tag / "current/link"
                created = datetime.fromtimestamp(link.stat().st_mtime, UTC).isoformat(timespec="milliseconds")
                return 200, {"name": tag, "path": f"{name}:{tag}", "location": f"{standin.address}/{name}:{tag}",
                             "revision": tags[tag].removeprefix("sha256:"), "short_revision": tags[tag][7:16], "digest": tags[tag],
                             "created_at": created, "total_size": 0}, headers
            if self.command == "DELETE":
                self._need(token, "api")
                if token.access_level < 30:
                    raise _Answer(403, {"message": "403 Forbidden"})
                standin.untag(name, tag)
                return 200, None, headers
            raise _Answer(405, {"message": "405 Method Not Allowed"})

        def _token(self) -> Token:
            for header in ("PRIVATE-TOKEN", "JOB-TOKEN"):
                value = self.headers.get(header)
                if value is not None:
                    token = standin.tokens.get(value)
                    if token is None or (header == "JOB-TOKEN") != (token.job_project is not None):
                        raise _Answer(401, {"message": "401 Unauthorized"})
                    return token
            raise _Answer(401, {"message": "401 Unauthorized"})

        def _project(self, ident: str, token: Token) -> str:
            found = next((path for path, number in standin.projects.items() if ident in (path, str(number))), None)
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
            used = standin.count(prefix="/api/v4")
            return {"RateLimit-Limit": "2000", "RateLimit-Observed": str(used), "RateLimit-Remaining": str(max(1, 2000 - used)),
                    "RateLimit-Reset": str(int(time.time()) + 60)}

        def _page(self, items: list[Any], query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
            def number(key: str, default: int) -> int:
                raw = (query.get(key) or [str(default)])[-1]
                return int(raw) if raw.isdigit() and int(raw) > 0 else default

            per_page = min(number("per_page", standin.per_page), standin.per_page)
            pages = max(1, math.ceil(len(items) / per_page))
            page = number("page", 1)
            base = f"http://{self.headers.get('Host') or standin.address}{urlsplit(self.path).path}"

            def link(n: int) -> str:
                return f"{base}?{urlencode({'page': n, 'per_page': per_page})}"

            links = [f'<{link(page + 1)}>; rel="next"'] if page < pages else []
            links += [f'<{link(1)}>; rel="first"', f'<{link(pages)}>; rel="last"']
            return 200, items[(page - 1) * per_page:page * per_page], {
                **headers, "Link": ", ".join(links), "X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "", "X-Prev-Page": str(page - 1) if page > 1 else ""}

    return Handler


@contextlib.contextmanager
def start_gitlab(registry, projects: dict[str, int], tokens: dict[str, Token], *, per_page: int = PER_PAGE) -> Iterator[GitLabStandIn]:
    """A GitLab stand-in in front of ``registry`` (a ``private_registry``: ``.address``, ``.data``), closed afterwards."""
    standin = GitLabStandIn(registry.address, Path(registry.data), dict(projects), dict(tokens), per_page)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    server.daemon_threads = True
    standin._server = server
    standin.address = f"127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield standin
    finally:
        standin.close()

