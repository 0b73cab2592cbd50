"""GitHub's REST API for packages: the pure parts (which package a repository is, its name in a URL, a token's scopes, versions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from imagegraph.adapters.registry_apis.github import Package, PackageVersion, missing_scopes, parse_versions, token_scopes
from imagegraph.core.errors import RegistryError

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("repository", "owner", "name", "quoted"), [
    ("acme/app", "acme", "app", "app"),
    ("acme/mono/app", "acme", "mono/app", "mono%2Fapp"),
    ("Acme/a/b/c", "Acme", "a/b/c", "a%2Fb%2Fc"),
    ("acme/app?x#y", "acme", "app?x#y", "app%3Fx%23y"),  # nothing of a name can leave its path segment
])
def test_a_repository_is_a_package_of_its_first_segment(repository, owner, name, quoted):
    package = Package.of(repository)
    assert (package.owner, package.name, package.quoted) == (owner, name, quoted)


@pytest.mark.parametrize("repository", ["app", "", "/app/"])
def test_a_repository_without_an_owner_is_one_line(repository):
    with pytest.raises(RegistryError, match=r"names no package on ghcr.io, which holds OWNER/PACKAGE; set registry: ghcr.io/OWNER"):
        Package.of(repository)


def test_scopes_are_read_from_a_classic_tokens_header_and_absent_for_others():
    assert token_scopes({"X-OAuth-Scopes": "repo, read:packages,delete:packages"}) == {"repo", "read:packages", "delete:packages"}
    assert token_scopes({"x-oauth-scopes": ""}) == frozenset()  # a classic token with no scope at all
    assert token_scopes({"X-RateLimit-Remaining": "10"}) is None  # GITHUB_TOKEN, a fine-grained token: no header


@pytest.mark.parametrize(("scopes", "missing"), [
    ({"read:packages", "delete:packages"}, ()),
    ({"write:packages", "delete:packages"}, ()),  # write:packages holds read:packages
    ({"read:packages"}, ("delete:packages",)),
    ({"write:packages"}, ("delete:packages",)),
    ({"delete:packages"}, ("read:packages",)),
    (set(), ("read:packages", "delete:packages")),
    ({"repo", "admin:org"}, ("read:packages", "delete:packages")),
])
def test_deleting_needs_read_and_delete_packages(scopes, missing):
    assert missing_scopes(frozenset(scopes)) == missing


def test_versions_are_parsed_from_the_documented_object():
    body = [
        {"id": 786068, "name": DIGEST, "created_at": "2026-03-01T12:00:00Z", "updated_at": "2026-03-01T12:00:00Z",
         "metadata": {"package_type": "container", "container": {"tags": ["latest", "1.0"]}}},
        {"id": 786069, "name": "sha256:" + "b" * 64, "created_at": "not a time", "metadata": {"package_type": "container", "container": {"tags": []}}},
        {"id": 786070, "name": "sha256:" + "c" * 64, "metadata": None},
        {"id": "7", "name": DIGEST},  # no number: not a version
        {"id": True, "name": DIGEST},
        {"id": 9, "name": "1.0.0"},  # not a container's version
        "garbage",
    ]
    assert parse_versions(body) == (
        PackageVersion(786068, DIGEST, ("latest", "1.0"), datetime(2026, 3, 1, 12, tzinfo=UTC)),
        PackageVersion(786069, "sha256:" + "b" * 64, (), None),
        PackageVersion(786070, "sha256:" + "c" * 64, (), None),
    )


def test_a_listing_that_is_no_list_is_one_line():
    with pytest.raises(RegistryError, match="answered a listing of package versions with something that is not a list"):
        parse_versions({"message": "Not Found"}, "GitHub's API")


class _Ghcr:
    host = "ghcr.io"


def test_the_token_and_the_api_come_from_the_environment_only():
    from imagegraph.adapters.registry_apis.github import GitHubPackages

    api = GitHubPackages.from_environment(_Ghcr(), environ={"GITHUB_TOKEN": "t1", "IMAGEGRAPH_GITHUB_TOKEN": "t2"})  # type: ignore[arg-type]
    assert api.token_from == "IMAGEGRAPH_GITHUB_TOKEN" and api.http.base == "https://api.github.com"
    enterprise = GitHubPackages.from_environment(_Ghcr(), environ={"GITHUB_TOKEN": "t1", "GITHUB_API_URL": "https://github.example.com/api/v3/"})  # type: ignore[arg-type]
    assert enterprise.token_from == "GITHUB_TOKEN" and enterprise.http.base == "https://github.example.com/api/v3"
    assert "t1" not in enterprise.http.what


@pytest.mark.parametrize(("url", "says"), [
    ("http://api.example.com", "GITHUB_API_URL is plain HTTP on api.example.com, which would send a token in the clear"),
    ("ftp://api.example.com", "GITHUB_API_URL is not an API URL"),
    ("https://user:pw@api.example.com", "GITHUB_API_URL is not an API URL"),
])
def test_an_api_url_that_would_leak_the_token_is_one_line(url, says):
    from imagegraph.adapters.registry_apis.github import GitHubPackages

    with pytest.raises(RegistryError) as info:
        GitHubPackages.from_environment(_Ghcr(), environ={"GITHUB_TOKEN": "secret", "GITHUB_API_URL": url})  # type: ignore[arg-type]
    assert says in str(info.value) and "secret" not in str(info.value) and "pw" not in str(info.value)
