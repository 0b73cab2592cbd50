"""HTTP to a forge's REST API (GitHub, Docker Hub, GitLab): its URL, a token, pages, rate limits, one-line errors.

What every registry API client of this package shares, written once:

- **Where.** The base URL comes from the environment the CI service sets
  (``GITHUB_API_URL``, ``CI_API_V4_URL``) or the public default, never from
  images.yaml; it must be HTTPS, except for a loopback host (a stand-in on
  this machine). A token is sent to that base and nowhere else: a ``next``
  page on another host is refused.
- **Rate limits, honoured.** A ``Retry-After`` (GitHub's secondary rate limit,
  429 anywhere) is waited out; an exhausted primary limit
  (``X-RateLimit-Remaining: 0`` or GitLab's ``RateLimit-Remaining: 0``) waits
  until its reset when that is near, and otherwise fails in one line that says
  when it resets. Each wait is said.
- **Passing faults** (5xx, a dropped connection) of idempotent requests are
  tried again within :data:`~imagegraph.adapters.registry_http.REGISTRY_RETRY`'s bounds.
- **Paced.** An API that asks for a pause between writes (GitHub: "wait at
  least one second between" POST, PATCH, PUT and DELETE requests, to stay
  clear of the secondary rate limit) gets it: ``mutation_gap``.
  A DELETE sent again may find nothing because the first one did it and its
  answer was lost: :attr:`ForgeHTTP.resent` says so, and a caller reads that
  404 as deleted (:meth:`ForgeHTTP.gone_by_us`).
- **Counted.** :attr:`ForgeHTTP.requests` counts what was sent (the cost of a cleanup, for its report).
- **Errors** are one line: the status and the API's own message (control
  characters removed, cut short), never a token or a URL's query.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from ...core.errors import RegistryError
from ...core.values import is_loopback
from ..registry_http import REGISTRY_RETRY, RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    import requests

__all__ = ["ForgeHTTP", "api_base", "clean", "rate_limit_wait"]

#: The longest wait for a rate limit's reset before giving up with the time it resets.
MAX_RATE_WAIT = 120.0


def api_base(url: str, what: str) -> str:
    """``url`` as an API base (no trailing slash): HTTPS, or HTTP on a loopback host only; a one-line error otherwise."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password or parts.query or parts.fragment:
        raise RegistryError(f"{what} is not an API URL (https://HOST/PATH); correct it")
    if parts.scheme == "http" and not is_loopback(parts.netloc):
        raise RegistryError(f"{what} is plain HTTP on {host}, which would send a token in the clear; use https://")
    return url.strip().rstrip("/")


def rate_limit_wait(status: int, headers: Mapping[str, str], now: float, *, attempt: int = 1) -> float | None:
    """Seconds to wait before sending again after a rate-limited answer; None when the answer is no rate limit.

    GitHub documents its secondary rate limit as 403 or 429 with ``Retry-After``
    (wait that long), or without it and with ``X-RateLimit-Remaining: 0``
    (wait until ``X-RateLimit-Reset``, epoch seconds), or with neither (wait at
    least a minute, longer each time). GitLab writes ``RateLimit-Remaining``/
    ``RateLimit-Reset``; Docker Hub ``X-RateLimit-*`` as GitHub does.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    if status not in (403, 429):
        return None
    retry_after = parse_retry_after(lower.get("retry-after"), now)
    if retry_after is not None:
        return retry_after
    remaining = lower.get("x-ratelimit-remaining", lower.get("ratelimit-remaining"))
    reset = lower.get("x-ratelimit-reset", lower.get("ratelimit-reset"))
    if remaining is not None and remaining.strip() == "0" and reset is not None:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return 60.0
    if status == 429:
        return 60.0 * attempt
    return None  # a 403 that names no limit is a refusal (a missing scope), not a limit


def clean(text: str, limit: int = 160) -> str:
    """A forge's text as one printable line of at most ``limit`` characters: an answer is shown to the user, never trusted."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat[:limit] + ("…" if len(flat) > limit else "")


class ForgeHTTP:
    """Requests to one REST API with one token header; see the module's rules."""

    def __init__(self, base: str, headers: Mapping[str, str], *, what: str, session: requests.Session | None = None,
                 timeout: float = 15.0, retry: RetryPolicy = REGISTRY_RETRY, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time, say: Callable[[str], None] = lambda line: None,
                 mutation_gap: float = 0.0) -> None:
        #: e.g. "GitHub's API at https://api.github.com": the subject of every error line.
        self.what = what
        self.base = api_base(base, what)
        self._origin = urlsplit(self.base)[:2]
        self._headers = dict(headers)
        if session is None:
            import requests

            session = requests.Session()
        self.session = session
        self.timeout = timeout
        self.retry = retry
        self._sleep = sleep
        self._clock = clock
        self.say = say
        #: Requests sent so far (every send, retries included).
        self.requests = 0
        #: Seconds between the starts of two writes (POST, PATCH, PUT, DELETE); 0: none.
        self.mutation_gap = mutation_gap
        self._last_write: float | None = None
        #: Whether the last answer came to a request sent again after a lost answer or a 5xx (the service may have acted).
        self.resent = False

    def url(self, path: str) -> str:
        return self.base + path if path.startswith("/") else path

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None,
                headers: Mapping[str, str] | None = None, ok: tuple[int, ...] = ()) -> requests.Response:
        """The answer to ``method path`` (a path below the base, or a full URL on the base's own host), rate limits waited
        out and passing faults tried again; an answer >= 400 not in ``ok`` raises the one-line error."""
        import requests

        url = self.url(path)
        if urlsplit(url)[:2] != self._origin:
            raise RegistryError(f"{self.what} pointed to {clean(urlsplit(url).netloc, 80)} for more; refusing to send the token there")
        started = time.monotonic()
        sent = 0
        limited = 0
        self.resent = False
        while True:
            sent += 1
            self._pace(method)
            self.requests += 1
            try:
                response = self.session.request(method, url, params=params, json=json_body, timeout=self.timeout,
                                                headers={"Accept": "application/json", **self._headers, **(headers or {})})
            except requests.RequestException as err:
                delay = self.retry.wait(sent, time.monotonic() - started) if method in ("GET", "HEAD", "DELETE") else None
                if delay is None:
                    raise RegistryError(f"{self.what} could not be reached for {method} {urlsplit(url).path} "
                                        f"({type(err).__name__}); check the network and run again") from None
                self._sleep(delay)
                self.resent = True
                continue
            wait = rate_limit_wait(response.status_code, response.headers, self._clock(), attempt=limited + 1)
            if wait is not None:
                limited += 1
                if wait > MAX_RATE_WAIT or limited > 5:
                    resets = time.strftime("%H:%M:%S UTC", time.gmtime(self._clock() + wait))
                    raise RegistryError(f"{self.what} rate-limited the requests; it lets them through again at {resets}: "
                                        f"run again then")
                self.say(f"{self.what}: rate limit reached, waiting {wait:.0f} s as it asks")
                self._sleep(wait)
                continue
            if response.status_code >= 500 and method in ("GET", "HEAD", "DELETE"):
                delay = self.retry.wait(sent, time.monotonic() - started)
                if delay is not None:
                    self._sleep(delay)
                    self.resent = True
                    continue
            if response.status_code >= 400 and response.status_code not in ok:
                raise RegistryError(f"{self.what} answered {response.status_code}{self._said(response)} to {method} "
                                    f"{urlsplit(url).path}")
            return response

    def _pace(self, method: str) -> None:
        if method not in ("POST", "PATCH", "PUT", "DELETE") or self.mutation_gap <= 0:
            return
        if self._last_write is not None:
            wait = self._last_write + self.mutation_gap - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_write = self._clock()

    def gone_by_us(self, response: requests.Response) -> bool:
        """Whether a DELETE's answer means it is gone by this request: a 2xx, or a 404 to the DELETE sent again after the
        first one's answer was lost or was a 5xx (the first did it; a delete is no failure for having been done)."""
        return response.status_code < 300 or (response.status_code == 404 and self.resent)

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        response = self.request("GET", path, params=params)
        try:
            return response.json()
        except ValueError:
            raise RegistryError(f"{self.what} answered GET {urlsplit(self.url(path)).path} with something that is not JSON") from None

    def pages(self, path: str, *, params: Mapping[str, Any] | None = None,
              ok: tuple[int, ...] = ()) -> Iterator[tuple[requests.Response, Any]]:
        """Each page of a listing, following the ``Link: <...>; rel="next"`` header (GitHub's and GitLab's pagination);
        an answer in ``ok`` (a 404 for a listing of nothing) is the last page, with the body None."""
        url: str | None = path
        query: Mapping[str, Any] | None = params
        seen: set[str] = set()
        while url is not None:
            response = self.request("GET", url, params=query, ok=ok)
            if response.status_code in ok:
                yield response, None
                return
            try:
                body = response.json()
            except ValueError:
                raise RegistryError(f"{self.what} answered a listing with something that is not JSON") from None
            yield response, body
            following = response.links.get("next", {}).get("url")
            if not following or following in seen:
                return
            seen.add(following)
            url, query = urljoin(self.url(path), following), None

    @staticmethod
    def _said(response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return ""
        message = body.get("message") or body.get("error") or body.get("detail") if isinstance(body, dict) else None
        if isinstance(message, list):
            message = "; ".join(str(m) for m in message)
        return f" ({clean(str(message))})" if message else ""
