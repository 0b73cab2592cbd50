"""HTTP to one registry, without auth: its URL (plain HTTP for loopback registries, HTTPS elsewhere), timeouts, bounded retries.

Transient faults are tried again, within bounds (:class:`RetryPolicy`): a
registry restarting, a proxy in front of it answering 502, a rate limit, or
the distribution registry answering 500 "invalid checksum digest format" to a
read that meets a tag being rewritten. ``requests`` is imported on first use
only, so that planning a change that asks no registry never loads it.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.errors import RegistryError, RegistryUnanswered
from ..core.values import is_loopback

if TYPE_CHECKING:  # loaded when the registry is first asked (planning a docs-only change never asks it)
    import requests

__all__ = ["REGISTRY_RETRY", "RETRY_STATUSES", "RegistryHTTP", "RetryPolicy", "parse_retry_after"]

#: Answers that say "not now" rather than "no": a registry restarting or overloaded, a proxy without its backend, a rate limit.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


# --- when to try again (pure) ----------------------------------------------------------


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), from ``now`` (epoch seconds); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; a dateless zone means the sender left it out
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """When a request that failed for a passing reason is sent again, and how long to wait before it.

    Bounded twice: at most ``tries`` sends, and no wait that would end later
    than ``total`` seconds after the first send. Waits grow exponentially from
    ``backoff`` (doubling, at most ``max_backoff``), each shortened by a random
    part of up to half (``jitter`` returns [0, 1)) so that clients failing
    together do not come back together. A ``Retry-After`` the registry sends
    (429, 503) is honoured instead, up to ``max_retry_after``.

    Only idempotent requests are sent again: GET, HEAD, DELETE, and the PUT
    of a manifest (the same bytes under the same name). A PUT that completes
    a blob upload, a POST or a PATCH are not: their upload session is spent.

    Pure: the caller owns the clock and the sleep, so the schedule is tested
    without waiting.
    """

    tries: int = 5
    total: float = 30.0
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 10.0
    jitter: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.tries < 1 or self.total < 0 or self.backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError(f"{self} has a bound below what makes sense (tries >= 1, times >= 0)")

    @staticmethod
    def idempotent(method: str, path: str) -> bool:
        method = method.upper()
        return method in ("GET", "HEAD", "DELETE") or (method == "PUT" and "/manifests/" in path)

    @staticmethod
    def retries_status(status: int) -> bool:
        return status in RETRY_STATUSES

    def wait(self, sent: int, elapsed: float, retry_after: float | None = None) -> float | None:
        """Seconds to wait before send number ``sent + 1``, ``elapsed`` seconds after the first; None: give up."""
        if sent >= self.tries:
            return None
        if retry_after is not None:
            delay = min(retry_after, self.max_retry_after)
        else:
            ceiling = min(self.max_backoff, self.backoff * 2 ** (sent - 1))
            delay = ceiling * (1 - self.jitter() / 2)
        if elapsed + delay > self.total:
            return None
        return delay

    def schedule(self) -> tuple[float, ...]:
        """The waits between sends when every send fails at once (for docs and tests)."""
        waits: list[float] = []
        while (delay := self.wait(len(waits) + 1, sum(waits))) is not None:
            waits.append(delay)
        return tuple(waits)


#: The one policy for a registry's passing errors: imagegraph's own requests, and the builds that met one (adapters.failures).
REGISTRY_RETRY = RetryPolicy()


# --- HTTP to one registry ----------------------------------------------------------------


def _problem(err: requests.RequestException) -> str:
    """What went wrong with the connection, in the words of the one-line error."""
    import requests
    if isinstance(err, requests.ConnectTimeout):
        return "did not accept a connection in time"
    if isinstance(err, requests.Timeout):
        return "did not answer in time"
    if _refused(err):
        return "refused the connection"
    return "dropped the connection"


def _refused(err: requests.RequestException) -> bool:
    """No connection was made at all: nothing listens there (as opposed to a connection reset or cut mid-answer)."""
    import requests
    import urllib3.exceptions
    if isinstance(err, requests.ConnectTimeout):
        return True
    if not isinstance(err, requests.ConnectionError) or isinstance(err, requests.ReadTimeout):
        return False
    reason = getattr(err.args[0], "reason", None) if err.args else None  # urllib3's MaxRetryError says which step failed
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _answer(response: requests.Response) -> str:
    """``500 (invalid checksum digest format)``: the status and the registry's own word for it, on one line."""
    try:
        errors = response.json().get("errors") or [{}]
        first = errors[0] if isinstance(errors[0], dict) else {}
        said = first.get("detail") if isinstance(first.get("detail"), str) else first.get("message")
    except (ValueError, AttributeError, TypeError, IndexError):
        said = None
    if not isinstance(said, str) or not said.strip():
        return str(response.status_code)
    said = " ".join(said.split())
    return f"{response.status_code} ({said[:120]}{'…' if len(said) > 120 else ''})"


class RegistryHTTP:
    """HTTP to one registry, without auth: its URL, the timeout of each send, and bounded retries (:class:`RetryPolicy`).

    The first contact decides whether there is a registry at all: a refused
    (or unanswered) connection then fails at once with the fix, instead of
    waiting out the retries for a registry that is not running. Once it has
    answered, a refused connection is a registry restarting, and is waited for.

    Retries are written here rather than by mounting ``urllib3.util.Retry``
    on the session, although requests brings it, because it lacks what this
    needs: it has no total time limit (only counts); it sleeps with
    ``time.sleep`` (tests would wait, or patch urllib3); it cannot tell that
    first contact from a refusal mid-run; when it gives up, requests raises a
    ``RetryError`` that has lost the count and duration the one-line error
    names; and it lives in the transport adapter, below the session that unit
    tests replace at the seam, so no unit test could see it retry.
    """

    def __init__(self, host: str, *, scheme: str | None = None, timeout: float = 10.0, session: requests.Session | None = None,
                 retry: RetryPolicy = REGISTRY_RETRY, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, wallclock: Callable[[], float] = time.time) -> None:
        self.host = host
        #: Plain HTTP: loopback registries (as dockerd treats them) unless ``scheme`` says.
        self.insecure = is_loopback(host) if scheme is None else scheme == "http"
        self.base = f"{'http' if self.insecure else 'https'}://{host}/v2"
        self.timeout = timeout
        self.retry = retry
        if session is None:
            import requests

            session = requests.Session()
        self.session = session
        self._sleep = sleep
        self._clock = clock
        self._wallclock = wallclock
        self._contacted = False
        #: Requests sent so far, retries included (what a run cost, for its report).
        self.requests = 0

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, data: bytes | None = None) -> requests.Response:
        """The registry's answer to ``method /v2{path}``, once it is not a passing fault; raises the one-line error when tries run out."""
        import requests

        retryable = self.retry.idempotent(method, path)
        started = self._clock()
        sent = 0
        while True:
            remaining = self.retry.total - (self._clock() - started)
            sent += 1
            self.requests += 1
            unanswered = False
            try:
                response = self.session.request(method, self.base + path, headers=headers or {}, data=data,
                                                timeout=min(self.timeout, max(remaining, 1.0)))
            except requests.RequestException as err:
                if not self._contacted and _refused(err):
                    raise RegistryError(self._unreachable(err)) from None
                failure, retry_after = _problem(err), None
                unanswered = not _refused(err)  # a refused connection carried no request; any other may have
            else:
                self._contacted = True
                if not (retryable and self.retry.retries_status(response.status_code)):
                    return response
                failure = f"answered {_answer(response)}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._wallclock())
            elapsed = self._clock() - started
            delay = self.retry.wait(sent, elapsed, retry_after) if retryable else None
            if delay is None:
                raise (RegistryUnanswered if unanswered else RegistryError)(
                    f"registry {self.host} {failure} to {method} /v2{path} on {sent} {'try' if sent == 1 else 'tries'} "
                    f"over {elapsed:.1f} s; check that it is up and healthy (`invoke engine.status`, the registry's log) and run again"
                )
            self._sleep(delay)

    def _unreachable(self, err: requests.RequestException) -> str:
        import requests

        if isinstance(err, requests.ConnectTimeout):
            return f"registry {self.host} did not answer within {self.timeout:.0f}s; check that it is up (`invoke engine.status`)"
        return f"registry {self.host} is not reachable; start it with `invoke engine.up` or set IMAGEGRAPH_REGISTRY"
