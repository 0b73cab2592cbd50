"""Docker Hub: tags deleted through Docker Hub's API, then the untagged manifest through its registry's own DELETE.

What Docker documents, and so what this client does:

- **Sign-in** (https://docs.docker.com/reference/api/hub/latest/#tag/authentication-api,
  ``POST /v2/auth/token`` with ``identifier`` and ``secret``): a username and a
  personal access token (or an organization name and its access token) give a
  short-lived JWT, sent as ``Authorization: Bearer``; it is asked for again when
  it expires mid-run.
- **Tags** are listed by ``GET /v2/namespaces/{namespace}/repositories/{repository}/tags``
  (https://docs.docker.com/reference/api/hub/latest/#tag/repositories; ``page_size``
  up to 100, the next page's URL in the body's ``next``). A tag is deleted by
  ``DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/``, the path
  Docker's own Hub client uses (docker/hub-tool); the current reference lists
  no delete for tags at all.
- **Manifests** are deleted on the registry (registry-1.docker.io) by digest:
  ``DELETE /v2/{name}/manifests/{digest}`` answers 202 for a manifest that no
  tag and no image index names, and 403 for one that is still named
  (https://docs.docker.com/reference/api/registry/latest/#tag/delete, the
  "deletion API endpoint" Docker Hub's Image Management page points to for
  deleting in bulk). So a tagged image goes in two steps, its tags first; an
  untagged platform manifest goes once its index has gone; and a tag pushed in
  between makes Docker Hub refuse, which stops the run before anything a tag
  still names is lost.
- **Untagged manifests cannot be listed**: the documented Hub API lists tags
  only (its former ``images`` listing and ``delete-images`` endpoint are no
  longer in the reference), so :meth:`DockerHub.untagged` knows none. Cleanup
  still deletes the platform manifests and attestations of an index it
  deletes (it reads them from the index); a manifest nothing has named since
  before the run stays, as on any registry of the distribution API.
- **The delete right.** A personal access token has one access scope ("Read-only",
  "Read & Write", "Read, Write & Delete"; https://docs.docker.com/security/access-tokens/reference/);
  only the last may delete. The Hub API does not tell a token its own scope,
  but the registry's token service does: asked for ``repository:<name>:pull,push,delete``,
  it grants the subset the credentials hold and lists it in the token's
  ``access`` claim (https://docs.docker.com/reference/api/registry/auth/).
  :meth:`DockerHub.check_rights` asks once per repository, before the first
  delete, and names the scope in one line when ``delete`` is missing.
- **Rate limits**: ``X-RateLimit-*`` headers, and 429 with ``Retry-After``
  (https://docs.docker.com/reference/api/hub/latest/#tag/rate-limiting), are
  honoured by :class:`~imagegraph.adapters.registry_apis.forge_http.ForgeHTTP`.

Repositories on Docker Hub are ``NAMESPACE/NAME`` (``library/NAME`` for
official images, which a bare ``NAME`` means). The API's URL is
``$IMAGEGRAPH_DOCKERHUB_API`` or https://hub.docker.com, never images.yaml's.
Credentials: ``$IMAGEGRAPH_DOCKERHUB_USER``/``$IMAGEGRAPH_DOCKERHUB_TOKEN``,
else the registry's own (``docker login``, a credential helper,
``$IMAGEGRAPH_REGISTRY_USER``/``PASSWORD``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ...core.errors import RegistryError
from ..registry_auth import credentials_for
from .forge_http import ForgeHTTP, api_base

if TYPE_CHECKING:
    import requests

    from ..registry import Registry

__all__ = ["HUB_API", "DockerHub", "registry_grants", "split_repository"]

#: Docker Hub's API, unless $IMAGEGRAPH_DOCKERHUB_API names another (a stand-in on this machine).
HUB_API = "https://hub.docker.com"
#: The scope a personal access token needs to delete, as Docker Hub's settings page names it.
DELETE_SCOPE = "Read, Write & Delete"
#: The host names of Docker Hub's registry, under which `docker login` may have stored the credentials.
_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
_PAGE = 100  # the most the tag listing gives per page


def split_repository(repository: str) -> tuple[str, str]:
    """``(namespace, name)`` of a Docker Hub repository: ``acme/app``, or ``library/NAME`` for a bare ``NAME``; a one-line error otherwise."""
    parts = repository.split("/")
    if len(parts) == 1 and parts[0]:
        return "library", parts[0]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise RegistryError(f"{repository[:80]!r} is no Docker Hub repository: Docker Hub's are NAMESPACE/NAME (two parts)")


def _claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified (it is only read for what the token service granted); None when it is no JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def registry_grants(token: str, repository: str) -> frozenset[str] | None:
    """The actions a registry token grants on ``repository`` (its ``access`` claim); None when the token does not say."""
    claims = _claims(token)
    access = claims.get("access") if claims is not None else None
    if not isinstance(access, list):
        return None
    actions: set[str] = set()
    for entry in access:
        if isinstance(entry, dict) and entry.get("type") == "repository" and entry.get("name") == repository:
            actions.update(a for a in entry.get("actions") or () if isinstance(a, str))
    return frozenset(actions)


class DockerHub:
    """Docker Hub's API for tags, and its registry's DELETE for untagged manifests; see the module's rules."""

    name = "Docker Hub's API"
    collects_untagged = False

    def __init__(self, registry: Registry, http: ForgeHTTP, username: str, secret: str, *, source: str,
                 say: Callable[[str], None] = lambda line: None) -> None:
        self.registry = registry
        self.http = http
        self.username = username
        self._secret = secret
        #: Where the credentials came from, for the fix in a refusal: "IMAGEGRAPH_DOCKERHUB_USER/TOKEN" or "`docker login`".
        self.source = source
        self.say = say
        self._bearer: str | None = None
        self._sent = 0  # the delete right's questions to the registry and its token service (the Hub API's are ForgeHTTP's)
        self._checked: set[str] = set()

    @classmethod
    def from_environment(cls, registry: Registry, *, environ: Mapping[str, str],
                         say: Callable[[str], None] = lambda line: None) -> DockerHub:
        base = environ.get("IMAGEGRAPH_DOCKERHUB_API") or HUB_API
        what = f"Docker Hub's API at {api_base(base, 'IMAGEGRAPH_DOCKERHUB_API')}"
        user, token = environ.get("IMAGEGRAPH_DOCKERHUB_USER", ""), environ.get("IMAGEGRAPH_DOCKERHUB_TOKEN", "")
        if bool(user) != bool(token):
            missing = "IMAGEGRAPH_DOCKERHUB_TOKEN" if user else "IMAGEGRAPH_DOCKERHUB_USER"
            raise RegistryError(f"{missing} is not set while its pair is; set both (a username and a personal access token) or neither")
        source = "IMAGEGRAPH_DOCKERHUB_USER/TOKEN"
        if not user:
            hosts = _HUB_HOSTS if registry.host in _HUB_HOSTS else (registry.host,)
            found = next((c for c in (credentials_for(h) for h in hosts) if c is not None), None)
            if found is None:
                raise RegistryError(f"Docker Hub's API needs credentials to delete on {registry.host}: run `docker login {registry.host}` "
                                    f"with a personal access token, or set IMAGEGRAPH_DOCKERHUB_USER/IMAGEGRAPH_DOCKERHUB_TOKEN")
            user, token = found.username, found.password
            source = "IMAGEGRAPH_REGISTRY_USER/PASSWORD" if found.source == "environment" else f"`docker login {registry.host}`"
        return cls(registry, ForgeHTTP(base, {}, what=what, say=say), user, token, source=source, say=say)

    @property
    def requests(self) -> int:
        return self.http.requests + self._sent

    # -- the Hub API ------------------------------------------------------------------------------------------------

    def _sign_in(self) -> str:
        response = self.http.request("POST", "/v2/auth/token", json_body={"identifier": self.username, "secret": self._secret}, ok=(401,))
        if response.status_code == 401:
            raise RegistryError(f"Docker Hub refused the credentials for {self.username} from {self.source}; "
                                f"correct them (a personal access token with the {DELETE_SCOPE} scope)")
        try:
            token = response.json().get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.http.what} answered the sign-in without a token; try again later")
        self._bearer = token
        return token

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, ok: tuple[int, ...] = ()) -> requests.Response:
        """``method path`` with the session's token, signing in first, and again once when the token has expired."""
        for attempt in (1, 2):
            token = self._bearer or self._sign_in()
            response = self.http.request(method, path, params=params, headers={"Authorization": f"Bearer {token}"}, ok=(401, *ok))
            if response.status_code != 401:
                return response
            self._bearer = None
            if attempt == 2:
                raise RegistryError(f"Docker Hub refused the token it gave {self.username} for {method} {urlsplit(self.http.url(path)).path}; "
                                    f"run again, and check the credentials from {self.source}")
        raise AssertionError("unreachable")

    def tags(self, repository: str) -> dict[str, str]:
        """Every tag of ``repository`` with the digest it names (all pages); {} when the repository does not exist."""
        namespace, name = split_repository(repository)
        path: str | None = f"/v2/namespaces/{quote(namespace, safe='')}/repositories/{quote(name, safe='')}/tags"
        params: Mapping[str, Any] | None = {"page_size": _PAGE}
        found: dict[str, str] = {}
        seen: set[str] = set()
        while path is not None:
            response = self._call("GET", path, params=params, ok=(404,))
            if response.status_code == 404:
                return {}
            try:
                body = response.json()
                results, following = body["results"], body.get("next")
            except (ValueError, KeyError, TypeError):
                raise RegistryError(f"{self.http.what} answered the tag listing of {repository} with something that is not one") from None
            for entry in results:
                tag, digest = (entry.get("name"), entry.get("digest")) if isinstance(entry, dict) else (None, None)
                if isinstance(tag, str) and isinstance(digest, str):
                    found[tag] = digest
            if not isinstance(following, str) or not following or following in seen:
                break
            seen.add(following)
            path, params = following, None
        return found

    def _delete_tag(self, repository: str, tag: str) -> bool:
        namespace, name = split_repository(repository)
        path = f"/v2/repositories/{quote(namespace, safe='')}/{quote(name, safe='')}/tags/{quote(tag, safe='')}/"
        response = self._call("DELETE", path, ok=(403, 404))
        if response.status_code == 403:
            raise RegistryError(self._no_delete_right(repository))
        return self.http.gone_by_us(response)

    # -- the registry: its token service (for the delete right) and its DELETE ---------------------------------------

    def _no_delete_right(self, repository: str) -> str:
        return (f"the Docker Hub credentials of {self.username} (from {self.source}) may not delete in {repository}: "
                f"give the personal access token the {DELETE_SCOPE} scope (Account settings > Personal access tokens), then run again")

    def _granted(self, repository: str) -> frozenset[str] | None:
        """What the registry's token service grants these credentials on ``repository`` when asked for pull, push and delete;
        None when the registry asks for no token or the token does not say."""
        import requests

        try:
            self._sent += 1
            challenge = requests.get(f"{self.registry.base}/", timeout=self.http.timeout)
        except requests.RequestException:
            raise RegistryError(f"registry {self.registry.host} could not be reached to ask for the delete right; run again") from None
        scheme, _, params = challenge.headers.get("WWW-Authenticate", "").partition(" ")
        if challenge.status_code != 401 or scheme.lower() != "bearer":
            return None
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = api_base(fields.get("realm", ""), f"the token service registry {self.registry.host} names")
        try:
            self._sent += 1
            reply = requests.get(realm, params={"service": fields.get("service", ""), "scope": f"repository:{repository}:pull,push,delete"},
                                 auth=(self.username, self._secret), timeout=self.http.timeout)
        except requests.RequestException:
            raise RegistryError(f"registry {self.registry.host}: its token service could not be reached; run again") from None
        if reply.status_code in (401, 403):
            raise RegistryError(f"registry {self.registry.host} refused the credentials of {self.username} from {self.source}; correct them")
        try:
            body = reply.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        return registry_grants(token, repository) if isinstance(token, str) else None

    def check_rights(self, repositories: Sequence[str]) -> None:
        unknown = []
        for repository in dict.fromkeys(repositories):
            if repository in self._checked:
                continue
            split_repository(repository)
            granted = self._granted(repository)
            if granted is None:
                unknown.append(repository)
            elif "delete" not in granted:
                raise RegistryError(self._no_delete_right(repository))
            self._checked.add(repository)
        if self._bearer is None:
            self._sign_in()  # wrong credentials are said now, before anything is deleted
        if unknown:
            self.say(f"Docker Hub: the registry did not say whether {self.username} may delete in {', '.join(unknown)}; "
                     f"the first refusal stops the run")

    def untagged(self, repository: str) -> tuple[str, ...]:
        return ()  # the documented Hub API lists tags only (see the module's docstring)

    def delete(self, repository: str, digest: str, tags: Sequence[str]) -> bool:
        for tag in dict.fromkeys(tags):
            self._delete_tag(repository, tag)
        try:
            return self.registry.delete_manifest(repository, digest)  # counted by the registry client, as its other requests
        except RegistryError as err:
            if " answered 403 " not in f"{err} ":
                raise
            raise RegistryError(f"Docker Hub refused to delete {repository}@{digest[:19]}: a tag or an image index still names it "
                                f"(Docker Hub deletes only untagged manifests nothing refers to); run cleanup again to see it anew") from None
