"""Deleting on GitLab's container registry (gitlab.com and self-managed) through GitLab's REST API.

The facts it stands on (https://docs.gitlab.com/api/container_registry/):

- A registry repository belongs to a project; ``GET /projects/:id/registry/repositories``
  lists them (``path`` is the repository's name in the registry) and
  ``DELETE /projects/:id/registry/repositories/:repository_id/tags/:tag_name``
  deletes one tag, 200 when done. Only that tag goes: other tags of the same
  manifest stay (GitLab untags through its registry's tag delete), and a
  manifest that still has a tag is never deleted. ``GET .../tags/:tag_name``
  gives the digest a tag names, read just before its delete so that a tag
  moved to a new image since cleanup's second look is left alone (a delete by
  name, unlike the distribution API's by digest, would take the new image's tag).
- What no tag names any more, GitLab's registry collects itself (its garbage
  collection): an index's untagged platform manifests go with the index,
  never while a tagged index lists them. So :attr:`collects_untagged` is
  True: cleanup deletes tags only, :meth:`untagged` is () and nothing untagged
  is ever asked of :meth:`delete`.
- The bulk delete (``DELETE .../tags`` with ``name_regex_delete``, ``keep_n``,
  ``older_than``) is not used: it runs later in the background, at most once
  an hour per repository, never deletes ``latest``, is cut short on
  gitlab.com and says nothing of what it deleted; imagegraph's verdicts are
  per image (what a kept image needs), which a regex and a count cannot say.
- The registry's own ``DELETE /v2/<name>/manifests/<digest>`` deletes every
  tag of the manifest and passes GitLab's protected-tag rules by; the registry
  grants it only to a token whose scopes include ``api`` (or a job token), so
  a ``docker login`` with a ``read_registry``/``write_registry`` token is refused.

Tokens (``PRIVATE-TOKEN``): ``$IMAGEGRAPH_GITLAB_TOKEN`` or ``$GITLAB_TOKEN``
(a personal, project or group access token), else GitLab CI's
``$CI_JOB_TOKEN`` (``JOB-TOKEN``; it reaches only the registry of the
pipeline's own project, with the role of the user who started the
pipeline), else the registry's ``docker login`` password. Deleting needs the
``api`` scope (``GET /personal_access_tokens/self`` names a token's scopes,
https://docs.gitlab.com/api/personal_access_tokens/) and at least the
Developer role. The API is at ``$CI_API_V4_URL`` (GitLab CI sets it), else
https://gitlab.com/api/v4. Pages (20 items unless asked) follow the ``Link``
header, else ``X-Next-Page``; ``RateLimit-*`` and 429 ``Retry-After``
(https://docs.gitlab.com/user/gitlab_com/#rate-limits-on-gitlabcom) are
honoured by :class:`~.forge_http.ForgeHTTP`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ...core.errors import RegistryError
from ..registry_auth import credentials_for
from .forge_http import ForgeHTTP, clean

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["DEFAULT_API", "GitLabRegistry", "project_candidates"]

DEFAULT_API = "https://gitlab.com/api/v4"
#: The user name GitLab CI gives a job token for `docker login` (``$CI_REGISTRY_USER``).
JOB_TOKEN_USER = "gitlab-ci-token"
#: GitLab's access levels: the Developer role may delete registry tags (https://docs.gitlab.com/user/permissions/).
DEVELOPER = 30
#: Bounds a listing that never ends (a page pointing back to itself is refused by the ``seen`` set as well).
MAX_PAGES = 1000


def project_candidates(repository: str) -> tuple[str, ...]:
    """The paths a registry repository's project may have, shortest first: ``group/sub/project/image`` may be the
    project ``group/sub/project`` (image ``image``) or the project itself; a project path has two parts at least.

    GitLab's paths are unique across groups and projects and a project holds no
    groups, so at most one of them is a project: the first found is the one,
    and the family's other images, under the same project, find it cached."""
    parts = repository.split("/")
    return tuple("/".join(parts[:n]) for n in range(2, len(parts) + 1))


class GitLabRegistry:
    """:class:`~imagegraph.adapters.registry_apis.DeletionApi` for GitLab's container registry; see the module's facts."""

    name = "GitLab's container registry API"
    collects_untagged = True

    def __init__(self, http: ForgeHTTP, *, source: str, job_project: tuple[str, str] | None = None,
                 ci_project: tuple[str, str] | None = None, say: Callable[[str], None] = lambda line: None) -> None:
        self.http = http
        #: Where the token came from, for every line that names it: "IMAGEGRAPH_GITLAB_TOKEN", "CI_JOB_TOKEN", ...
        self.source = source
        #: (path, id) of the only project a job token reaches; None for any other token.
        self.job_project = job_project
        #: (path, id) of the pipeline's project (CI_PROJECT_PATH, CI_PROJECT_ID): asked of no API.
        self.ci_project = ci_project or job_project
        self.say = say
        self._projects: dict[str, tuple[str, str]] = {}  # repository -> (project path, project id)
        self._repositories: dict[str, dict[str, int]] = {}  # project id -> {registry path: repository id}
        self._project_json: dict[str, dict[str, Any]] = {}
        self._lookups: dict[str, tuple[str, str] | None] = {}  # project path -> (path, id), None where no project is

    @classmethod
    def from_environment(cls, registry: Registry, *, environ: Mapping[str, str],
                         say: Callable[[str], None] = lambda line: None) -> GitLabRegistry:
        """The API at ``$CI_API_V4_URL`` (else gitlab.com's) with the first token found (see the module's order)."""
        base = environ.get("CI_API_V4_URL") or DEFAULT_API
        what = f"GitLab's API at {clean(base, 80)}"
        ci_project = _ci_project(environ)
        for variable in ("IMAGEGRAPH_GITLAB_TOKEN", "GITLAB_TOKEN"):
            if environ.get(variable, "").strip():
                http = ForgeHTTP(base, {"PRIVATE-TOKEN": environ[variable].strip()}, what=what, say=say)
                return cls(http, source=variable, ci_project=ci_project, say=say)
        if environ.get("CI_JOB_TOKEN", "").strip():
            if ci_project is None:
                raise RegistryError("CI_JOB_TOKEN is set without CI_PROJECT_PATH and CI_PROJECT_ID; run in a GitLab CI job, "
                                    "or set IMAGEGRAPH_GITLAB_TOKEN to a token with the api scope")
            http = ForgeHTTP(base, {"JOB-TOKEN": environ["CI_JOB_TOKEN"].strip()}, what=what, say=say)
            return cls(http, source="CI_JOB_TOKEN", job_project=ci_project, say=say)
        login = credentials_for(registry.host)
        if login is not None and login.password:
            if login.username == JOB_TOKEN_USER:  # `docker login -u gitlab-ci-token -p $CI_JOB_TOKEN`
                if ci_project is None:
                    raise RegistryError(f"the `docker login` for {registry.host} holds a job token, which reaches only its "
                                        f"pipeline's project; set IMAGEGRAPH_GITLAB_TOKEN to a token with the api scope")
                http = ForgeHTTP(base, {"JOB-TOKEN": login.password}, what=what, say=say)
                return cls(http, source=f"the job token of `docker login {registry.host}`", job_project=ci_project, say=say)
            http = ForgeHTTP(base, {"PRIVATE-TOKEN": login.password}, what=what, say=say)
            return cls(http, source=f"the password of `docker login {registry.host}`", ci_project=ci_project, say=say)
        raise RegistryError(f"deleting on {registry.host} needs a GitLab token: set IMAGEGRAPH_GITLAB_TOKEN to a personal, "
                            f"project or group access token with the api scope, or run in GitLab CI (CI_JOB_TOKEN)")

    @property
    def requests(self) -> int:
        return self.http.requests

    def untagged(self, repository: str) -> tuple[str, ...]:
        return ()  # GitLab's garbage collection deletes what no tag names: cleanup never has to

    def check_rights(self, repositories: Sequence[str]) -> None:
        """Say in one line what the token may do; raise before any delete when it lacks ``api`` (or a project is out of its reach)."""
        if self.job_project is not None:
            self.say(f"GitLab: {self.source} deletes registry tags of {self.job_project[0]} only, with the role of the "
                     f"user who started the pipeline (Developer or higher)")
        else:
            response = self.http.request("GET", "/personal_access_tokens/self", ok=(401, 403, 404))
            if response.status_code == 401:
                raise RegistryError(f"GitLab refused the token in {self.source} (401): it is expired, revoked or not a "
                                    f"GitLab access token; create one with the api scope")
            if response.status_code in (403, 404):
                # GitLab before 15.5 has no self endpoint: the first delete says whether the token may
                self.say(f"GitLab: the scopes of the token in {self.source} cannot be read ({response.status_code}); "
                         f"deleting needs the api scope")
            else:
                body = _json(response, self.http.what)
                scopes = [str(s) for s in body.get("scopes") or ()] if isinstance(body, dict) else []
                shown = ", ".join(clean(s, 40) for s in scopes) or "none"
                if "api" not in scopes:
                    raise RegistryError(f"the GitLab token in {self.source} has the scopes {shown}; deleting registry tags "
                                        f"needs the api scope: create a token with api and run again")
                self.say(f"GitLab: the token in {self.source} has the scopes {shown}: it may delete registry tags")
        for repository in repositories:
            self._repository_id(repository)
            self._check_role(repository)

    def delete(self, repository: str, digest: str, tags: Sequence[str]) -> bool:
        """Delete the ``tags`` of ``repository`` that still name ``digest``; GitLab collects the manifest once no tag names it."""
        if not tags:
            raise RegistryError(f"{repository}@{digest[:19]} has no tag: GitLab's registry deletes untagged manifests by its "
                                f"own garbage collection, not through its API")
        project = self._project(repository)[1]
        base = f"/projects/{quote(project, safe='')}/registry/repositories/{self._repository_id(repository)}/tags"
        deleted = False
        for tag in tags:
            path = f"{base}/{quote(tag, safe='')}"
            details = self.http.request("GET", path, ok=(404,))
            if details.status_code == 404:
                continue  # gone already
            body = _json(details, self.http.what)
            named = body.get("digest") if isinstance(body, dict) else None
            if named != digest:
                self.say(f"{repository}:{tag} now names another image ({clean(str(named), 80)[:19]}); left alone")
                continue
            response = self.http.request("DELETE", path, ok=(403, 404))
            if response.status_code == 403:
                raise RegistryError(f"GitLab refused to delete {repository}:{tag} (403): a protected container tag rule "
                                    f"covers it, or the token's user has less than the Developer role in the project")
            deleted = deleted or self.http.gone_by_us(response)  # a 404 to a DELETE sent again: the first did it
        return deleted

    # --- which project and registry repository a repository name is -------------------------

    def _project(self, repository: str) -> tuple[str, str]:
        """(path, id) of the project ``repository`` belongs to; a one-line error when none does."""
        if repository in self._projects:
            return self._projects[repository]
        found: tuple[str, str] | None = None
        if self.ci_project is not None and _within(repository, self.ci_project[0]):
            found = self.ci_project
        elif self.job_project is not None:
            raise RegistryError(f"{repository} is not in the registry of {self.job_project[0]}, the only project "
                                f"{self.source} reaches; set IMAGEGRAPH_GITLAB_TOKEN to a token with the api scope")
        else:
            for candidate in project_candidates(repository):
                if candidate not in self._lookups:
                    self._lookups[candidate] = self._lookup(candidate)
                found = self._lookups[candidate]
                if found is not None:
                    break
        if found is None:
            raise RegistryError(f"GitLab knows no project that {repository} belongs to (the token in {self.source} sees none "
                                f"of {', '.join(project_candidates(repository)[:3])}); check images.yaml's namespace")
        self._projects[repository] = found
        return found

    def _lookup(self, candidate: str) -> tuple[str, str] | None:
        response = self.http.request("GET", f"/projects/{quote(candidate, safe='')}", ok=(404,))
        if response.status_code == 404:
            return None
        body = _json(response, self.http.what)
        if not isinstance(body, dict) or body.get("id") is None:
            return None
        self._project_json[str(body["id"])] = body
        return clean(str(body.get("path_with_namespace") or candidate), 200), clean(str(body["id"]), 20)

    def _repository_id(self, repository: str) -> int:
        project_path, project = self._project(repository)
        if project not in self._repositories:
            listing: dict[str, int] = {}
            for item in self._items(f"/projects/{quote(project, safe='')}/registry/repositories", {"per_page": 100}):
                if isinstance(item, dict) and isinstance(item.get("path"), str) and isinstance(item.get("id"), int):
                    listing[item["path"]] = item["id"]
            self._repositories[project] = listing
        found = self._repositories[project].get(repository)
        if found is None:
            raise RegistryError(f"GitLab lists no registry repository {repository} in project {project_path}; "
                                f"check images.yaml's namespace")
        return found

    def _check_role(self, repository: str) -> None:
        """Refuse a token whose user GitLab reports below Developer in the project (unknown roles pass: the delete says)."""
        body = self._project_json.get(self._project(repository)[1])
        permissions = body.get("permissions") if isinstance(body, dict) else None
        if not isinstance(permissions, dict):
            return
        levels = [access.get("access_level") for access in permissions.values() if isinstance(access, dict)]
        levels = [level for level in levels if isinstance(level, int)]
        if levels and max(levels) < DEVELOPER:
            raise RegistryError(f"the user of the token in {self.source} has less than the Developer role in "
                                f"{self._project(repository)[0]}, which deleting registry tags needs")

    def _items(self, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """Every item of a GitLab listing: the ``Link: rel="next"`` page, else ``X-Next-Page`` (offset pagination)."""
        url, query = path, dict(params)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            response = self.http.request("GET", url, params=query)
            body = _json(response, self.http.what)
            if not isinstance(body, list):
                raise RegistryError(f"{self.http.what} answered a listing with something that is not a list")
            yield from body
            following = response.links.get("next", {}).get("url")
            if following:
                if following in seen:
                    return
                seen.add(following)
                url, query = following, {}
                continue
            page = response.headers.get("X-Next-Page", "").strip()
            if not page.isdigit():
                return
            query = {**dict(params), "page": int(page)}
        raise RegistryError(f"{self.http.what} listed more than {MAX_PAGES} pages of {path}; run again")


def _ci_project(environ: Mapping[str, str]) -> tuple[str, str] | None:
    path = environ.get("CI_PROJECT_PATH", "").strip().strip("/")
    if not path:
        return None
    ident = environ.get("CI_PROJECT_ID", "").strip()
    return path, ident if ident.isdigit() else path


def _within(repository: str, project: str) -> bool:
    return repository.lower() == project.lower() or repository.lower().startswith(project.lower() + "/")


def _json(response: Any, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RegistryError(f"{what} answered with something that is not JSON") from None
