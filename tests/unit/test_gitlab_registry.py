"""GitLab's container registry API client: which token, which project, which pages; HTTP faked at the session."""

from __future__ import annotations

import base64
import json
import json as jsonlib

import pytest
import requests

from imagegraph.adapters.registry_apis.forge_http import ForgeHTTP
from imagegraph.adapters.registry_apis.gitlab import DEFAULT_API, GitLabRegistry, project_candidates
from imagegraph.core.errors import RegistryError


class Host:
    host = "registry.gitlab.com"


class Session:
    """Answers by (method, path) from a table; records what was sent."""

    def __init__(self, answers: dict[tuple[str, str], list[tuple[int, object, dict[str, str]]]]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, dict, dict]] = []

    def request(self, method, url, *, params=None, json=None, timeout=None, headers=None):
        path = requests.utils.urlparse(url).path
        self.sent.append((method, path, dict(params or {}), dict(headers or {})))
        queue = self.answers.get((method, path)) or [(404, {"message": "404 Not Found"}, {})]
        status, body, extra = queue.pop(0) if len(queue) > 1 else queue[0]
        response = requests.Response()
        response.status_code = status
        response._content = b"" if body is None else jsonlib.dumps(body).encode()
        response.headers.update({"Content-Type": "application/json", **extra})
        response.url = url
        return response


def client(session: Session, **kw) -> GitLabRegistry:
    http = ForgeHTTP("https://gitlab.example.com/api/v4", {"PRIVATE-TOKEN": "glpat-secret"}, what="GitLab's API", session=session,
                     sleep=lambda s: None)
    return GitLabRegistry(http, source="IMAGEGRAPH_GITLAB_TOKEN", **kw)


def test_a_repository_may_belong_to_any_of_its_prefixes_of_two_parts_or_more_asked_shortest_first():
    assert project_candidates("group/sub/project/app") == ("group/sub", "group/sub/project", "group/sub/project/app")
    assert project_candidates("group/project") == ("group/project",)
    assert project_candidates("app") == ()


def test_the_token_comes_from_imagegraphs_variable_then_gitlabs_then_the_job(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    both = {"IMAGEGRAPH_GITLAB_TOKEN": "a", "GITLAB_TOKEN": "b", "CI_JOB_TOKEN": "c", "CI_PROJECT_PATH": "g/p"}
    chosen = GitLabRegistry.from_environment(Host(), environ=both)
    assert chosen.source == "IMAGEGRAPH_GITLAB_TOKEN" and chosen.http.base == DEFAULT_API and chosen.job_project is None
    assert chosen.ci_project == ("g/p", "g/p")
    assert GitLabRegistry.from_environment(Host(), environ={**both, "IMAGEGRAPH_GITLAB_TOKEN": ""}).source == "GITLAB_TOKEN"
    job = GitLabRegistry.from_environment(Host(), environ={"CI_JOB_TOKEN": "c", "CI_PROJECT_PATH": "g/p", "CI_PROJECT_ID": "12",
                                                           "CI_API_V4_URL": "https://gitlab.example.com/api/v4"})
    assert job.source == "CI_JOB_TOKEN" and job.job_project == ("g/p", "12") and job.http.base == "https://gitlab.example.com/api/v4"
    assert job.http._headers == {"JOB-TOKEN": "c"}


def test_no_token_and_a_job_token_without_its_project_are_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_USER", raising=False)
    with pytest.raises(RegistryError, match="needs a GitLab token: set IMAGEGRAPH_GITLAB_TOKEN"):
        GitLabRegistry.from_environment(Host(), environ={})
    with pytest.raises(RegistryError, match="CI_JOB_TOKEN is set without CI_PROJECT_PATH"):
        GitLabRegistry.from_environment(Host(), environ={"CI_JOB_TOKEN": "c"})


def test_a_plain_http_api_url_elsewhere_than_loopback_is_refused(monkeypatch):
    with pytest.raises(RegistryError, match=r"plain HTTP on gitlab\.example\.com"):
        GitLabRegistry.from_environment(Host(), environ={"GITLAB_TOKEN": "x", "CI_API_V4_URL": "http://gitlab.example.com/api/v4"})


def test_the_docker_login_password_is_the_token_a_job_tokens_login_sent_as_one(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_USER", raising=False)

    def login(user: str, password: str) -> None:
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        (tmp_path / "config.json").write_text(json.dumps({"auths": {"registry.gitlab.com": {"auth": auth}}}))

    login("someone", "glpat-x")
    personal = GitLabRegistry.from_environment(Host(), environ={})
    assert personal.http._headers == {"PRIVATE-TOKEN": "glpat-x"} and "docker login registry.gitlab.com" in personal.source
    login("gitlab-ci-token", "job-x")
    job = GitLabRegistry.from_environment(Host(), environ={"CI_PROJECT_PATH": "g/p"})
    assert job.http._headers == {"JOB-TOKEN": "job-x"} and job.job_project == ("g/p", "g/p")


def test_listings_follow_x_next_page_where_no_link_header_is_sent():
    session = Session({
        ("GET", "/api/v4/projects/g%2Fp"): [(200, {"id": 5, "path_with_namespace": "g/p"}, {})],
        ("GET", "/api/v4/projects/5/registry/repositories"): [
            (200, [{"id": 1, "path": "g/p"}], {"X-Next-Page": "2"}),
            (200, [{"id": 2, "path": "g/p/app"}], {"X-Next-Page": ""}),
        ],
    })
    gitlab = client(session)
    assert gitlab._repository_id("g/p/app") == 2
    pages = [params.get("page") for method, path, params, _ in session.sent if path.endswith("/repositories")]
    assert pages == [None, 2]


def test_scopes_without_api_are_named_and_nothing_else_is_asked():
    session = Session({("GET", "/api/v4/personal_access_tokens/self"): [(200, {"scopes": ["read_api", "read_registry"]}, {})]})
    with pytest.raises(RegistryError) as refused:
        client(session).check_rights(["g/p/app"])
    assert "has the scopes read_api, read_registry; deleting registry tags needs the api scope" in str(refused.value)
    assert "glpat-secret" not in str(refused.value)
    assert [path for _, path, _, _ in session.sent] == ["/api/v4/personal_access_tokens/self"]


def test_an_old_gitlab_without_the_self_endpoint_is_said_and_the_deletes_decide():
    notes: list[str] = []
    session = Session({("GET", "/api/v4/personal_access_tokens/self"): [(404, {"message": "404 Not Found"}, {})],
                       ("GET", "/api/v4/projects/g%2Fp"): [(200, {"id": 5}, {})],
                       ("GET", "/api/v4/projects/5/registry/repositories"): [(200, [{"id": 9, "path": "g/p/app"}], {})]})
    client(session, say=notes.append).check_rights(["g/p/app"])
    assert notes == ["GitLab: the scopes of the token in IMAGEGRAPH_GITLAB_TOKEN cannot be read (404); deleting needs the api scope"]


def test_a_protected_tag_is_one_line_and_untagged_digests_are_never_deleted_through_the_api():
    digest = "sha256:" + "a" * 64
    tags = "/api/v4/projects/5/registry/repositories/9/tags/v1"
    session = Session({("GET", "/api/v4/projects/g%2Fp"): [(200, {"id": 5}, {})],
                       ("GET", "/api/v4/projects/5/registry/repositories"): [(200, [{"id": 9, "path": "g/p/app"}], {})],
                       ("GET", tags): [(200, {"name": "v1", "digest": digest}, {})],
                       ("DELETE", tags): [(403, {"message": "403 Forbidden"}, {})]})
    gitlab = client(session)
    with pytest.raises(RegistryError, match="refused to delete g/p/app:v1 \\(403\\): a protected container tag rule"):
        gitlab.delete("g/p/app", digest, ["v1"])
    with pytest.raises(RegistryError, match="deletes untagged manifests by its own garbage collection"):
        gitlab.delete("g/p/app", digest, [])
    assert gitlab.untagged("g/p/app") == () and gitlab.collects_untagged
