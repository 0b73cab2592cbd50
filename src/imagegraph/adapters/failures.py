"""What a failed docker command means: a registry's passing error (tried again), or the engine or the registry gone.

The docker client's own last line ("failed to solve: Unavailable: error
reading from server: EOF", "dial tcp 127.0.0.1:5000: connect: connection
refused") names neither the engine nor the fix. These functions read that
output (pure, tested on captured real output) and say which of the two it
may have been; the executor then asks the suspect whether it still answers
before it blames it, so a build step's own "unexpected EOF" is never taken
for a dead engine.

A build that failed only because a registry answered "not now" (5xx, 429, a
connection reset, refused or cut, a timeout) while BuildKit resolved, pulled
or pushed an image or its cache is built again (:class:`BuildRetries`),
within the bounds of imagegraph's own registry client. BuildKit retries some
pushes itself but never the lookup of a ``FROM`` image, and a rerun a second
later succeeds. Only BuildKit's own error line counts (the last line, as
buildx and the docker client end with it), never what a build step printed:
a ``RUN`` step that failed, whatever its output says, is never tried again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..core.errors import CommandFailed
from .registry_http import REGISTRY_RETRY, RETRY_STATUSES, RetryPolicy
from .runner import Command

if TYPE_CHECKING:
    from .engine.builders import Repair

__all__ = ["BuildRetries", "RegistryFault", "Retry", "engine_lost", "engine_lost_message", "engine_name", "registry_fault",
           "registry_lost", "registry_lost_message"]

#: How the docker client and buildx say that the engine's connection broke or never opened.
_ENGINE_LOST = re.compile(
    r"Cannot connect to the Docker daemon|error during connect|rpc error: code = Unavailable|Unavailable: "
    r"|error reading from server: EOF|unexpected EOF|dial unix \S+: connect: |connection reset by peer|broken pipe"
)
#: How many of the last output lines count: the client ends with its error.
_TAIL = 4
DEFAULT_ENGINE = "unix:///var/run/docker.sock"


def _last_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip()][-_TAIL:]


def engine_lost(output: str) -> bool:
    """Whether a failed docker command's output ends as it does when the engine's connection broke (or was refused)."""
    return any(_ENGINE_LOST.search(line) for line in _last_lines(output))


def registry_lost(output: str, host: str) -> str | None:
    """Why the connection to registry ``host`` failed ("connect: connection refused"), when the output ends with that; else None."""
    dial = re.compile(rf"dial tcp {re.escape(host)}: (.+)$")
    for line in reversed(_last_lines(output)):
        found = dial.search(line)
        if found:
            return found.group(1)
        if host in line and re.search(r"connection (refused|reset)|i/o timeout|EOF$", line):
            return line.rsplit(": ", 1)[-1]
    return None


def engine_name(environ: Mapping[str, str] = os.environ) -> str:
    """The engine the docker client talks to: $DOCKER_HOST when set (said so), else the default socket."""
    host = environ.get("DOCKER_HOST")
    return f"{host} (DOCKER_HOST)" if host else DEFAULT_ENGINE


def engine_lost_message(doing: str, reason: str, environ: Mapping[str, str] = os.environ) -> str:
    fix = "start it with `invoke engine.up`" + (", or point DOCKER_HOST at a running engine" if environ.get("DOCKER_HOST") else "")
    return (f"the Docker engine at {engine_name(environ)} stopped answering while {doing} ({reason}); "
            f"{fix}, then run `invoke build` again")


def registry_lost_message(host: str, image: str, reason: str, *, local: bool) -> str:
    fix = "start it with `invoke engine.up`" if local else "check that it is up and reachable from here"
    return (f"registry {host} stopped answering while {image} was pushed ({reason}); {fix}, then run `invoke build` again "
            "(or build for another registry with --registry)")


# --- a registry's passing error, from BuildKit's own last word --------------------------

#: A URL as Go prints it in an error: printable ASCII, no blanks or quotes (nothing a terminal would act on).
_URL = r"https?://[!#-~]+?"
#: "unexpected status from HEAD request to URL: 500 Internal Server Error" (containerd's resolver and pusher), or
#: "unexpected status code URL: 502 Bad Gateway - Server message: ..." (its reader, a GET), at the end of the line.
_STATUS = re.compile(rf"unexpected status(?: code)?(?: from (?P<method>[A-Z]+) request to)? (?P<url>{_URL}): "
                     rf"(?P<status>\d{{3}})(?P<text>(?: [A-Z][A-Za-z'-]*)*)(?: - Server message: .*)?$")
#: 'failed to do request: Head "URL": read tcp A->B: read: connection reset by peer' (Go's net/http), at the end of the line.
_DROPPED = re.compile(rf'failed to do request: (?P<method>[A-Z][a-z]+) "(?P<url>{_URL})": (?P<why>.*)$')
#: How a connection fails for a passing reason: the registry restarting, a proxy cutting it, an answer that did not come.
_PASSING = (
    ("connection reset by peer", "reset the connection"),
    ("connection refused", "refused the connection"),
    ("use of closed network connection", "closed the connection"),
    ("broken pipe", "closed the connection"),
    ("EOF", "closed the connection (EOF)"),
    ("i/o timeout", "did not answer in time (i/o timeout)"),
    ("TLS handshake timeout", "did not answer in time (TLS handshake timeout)"),
    ("timeout awaiting response headers", "did not answer in time"),
)
#: What BuildKit was doing, from the chain of its error ("failed to push REF: ..."): the first that applies.
_DOING = (
    (re.compile(r"failed to resolve source metadata for ([!-~]+?): "), "resolving {}"),
    (re.compile(r"failed to push ([!-~]+?): "), "pushing {}"),
    (re.compile(r"error writing (?:manifest|layer) blob"), "writing the registry cache"),
    (re.compile(r"importing cache manifest from ([!-~]+?): "), "reading the registry cache {}"),
)
#: A build step's failure: whatever the step's command line says, it is no registry's answer.
_STEP_FAILED = re.compile(r"exit code: \d+$")


@dataclass(frozen=True)
class RegistryFault:
    """A registry's passing error that ended a docker command: which registry, the request, its answer, what was being done."""

    host: str
    method: str
    path: str
    #: "answered 500 Internal Server Error", "reset the connection", ...
    answer: str
    #: "resolving 127.0.0.1:5000/ns/base:3f2c...", "pushing ...", "writing the registry cache", ...
    doing: str

    @property
    def writing(self) -> bool:
        """Whether it ended a push (a read, such as resolving a ``FROM`` image, leaves nothing in the registry)."""
        return self.method not in ("GET", "HEAD") or self.doing.startswith("pushing")

    def describe(self) -> str:
        return f"registry {self.host} {self.answer} to {self.method} {self.path} while {self.doing}"


def own_error(output: str) -> str:
    """The command's own last word: its last line (buildx and the docker client end with their error), less ``ERROR: ``.

    Empty when the output ends with a build step's line (``#5 0.21 ...``): then it was cut short, and said nothing itself.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines or re.match(r"#\d+ ", lines[-1]):
        return ""
    return lines[-1].removeprefix("ERROR: ")


def registry_fault(output: str) -> RegistryFault | None:
    """The registry's passing error a failed docker command ended with; None for any other failure (never retried)."""
    line = own_error(output)
    if not line or _STEP_FAILED.search(line):
        return None
    if found := _STATUS.search(line):
        status = int(found["status"])
        if status not in RETRY_STATUSES:
            return None  # 401, 403, 404: the same answer next time
        method = found["method"] or "GET"  # the reader names no method: it only reads
        answer = f"answered {status}{found['text']}"
    elif found := _DROPPED.search(line):
        answer = next((said for why, said in _PASSING if found["why"].endswith(why)), "")
        if not answer:
            return None
        method = found["method"].upper()
    else:
        return None
    url = urlsplit(found["url"])
    # the registry's name and the request's path: never a userinfo, never the query (an upload's state, a token)
    return RegistryFault(url.netloc.rpartition("@")[2], method, url.path, answer, _doing(line, method))


def _doing(line: str, method: str) -> str:
    for pattern, words in _DOING:
        if found := pattern.search(line):
            return words.format(*found.groups()).strip()
    return "reading" if method in ("GET", "HEAD") else "pushing"


# --- one decision: try a failed command again, or not -----------------------------------


@dataclass(frozen=True)
class Retry:
    """Running a failed command again: ``repair`` first when given, after ``wait`` seconds; ``line`` says so."""

    line: str
    wait: float = 0.0
    repair: Command | None = None


class BuildRetries:
    """The tries of one image's commands: which failures are tried again, how often, after how long.

    Two kinds, decided here and nowhere else:

    - a known engine fault that a repair clears (``repair``: the builder's,
      e.g. pruning a build cache that names a lost layer), once per image;
    - a registry's passing error (:func:`registry_fault`), within ``policy``
      (the one imagegraph's registry client uses: at most ``tries`` tries of
      the image's commands, waits doubling from ``backoff``, none ending
      later than ``total`` seconds after the first such failure; the build
      itself is not counted against the registry).

    Anything else fails at once. Not thread-safe: one image's commands run
    one after the other.
    """

    def __init__(self, policy: RetryPolicy = REGISTRY_RETRY,
                 repair: Callable[[Command, str], Repair | None] = lambda command, reason: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._repair = repair
        self._clock = clock
        self._repaired = False
        #: Tries of this image's commands that a registry's passing error ended, and when the first ended.
        self.faults = 0
        self._first: float | None = None
        #: The registry's error that ended the last failed try; None when something else did.
        self.last: RegistryFault | None = None

    def after(self, command: Command, err: CommandFailed, *, again: str = "trying again") -> Retry | None:
        """What to do about ``command`` having failed with ``err``: a :class:`Retry` (its line says ``again``), or None (it fails)."""
        if not self._repaired and (repair := self._repair(command, err.reason)) is not None:
            self._repaired = True  # a second failure after the repair is a real one
            return Retry(repair.explanation, repair=repair.command)
        fault = registry_fault(err.output_tail)
        self.last = fault
        if fault is None:
            return None
        now = self._clock()
        if self._first is None:
            self._first = now
        self.faults += 1
        wait = self.policy.wait(self.faults, now - self._first)
        if wait is None:
            return None
        return Retry(f"{fault.describe()}; {again} in {wait:.1f} s (try {self.faults + 1} of {self.policy.tries})", wait=wait)

    def gave_up(self) -> str | None:
        """The one-line error when a registry's passing errors used up the tries; None when none ended the last one."""
        if self.last is None:
            return None
        seconds = self._clock() - (self._first or self._clock())
        tries = f"{self.faults} {'try' if self.faults == 1 else 'tries'}"
        return (f"{self.last.describe()}, on {tries} over {seconds:.1f} s; check that it is up and healthy "
                "(`invoke engine.status`, the registry's log) and run `invoke build` again")
