"""Stand-ins for registry services this machine cannot reach: small HTTP servers in front of a real distribution registry.

A stand-in answers what its service documents (cited in its module) and
passes the distribution API (``/v2/``) through to a real docker-registry, so
that a push, a pull and a deletion really happen there. Shared here:

- :class:`StandIn`: a threaded HTTP server on ``127.0.0.1:<free port>``; a
  subclass answers its own paths in :meth:`StandIn.answer`, everything else
  under ``/v2/`` is proxied to the backing registry (the client's ``Host``
  kept, so the upload URLs the registry makes point back at the stand-in);
  every request is counted (:attr:`StandIn.seen`);
- :func:`manifest_revisions`: every manifest a registry:2 storage folder
  holds for a repository (tagged or not), with its tags and when it was
  pushed: what a service's own API lists beside the distribution API.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Reply", "Request", "Revision", "StandIn", "manifest_revisions"]

#: Headers that belong to one connection, never forwarded.
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})


@dataclass(frozen=True)
class Request:
    method: str
    #: The path and query as sent (``/v2/a/b/manifests/x?n=1``).
    target: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.target).query).items()}

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


@dataclass(frozen=True)
class Reply:
    status: int
    #: Bytes as they are; anything else is sent as JSON.
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        if isinstance(self.body, bytes):
            return self.body, dict(self.headers)
        return json.dumps(self.body).encode(), {"Content-Type": "application/json; charset=utf-8", **self.headers}


class StandIn:
    """A service's stand-in on a free loopback port, in front of the registry at ``backing`` (``HOST:PORT``).

    Use as a context manager, or :meth:`close` it. Subclasses override
    :meth:`answer`; it runs on the server's threads (one per connection).
    """

    def __init__(self, backing: str) -> None:
        self.backing = backing
        #: (method, target) of every request that reached the stand-in, in order.
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def handle_one(self) -> None:
                request = Request(self.command, self.path, dict(self.headers.items()), self._body())
                with stand_in.lock:
                    stand_in.seen.append((request.method, request.target))
                reply = stand_in.answer(request)
                if reply is None:
                    reply = stand_in.proxy(request) if request.path.startswith("/v2/") or request.path == "/v2" else Reply(404, {"message": "Not Found"})
                body, headers = reply.encoded()
                self.send_response(reply.status)
                for key, value in headers.items():
                    if key.lower() not in _HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                length = headers.get("Content-Length") if request.method == "HEAD" else None
                self.send_header("Content-Length", length or str(len(body)))
                self.end_headers()
                if request.method != "HEAD":
                    self.wfile.write(body)

            def _body(self) -> bytes:
                if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"stand-in {self.address}", daemon=True)
        self._thread.start()

    def answer(self, request: Request) -> Reply | None:
        """This service's own answer to ``request``; None passes it on (``/v2/`` to the backing registry)."""
        return None

    def proxy(self, request: Request) -> Reply:
        """``request`` sent on to the backing registry, its answer returned as it came."""
        connection = http.client.HTTPConnection(self.backing, timeout=120)
        try:
            headers = {key: value for key, value in request.headers.items() if key.lower() not in _HOP and key.lower() != "content-length"}
            connection.request(request.method, request.target, body=request.body if request.body or request.method in ("PUT", "POST", "PATCH") else None,
                               headers=headers)
            response = connection.getresponse()
            body = response.read()
            kept = {key: value for key, value in response.getheaders() if key.lower() not in _HOP}
            if request.method != "HEAD":
                kept.pop("Content-Length", None)
            return Reply(response.status, body, kept)
        finally:
            connection.close()

    def count(self, method: str | None = None, prefix: str = "") -> int:
        """How many requests (of ``method``, under path ``prefix``) reached the stand-in."""
        with self.lock:
            return sum(1 for m, target in self.seen if (method is None or m == method) and target.startswith(prefix))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Revision:
    """A manifest a repository holds: its digest, the tags naming it now, and when it was pushed (epoch seconds)."""

    digest: str
    tags: tuple[str, ...]
    created: float


def _link(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def manifest_revisions(storage: Path, name: str) -> list[Revision]:
    """Every manifest of repository ``name`` in the registry:2 storage under ``storage`` (its rootdirectory), oldest first.

    The layout (distribution's ``registry/storage/paths.go``):
    ``docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link``
    for each manifest, ``_manifests/tags/<tag>/current/link`` for each tag.
    A deleted manifest's revision link is gone, and so are its tags.
    """
    manifests = storage / "docker/registry/v2/repositories" / name / "_manifests"
    tags: dict[str, list[str]] = {}
    for current in sorted((manifests / "tags").glob("*/current/link")):
        digest = _link(current)
        if digest:
            tags.setdefault(digest, []).append(current.parent.parent.name)
    found = []
    for link in (manifests / "revisions/sha256").glob("*/link"):
        digest = _link(link)
        if digest is None:
            continue
        try:
            created = link.stat().st_mtime
        except OSError:
            continue  # deleted while listed
        found.append(Revision(digest, tuple(sorted(tags.get(digest, ()))), created))
    return sorted(found, key=lambda revision: (revision.created, revision.digest))
