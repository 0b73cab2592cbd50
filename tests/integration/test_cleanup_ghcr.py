"""Deleting on ghcr.io through GitHub's REST API for packages, against its stand-in (tests/standins/github.py) in front of a real registry."""

from __future__ import annotations

import json
import re
import time

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.adapters.registry_apis import open_deletion_api
from imagegraph.adapters.registry_apis.github import GitHubPackages
from imagegraph.core.errors import RegistryError
from imagegraph.core.registry_api import ApiKind, choose_api
from tests.integration.oci_seed import INDEX, MANIFEST, Seeder
from tests.standins import manifest_revisions
from tests.standins.github import GitHubStandIn, Token

pytestmark = pytest.mark.integration

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
    """A multi-arch image as buildx pushes it: an index of two platform manifests and an attestation manifest for each
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
    found["index"] = seed.put_manifest(name, tag, {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}, INDEX)
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
    listings = [seen.target for seen in ghcr.seen if seen.method == "GET" and "/versions" in seen.target]
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
    assert any(seen.target.startswith("/api/user/packages/container/tool/versions") for seen in ghcr.seen)
    assert api.delete("octo/tool", mine, ()) is True
    ghcr.users.add("someone")
    theirs = seed.image("someone/tool", None, text="theirs", created="2026-03-01T00:00:00Z")
    assert api.untagged("someone/tool") == (theirs,)
    assert any(seen.target.startswith("/api/users/someone/packages/container/tool/versions") for seen in ghcr.seen)


def test_a_users_private_package_out_of_the_tokens_sight_is_one_line_naming_the_fix(ghcr, private_registry):
    """GitHub shows a user's packages under /users/OWNER only when public: the job's token (no user's, /user refused) does not
    see a private one, which must not read as "no versions" (every delete skipped as gone already)."""
    seed = Seeder(ghcr.address)
    tagged = seed.image("octo/tool", "v1", text="mine", created="2026-03-01T00:00:00Z")
    orphan = seed.image("octo/tool", None, text="untagged", created="2026-03-02T00:00:00Z")
    ghcr.private.add("octo/tool")
    api = packages(ghcr, "job")
    for attempt in (lambda: api.untagged("octo/tool"), lambda: api.delete("octo/tool", tagged, ("v1",))):
        with pytest.raises(RegistryError) as info:
            attempt()
        line = str(info.value)
        assert "\n" not in line and "package tool of user octo" in line and "public packages only" in line, line
        assert "personal access token (classic) of octo" in line and "organization" in line and "GITHUB_TOKEN" in line
    assert any(seen.target.startswith("/api/users/octo/packages/container/tool/versions") and seen.status == 404 for seen in ghcr.seen)
    assert ghcr.api_requests("DELETE") == 0 and {r.digest for r in manifest_revisions(private_registry.data, "octo/tool")} == {tagged, orphan}
    # a package of that user never pushed is still no package, not an error
    assert api.untagged("octo/never") == ()
    # the owner's own token sees it, as /user/...
    assert packages(ghcr, "classic").untagged("octo/tool") == (orphan,)


def test_cleanup_of_a_users_private_package_with_the_jobs_token_notes_or_stops_in_one_line(ghcr, tmp_path, private_registry):
    from tests.conftest import write_tree
    from tests.integration.conftest import run_invoke

    seed = Seeder(ghcr.address)
    for n in range(3):
        seed.image("octo/tool", f"1.0.{n}", text=f"release {n}", created=f"2026-03-0{n + 1}T12:00:00Z")
    seed.image("octo/tool", None, text="an interrupted push", created="2026-03-04T12:00:00Z")
    ghcr.private.add("octo/tool")
    root = tmp_path / "project"
    yaml = f"registry: {ghcr.address}\nnamespace: octo\nretention:\n  api: github\nimages:\n  tool:\n    dockerfile: Dockerfile\n"
    write_tree(root, {"images.yaml": yaml, "Dockerfile": "FROM scratch\n", "tasks.py": TASKS})
    before = {r.digest for r in manifest_revisions(private_registry.data, "octo/tool")}
    dry = run_invoke(root, "cleanup", "--keep", "1", **on_ghcr(ghcr, "job"))
    assert dry.returncode == 0 and "Traceback" not in dry.stderr, dry.stdout + dry.stderr
    notes = [line for line in (dry.stdout + dry.stderr).splitlines() if "public packages only" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "personal access token (classic) of octo" in notes[0], notes
    done = run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **on_ghcr(ghcr, "job"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "public packages only" in errors[0] and "organization" in errors[0], done.stderr
    assert ghcr.api_requests("DELETE") == 0
    assert before <= {r.digest for r in manifest_revisions(private_registry.data, "octo/tool")}  # nothing deleted


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


# --- `invoke cleanup` end to end, through the stand-in -------------------------------------------------------------

OWNER = "acme"
BASE_REPO, APP_REPO = f"{OWNER}/test/base", f"{OWNER}/test/app"
TASKS = "from imagegraph.tasks import namespace  # noqa: F401\n"


def day(n: int) -> str:
    return f"2026-03-{n:02d}T12:00:00Z"


@pytest.fixture
def family_on_ghcr(tmp_path, ghcr):
    return push_family(tmp_path, ghcr.address)


def push_family(tmp_path, address: str):
    """A family pushed to ghcr.io/acme (at ``address``) for weeks: multi-arch releases with attestations, pull requests, bases."""
    from tests.conftest import FAMILY, FAMILY_FILES, write_tree

    seed = Seeder(address)
    registry = Registry(address)

    def app_labels(base_tag: str, n: int) -> dict[str, str]:
        return {"imagegraph.parent": f"{address}/{BASE_REPO}:{base_tag}", "org.opencontainers.image.created": day(n)}

    made = {
        "b01": {"index": seed.image(BASE_REPO, "b01", text="base b01", created=day(1))},
        "b02": multi_arch(seed, BASE_REPO, "b02", text="base b02", created=day(2)),  # the base of the kept release
        "b03": {"index": seed.image(BASE_REPO, "b03", text="base b03", created=day(3))},
        "b04": {"index": seed.image(BASE_REPO, "b04", text="base b04", created=day(4))},
        "b05": {"index": seed.image(BASE_REPO, "b05", text="base b05", created=day(5))},
        "pr-7": multi_arch(seed, APP_REPO, "pr-7", text="app pr-7", created=day(6), labels=app_labels("b03", 6)),
        "1.0.0": multi_arch(seed, APP_REPO, "1.0.0", text="app 1.0.0", created=day(7), labels=app_labels("b02", 7)),
        "edge": {"index": seed.image(APP_REPO, "edge", text="app edge", created=day(9), labels=app_labels("b05", 9))},
        "orphan": {"index": seed.image(APP_REPO, None, text="an interrupted push", created=day(8))},
        "sha-10": {"index": seed.image(APP_REPO, "sha-10", text="app sha-10", created=day(10), labels=app_labels("b05", 10))},
    }
    registry.copy_tag(APP_REPO, "1.0.0", "latest")
    # an old build whose index shares the arm64 manifest (and its attestation) of the kept release: a GHCR trap
    old_amd64 = seed.image(APP_REPO, None, text="app old amd64", created=day(5), labels=app_labels("b01", 5), arch="amd64")
    release = made["1.0.0"]

    def entry(digest: str, os_: str, arch: str, **annotations: str) -> dict:
        return {"mediaType": MANIFEST, "digest": digest, "size": len(seed.raw(APP_REPO, digest)), "platform": {"os": os_, "architecture": arch},
                **({"annotations": annotations} if annotations else {})}

    shared = [entry(old_amd64, "linux", "amd64"), entry(release["arm64"], "linux", "arm64"),
              entry(release["att-arm64"], "unknown", "unknown", **{"vnd.docker.reference.digest": release["arm64"],
                                                                   "vnd.docker.reference.type": "attestation-manifest"})]
    made["a-old"] = {"index": seed.put_manifest(APP_REPO, "a-old", {"schemaVersion": 2, "mediaType": INDEX, "manifests": shared}, INDEX),
                     "amd64": old_amd64}

    root = tmp_path / "project"
    images = FAMILY.replace("127.0.0.1:5000", f"{address}/{OWNER}") + "retention:\n  api: github\n"
    write_tree(root, {"images.yaml": images, **FAMILY_FILES, "tasks.py": TASKS})
    return root, seed, made


def on_ghcr(ghcr: GitHubStandIn, token: str = "classic") -> dict[str, str]:
    return {"GITHUB_API_URL": ghcr.api_url, "GITHUB_TOKEN": token}


def images_held(private_registry) -> dict[str, set[str]]:
    """Every manifest the registry behind holds, per repository, imagegraph's own records aside."""
    from imagegraph.core.media_types import ANY_MANIFEST, LEASE, RETENTION

    backing = Seeder(private_registry.address)
    held: dict[str, set[str]] = {}
    for name in (BASE_REPO, APP_REPO):
        for revision in manifest_revisions(private_registry.data, name):
            body = backing.http.get(f"{backing.base}/{name}/manifests/{revision.digest}", headers={"Accept": ", ".join(ANY_MANIFEST)}).json()
            kinds = {body.get("artifactType"), *(layer.get("mediaType") for layer in body.get("layers", ()))}
            if not kinds & {LEASE, RETENTION}:
                held.setdefault(name, set()).add(revision.digest)
    return held


def listed_for_deletion(output: str) -> set[str]:
    """The short digests (12 hex) of the table's rows whose verdict is delete."""
    return {m.group(1) for m in re.finditer(r"\s+delete\s+.*?\s([0-9a-f]{12})\s", output)}



#: What `cleanup --keep 1` deletes of the family: pr-7 with its platform manifests and attestations, a-old with its own
#: amd64 manifest (its arm64 manifest and attestation are the kept release's), the orphan, and the bases no kept image needs.
DOOMED = {APP_REPO: [("pr-7", "index"), ("pr-7", "amd64"), ("pr-7", "arm64"), ("pr-7", "att-amd64"), ("pr-7", "att-arm64"),
                     ("a-old", "index"), ("a-old", "amd64"), ("orphan", "index")],
          BASE_REPO: [("b01", "index"), ("b03", "index"), ("b04", "index")]}


def test_cleanup_on_ghcr_deletes_what_the_dry_run_lists_and_everything_a_kept_image_needs_stays(family_on_ghcr, ghcr, private_registry):
    from tests.integration.conftest import run_invoke

    root, seed, made = family_on_ghcr
    before = images_held(private_registry)
    dry = run_invoke(root, "cleanup", "--keep", "1", **on_ghcr(ghcr))
    assert dry.returncode == 0, dry.stderr
    assert "through GitHub's REST API for packages (retention: api: github in images.yaml)" in dry.stdout + dry.stderr
    listed = listed_for_deletion(dry.stdout)
    expected = {made[name][part] for names in DOOMED.values() for name, part in names}
    assert listed == {digest[7:19] for digest in expected}, dry.stdout
    assert images_held(private_registry) == before and ghcr.api_requests("DELETE") == 0

    done = run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **on_ghcr(ghcr))
    assert done.returncode == 0, done.stderr
    after = images_held(private_registry)
    deleted = {digest for name in before for digest in before[name] - after.get(name, set())}
    assert deleted == expected  # exactly what the dry run listed
    assert f"deleted {len(expected)} manifest(s)" in done.stdout and "to GitHub's REST API for packages" in done.stdout
    assert "every kept tag still resolves" in done.stdout
    # through the packages API only: the registry API's manifest DELETEs (ghcr.io's 405) were the lease's, never an image's
    assert not any(seen.method == "DELETE" and any(d in seen.target for d in expected) for seen in ghcr.seen if seen.path.startswith("/v2/"))

    # every kept tag is whole: its index, each platform manifest and attestation, each blob, read back through ghcr.io
    kept = {APP_REPO: {"1.0.0", "latest", "edge", "sha-10"}, BASE_REPO: {"b02", "b05"}}
    for name, tags in kept.items():
        assert seed.tags(name) - {"imagegraph-retention", "imagegraph-lease-tags"} == tags
        assert all(seed.walk(name, tag) >= 2 for tag in tags)
    release = made["1.0.0"]
    assert all(seed.exists(APP_REPO, release[part]) for part in ("amd64", "arm64", "att-amd64", "att-arm64"))
    assert all(seed.exists(BASE_REPO, made["b02"][part]) for part in ("amd64", "arm64", "att-amd64", "att-arm64"))

    again = run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **on_ghcr(ghcr))
    assert again.returncode == 0 and "nothing to delete" in again.stdout, again.stdout + again.stderr
    assert images_held(private_registry) == after


#: A version of a package: its listing (a page) or one version (its DELETE), as the fault proxy matches paths.
VERSIONS = r"/packages/container/[^/]+/versions"


def error_line(result) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    return errors[0]


@pytest.mark.parametrize("lasting", [False, True], ids=["passing", "lasting"])
def test_cleanup_through_faults_of_the_packages_api(tmp_path, ghcr, private_registry, lasting):
    """Faults between imagegraph and the packages API: a lost page, an answer lost after the version was deleted, a 503; a
    run either gets through them or stops in one line with every kept image whole, and the next run finishes the job."""
    from tests.integration.conftest import run_invoke
    from tests.integration.faultproxy import Answer, Drop, Lose, start_fault_proxy

    with start_fault_proxy(ghcr.address) as proxy:  # the registry (/v2/) and the API share the stand-in's address
        root, seed, made = push_family(tmp_path, proxy.address)
        env = {"GITHUB_API_URL": f"http://{proxy.address}{ghcr.prefix}", "GITHUB_TOKEN": "classic"}
        before = images_held(private_registry)
        expected = {made[name][part] for names in DOOMED.values() for name, part in names}
        rules = [proxy.inject(Drop(), "GET", VERSIONS + r"\?.*page=2"),  # the second page of a listing, dropped once
                 proxy.inject(Lose(), "DELETE", VERSIONS + r"/\d+$", nth=2),  # deleted, and its answer lost
                 proxy.inject(Answer(503), "DELETE", VERSIONS + r"/\d+$", nth=4, times=None if lasting else 2)]
        first = run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **env)
        assert all(rule.hits for rule in rules), [(rule.path, rule.hits) for rule in rules]
        kept = {APP_REPO: {"1.0.0", "latest", "edge", "sha-10"}, BASE_REPO: {"b02", "b05"}}
        for name, tags in kept.items():  # whatever came of the run, every kept image is whole
            assert all(seed.walk(name, tag) >= 2 for tag in tags), name
        assert all(seed.exists(APP_REPO, made["1.0.0"][part]) for part in ("amd64", "arm64", "att-amd64", "att-arm64"))
        deleted = {digest for name in before for digest in before[name] - images_held(private_registry).get(name, set())}
        assert deleted <= expected
        if lasting:
            line = error_line(first)
            assert "503" in line and "DELETE" in line and "classic" not in line, line
            assert len(deleted) == 3  # the first three (the second one's answer lost, its resend found it gone); not the fourth
            proxy.clear()
            second = run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **env)
            assert second.returncode == 0, second.stdout + second.stderr
            assert f"deleted {len(expected) - 3} manifest(s)" in second.stdout, second.stdout
        else:
            assert first.returncode == 0, first.stdout + first.stderr
            assert f"deleted {len(expected)} manifest(s)" in first.stdout, first.stdout  # the one whose answer was lost too
        after = images_held(private_registry)
        assert {digest for name in before for digest in before[name] - after.get(name, set())} == expected
        again = run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **env)
        assert again.returncode == 0 and "nothing to delete" in again.stdout, again.stdout + again.stderr
        assert images_held(private_registry) == after


def test_cleanup_with_a_read_only_token_lists_and_refuses_to_delete_in_one_line(family_on_ghcr, ghcr, private_registry):
    from tests.integration.conftest import run_invoke

    root, _, _ = family_on_ghcr
    before = images_held(private_registry)
    dry = run_invoke(root, "cleanup", "--keep", "1", **on_ghcr(ghcr, "read-only"))
    assert dry.returncode == 0 and "dry run: nothing deleted" in dry.stdout, dry.stderr
    line = error_line(run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **on_ghcr(ghcr, "read-only")))
    assert "lacks the scope delete:packages" in line and "GITHUB_TOKEN" in line
    line = error_line(run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **on_ghcr(ghcr, "job-read")))
    assert "403" in line and "`permissions: packages: write`" in line
    assert images_held(private_registry) == before and ghcr.api_requests("DELETE") == 1  # the one refused


def test_release_through_ghcr_copies_the_built_manifests(tmp_path, ghcr):
    """`invoke release` tags by the distribution API (a manifest copy), which ghcr.io takes; its lease lets go without a DELETE."""
    from imagegraph.workspace import Workspace
    from tests.conftest import FAMILY, FAMILY_FILES, write_tree
    from tests.integration.conftest import commit_all, git, run_invoke

    root = tmp_path / "project"
    write_tree(root, {"images.yaml": FAMILY.replace("127.0.0.1:5000", f"{ghcr.address}/{OWNER}") + "retention:\n  api: github\n",
                      **FAMILY_FILES, "tasks.py": TASKS})
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "family")
    seed = Seeder(ghcr.address)
    tags = {name: Workspace(root).fingerprints[name].tag for name in ("base", "ci", "app", "devcontainer")}
    built = {"base": multi_arch(seed, BASE_REPO, tags["base"], text="base", created=day(1))["index"]}
    for name in ("ci", "app", "devcontainer"):
        labels = {"imagegraph.parent": f"{ghcr.address}/{BASE_REPO}:{tags['base']}"}
        built[name] = seed.image(f"{OWNER}/test/{name}", tags[name], text=name, created=day(1), labels=labels)
    result = run_invoke(root, "release", "--version", "v3.0.0")
    assert result.returncode == 0, result.stderr
    for name, digest in built.items():
        assert {seed.digest(f"{OWNER}/test/{name}", tag) for tag in ("3.0.0", "3.0", "latest")} == {digest}, name
    assert seed.walk(BASE_REPO, "3.0.0") >= 4


def test_requests_and_time_of_a_cleanup_of_100_versions(ghcr, tmp_path, private_registry):
    """20 multi-arch builds (an index, two platform manifests, two attestations: 5 versions each), --keep 2: 90 versions go."""
    from tests.conftest import FAMILY, FAMILY_FILES, write_tree
    from tests.integration.conftest import run_invoke

    seed = Seeder(private_registry.address)
    seed.image(BASE_REPO, "b01", text="base", created=day(1))
    for n in range(20):
        multi_arch(seed, APP_REPO, f"sha-{n:02d}", text=f"build {n}", created=f"2026-03-01T12:{n:02d}:00Z",
                   labels={"imagegraph.parent": f"{ghcr.address}/{BASE_REPO}:b01"})
    root = tmp_path / "project"
    write_tree(root, {"images.yaml": FAMILY.replace("127.0.0.1:5000", f"{ghcr.address}/{OWNER}") + "retention:\n  api: github\n",
                      **FAMILY_FILES, "tasks.py": TASKS})
    ghcr.per_page = 100
    started = time.monotonic()
    result = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **on_ghcr(ghcr))
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "deleted 90 manifest(s)" in result.stdout, result.stdout
    assert len(images_held(private_registry)[APP_REPO]) == 10
    summary = next(line for line in result.stdout.splitlines() if line.startswith("deleted 90"))
    print(f"\n{summary}; wall {seconds:.1f} s; at the stand-in: {ghcr.api_requests()} API requests "
          f"({ghcr.api_requests('DELETE')} DELETE), {ghcr.count(prefix='/v2/')} registry requests")
