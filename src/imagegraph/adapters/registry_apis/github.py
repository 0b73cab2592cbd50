"""Deleting on ghcr.io through GitHub's REST API for packages (ghcr.io answers the registry API's DELETE with 405).

On GitHub's container registry every manifest is a *package version*: its
``name`` is the manifest's digest, ``metadata.container.tags`` its tags. A
multi-arch image is an index version (tagged) and one version per platform
manifest and attestation (untagged), which the distribution API cannot list:
:meth:`GitHubPackages.untagged` lists them, so cleanup sees them beside the
index that names them and keeps what a kept index needs.

- **Which package.** ``ghcr.io/OWNER/repo/app`` is package ``repo/app``
  (sent URL-encoded, ``repo%2Fapp``) of owner ``OWNER``, an organization
  (``/orgs/OWNER/...``) or a user (``/user/...`` when the token is that
  user's, else ``/users/OWNER/...``); ``GET /users/OWNER`` says which.
  ``/users/OWNER/...`` shows a user's *public* packages only: a package the
  registry holds that it does not show is a private one, which only its
  owner's token can list and delete. That is an error (a note in a dry run)
  naming the fix, never "no versions": cleanup would skip every delete.
- **Endpoints** (https://docs.github.com/rest/packages/packages):
  ``GET {owner}/packages/container/{package}/versions`` (``per_page`` up to
  100, ``Link`` pages) and ``DELETE {owner}/packages/container/{package}/versions/{id}``.
- **Rights.** A personal access token (classic) shows its scopes in
  ``X-OAuth-Scopes``: deleting needs ``read:packages`` and
  ``delete:packages``, checked before anything is deleted. The job's
  ``GITHUB_TOKEN`` (and a fine-grained token) shows none: then the first
  DELETE's 403 is the answer, and it stops the run before anything else goes.
- **Token**: ``IMAGEGRAPH_GITHUB_TOKEN``, else ``GITHUB_TOKEN``, else the
  password ``docker login ghcr.io`` left (a personal access token). **URL**:
  ``GITHUB_API_URL`` (GitHub Actions sets it; GitHub Enterprise's API), else
  ``https://api.github.com``; never images.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ...core.errors import RegistryError
from ...core.media_types import GITHUB_REST
from ...core.values import is_loopback
from ..registry_auth import credentials_for
from .forge_http import ForgeHTTP, api_base

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["GitHubPackages", "Package", "PackageVersion", "missing_scopes", "parse_versions", "token_scopes"]

PUBLIC_API = "https://api.github.com"
#: Where the token comes from, first found wins: imagegraph's own name, then the one GitHub Actions documents.
TOKEN_VARIABLES = ("IMAGEGRAPH_GITHUB_TOKEN", "GITHUB_TOKEN")
#: The classic token scopes that deleting a package version needs (GitHub's docs for "Delete package version").
DELETE_SCOPES = ("read:packages", "delete:packages")
#: The most versions one page holds (GitHub's maximum).
PER_PAGE = 100
#: GitHub's best practices: "wait at least one second between" writes, to stay clear of the secondary rate limit
#: (https://docs.github.com/rest/guides/best-practices-for-using-the-rest-api#pause-between-mutative-requests).
WRITE_GAP = 1.0
#: What a token needs on GitHub Actions, and the package setting that can still refuse it: the fix a 403 prints.
ACTIONS_RIGHTS = ("give the job `permissions: packages: write` and its repository the Admin role under the package's "
                  "Manage Actions access (package settings), or use a personal access token (classic) with read:packages "
                  "and delete:packages of an admin of the package")


@dataclass(frozen=True)
class Package:
    """A container package on ghcr.io: ``OWNER/repo/app`` is package ``repo/app`` of ``OWNER``."""

    owner: str
    name: str

    @classmethod
    def of(cls, repository: str) -> Package:
        owner, _, name = repository.strip("/").partition("/")
        if not owner or not name:
            raise RegistryError(f"{repository[:80]!r} names no package on ghcr.io, which holds OWNER/PACKAGE; "
                                f"set registry: ghcr.io/OWNER in images.yaml")
        return cls(owner, name)

    @property
    def quoted(self) -> str:
        """The name as one URL path segment: ``repo/app`` is ``repo%2Fapp``."""
        return quote(self.name, safe="")


@dataclass(frozen=True)
class PackageVersion:
    """One manifest of a container package, as the API lists it."""

    id: int
    digest: str
    tags: tuple[str, ...]
    created: datetime | None


def _when(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def parse_versions(body: Any, what: str = "GitHub's API") -> tuple[PackageVersion, ...]:
    """A page of ``.../versions``: each version whose name is a digest (every container version's is)."""
    if not isinstance(body, list):
        raise RegistryError(f"{what} answered a listing of package versions with something that is not a list")
    found = []
    for entry in body:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or isinstance(entry.get("id"), bool):
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name.startswith("sha256:"):
            continue
        container = (entry.get("metadata") or {}).get("container") if isinstance(entry.get("metadata"), dict) else None
        tags = container.get("tags") if isinstance(container, dict) else None
        found.append(PackageVersion(entry["id"], name, tuple(t for t in tags or () if isinstance(t, str)), _when(entry.get("created_at"))))
    return tuple(found)


def token_scopes(headers: Mapping[str, str]) -> frozenset[str] | None:
    """The scopes a classic token holds (``X-OAuth-Scopes``); None where the answer shows none (GITHUB_TOKEN, fine-grained)."""
    lower = {key.lower(): value for key, value in headers.items()}
    if "x-oauth-scopes" not in lower:
        return None
    return frozenset(scope.strip() for scope in lower["x-oauth-scopes"].split(",") if scope.strip())


def missing_scopes(scopes: frozenset[str]) -> tuple[str, ...]:
    """Which of :data:`DELETE_SCOPES` ``scopes`` lacks; write:packages holds read:packages (GitHub's scope hierarchy)."""
    held = scopes | ({"read:packages"} if "write:packages" in scopes else set())
    return tuple(scope for scope in DELETE_SCOPES if scope not in held)


class GitHubPackages:
    """:class:`~imagegraph.adapters.registry_apis.DeletionApi` for ghcr.io (see the module's rules)."""

    name = "GitHub's REST API for packages"
    collects_untagged = False

    def __init__(self, http: ForgeHTTP, *, token_from: str, say: Callable[[str], None] = lambda line: None,
                 registry: Registry | None = None) -> None:
        self.http = http
        #: The registry the packages are pushed to: whether it holds a package the API does not show.
        self.registry = registry
        #: Where the token came from, for the fix a refusal names: "GITHUB_TOKEN", "the `docker login ghcr.io` password".
        self.token_from = token_from
        self.say = say
        self._owners: dict[str, str] = {}
        self._login: str | None = None
        self._versions: dict[str, dict[str, PackageVersion]] = {}
        #: The token's scopes as the last answer showed them; None: a token that shows none.
        self.scopes: frozenset[str] | None = None

    @classmethod
    def from_environment(cls, registry: Registry, *, environ: Mapping[str, str] = os.environ,
                         say: Callable[[str], None] = lambda line: None) -> GitHubPackages:
        base = api_base(environ.get("GITHUB_API_URL") or PUBLIC_API, "GITHUB_API_URL")
        token, token_from = None, ""
        for variable in TOKEN_VARIABLES:
            if environ.get(variable, "").strip():
                token, token_from = environ[variable].strip(), variable
                break
        if token is None:
            credentials = credentials_for(registry.host)
            if credentials is not None and credentials.password:
                token, token_from = credentials.password, f"the `docker login {registry.host}` password"
        if token is None:
            raise RegistryError(f"{cls.name} needs a token to list and delete package versions on {registry.host}: set "
                                f"GITHUB_TOKEN (on Actions: `GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}}` with `permissions: "
                                f"packages: write`) or `docker login {registry.host}` with a personal access token (classic) "
                                f"with read:packages and delete:packages")
        headers = {"Authorization": f"Bearer {token}", "Accept": GITHUB_REST, "X-GitHub-Api-Version": "2022-11-28"}
        # GitHub asks for a second between writes (its secondary rate limit); an API on this machine is a stand-in or a mirror
        gap = 0.0 if is_loopback(urlsplit(base).netloc) else WRITE_GAP
        http = ForgeHTTP(base, headers, what=f"GitHub's API at {urlsplit(base).netloc}", say=say, mutation_gap=gap)
        return cls(http, token_from=token_from, say=say, registry=registry)

    @property
    def requests(self) -> int:
        return self.http.requests

    # --- reads ---------------------------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, ok: tuple[int, ...] = ()) -> Any:
        response = self.http.request(method, path, ok=ok)
        self.scopes = token_scopes(response.headers)
        return response

    def _owner_path(self, owner: str) -> str:
        """``/orgs/OWNER``, ``/user`` (the token's own) or ``/users/OWNER``: where OWNER's packages are."""
        if owner not in self._owners:
            account = self._send("GET", f"/users/{quote(owner, safe='')}", ok=(404,))
            body = account.json() if account.status_code == 200 else None
            if not isinstance(body, dict):
                raise RegistryError(f"{self.http.what} knows no user or organization {owner[:40]!r}; "
                                    f"correct the registry's owner in images.yaml (ghcr.io/OWNER)")
            kind = body.get("type")
            if kind == "Organization":
                self._owners[owner] = f"/orgs/{quote(owner, safe='')}"
            else:
                # a user's private packages are listed only as the token's own (/user); GITHUB_TOKEN may not ask /user
                if self._login is None:
                    me = self._send("GET", "/user", ok=(401, 403, 404))
                    body = me.json() if me.status_code == 200 else {}
                    self._login = str(body.get("login") or "") if isinstance(body, dict) else ""
                mine = self._login and self._login.lower() == owner.lower()
                self._owners[owner] = "/user" if mine else f"/users/{quote(owner, safe='')}"
        return self._owners[owner]

    def _versions_path(self, package: Package) -> str:
        return f"{self._owner_path(package.owner)}/packages/container/{package.quoted}/versions"

    def versions(self, repository: str) -> dict[str, PackageVersion]:
        """Every version of ``repository``'s package, by digest, read now (all pages); {} when there is no such package."""
        package = Package.of(repository)
        path = self._versions_path(package)
        found: dict[str, PackageVersion] = {}
        for response, body in self.http.pages(path, params={"per_page": PER_PAGE, "state": "active"}, ok=(404,)):
            self.scopes = token_scopes(response.headers)
            if response.status_code == 404:
                self._unseen(package, path)
                break  # no such package (yet): nothing pushed there
            found.update((version.digest, version) for version in parse_versions(body, self.http.what))
        self._versions[repository] = found
        return found

    def _unseen(self, package: Package, path: str) -> None:
        """A user's package the API does not show (``/users/OWNER`` lists public ones only) that the registry holds: private,
        out of this token's sight. A one-line error naming the fix; without it every version would read as gone."""
        if not path.startswith("/users/") or self.registry is None:
            return
        repository = f"{package.owner}/{package.name}"
        if not self.registry.tags(repository):
            return
        raise RegistryError(f"{self.http.what} does not show the package {package.name} of user {package.owner} that "
                            f"{self.registry.host} holds: to a token that is not {package.owner}'s ({self.token_from}) it shows "
                            f"a user's public packages only; set IMAGEGRAPH_GITHUB_TOKEN to a personal access token (classic) "
                            f"of {package.owner} with read:packages and delete:packages, or move the package to an organization")

    def untagged(self, repository: str) -> tuple[str, ...]:
        return tuple(digest for digest, version in self.versions(repository).items() if not version.tags)

    # --- rights and deletes --------------------------------------------------------------------------------------

    def check_rights(self, repositories: Sequence[str]) -> None:
        for owner in dict.fromkeys(Package.of(repository).owner for repository in repositories):
            self._owner_path(owner)  # an answer of the API shows the token's scopes, if it has any
        if self.http.requests == 0:
            self._send("GET", "/rate_limit")  # nothing to look up: ask what costs nothing against the limit
        if self.scopes is None:
            self.say(f"{self.http.what}: the token ({self.token_from}) shows no scopes (the job's GITHUB_TOKEN or a "
                     f"fine-grained token); the first delete says whether it may delete")
            return
        missing = missing_scopes(self.scopes)
        if missing:
            held = ", ".join(sorted(self.scopes)) or "none"
            raise RegistryError(f"the GitHub token ({self.token_from}) lacks the scope {' and '.join(missing)} that deleting "
                                f"package versions needs (it holds: {held}); give it read:packages and delete:packages, "
                                f"or run on Actions with `permissions: packages: write`")

    def delete(self, repository: str, digest: str, tags: Sequence[str]) -> bool:
        version = self._versions.get(repository, {}).get(digest) or self.versions(repository).get(digest)
        if version is None:
            return False  # no version holds it any more: deleted meanwhile
        package = Package.of(repository)
        response = self._send("DELETE", f"{self._versions_path(package)}/{version.id}", ok=(403, 404))
        self._versions.get(repository, {}).pop(digest, None)
        if response.status_code == 403:
            said = self.http._said(response)  # the API's own message, cleaned for one line
            raise RegistryError(f"{self.http.what} refused to delete {repository[:80]}@{digest[:19]} (403{said}) with the token "
                                f"from {self.token_from}: {ACTIONS_RIGHTS}")
        return self.http.gone_by_us(response)  # a 404: deleted meanwhile, or by this DELETE's first send, its answer lost
