"""A client for the OCI distribution HTTP API (v2): just what the plan needs.

Works with any distribution registry: plain HTTP for loopback registries,
HTTPS elsewhere; anonymous, basic or bearer-token auth. Credentials come from
$IMAGEGRAPH_REGISTRY_USER / $IMAGEGRAPH_REGISTRY_PASSWORD, else from the docker
config as ``docker login`` leaves it (``auths``, ``credsStore``,
``credHelpers``, read through docker-py's ``docker.auth``), and are never
printed.

Transient faults are tried again, within bounds (:class:`RetryPolicy`): a
registry restarting, a proxy in front of it answering 502, a rate limit, or
the distribution registry answering 500 "invalid checksum digest format" to a
read that meets a tag being rewritten.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import os
import random
import re
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RegistryError

if TYPE_CHECKING:  # loaded when the registry is first asked (planning a docs-only change never asks it)
    import docker.errors
    import requests

__all__ = ["MANIFEST_TYPES", "Registry", "RegistryHTTP", "RetryPolicy", "parse_retry_after", "split_ref"]

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$")

#: Answers that say "not now" rather than "no": a registry restarting or overloaded, a proxy without its backend, a rate limit.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_loopback(host: str) -> bool:
    """A registry on this machine (localhost, 127.x, [::1]), which dockerd and imagegraph speak to over plain HTTP."""
    return bool(_LOOPBACK.match(host))


def split_ref(ref: str) -> tuple[str, str, str]:
    """``host:5000/ns/name:tag`` -> (``host:5000``, ``ns/name``, ``tag``)."""
    host, _, rest = ref.partition("/")
    name, _, tag = rest.rpartition(":")
    if not host or not name or not tag:
        raise RegistryError(f"{ref!r} is not a full reference like registry:5000/namespace/image:tag")
    return host, name, tag


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
                 retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep,
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

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, data: bytes | None = None) -> requests.Response:
        """The registry's answer to ``method /v2{path}``, once it is not a passing fault; raises the one-line error when tries run out."""
        import requests

        retryable = self.retry.idempotent(method, path)
        started = self._clock()
        sent = 0
        while True:
            remaining = self.retry.total - (self._clock() - started)
            sent += 1
            try:
                response = self.session.request(method, self.base + path, headers=headers or {}, data=data,
                                                timeout=min(self.timeout, max(remaining, 1.0)))
            except requests.RequestException as err:
                if not self._contacted and _refused(err):
                    raise RegistryError(self._unreachable(err)) from None
                failure, retry_after = _problem(err), None
            else:
                self._contacted = True
                if not (retryable and self.retry.retries_status(response.status_code)):
                    return response
                failure = f"answered {_answer(response)}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._wallclock())
            elapsed = self._clock() - started
            delay = self.retry.wait(sent, elapsed, retry_after) if retryable else None
            if delay is None:
                raise RegistryError(
                    f"registry {self.host} {failure} to {method} /v2{path} on {sent} {'try' if sent == 1 else 'tries'} "
                    f"over {elapsed:.1f} s; check that it is up and healthy (`invoke engine.status`, the registry's log) and run again"
                )
            self._sleep(delay)

    def _unreachable(self, err: requests.RequestException) -> str:
        import requests

        if isinstance(err, requests.ConnectTimeout):
            return f"registry {self.host} did not answer within {self.timeout:.0f}s; check that it is up (`invoke engine.status`)"
        return f"registry {self.host} is not reachable; start it with `invoke engine.up` or set IMAGEGRAPH_REGISTRY"


@dataclass(frozen=True)
class _Credentials:
    username: str
    password: str = field(repr=False)
    #: Where they came from, for the fix in an error message: "environment" or "docker" (config).
    source: str = "docker"
    #: The program that gave them (``docker-credential-NAME``), when the docker config names one.
    helper: str | None = None


class Registry:
    """What the plan asks a registry: tags, digests, manifests, blobs; tag copies and deletes. Auth on top of :class:`RegistryHTTP`."""

    def __init__(self, host: str, *, timeout: float = 10.0, session: requests.Session | None = None,
                 retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._http = RegistryHTTP(host, timeout=timeout, session=session, retry=retry, sleep=sleep, clock=clock)
        self.host = host
        self.insecure = self._http.insecure
        self.base = self._http.base
        self.timeout = timeout
        self._session = self._http.session
        self._credentials = _credentials_for(host)
        self._tokens: dict[str, str] = {}

    def manifest_digest(self, name: str, tag: str) -> str | None:
        """The digest of ``name:tag``, or None when the registry does not have it."""
        response = self._request("HEAD", f"/{name}/manifests/{tag}", scope=f"repository:{name}:pull",
                                 headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return None
        self._raise_for(response, f"{name}:{tag}")
        return response.headers.get("Docker-Content-Digest")

    def has(self, ref: str) -> bool:
        host, name, tag = split_ref(ref)
        if host != self.host:
            raise RegistryError(f"{ref} is not in registry {self.host}")
        return self.manifest_digest(name, tag) is not None

    def manifest(self, name: str, reference: str) -> tuple[str, dict]:
        """(media type, parsed body) of a manifest or index."""
        media_type, _, body = self.inspect(name, reference)
        return media_type, body

    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]:
        """(media type, digest, parsed body) of the manifest or index a tag or digest names."""
        response = self._request("GET", f"/{name}/manifests/{reference}", scope=f"repository:{name}:pull",
                                 headers={"Accept": ", ".join(MANIFEST_TYPES)})
        self._raise_for(response, f"{name}@{reference}")
        body = response.json()
        media_type = response.headers.get("Content-Type", "") or body.get("mediaType", "")
        digest = response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(response.content).hexdigest()
        return media_type, digest, body

    def blob(self, name: str, digest: str) -> bytes:
        """A blob's bytes (an image config, say); the registry may redirect to its storage."""
        response = self._request("GET", f"/{name}/blobs/{digest}", scope=f"repository:{name}:pull", headers={})
        self._raise_for(response, f"blob {digest[:19]} of {name}")
        return response.content

    def delete_manifest(self, name: str, digest: str) -> bool:
        """Delete a manifest by digest, and with it every tag naming it; False when it was already gone."""
        response = self._request("DELETE", f"/{name}/manifests/{digest}", scope=f"repository:{name}:delete,pull,push", headers={})
        if response.status_code == 404:
            return False
        if response.status_code == 405:
            raise RegistryError(f"registry {self.host} does not allow deletes; enable them (distribution: storage.delete.enabled: true) and run again")
        self._raise_for(response, f"deleting {name}@{digest[:19]}")
        return True

    def tags(self, name: str) -> tuple[str, ...]:
        """Every tag of repository ``name`` (all pages); () when the repository does not exist yet."""
        found: list[str] = []
        path: str | None = f"/{name}/tags/list?n=1000"
        while path:
            response = self._request("GET", path, scope=f"repository:{name}:pull", headers={})
            if response.status_code == 404:
                return ()
            self._raise_for(response, f"the tags of {name}")
            found.extend(response.json().get("tags") or ())
            following = response.links.get("next", {}).get("url")
            path = following.removeprefix("/v2") if following else None
        return tuple(found)

    def copy_tag(self, name: str, source: str, target: str) -> str:
        """Point tag ``target`` at the manifest ``source`` names, byte for byte (so the digest is the same); returns it.

        Nothing is pulled or rebuilt: an index (manifest list) is copied as
        is, and its per-platform manifests are already in the repository.
        """
        scope = f"repository:{name}:pull,push"
        response = self._request("GET", f"/{name}/manifests/{source}", scope=scope, headers={"Accept": ", ".join(MANIFEST_TYPES)})
        self._raise_for(response, f"{name}:{source}")
        digest = response.headers.get("Docker-Content-Digest", "")
        media_type = response.headers.get("Content-Type", "")
        put = self._request("PUT", f"/{name}/manifests/{target}", scope=scope, headers={"Content-Type": media_type}, data=response.content)
        self._raise_for(put, f"tagging {name}:{target}")
        written = put.headers.get("Docker-Content-Digest", digest)
        if digest and written != digest:
            raise RegistryError(f"registry {self.host} stored {name}:{target} as {written}, not {digest}; the manifest was changed on the way")
        return written

    def _request(self, method: str, path: str, *, scope: str, headers: dict[str, str], data: bytes | None = None) -> requests.Response:
        response = self._http.request(method, path, headers={**headers, **self._auth_header(scope)}, data=data)
        if response.status_code == 401:
            # First contact for this scope, or its token has expired (tokens last minutes, a build can take longer):
            # authenticate afresh, then retry once.
            self._tokens.pop(scope, None)
            self._authenticate(response, scope)
            response = self._http.request(method, path, headers={**headers, **self._auth_header(scope)}, data=data)
        if response.status_code == 401:
            raise RegistryError(self._refusal())
        return response

    def _refusal(self) -> str:
        """The one line for a 401: what was refused, and the fix that fits where the credentials came from."""
        if self._credentials is None:  # an anonymous token is nobody's credentials
            return f"registry {self.host} needs credentials; run `docker login {self.host}` or set IMAGEGRAPH_REGISTRY_USER/PASSWORD"
        if self._credentials.source == "environment":
            return f"registry {self.host} refused the credentials in IMAGEGRAPH_REGISTRY_USER/PASSWORD; correct them (they win over `docker login`)"
        if self._credentials.helper:
            return (f"registry {self.host} refused the credentials from the credential helper {self._credentials.helper}; "
                    f"run `docker login {self.host}` again (it stores them through that helper)")
        return f"registry {self.host} refused the credentials from `docker login`; run `docker login {self.host}` again"

    def _auth_header(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": self._tokens[scope]}
        return {}

    def _authenticate(self, challenge: requests.Response, scope: str) -> None:
        import requests

        header = challenge.headers.get("WWW-Authenticate", "")
        scheme, _, params = header.partition(" ")
        if self._credentials is None and scheme.lower() == "basic":
            raise RegistryError(f"registry {self.host} needs credentials; run `docker login {self.host}` or set IMAGEGRAPH_REGISTRY_USER/PASSWORD")
        if scheme.lower() == "basic":
            assert self._credentials is not None
            raw = f"{self._credentials.username}:{self._credentials.password}".encode()
            self._tokens[scope] = "Basic " + base64.b64encode(raw).decode()
            return
        if scheme.lower() != "bearer":
            raise RegistryError(f"registry {self.host} asks for unsupported auth scheme {scheme!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        auth = (self._credentials.username, self._credentials.password) if self._credentials else None
        query = {"service": fields.get("service", ""), "scope": scope}
        try:
            reply = self._session.get(fields["realm"], params=query, auth=auth, timeout=self.timeout)
        except (KeyError, requests.RequestException):
            raise RegistryError(f"registry {self.host}: its token service could not be reached") from None
        if reply.status_code in (401, 403):
            raise RegistryError(self._refusal())
        try:
            body = reply.json() if reply.ok else None
        except ValueError:
            body = None
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not token or not isinstance(token, str):
            raise RegistryError(f"registry {self.host}: its token service ({fields['realm']}) answered {reply.status_code} without a token; try again later")
        self._tokens[scope] = "Bearer " + token

    def _raise_for(self, response: requests.Response, what: str) -> None:
        if response.status_code >= 400:
            raise RegistryError(f"registry {self.host} answered {response.status_code} for {what}")


    # -- writing blobs and manifests (small documents a tool keeps in the registry itself) --------------------------

    def push_blob(self, name: str, data: bytes) -> str:
        """Upload ``data`` as a blob of repository ``name`` (monolithic: for small documents); returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        scope = f"repository:{name}:pull,push"
        if self._request("HEAD", f"/{name}/blobs/{digest}", scope=scope, headers={}).status_code == 200:
            return digest
        start = self._request("POST", f"/{name}/blobs/uploads/", scope=scope, headers={})
        self._raise_for(start, f"starting an upload to {name}")
        location = start.headers.get("Location", "")
        path = location.split("/v2", 1)[1] if "/v2/" in location else location
        put = self._request("PUT", f"{path}{'&' if '?' in path else '?'}digest={digest}", scope=scope,
                            headers={"Content-Type": "application/octet-stream"}, data=data)
        self._raise_for(put, f"uploading blob {digest[:19]} to {name}")
        return digest

    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str:
        """Store manifest ``data`` as ``name:reference`` (a tag or its digest); returns the digest the registry gives it."""
        put = self._request("PUT", f"/{name}/manifests/{reference}", scope=f"repository:{name}:pull,push",
                            headers={"Content-Type": media_type}, data=data)
        self._raise_for(put, f"writing {name}:{reference}")
        return put.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(data).hexdigest()


def _credentials_for(host: str) -> _Credentials | None:
    """Credentials for ``host``: $IMAGEGRAPH_REGISTRY_USER/PASSWORD, else what ``docker login`` left in the docker config.

    The config is read here (DOCKER_CONFIG names its directory; empty counts
    as unset, as for docker, and nothing else is looked at then); docker-py's
    ``docker.auth`` resolves it as the docker CLI does: the credential helper
    ``credHelpers`` names for the host, else the ``credsStore``, else the
    ``auths`` entry. Only the entries for ``host`` are handed on, so a garbled
    entry for another registry does not stop this one.
    """
    user, password = os.environ.get("IMAGEGRAPH_REGISTRY_USER"), os.environ.get("IMAGEGRAPH_REGISTRY_PASSWORD")
    if user and password:
        return _Credentials(user, password, source="environment")
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")  # empty counts as unset, as for docker
    path = config_dir / "config.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    garbled = RegistryError(f"{path}: the credentials for {host} are garbled; run `docker login {host}` again")
    auths, helpers, store = document.get("auths") or {}, document.get("credHelpers") or {}, document.get("credsStore") or None
    if not isinstance(auths, dict) or not isinstance(helpers, dict) or not isinstance(store, str | None):
        raise garbled
    # An entry without a secret is where `docker login` with a helper leaves a mark; docker-py would call it garbled.
    ours = {key: entry for key, entry in auths.items() if _hostname(key) == host
            and (not isinstance(entry, dict) or entry.get("auth") or entry.get("identitytoken"))}
    relevant = {"auths": ours, **({"credsStore": store} if store else {}), **({"credHelpers": helpers} if helpers else {})}
    if not ours and not store and not helpers:
        return None
    import docker.auth  # only now: the docker client library costs a start-up that most runs never need
    import docker.errors

    try:
        config = docker.auth.load_config(config_dict=relevant)
    except (docker.errors.DockerException, ValueError, TypeError, AttributeError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise garbled from None
    name = config.get_credential_store(host)
    helper = f"docker-credential-{name}" if isinstance(name, str) and name else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # docker-py warns when the helper is missing; the error below says it, once
            found = config.resolve_authconfig(host)
    except docker.errors.DockerException as err:
        raise RegistryError(_helper_failed(helper, host, path, err)) from None
    except (ValueError, KeyError, TypeError, AttributeError):  # its answer is not the protocol's JSON; never shown, it may hold a secret
        raise RegistryError(f"the credential helper {helper} answered something that is not credentials for {host}; "
                            f"check it (`echo {host} | {helper} get`) or run `docker login {host}` again") from None
    if not found:
        return None
    if "IdentityToken" in found:
        raise RegistryError(f"the credentials for {host} in {path} are an identity token, which imagegraph cannot use; "
                            f"set IMAGEGRAPH_REGISTRY_USER/PASSWORD (a token as the password) instead")
    if "Username" in found:  # from the helper
        return _Credentials(found["Username"], found["Password"], helper=helper)
    if found.get("username") is not None and found.get("password") is not None:
        return _Credentials(found["username"], found["password"])
    return None


def _hostname(key: str) -> str:
    """The registry host an ``auths`` key names (``https://host/v1/`` -> ``host``), as the docker CLI reads the key."""
    return key.removeprefix("http://").removeprefix("https://").split("/", 1)[0]


def _helper_failed(helper: str | None, host: str, path: Path, err: docker.errors.DockerException) -> str:
    """One line for a credential helper that is missing or fails (its message, not its output, which may hold a secret)."""
    if helper is None or shutil.which(helper) is None:
        return (f"{path} names the credential helper {helper} for {host}, but it is not on PATH; "
                f"install it, or remove it from {path} and run `docker login {host}`")
    cause = err.__cause__
    code = getattr(getattr(cause, "__cause__", None), "returncode", None)
    how = f"exited {code}" if code is not None else "failed"
    return (f"the credential helper {helper} {how} when asked for {host}; check it (`echo {host} | {helper} get`) "
            f"or run `docker login {host}` again")
