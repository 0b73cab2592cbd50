"""Deleting on ghcr.io through GitHub's REST API for packages, against its stand-in (tests/standins/github.py) in front of a real registry."""

from __future__ import annotations

import json
import time

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.adapters.registry_apis import open_deletion_api
from imagegraph.adapters.registry_apis.github import GitHubPackages
from imagegraph.core.errors import RegistryError
from imagegraph.core.registry_api import ApiKind, choose_api
from tests.integration.oci_seed import MANIFEST, Seeder
from tests.standins import manifest_revisions
from tests.standins.github import GitHubStandIn, Token

pytestmark = pytest.mark.integration

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
APP = "acme/mono/app"
TOKENS = {
    "classic": Token("octo"),
    "read-only": Token("octo", scopes=("read:packages",)),
    "job": Token(None, scopes=None),  # the job's GITHUB_TOKEN with packages: write
    "job-read": Token(None, scopes=None, may_delete=False),  # ... without it
}


@pytest.fixture
def ghcr(private_registry):
    with GitHubStandIn(private_registry.address, private_registry.data, tokens=TOKENS, users=("octo",)) as stand_in:
        yield stand_in


def packages(ghcr: GitHubStandIn, token: str = "classic", notes: list[str] | None = None) -> GitHubPackages:
    registry = Registry(ghcr.address)
    api = open_deletion_api(choose_api(ghcr.address, ApiKind.GITHUB), registry, environ={"GITHUB_API_URL": ghcr.api_url, "GITHUB_TOKEN": token},
                            say=(notes if notes is not None else []).append)
    assert isinstance(api, GitHubPackages)
    return api


def multi_arch(seed: Seeder, name: str, tag: str, *, text: str, created: str, labels: dict[str, str] | None = None) -> dict[str, str]:
    """A multi-arch image as buildx pushes it: an OCI index of two platform manifests and an attestation manifest for each
    (platform unknown/unknown), all untagged but the index. Returns {"index", "amd64", "arm64", "att-amd64", "att-arm64"}."""
    found: dict[str, str] = {}
    entries = []
    for arch in ("amd64", "arm64"):
        found[arch] = seed.image(name, None, text=f"{text} {arch}", created=created, labels=labels, arch=arch)
        entries.append({"mediaType": MANIFEST, "digest": found[arch], "size": len(seed.raw(name, found[arch])),
                        "platform": {"os": "linux", "architecture": arch}})
    for arch in ("amd64", "arm64"):
        found[f"att-{arch}"] = seed.image(name, None, text=f"{text} provenance of {arch}", created=created, arch="unknown")
        entries.append({"mediaType": MANIFEST, "digest": found[f"att-{arch}"], "size": len(seed.raw(name, found[f"att-{arch}"])),
                        "platform": {"os": "unknown", "architecture": "unknown"},
                        "annotations": {"vnd.docker.reference.digest": found[arch], "vnd.docker.reference.type": "attestation-manifest"}})
    found["index"] = seed.put_manifest(name, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX)
    return found


def test_untagged_versions_are_listed_across_pages_with_the_package_name_encoded(ghcr):
    seed = Seeder(ghcr.address)  # pushed through the stand-in: /v2/ passes through to the registry
    tagged = seed.image(APP, "v1", text="one", created="2026-03-01T00:00:00Z")
    image = multi_arch(seed, APP, "v2", text="two", created="2026-03-02T00:00:00Z")
    orphan = seed.image(APP, None, text="no tag, no index", created="2026-03-03T00:00:00Z")
    api = packages(ghcr)

    untagged = api.untagged(APP)
    assert sorted(untagged) == sorted([image["amd64"], image["arm64"], image["att-amd64"], image["att-arm64"], orphan])
    assert tagged not in untagged and image["index"] not in untagged
    # seven versions, three a page: three pages, each asked once, by the Link header's next
    listings = [target for method, target in ghcr.seen if method == "GET" and "/versions" in target]
    assert len(listings) == 3 and all(t.startswith("/api/orgs/acme/packages/container/mono%2Fapp/versions?") for t in listings)
    assert api.versions(APP)[image["index"]].tags == ("v2",)


def test_a_version_is_deleted_on_the_registry_and_a_second_delete_finds_it_gone(ghcr, private_registry):
    seed = Seeder(ghcr.address)
    keep = seed.image(APP, "keep", text="kept", created="2026-03-01T00:00:00Z")
    doomed = seed.image(APP, "old", text="old", created="2026-03-01T00:00:00Z")
    # ghcr.io's answer to the registry API's own delete
    refused = seed.http.delete(f"{seed.base}/{APP}/manifests/{doomed}")
    assert refused.status_code == 405 and refused.json()["errors"][0]["code"] == "UNSUPPORTED"
    with pytest.raises(RegistryError, match="does not allow deletes"):
        Registry(ghcr.address).delete_manifest(APP, doomed)

    api = packages(ghcr)
    api.check_rights([APP])
    assert api.delete(APP, doomed, ("old",)) is True
    assert not Seeder(private_registry.address).exists(APP, doomed)  # gone from the registry behind, with its tag
    assert [r.digest for r in manifest_revisions(private_registry.data, APP)] == [keep]
    assert "old" not in seed.tags(APP)
    assert api.delete(APP, doomed, ("old",)) is False
    assert ghcr.api_requests("DELETE") == 1  # the second found no version to delete: nothing sent


def test_a_token_without_delete_packages_is_refused_before_any_delete_in_one_line(ghcr):
    seed = Seeder(ghcr.address)
    seed.image(APP, None, text="untagged", created="2026-03-01T00:00:00Z")
    api = packages(ghcr, "read-only")
    assert len(api.untagged(APP)) == 1  # a read-only token lists: a dry run works
    with pytest.raises(RegistryError) as info:
        api.check_rights([APP])
    line = str(info.value)
    assert "\n" not in line and "lacks the scope delete:packages" in line and "(it holds: read:packages)" in line
    assert "GITHUB_TOKEN" in line and "read-only" not in line  # names where the token came from, never the token
    assert ghcr.api_requests("DELETE") == 0


def test_the_jobs_token_without_packages_write_stops_at_its_first_delete(ghcr, private_registry):
    seed = Seeder(ghcr.address)
    first = seed.image(APP, None, text="a", created="2026-03-01T00:00:00Z")
    notes: list[str] = []
    api = packages(ghcr, "job-read", notes)
    api.check_rights([APP])  # it shows no scopes: nothing to read before a delete
    assert any("shows no scopes" in note for note in notes)
    with pytest.raises(RegistryError) as info:
        api.delete(APP, first, ())
    line = str(info.value)
    assert "\n" not in line and "403" in line and "`permissions: packages: write`" in line and "Manage Actions access" in line
    assert Seeder(private_registry.address).exists(APP, first)
    # the job's token with the right deletes
    assert packages(ghcr, "job").delete(APP, first, ()) is True


def test_a_users_own_packages_are_asked_as_the_token_owners_and_anothers_by_name(ghcr):
    seed = Seeder(ghcr.address)
    mine = seed.image("octo/tool", None, text="mine", created="2026-03-01T00:00:00Z")
    api = packages(ghcr)
    assert api.untagged("octo/tool") == (mine,)
    assert any(target.startswith("/api/user/packages/container/tool/versions") for _, target in ghcr.seen)
    assert api.delete("octo/tool", mine, ()) is True
    ghcr.users.add("someone")
    theirs = seed.image("someone/tool", None, text="theirs", created="2026-03-01T00:00:00Z")
    assert api.untagged("someone/tool") == (theirs,)
    assert any(target.startswith("/api/users/someone/packages/container/tool/versions") for _, target in ghcr.seen)


@pytest.mark.parametrize("kind", ["secondary", "primary"])
def test_a_rate_limit_is_waited_out_as_the_api_asks(ghcr, kind):
    seed = Seeder(ghcr.address)
    orphan = seed.image(APP, None, text="x", created="2026-03-01T00:00:00Z")
    notes: list[str] = []
    api = packages(ghcr, notes=notes)
    ghcr.limit(kind, seconds=2)
    started = time.monotonic()
    assert api.untagged(APP) == (orphan,)
    assert ghcr.limited == {kind: 1}
    assert time.monotonic() - started >= 1.0
    assert any("rate limit reached, waiting" in note for note in notes)
    ghcr.limit(kind, seconds=1, method="DELETE")
    assert api.delete(APP, orphan, ()) is True and ghcr.limited[kind] == 2


def test_a_package_never_pushed_has_no_versions(ghcr):
    assert packages(ghcr).untagged("acme/never") == ()


def test_requests_and_time_of_listing_and_deleting_100_versions(ghcr, private_registry, record_property):
    seed = Seeder(private_registry.address)
    digests = [seed.image(APP, None, text=f"v{n}", created="2026-03-01T00:00:00Z") for n in range(100)]
    ghcr.per_page = 100  # GitHub's page: imagegraph asks for 100 versions a page
    api = packages(ghcr)
    started = time.monotonic()
    assert sorted(api.untagged(APP)) == sorted(digests)
    api.check_rights([APP])
    assert all(api.delete(APP, digest, ()) for digest in digests)
    seconds = time.monotonic() - started
    assert manifest_revisions(private_registry.data, APP) == []
    # one owner look-up, one page of 100, then one DELETE per version: no re-listing
    assert api.requests == ghcr.api_requests() == 102
    record_property("ghcr_100_versions", json.dumps({"requests": api.requests, "seconds": round(seconds, 2)}))
    print(f"GitHub packages API: 100 versions listed and deleted in {api.requests} requests, {seconds:.2f} s")


def test_no_token_is_one_line_naming_where_one_comes_from(ghcr, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_USER", raising=False)
    with pytest.raises(RegistryError) as info:
        GitHubPackages.from_environment(Registry(ghcr.address), environ={"GITHUB_API_URL": ghcr.api_url})
    assert "\n" not in str(info.value) and "GITHUB_TOKEN" in str(info.value) and "delete:packages" in str(info.value)


def test_a_docker_login_password_is_the_token_when_no_variable_names_one(ghcr, tmp_path, monkeypatch):
    import base64

    (tmp_path / "config.json").write_text(json.dumps({"auths": {ghcr.address: {"auth": base64.b64encode(b"octo:classic").decode()}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_USER", raising=False)
    api = GitHubPackages.from_environment(Registry(ghcr.address), environ={"GITHUB_API_URL": ghcr.api_url})
    assert api.untagged(APP) == () and api.token_from == f"the `docker login {ghcr.address}` password"
