"""A client for the OCI distribution HTTP API (v2): just what the plan needs.

Works with any distribution registry; anonymous, basic or bearer-token auth.
The transport (plain HTTP or HTTPS, timeouts, bounded retries) is
:mod:`imagegraph.adapters.registry_http`; where credentials come from, and how they
stay unprinted, :mod:`imagegraph.adapters.registry_auth`. ``requests`` and ``docker``
are imported on first use, never by importing this module.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..core.errors import InputError, RegistryError
from ..core.media_types import ANY_MANIFEST, IMAGE_MANIFESTS
from ..core.values import ImageRef, redact_url, shown
from .registry_auth import credentials_for
from .registry_http import REGISTRY_RETRY, RegistryHTTP, RetryPolicy

if TYPE_CHECKING:  # loaded when the registry is first asked (planning a docs-only change never asks it)
    import requests

__all__ = ["Registry", "full_ref"]


def full_ref(ref: ImageRef | str) -> ImageRef:
    """``ref`` as a reference this client can look up: with a registry and a tag (or digest); a :class:`RegistryError` otherwise."""
    try:
        image = ref if isinstance(ref, ImageRef) else ImageRef.parse(ref)
    except InputError:
        image = None
    if image is None or image.registry is None or not image.reference:
        raise RegistryError(f"{shown(str(ref))} is not a full reference like registry:5000/namespace/image:tag")
    return image


def _date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as a UTC time; None when absent or unreadable."""
    try:
        when = email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return when.astimezone(UTC) if when is not None and when.tzinfo is not None else None


class Registry:
    """What the plan asks a registry: tags, digests, manifests, blobs; tag copies and deletes. Auth on top of :class:`RegistryHTTP`."""

    def __init__(self, host: str, *, timeout: float = 10.0, session: requests.Session | None = None,
                 retry: RetryPolicy = REGISTRY_RETRY, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._http = RegistryHTTP(host, timeout=timeout, session=session, retry=retry, sleep=sleep, clock=clock)
        self.host = host
        self.insecure = self._http.insecure
        self.base = self._http.base
        self.timeout = timeout
        self._session = self._http.session
        self._credentials = credentials_for(host)
        self._tokens: dict[str, str] = {}

    @property
    def requests(self) -> int:
        """Requests sent to the registry so far (the token service's aside)."""
        return self._http.requests

    def manifest_digest(self, name: str, tag: str) -> str | None:
        """The digest of ``name:tag``, or None when the registry does not have it."""
        found = self._head(name, tag)
        return None if found is None else found[0]

    def _head(self, name: str, reference: str) -> tuple[str | None, str] | None:
        """(digest, media type) of what ``name:reference`` names, from a HEAD's headers; None when the registry does not have it."""
        response = self._request("HEAD", f"/{name}/manifests/{reference}", scope=f"repository:{name}:pull",
                                 headers={"Accept": ", ".join(ANY_MANIFEST)})
        if response.status_code == 404:
            return None
        self._raise_for(response, f"{name}:{reference}")
        return response.headers.get("Docker-Content-Digest"), response.headers.get("Content-Type", "").split(";")[0].strip()

    def manifest_digest_at(self, name: str, tag: str) -> tuple[str | None, datetime | None]:
        """The digest of ``name:tag`` (None when absent) and the registry's own time of the answer (its ``Date``; None without one).

        Leases count time by the registry's clock, which every runner reads
        alike, never by the runner's own.
        """
        response = self._request("HEAD", f"/{name}/manifests/{tag}", scope=f"repository:{name}:pull",
                                 headers={"Accept": ", ".join(ANY_MANIFEST)})
        when = _date(response.headers.get("Date"))
        if response.status_code == 404:
            return None, when
        self._raise_for(response, f"{name}:{tag}")
        return response.headers.get("Docker-Content-Digest"), when

    def has(self, ref: ImageRef | str, platforms: Sequence[str] = ()) -> bool:
        """Whether the registry has ``ref``; for an image of several ``platforms``, as a list of manifests.

        A tag that names one platform's manifest where several were planned is
        a push cut short (:mod:`imagegraph.core.manifests`): no image to reuse.
        The type the registry names in its answer says so, at no extra request.
        """
        image = full_ref(ref)
        if image.domain != self.host:
            raise RegistryError(f"{image} is not in registry {self.host}")
        found = self._head(image.repository, image.reference)
        return found is not None and not (len(platforms) > 1 and found[1] in IMAGE_MANIFESTS)

    def manifest(self, name: str, reference: str) -> tuple[str, dict]:
        """(media type, parsed body) of a manifest or index."""
        media_type, _, body = self.inspect(name, reference)
        return media_type, body

    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]:
        """(media type, digest, parsed body) of the manifest or index a tag or digest names."""
        response = self._request("GET", f"/{name}/manifests/{reference}", scope=f"repository:{name}:pull",
                                 headers={"Accept": ", ".join(ANY_MANIFEST)})
        self._raise_for(response, f"{name}@{reference}")
        body = response.json()
        media_type = response.headers.get("Content-Type", "") or body.get("mediaType", "")
        digest = response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(response.content).hexdigest()
        return media_type, digest, body

    def read_manifest(self, name: str, reference: str) -> tuple[str, bytes] | None:
        """(media type, bytes as stored) of the manifest a tag or digest names; None when the registry does not have it.

        The bytes are what a descriptor of it must count and hash (an index that lists it, say).
        """
        response = self._request("GET", f"/{name}/manifests/{reference}", scope=f"repository:{name}:pull",
                                 headers={"Accept": ", ".join(ANY_MANIFEST)})
        if response.status_code == 404:
            return None
        self._raise_for(response, f"{name}:{reference}")
        return response.headers.get("Content-Type", "").split(";")[0].strip(), response.content

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

    def lists_tag(self, name: str, tag: str) -> bool:
        """Whether the tag list of ``name`` names ``tag``: on a distribution registry, a tag whose manifest's delete met another
        write to the repository can stay listed while it names nothing (HEAD answers 404)."""
        return tag in self.tags(name)

    def copy_tag(self, name: str, source: str, target: str) -> str:
        """Point tag ``target`` at the manifest ``source`` names, byte for byte (so the digest is the same); returns it.

        Nothing is pulled or rebuilt: an index (manifest list) is copied as
        is, and its per-platform manifests are already in the repository.
        """
        scope = f"repository:{name}:pull,push"
        response = self._request("GET", f"/{name}/manifests/{source}", scope=scope, headers={"Accept": ", ".join(ANY_MANIFEST)})
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
            raise RegistryError(self._refusal(response, scope))
        return response

    def _refusal(self, response: requests.Response | None = None, scope: str = "") -> str:
        """The one line for a 401: what was refused, and the fix that fits where the credentials came from.

        A token service that knows the credentials but grants fewer actions than asked (a read-only token asked to push)
        says so in the registry's challenge (``error="insufficient_scope"``): that is named, with the right it lacks.
        """
        challenge = response.headers.get("WWW-Authenticate", "") if response is not None else ""
        if self._credentials is not None and 'error="insufficient_scope"' in challenge:
            _, _, rest = scope.partition(":")
            repository, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a and a != "pull"] or ["pull"]
            origin = ("IMAGEGRAPH_REGISTRY_USER/PASSWORD" if self._credentials.source == "environment"
                      else f"the credential helper {self._credentials.helper}" if self._credentials.helper else "`docker login`")
            return (f"registry {self.host}: the credentials from {origin} may not {' or '.join(wanted)} in "
                    f"{shown(repository)} (insufficient scope); use a token with that right (write access to push, delete to delete)")
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
            raise RegistryError(self._refusal(reply, scope))
        try:
            body = reply.json() if reply.ok else None
        except ValueError:
            body = None
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not token or not isinstance(token, str):
            realm = redact_url(fields["realm"])
            raise RegistryError(f"registry {self.host}: its token service ({realm}) answered {reply.status_code} without a token; try again later")
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
