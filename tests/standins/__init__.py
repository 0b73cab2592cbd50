"""Stand-ins for registry services this machine cannot reach: small HTTP servers in front of a real distribution registry.

A stand-in answers what its service documents (cited in its module) and
passes the distribution API (``/v2/``) through to a real docker-registry, so
that a push, a pull and a deletion really happen there. Shared here:

- :class:`StandIn`: a threaded HTTP server on ``127.0.0.1:<free port>``; a
  subclass answers its own paths in :meth:`StandIn.answer`, everything else
  under ``/v2/`` is proxied to the backing registry (the client's ``Host``
  kept, so the upload URLs the registry makes point back at the stand-in;
  one kept-open connection to it per server thread); every request is
  recorded with the status it was answered (:attr:`StandIn.seen`).
  :meth:`StandIn.origin` is the address the client used (its ``Host``), for
  the links a service writes into its answers: behind a proxy (the fault
  proxy of tests/integration/faultproxy.py), pages and token realms lead
  back through the proxy. A stand-in of an API alone (no registry behind it)
  passes no ``backing``; ``/v2/`` is then 404 like any other unknown path;
- :func:`manifest_revisions`: every manifest a registry:2 storage folder
  holds for a repository (tagged or not), with its tags and when it was
  pushed: what a service's own API lists beside the distribution API;
  :func:`repository_tags`, :func:`repositories`, :func:`stored_manifest` and
  :func:`remove_tag` read (and untag) the same storage as a service's own
  API does where the distribution API has no word for it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Reply", "Request", "Revision", "Seen", "StandIn", "Tag", "manifest_revisions", "remove_tag", "repositories",
           "repository_tags", "stored_manifest"]

#: Headers that belong to one connection, never forwarded.
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"})
#: The backing registry's answers when its kept-open connection was closed by it while idle: sent again, once, on a new one.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


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

    def query_all(self, key: str) -> list[str]:
        """Every value of ``key`` in the query, in order (``scope=...&scope=...``)."""
        return parse_qs(urlsplit(self.target).query).get(key, [])

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


@dataclass(frozen=True)
class Seen:
    """A request that reached a stand-in: ``status`` is what it was answered, ``arrived`` its time.monotonic() on arrival."""

    method: str
    #: The path and query as sent.
    target: str
    status: int
    arrived: float

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


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
    """A service's stand-in on a free loopback port, in front of the registry at ``backing`` (``HOST:PORT``; None: none).

    Use as a context manager, or :meth:`close` it. Subclasses override
    :meth:`answer`; it runs on the server's threads (one per connection).
    """

    def __init__(self, backing: str | None) -> None:
        self.backing = backing
        #: Every request that reached the stand-in and its answer's status, in the order they were answered.
        self.seen: list[Seen] = []
        self.lock = threading.RLock()
        self._local = threading.local()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def handle_one(self) -> None:
                arrived = time.monotonic()
                request = Request(self.command, self.path, dict(self.headers.items()), self._body())
                reply = stand_in.answer(request)
                if reply is None:
                    is_registry = stand_in.backing is not None and (request.path.startswith("/v2/") or request.path == "/v2")
                    reply = stand_in.proxy(request) if is_registry else Reply(404, {"message": "Not Found"})
                body, headers = reply.encoded()
                with stand_in.lock:  # before the client has the answer: a count it reads afterwards holds it
                    stand_in.seen.append(Seen(request.method, request.target, reply.status, arrived))
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

    def origin(self, request: Request) -> str:
        """``http://HOST:PORT`` as the client addressed this service: where the links in an answer lead."""
        return f"http://{request.header('Host') or self.address}"

    def proxy(self, request: Request) -> Reply:
        """``request`` sent on to the backing registry, its answer returned as it came."""
        headers = {key: value for key, value in request.headers.items() if key.lower() not in _HOP and key.lower() != "content-length"}
        body = request.body if request.body or request.method in ("PUT", "POST", "PATCH") else None
        connection, reused = self._connection()
        try:
            try:
                connection.request(request.method, request.target, body=body, headers=headers)
                response = connection.getresponse()
            except _STALE:
                if not reused:
                    raise
                connection.close()  # the registry closed it while idle: nothing was done, send it again on a new one
                connection.request(request.method, request.target, body=body, headers=headers)
                response = connection.getresponse()
            data = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        kept = {key: value for key, value in response.getheaders() if key.lower() not in _HOP}
        if request.method != "HEAD":
            kept.pop("Content-Length", None)
        return Reply(response.status, data, kept)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection to the backing registry (kept open: a cleanup sends thousands of requests), and whether
        it served a request before."""
        assert self.backing is not None, "a stand-in without a registry behind it proxies nothing"
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(self.backing, timeout=120)
            return connection, False
        return connection, connection.sock is not None

    def delete_manifest(self, name: str, digest: str) -> int:
        """Delete manifest ``digest`` of ``name`` on the backing registry (what a service's own delete does behind it); its status."""
        return self.proxy(Request("DELETE", f"/v2/{name}/manifests/{digest}", {"Host": str(self.backing)}, b"")).status

    def count(self, method: str | None = None, prefix: str = "") -> int:
        """How many requests (of ``method``, under path ``prefix``) reached the stand-in."""
        with self.lock:
            return sum(1 for seen in self.seen if (method is None or seen.method == method) and seen.target.startswith(prefix))

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


@dataclass(frozen=True)
class Tag:
    """A tag of a repository: the digest it names, and when it was last pointed there (epoch seconds)."""

    digest: str
    pushed: float


def _repository(storage: Path, name: str) -> Path:
    return storage / "docker/registry/v2/repositories" / name


def _link(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def repository_tags(storage: Path, name: str) -> dict[str, Tag]:
    """Every tag of repository ``name`` in the registry:2 storage under ``storage``
    (``_manifests/tags/<tag>/current/link``), by name."""
    found = {}
    for current in sorted((_repository(storage, name) / "_manifests/tags").glob("*/current/link")):
        digest = _link(current)
        with contextlib.suppress(OSError):  # a tag deleted while listed is no tag
            if digest:
                found[current.parent.parent.name] = Tag(digest, current.stat().st_mtime)
    return found


def repositories(storage: Path) -> list[str]:
    """The name of every repository the registry:2 storage under ``storage`` holds, sorted."""
    root = storage / "docker/registry/v2/repositories"
    if not root.is_dir():
        return []
    return sorted(str(found.parent.relative_to(root)) for found in root.rglob("_manifests") if found.is_dir())


def stored_manifest(storage: Path, digest: str) -> dict:
    """The JSON of the manifest ``digest`` as stored (its blob, which outlives a delete until garbage collection); {} if none."""
    algorithm, _, hexa = digest.partition(":")
    try:
        body = json.loads((storage / "docker/registry/v2/blobs" / algorithm / hexa[:2] / hexa / "data").read_bytes())
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def remove_tag(storage: Path, name: str, tag: str) -> bool:
    """Untag ``name:tag`` in the storage as the registry's own untag does (its folder goes, the manifest stays); False if no such tag."""
    folder = _repository(storage, name) / "_manifests/tags" / tag
    if not (folder / "current/link").is_file():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def manifest_revisions(storage: Path, name: str) -> list[Revision]:
    """Every manifest of repository ``name`` in the registry:2 storage under ``storage`` (its rootdirectory), oldest first.

    The layout (distribution's ``registry/storage/paths.go``):
    ``docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link``
    for each manifest, ``_manifests/tags/<tag>/current/link`` for each tag.
    A deleted manifest's revision link is gone, and so are its tags.
    """
    tags: dict[str, list[str]] = {}
    for tag, found in repository_tags(storage, name).items():
        tags.setdefault(found.digest, []).append(tag)
    found = []
    for link in (_repository(storage, name) / "_manifests/revisions/sha256").glob("*/link"):
        digest = _link(link)
        if digest is None:
            continue
        try:
            created = link.stat().st_mtime
        except OSError:
            continue  # deleted while listed
        found.append(Revision(digest, tuple(sorted(tags.get(digest, ()))), created))
    return sorted(found, key=lambda revision: (revision.created, revision.digest))
