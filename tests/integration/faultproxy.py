"""A fault-injecting HTTP proxy in front of a real registry, for tests of what happens when the registry misbehaves.

It listens on 127.0.0.1 (an ephemeral port) and forwards every request to the
registry unchanged: bodies are streamed both ways (blob uploads can be large),
chunked transfer encoding is relayed, and the ``Host`` header is passed on, so
the ``Location`` of an upload points back at the proxy. Anything that speaks
HTTP to a registry works through it, ``docker push`` and ``docker buildx build
--push`` too (dockerd treats 127.0.0.0/8 registries as plain HTTP).

Faults are scripted per request: a rule names the requests it matches (method,
a regular expression searched in the path), from which matching request on it
applies (``nth``, counting from 1) and for how many (``times``, None: all that
follow). The first rule that applies to a request decides it; requests no rule
claims are forwarded. Every request is recorded (method, path, the fault
applied, the status the client got, when it arrived). A TLS handshake is
answered as a plain-HTTP server answers it, so that clients which try HTTPS
first (dockerd's containerd resolver) fall back to HTTP as with the registry.

    proxy = start_fault_proxy("127.0.0.1:5000")
    proxy.inject(Answer(500, detail="invalid checksum digest format"), "GET", r"/manifests/v1$", nth=2)
    proxy.inject(Answer(429, headers={"Retry-After": "1"}), "HEAD", r"/manifests/", times=1)
    proxy.inject(Stall(3), "GET", r"/tags/list")       # waits 3 s, then forwards
    held = proxy.inject(Hold(), "PUT", r"/manifests/").fault  # waits for held.release(), then forwards
    proxy.inject(Drop(), "GET", r"/manifests/")        # closes the connection without an answer
    proxy.inject(Cut(after=10), "GET", r"/manifests/") # forwards, then closes after 10 bytes of the body
    proxy.inject(Lose(), "DELETE", r"/manifests/")     # forwards, then closes without passing the answer on
    Registry(proxy.address)...
    proxy.seen("GET", r"/manifests/v1$")              # what reached the proxy, in order
    proxy.close()

The ``fault_proxy`` fixture (tests/integration/conftest.py) gives one in front
of the shared registry and closes it afterwards; ``start_fault_proxy`` puts one
in front of any other (a ``private_registry``, say).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Answer", "Cut", "Drop", "Fault", "FaultProxy", "Hold", "Lose", "Rule", "Seen", "Stall", "start_fault_proxy"]

#: Headers about one connection, not the message: never relayed (RFC 9110 7.6.1). Expect: the proxy answers 100-continue itself.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "transfer-encoding", "upgrade", "expect"})
_CHUNK = 64 * 1024


# --- faults ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """Answer ``status`` without asking the registry; the body is a distribution-style error carrying ``detail`` unless ``body`` is given."""

    status: int
    detail: str = "injected by the fault proxy"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def payload(self) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps({"errors": [{"code": "UNKNOWN", "message": "unknown error", "detail": self.detail}]}).encode()


@dataclass(frozen=True)
class Stall:
    """Wait ``seconds`` before forwarding (a slow registry; a client with a shorter timeout gives up first)."""

    seconds: float


@dataclass(frozen=True, eq=False)
class Hold:
    """Hold the request, unforwarded, until the test calls ``release()`` (or the proxy closes): to act while it is in flight.

        held = proxy.inject(Hold(), "PUT", r"/manifests/v2$").fault
        ... start the push in a thread ...
        assert held.wait_until_held(10)   # the PUT is at the proxy, not yet at the registry
        ... interrupt, move a tag, look at the registry ...
        held.release()                    # now it is forwarded
    """

    arrived: threading.Event = field(default_factory=threading.Event, repr=False)
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait_until_held(self, timeout: float) -> bool:
        return self.arrived.wait(timeout)

    def release(self) -> None:
        self.released.set()


@dataclass(frozen=True)
class Drop:
    """Close the connection without an answer; ``reset`` closes it with a TCP reset instead of a clean close."""

    reset: bool = False


@dataclass(frozen=True)
class Cut:
    """Forward, pass the registry's status, headers and the first ``after`` bytes of its body on, then close the connection."""

    after: int = 0


@dataclass(frozen=True)
class Lose:
    """Forward, let the registry answer, then close the connection without passing anything on: the request was done, and
    the client never hears so (a DELETE it sends again finds nothing)."""


Fault = Answer | Stall | Hold | Drop | Cut | Lose


@dataclass
class Rule:
    """Which requests a fault applies to; ``hits`` counts the requests it applied to."""

    fault: Fault
    method: str | None = None
    path: str | None = None
    nth: int = 1
    times: int | None = 1
    matched: int = 0
    hits: int = 0

    def claims(self, method: str, path: str) -> bool:
        """Counts a matching request, and says whether the fault applies to it (called under the proxy's lock)."""
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is not None and not re.search(self.path, path):
            return False
        self.matched += 1
        if self.matched < self.nth or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


@dataclass
class Seen:
    """One request that reached the proxy, ``at`` its arrival (time.monotonic()). ``status`` is what the client got; None: no (whole) answer."""

    method: str
    path: str
    fault: Fault | None = None
    status: int | None = None
    at: float = field(default_factory=time.monotonic)


# --- the proxy -------------------------------------------------------------------------


class FaultProxy:
    """A running proxy: ``address`` (``127.0.0.1:PORT``) is where clients go; ``upstream`` is the registry behind it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._seen: list[Seen] = []
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"fault-proxy {self.address}", daemon=True)
        self._thread.start()

    def inject(self, fault: Fault, method: str | None = None, path: str | None = None, *, nth: int = 1, times: int | None = 1) -> Rule:
        """Apply ``fault`` to requests matching ``method`` and ``path`` (a regular expression searched in path and query).

        From the ``nth`` matching request on (1: the next one), ``times`` times (None: every one after).
        """
        if nth < 1 or (times is not None and times < 1):
            raise ValueError(f"nth and times count from 1, not nth={nth}, times={times}")
        rule = Rule(fault, method, path, nth, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget every rule: from now on, everything is forwarded."""
        with self._lock:
            self._rules.clear()

    def seen(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        """The requests that reached the proxy, in order; only those matching ``method`` and ``path`` when given."""
        with self._lock:
            return [s for s in self._seen if (method is None or s.method == method.upper()) and (path is None or re.search(path, s.path))]

    def close(self) -> None:
        """Stop listening; stalls end at once, connections in flight are dropped."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            open_now = list(self._connections)
        for connection in open_now:  # kept-alive connections would otherwise still be served
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _decide(self, method: str, path: str) -> Seen:
        with self._lock:
            fault = next((rule.fault for rule in self._rules if rule.claims(method, path)), None)
            seen = Seen(method, path, fault)
            self._seen.append(seen)
        return seen


def start_fault_proxy(upstream: str) -> FaultProxy:
    """A proxy on a free loopback port forwarding to the registry at ``upstream`` (``host:port``, plain HTTP)."""
    return FaultProxy(upstream)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProxyHandler):
        owner = proxy

    return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked, as registries and their clients speak
    owner: FaultProxy

    def log_message(self, format: str, *args: object) -> None:
        pass  # the record is proxy.seen(); stderr stays the test's

    def setup(self) -> None:
        super().setup()
        self.owner._track(self.connection, True)

    def finish(self) -> None:
        self.owner._track(self.connection, False)
        super().finish()

    def handle_one_request(self) -> None:
        # Clients of a 127.0.0.0/8 registry (containerd's resolver in dockerd) try TLS first and fall back to plain
        # HTTP when the answer is an HTTP response. http.server would answer a ClientHello in HTTP/0.9 (a bare body).
        if self.rfile.peek(1)[:1] == b"\x16":  # a TLS handshake record
            self.wfile.write(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
            self.close_connection = True
            return
        super().handle_one_request()

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def _handle(self) -> None:
        seen = self.owner._decide(self.command, self.path)
        try:
            match seen.fault:
                case Answer() as answer:
                    self._drain_body()
                    self._answer(answer, seen)
                case Drop(reset=reset):
                    self._drop(reset)
                case Stall(seconds=seconds):
                    if self.owner._closing.wait(seconds):
                        self._drop(reset=False)
                        return
                    self._forward(seen)
                case Hold() as hold:
                    hold.arrived.set()
                    while not hold.released.wait(0.05):
                        if self.owner._closing.is_set():
                            self._drop(reset=False)
                            return
                    self._forward(seen)
                case Cut(after=after):
                    self._forward(seen, cut_after=after)
                case Lose():
                    self._forward(seen, lose=True)
                case None:
                    self._forward(seen)
        except (TimeoutError, ConnectionError, BrokenPipeError):
            self.close_connection = True  # the client went away (its timeout, say): nothing to answer
            seen.status = None

    def _answer(self, answer: Answer, seen: Seen) -> None:
        body = answer.payload()
        seen.status = answer.status  # before the client can have it, so that the record is complete when it acts
        self.send_response_only(answer.status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)),
                   "Docker-Distribution-Api-Version": "registry/2.0", **answer.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _drop(self, reset: bool) -> None:
        self.close_connection = True
        if reset:  # linger 0: close() sends RST, not FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _forward(self, seen: Seen, cut_after: int | None = None, lose: bool = False) -> None:
        host, _, port = self.owner.upstream.rpartition(":")
        upstream = http.client.HTTPConnection(host, int(port), timeout=300)
        try:
            try:
                upstream.connect()
            except OSError:  # as a proxy without its backend answers
                self._drain_body()
                self._answer(Answer(502, detail=f"the fault proxy could not reach {self.owner.upstream}"), seen)
                return
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    upstream.putheader(name, value)  # Host too: the registry builds upload Locations from it
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            self._relay_body(upstream.send, chunked)
            reply = upstream.getresponse()
            if lose:
                reply.read()  # the registry's work is done; its answer goes nowhere
                self._drop(reset=False)
                return
            self._relay_answer(reply, seen, cut_after)
        finally:
            upstream.close()

    def _relay_body(self, send: Callable[[bytes], object], chunked: bool) -> None:
        """Streams the request body to the registry as it arrives; chunked bodies keep their framing."""
        if chunked:
            while True:
                line = self.rfile.readline(65537)
                send(line)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the blank line
                        trailer = self.rfile.readline(65537)
                        send(trailer)
                        if trailer in (b"\r\n", b"\n", b""):
                            return
                self._copy(size, send)
                send(self.rfile.readline(3))  # the CRLF after the chunk
        else:
            self._copy(int(self.headers.get("Content-Length") or 0), send)

    def _copy(self, size: int, send: Callable[[bytes], object]) -> None:
        while size > 0:
            data = self.rfile.read(min(size, _CHUNK))
            if not data:
                raise ConnectionError("the client closed the connection mid-body")
            send(data)
            size -= len(data)

    def _drain_body(self) -> None:
        """Reads the request body nobody will forward, so that the connection stays usable for the next request."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or self.headers.get("Content-Length"):
            self._relay_body(lambda data: None, "chunked" in self.headers.get("Transfer-Encoding", "").lower())

    def _relay_answer(self, reply: http.client.HTTPResponse, seen: Seen, cut_after: int | None) -> None:
        length = reply.getheader("Content-Length")
        bodiless = self.command == "HEAD" or reply.status in (204, 304) or 100 <= reply.status < 200
        rechunk = not bodiless and length is None  # chunked upstream (or ended by close): chunked to the client
        self.send_response_only(reply.status, reply.reason)
        for name, value in reply.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        if reply.getheader("Connection", "").lower() == "close" or cut_after is not None:
            self.close_connection = True
        if cut_after is None:
            seen.status = reply.status  # before the client can have it, so that the record is complete when it acts
        self.end_headers()
        sent = 0
        while not bodiless:
            data = reply.read1(_CHUNK)
            if cut_after is not None and sent + len(data) >= cut_after:
                part = data[: cut_after - sent]
                if part:
                    self.wfile.write(b"%x\r\n%s" % (len(part), part) if rechunk else part)
                self.wfile.flush()
                self._drop(reset=False)
                return
            if not data:
                if rechunk:
                    self.wfile.write(b"0\r\n\r\n")
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if rechunk else data)
            sent += len(data)
        self.wfile.flush()
