"""Docker Hub's deletion API: the pure parts (repository names, what a registry token grants, where the API and credentials come from)."""

from __future__ import annotations

import base64
import json

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.adapters.registry_apis import open_deletion_api
from imagegraph.adapters.registry_apis.dockerhub import HUB_API, DockerHub, registry_grants, split_repository
from imagegraph.core.errors import RegistryError
from imagegraph.core.registry_api import choose_api


def token(claims: object) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(("repository", "expected"), [
    ("acme/app", ("acme", "app")),
    ("ubuntu", ("library", "ubuntu")),  # an official image
    ("library/ubuntu", ("library", "ubuntu")),
])
def test_repositories_are_namespace_and_name(repository, expected):
    assert split_repository(repository) == expected


@pytest.mark.parametrize("repository", ["acme/team/app", "", "acme/", "/app"])
def test_other_repository_paths_are_refused_in_one_line(repository):
    with pytest.raises(RegistryError, match="NAMESPACE/NAME") as refused:
        split_repository(repository)
    assert "\n" not in str(refused.value)


def test_what_a_registry_token_grants_is_read_from_its_access_claim():
    granted = token({"access": [{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]},
                                {"type": "repository", "name": "acme/other", "actions": ["delete"]}]})
    assert registry_grants(granted, "acme/app") == {"pull", "push"}
    assert registry_grants(granted, "acme/none") == frozenset()  # asked, and granted nothing there
    assert registry_grants(token({"access": [{"type": "repository", "name": "acme/app", "actions": ["*"]}]}), "acme/app") == {"*"}


@pytest.mark.parametrize("opaque", ["not-a-jwt", "a.b.c", token({"sub": "acme"}), token(["access"]), token({"access": "pull"})])
def test_a_token_that_does_not_say_grants_nothing_known(opaque):
    assert registry_grants(opaque, "acme/app") is None


def hub(environ: dict[str, str], host: str = "docker.io") -> DockerHub:
    api = open_deletion_api(choose_api(host), Registry(host), environ=environ)
    assert isinstance(api, DockerHub)
    return api


def test_docker_hub_hosts_open_docker_hubs_api(monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_USER", raising=False)
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        api = hub({"IMAGEGRAPH_DOCKERHUB_USER": "acme", "IMAGEGRAPH_DOCKERHUB_TOKEN": "dckr_pat_x"}, host)
        assert api.http.base == HUB_API and api.username == "acme" and api.requests == 0
        assert not api.collects_untagged and api.untagged("acme/app") == ()
        assert "dckr_pat_x" not in repr(vars(api.http))


def test_the_api_url_comes_from_the_environment_and_is_never_plain_http_elsewhere():
    creds = {"IMAGEGRAPH_DOCKERHUB_USER": "acme", "IMAGEGRAPH_DOCKERHUB_TOKEN": "dckr_pat_x"}
    assert hub({**creds, "IMAGEGRAPH_DOCKERHUB_API": "http://127.0.0.1:8080/hub/"}).http.base == "http://127.0.0.1:8080/hub"
    with pytest.raises(RegistryError, match="plain HTTP"):
        hub({**creds, "IMAGEGRAPH_DOCKERHUB_API": "http://hub.example.com"})


@pytest.mark.parametrize(("environ", "missing"), [
    ({"IMAGEGRAPH_DOCKERHUB_USER": "acme"}, "IMAGEGRAPH_DOCKERHUB_TOKEN"),
    ({"IMAGEGRAPH_DOCKERHUB_TOKEN": "dckr_pat_x"}, "IMAGEGRAPH_DOCKERHUB_USER"),
])
def test_half_a_pair_of_credentials_is_one_line(environ, missing):
    with pytest.raises(RegistryError, match=missing) as refused:
        hub(environ)
    assert "dckr_pat_x" not in str(refused.value)


def test_without_credentials_anywhere_the_fix_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_USER", raising=False)
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with pytest.raises(RegistryError, match=r"docker login docker\.io.*IMAGEGRAPH_DOCKERHUB_USER"):
        hub({})


def test_docker_login_credentials_for_docker_hub_are_found_under_its_old_key(monkeypatch, tmp_path):
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_USER", raising=False)
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth = base64.b64encode(b"acme:dckr_pat_login").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}}))
    api = hub({})
    assert api.username == "acme" and "docker login" in api.source
