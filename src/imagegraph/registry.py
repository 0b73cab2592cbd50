"""A client for the OCI distribution HTTP API (v2): just what the plan needs.

Works with any distribution registry: plain HTTP for loopback registries,
HTTPS elsewhere; anonymous, basic or bearer-token auth. Credentials come from
the docker config (``~/.docker/config.json``) or $IMAGEGRAPH_REGISTRY_USER /
$IMAGEGRAPH_REGISTRY_PASSWORD and are never printed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .errors import RegistryError

__all__ = ["MANIFEST_TYPES", "Registry", "split_ref"]

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$")


def split_ref(ref: str) -> tuple[str, str, str]:
    """``host:5000/ns/name:tag`` -> (``host:5000``, ``ns/name``, ``tag``)."""
    host, _, rest = ref.partition("/")
    name, _, tag = rest.rpartition(":")
    if not host or not name or not tag:
        raise RegistryError(f"{ref!r} is not a full reference like registry:5000/namespace/image:tag")
    return host, name, tag


@dataclass(frozen=True)
class _Credentials:
    username: str
    password: str = field(repr=False)
    #: Where they came from, for the fix in an error message.
    source: str = "docker"


class Registry:
    def __init__(self, host: str, *, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.host = host
        self.insecure = bool(_LOOPBACK.match(host))
        self.base = f"{'http' if self.insecure else 'https'}://{host}/v2"
        self.timeout = timeout
        self._session = session or requests.Session()
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
        url = self.base + path
        try:
            response = self._session.request(method, url, headers={**headers, **self._auth_header(scope)}, data=data, timeout=self.timeout)
            if response.status_code == 401:
                # First contact for this scope, or its token has expired (tokens last minutes, a build can take longer):
                # authenticate afresh, then retry once.
                self._tokens.pop(scope, None)
                self._authenticate(response, scope)
                response = self._session.request(method, url, headers={**headers, **self._auth_header(scope)}, data=data, timeout=self.timeout)
        except requests.ConnectionError:
            raise RegistryError(f"registry {self.host} is not reachable; start it with `invoke engine.up` or set IMAGEGRAPH_REGISTRY") from None
        except requests.Timeout:
            raise RegistryError(f"registry {self.host} did not answer within {self.timeout:.0f}s; check that it is up (`invoke engine.status`)") from None
        if response.status_code == 401:
            raise RegistryError(self._refusal())
        return response

    def _refusal(self) -> str:
        """The one line for a 401: what was refused, and the fix that fits where the credentials came from."""
        if self._credentials is None:  # an anonymous token is nobody's credentials
            return f"registry {self.host} needs credentials; run `docker login {self.host}` or set IMAGEGRAPH_REGISTRY_USER/PASSWORD"
        if self._credentials.source == "environment":
            return f"registry {self.host} refused the credentials in IMAGEGRAPH_REGISTRY_USER/PASSWORD; correct them (they win over `docker login`)"
        return f"registry {self.host} refused the credentials from `docker login`; run `docker login {self.host}` again"

    def _auth_header(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": self._tokens[scope]}
        return {}

    def _authenticate(self, challenge: requests.Response, scope: str) -> None:
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
    user, password = os.environ.get("IMAGEGRAPH_REGISTRY_USER"), os.environ.get("IMAGEGRAPH_REGISTRY_PASSWORD")
    if user and password:
        return _Credentials(user, password, source="environment")
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")  # empty counts as unset, as for docker
    path = config_dir / "config.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    garbled = RegistryError(f"{path}: the credentials for {host} are garbled; run `docker login {host}` again")
    auths = (document.get("auths") or {}) if isinstance(document, dict) else {}
    if not isinstance(auths, dict):
        raise garbled
    for key in (host, f"https://{host}", f"http://{host}"):
        entry = auths.get(key) or {}
        if not isinstance(entry, dict) or not isinstance(entry.get("auth") or "", str):
            raise garbled
        if entry.get("auth"):
            try:
                username, _, secret = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except ValueError:  # binascii.Error and UnicodeDecodeError both are
                raise garbled from None
            return _Credentials(username, secret)
    return None
