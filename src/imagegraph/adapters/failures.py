"""What a failed docker command means when the engine or the registry went away under it.

The docker client's own last line ("failed to solve: Unavailable: error
reading from server: EOF", "dial tcp 127.0.0.1:5000: connect: connection
refused") names neither the engine nor the fix. These functions read that
output (pure, tested on captured real output) and say which of the two it
may have been; the executor then asks the suspect whether it still answers
before it blames it, so a build step's own "unexpected EOF" is never taken
for a dead engine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = ["engine_lost", "engine_lost_message", "engine_name", "registry_lost", "registry_lost_message"]

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
