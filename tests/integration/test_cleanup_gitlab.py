"""Deleting through GitLab's container registry API, against the GitLab stand-in (tests/standins/gitlab.py) in front of a real registry."""

from __future__ import annotations

import json
import re
import time

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.adapters.registry_apis import open_deletion_api
from imagegraph.adapters.registry_apis.gitlab import GitLabRegistry
from imagegraph.core.errors import RegistryError
from imagegraph.core.registry_api import ApiKind, choose_api
from tests.conftest import FAMILY, FAMILY_FILES, split_ref
from tests.integration.conftest import init_repo, run_invoke
from tests.integration.oci_seed import Seeder
from tests.standins.gitlab import Token, start_gitlab

pytestmark = pytest.mark.integration

PROJECT = "group/sub/project"
APP = f"{PROJECT}/app"
TOKENS = {"tok-api": Token(("api", "read_user")), "tok-ro": Token(("read_registry",)), "tok-reporter": Token(("api",), access_level=20),
          "job-1": Token(job_project=PROJECT)}


@pytest.fixture
def gitlab(private_registry):
    with start_gitlab(private_registry, {PROJECT: 7, "group/other": 8}, TOKENS) as standin:
        yield standin


def day(n: int) -> str:
    return f"2026-03-{n:02d}T12:00:00Z"


def api(standin, token: str = "tok-api", variable: str = "IMAGEGRAPH_GITLAB_TOKEN", **env: str) -> tuple[GitLabRegistry, list[str]]:
    notes: list[str] = []
    registry = Registry(standin.address)
    deletion = open_deletion_api(choose_api(standin.address, ApiKind.GITLAB), registry,
                                 environ={"CI_API_V4_URL": standin.api, variable: token, **env}, say=notes.append)
    assert isinstance(deletion, GitLabRegistry) and deletion.collects_untagged
    return deletion, notes


def test_deletes_the_tags_of_an_image_and_gitlab_collects_it_but_never_what_a_kept_index_lists(gitlab):
    seed = Seeder(gitlab.address)
    old = seed.image(APP, "old", text="old", created=day(1))
    for tag in ("0.9", "sha-0001"):
        Registry(gitlab.address).copy_tag(APP, "old", tag)
    amd, arm = seed.image(APP, None, text="amd", created=day(2)), seed.image(APP, None, text="arm", created=day(2), arch="arm64")
    kept_index = seed.index(APP, "1.0", {"linux/amd64": amd, "linux/arm64": arm})
    own = seed.image(APP, None, text="own amd", created=day(3))
    gone_index = seed.index(APP, "a-old", {"linux/amd64": own, "linux/arm64": arm})  # arm is shared with the kept 1.0
    for n in range(5):  # more repositories than a page holds: the listing crosses pages
        seed.image(f"{PROJECT}/extra{n}", "x", text=f"extra {n}", created=day(4))

    deletion, notes = api(gitlab)
    deletion.check_rights([APP])
    assert notes == ["GitLab: the token in IMAGEGRAPH_GITLAB_TOKEN has the scopes api, read_user: it may delete registry tags"]
    assert deletion.untagged(APP) == ()
    assert deletion.delete(APP, old, ["old", "0.9", "sha-0001"])
    assert deletion.delete(APP, gone_index, ["a-old"])

    assert seed.tags(APP) == {"1.0"}
    assert not seed.exists(APP, old) and not seed.exists(APP, gone_index) and not seed.exists(APP, own)
    assert seed.exists(APP, kept_index) and seed.exists(APP, amd) and seed.exists(APP, arm)
    assert seed.walk(APP, "1.0") == 4  # the kept index pulls whole: both platforms' config and layer
    listed = [s for s in gitlab.seen if s.method == "GET" and s.path.endswith("/registry/repositories")]
    assert len(listed) == 3  # 6 repositories, 2 a page: one listing, three pages
    assert gitlab.count("DELETE", "/v2/") == 0  # never the registry's own delete
    # per tag: its details (does it still name the digest?) and its delete; then the project and its repositories, once
    assert deletion.requests == 1 + len(project_lookups := [s for s in gitlab.seen if s.path.startswith("/api/v4/projects/")
                                                            and "/registry/" not in s.path]) + 3 + 2 * 4
    assert len(project_lookups) == 2  # group/sub: not a project (a group); group/sub/project: it


def test_other_tags_of_the_same_image_stay(gitlab):
    seed = Seeder(gitlab.address)
    digest = seed.image(APP, "edge", text="edge", created=day(1))
    Registry(gitlab.address).copy_tag(APP, "edge", "pr-8")
    deletion, _ = api(gitlab)
    assert deletion.delete(APP, digest, ["pr-8"])
    assert seed.tags(APP) == {"edge"} and seed.exists(APP, digest)


def test_a_tag_moved_to_another_image_since_the_second_look_is_left_alone(gitlab):
    seed = Seeder(gitlab.address)
    first = seed.image(APP, "edge", text="first", created=day(1))
    second = seed.image(APP, "edge", text="second", created=day(2))
    deletion, notes = api(gitlab)
    assert deletion.delete(APP, first, ["edge"]) is False
    assert seed.digest(APP, "edge") == second
    assert notes == [f"{APP}:edge now names another image ({second[:19]}); left alone"]
    assert deletion.delete(APP, first, ["gone-already"]) is False


def test_a_token_without_api_is_refused_in_one_line_before_any_delete(gitlab):
    seed = Seeder(gitlab.address)
    digest = seed.image(APP, "old", text="old", created=day(1))
    deletion, _ = api(gitlab, "tok-ro")
    with pytest.raises(RegistryError) as refused:
        deletion.check_rights([APP])
    assert str(refused.value) == ("the GitLab token in IMAGEGRAPH_GITLAB_TOKEN has the scopes read_registry; deleting registry "
                                  "tags needs the api scope: create a token with api and run again")
    assert gitlab.count("DELETE", "/api/v4") == 0 and seed.exists(APP, digest)
    # and GitLab itself refuses that token's delete (403), as the stand-in shows
    answer = gitlab_delete(gitlab, "tok-ro", APP, "old")
    assert answer.status_code == 403 and answer.json()["error"] == "insufficient_scope"
    assert seed.tags(APP) == {"old"}


def gitlab_delete(standin, token: str, name: str, tag: str):
    import requests

    repositories = requests.get(f"{standin.api}/projects/7/registry/repositories", params={"per_page": 100},
                                headers={"PRIVATE-TOKEN": "tok-api"}, timeout=10).json()
    repository = next(r["id"] for r in repositories if r["path"] == name)
    return requests.delete(f"{standin.api}/projects/7/registry/repositories/{repository}/tags/{tag}",
                           headers={"PRIVATE-TOKEN": token}, timeout=10)


def test_a_user_below_developer_is_refused_before_any_delete(gitlab):
    Seeder(gitlab.address).image(APP, "old", text="old", created=day(1))
    deletion, _ = api(gitlab, "tok-reporter")
    with pytest.raises(RegistryError, match="less than the Developer role in group/sub/project"):
        deletion.check_rights([APP])
    assert gitlab.count("DELETE", "/api/v4") == 0


def test_an_unknown_token_and_a_repository_of_no_project_are_one_line_each(gitlab):
    Seeder(gitlab.address).image("nogroup/app", "x", text="x", created=day(1))
    deletion, _ = api(gitlab, "tok-wrong")
    with pytest.raises(RegistryError, match=r"refused the token in IMAGEGRAPH_GITLAB_TOKEN \(401\)"):
        deletion.check_rights(["nogroup/app"])
    deletion, _ = api(gitlab)
    with pytest.raises(RegistryError, match="GitLab knows no project that nogroup/app belongs to"):
        deletion.check_rights(["nogroup/app"])


def test_a_job_token_deletes_in_its_own_project_and_is_refused_elsewhere(gitlab):
    seed = Seeder(gitlab.address)
    digest = seed.image(APP, "old", text="old", created=day(1))
    deletion, notes = api(gitlab, "job-1", "CI_JOB_TOKEN", CI_PROJECT_PATH=PROJECT, CI_PROJECT_ID="7")
    deletion.check_rights([APP])
    assert notes == [f"GitLab: CI_JOB_TOKEN deletes registry tags of {PROJECT} only, with the role of the user who started the "
                     f"pipeline (Developer or higher)"]
    assert deletion.delete(APP, digest, ["old"]) and not seed.exists(APP, digest)
    assert not [s for s in gitlab.seen if s.path in ("/api/v4/personal_access_tokens/self", f"/api/v4/projects/{PROJECT}")]
    with pytest.raises(RegistryError, match="group/other/app is not in the registry of group/sub/project"):
        deletion.check_rights(["group/other/app"])


def test_a_rate_limit_is_waited_out(gitlab):
    seed = Seeder(gitlab.address)
    digest = seed.image(APP, "old", text="old", created=day(1))
    deletion, notes = api(gitlab)
    gitlab.limit(times=1, retry_after=1)
    started = time.monotonic()
    assert deletion.delete(APP, digest, ["old"])
    assert time.monotonic() - started >= 1
    assert any("rate limit reached, waiting 1 s" in note for note in notes)
    first, again = [s for s in gitlab.seen if s.path.startswith("/api/v4")][:2]
    assert first.status == 429 and again.status != 429 and again.path == first.path  # the same request, sent again
    assert not seed.exists(APP, digest)


def test_the_registry_delete_is_answered_as_gitlab_answers_a_token_without_delete(gitlab):
    seed = Seeder(gitlab.address)
    digest = seed.image(APP, "old", text="old", created=day(1))
    with pytest.raises(RegistryError):
        Registry(gitlab.address).delete_manifest(APP, digest)
    assert seed.exists(APP, digest) and seed.tags(APP) == {"old"}


TASKS = "from imagegraph.tasks import namespace  # noqa: F401\n"


def family(root, address: str, namespace: str = "group/project", extra: str = "") -> None:
    config = FAMILY.replace("127.0.0.1:5000", address).replace("namespace: test", f"namespace: {namespace}") + extra
    init_repo(root, {"images.yaml": config, **FAMILY_FILES, "tasks.py": TASKS})


def test_release_copies_manifests_through_the_stand_in(tmp_path, private_registry):
    with start_gitlab(private_registry, {"group/project": 7}, TOKENS) as standin:
        root = tmp_path / "project"
        family(root, standin.address, extra="retention: {api: gitlab}\n")
        seed = Seeder(standin.address)
        built = {}
        for image in ("base", "ci", "app", "devcontainer"):
            result = run_invoke(root, "ref", image)
            assert result.returncode == 0, result.stderr
            _, name, tag = split_ref(result.stdout.strip())
            if image == "base":
                amd = seed.image(name, None, text="base amd64", created=day(1))
                arm = seed.image(name, None, text="base arm64", created=day(1), arch="arm64")
                built[image] = (name, seed.index(name, tag, {"linux/amd64": amd, "linux/arm64": arm}))
            else:
                built[image] = (name, seed.image(name, tag, text=image, created=day(2)))
        result = run_invoke(root, "release", "--version", "v1.2.0", CI_API_V4_URL=standin.api, IMAGEGRAPH_GITLAB_TOKEN="tok-api")
        assert result.returncode == 0, result.stdout + result.stderr
        for name, digest in built.values():
            assert {seed.digest(name, tag) for tag in ("1.2.0", "1.2", "latest")} == {digest}, name
        # the registry lease lets go by deleting its claim, which GitLab's registry refuses such a login: it writes an expired claim instead
        assert {s.status for s in standin.seen if s.method == "DELETE"} <= {401}


# --- invoke cleanup, end to end ---------------------------------------------------------------

NS = "group/project"
BASE, CHILD = f"{NS}/base", f"{NS}/app"
ENV = {"IMAGEGRAPH_GITLAB_TOKEN": "tok-api"}
#: imagegraph's own tags: the retention record, and the lease tag, which a registry that refuses deletes keeps (naming an expired claim)
OWN = {"imagegraph-retention", "imagegraph-lease-tags"}


@pytest.fixture
def seeded(tmp_path, private_registry):
    with start_gitlab(private_registry, {NS: 7}, TOKENS) as standin:
        yield (*push_project(tmp_path, standin.address), standin)


def push_project(tmp_path, address: str):
    """Months of work in a GitLab project's registry (at ``address``): releases, pre-releases, merge requests, multi-arch
    indexes, an app on its bases; and the project's images.yaml."""
    seed, registry = Seeder(address), Registry(address)

    def base(tag: str | None, n: int, arch: str = "amd64") -> str:
        return seed.image(BASE, tag, text=f"base {tag} {arch} {n}", created=day(n), arch=arch)

    def app(tag: str | None, n: int, parent: str, arch: str = "amd64") -> str:
        labels = {"imagegraph.parent": f"{address}/{BASE}:{parent}", "org.opencontainers.image.created": day(n)}
        return seed.image(CHILD, tag, text=f"app {tag} {arch} {n}", created=day(n), labels=labels, arch=arch)

    for n in (1, 2, 4, 5, 6, 7):
        base(f"b0{n}", n)
    seed.index(BASE, "b03", {"linux/amd64": base(None, 3), "linux/arm64": base(None, 3, "arm64")})
    app("a090", 10, "b01")
    for tag in ("0.9.0", "0.9"):
        registry.copy_tag(CHILD, "a090", tag)
    app("a100", 11, "b02")
    for tag in ("1.0.0", "1.0"):
        registry.copy_tag(CHILD, "a100", tag)
    app("1.1.0-rc.1", 12, "b02")
    arm64 = app(None, 13, "b03", arch="arm64")
    seed.index(CHILD, "1.1.0", {"linux/amd64": app(None, 13, "b03"), "linux/arm64": arm64})
    for tag in ("1.1", "latest"):
        registry.copy_tag(CHILD, "1.1.0", tag)
    app("2.0.0-rc.1", 14, "b02")
    app("pr-7", 15, "b04")
    app("edge", 16, "b05")
    for tag in ("sha-1234567", "pr-8"):
        registry.copy_tag(CHILD, "edge", tag)
    seed.index(CHILD, "a-old", {"linux/amd64": app(None, 9, "b01"), "linux/arm64": arm64})  # arm64 shared with 1.1.0

    root = tmp_path / "project"
    family(root, address, NS, extra="retention: {api: gitlab}\n")
    return root, seed


def every_manifest(seed: Seeder, name: str) -> set[str]:
    """Every manifest digest a repository holds, tagged or listed by a tagged index (what a pull could reach)."""
    found = set()
    for tag in seed.tags(name):
        digest = seed.digest(name, tag)
        found.add(digest)
        body = json.loads(seed.raw(name, digest))
        found.update(m["digest"] for m in body.get("manifests") or ())
    return found


def listed(output: str) -> set[str]:
    """The digests (12 hex digits) a cleanup table marks for deletion."""
    return {match.group(1) for match in re.finditer(r"^\S+\s+delete\s.*?\b([0-9a-f]{12})\b", output, re.M)}


def test_cleanup_yes_deletes_exactly_what_the_dry_run_lists_and_a_second_run_finds_nothing(seeded):
    root, seed, standin = seeded
    before = {name: every_manifest(seed, name) for name in (BASE, CHILD)}
    dry = run_invoke(root, "cleanup", "--keep", "2", CI_API_V4_URL=standin.api, **ENV)
    assert dry.returncode == 0, dry.stderr
    doomed = listed(dry.stdout)
    assert "platform manifest (linux/amd64) of deleted app:a-old" in dry.stdout
    assert standin.count("DELETE", "/api/") == 0

    done = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", CI_API_V4_URL=standin.api, **ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert listed(done.stdout) == doomed
    assert "GitLab: the token in IMAGEGRAPH_GITLAB_TOKEN has the scopes api, read_user: it may delete registry tags" in done.stderr
    assert "to GitLab's container registry API" in done.stdout and "left 1 untagged manifest(s) to the registry's own garbage" in done.stdout
    for name in (BASE, CHILD):
        for digest in before[name]:
            assert seed.exists(name, digest) is (digest[7:19] not in doomed), (name, digest)
    assert seed.tags(BASE) - OWN == {"b02", "b03", "b05", "b06", "b07"}
    assert seed.tags(CHILD) - OWN == {"a100", "1.0.0", "1.0", "1.1.0", "1.1", "latest", "2.0.0-rc.1", "edge", "sha-1234567", "pr-8"}
    assert all(seed.walk(name, tag) >= 2 for name in (BASE, CHILD) for tag in seed.tags(name) - OWN)
    # deleted through GitLab's API only: the registry's own DELETEs seen are the lease's, refused as GitLab refuses them
    assert {s.status for s in standin.seen if s.method == "DELETE" and s.path.startswith("/v2/")} <= {401}
    assert {s.status for s in standin.seen if s.method == "DELETE" and s.path.startswith("/api/")} == {200}

    again = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", CI_API_V4_URL=standin.api, **ENV)
    assert again.returncode == 0 and "nothing to delete" in again.stdout, again.stdout + again.stderr


#: A tag of a registry repository (its details, its DELETE), as the fault proxy matches paths.
TAG = r"/registry/repositories/\d+/tags/[^/]+$"


@pytest.mark.parametrize("lasting", [False, True], ids=["passing", "lasting"])
def test_cleanup_through_faults_of_gitlabs_api(tmp_path, private_registry, lasting):
    """Faults between imagegraph and GitLab's API: a dropped tag look-up, an answer lost after the tag was deleted, 503s; a run
    either gets through them or stops in one line with every kept image whole, and the next run finishes the job."""
    from tests.integration.faultproxy import Answer, Drop, Lose, start_fault_proxy

    with start_gitlab(private_registry, {NS: 7}, TOKENS) as standin, start_fault_proxy(standin.address) as proxy:
        root, seed = push_project(tmp_path, proxy.address)  # the registry (/v2/) and the API share the stand-in's address
        env = {**ENV, "CI_API_V4_URL": f"http://{proxy.address}/api/v4"}
        before = {name: every_manifest(seed, name) for name in (BASE, CHILD)}
        dry = run_invoke(root, "cleanup", "--keep", "2", **env)
        assert dry.returncode == 0, dry.stderr
        doomed = listed(dry.stdout)
        rules = [proxy.inject(Drop(), "GET", TAG, nth=2), proxy.inject(Lose(), "DELETE", TAG, nth=1),
                 proxy.inject(Answer(503), "DELETE", TAG, nth=4, times=None if lasting else 2)]
        first = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **env)
        assert all(rule.hits for rule in rules), [(rule.path, rule.hits) for rule in rules]
        assert all(seed.walk(name, tag) >= 2 for name in (BASE, CHILD) for tag in seed.tags(name) - OWN)  # every kept image whole
        assert all(seed.exists(name, digest) for name in (BASE, CHILD) for digest in before[name] if digest[7:19] not in doomed)
        if lasting:
            errors = [line for line in first.stderr.splitlines() if line.startswith("error: ")]
            assert first.returncode == 1 and len(errors) == 1 and "Traceback" not in first.stderr, first.stderr
            assert "503" in errors[0] and "DELETE" in errors[0] and "tok-api" not in errors[0], errors[0]
            proxy.clear()
            second = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **env)
            assert second.returncode == 0, second.stdout + second.stderr
        else:
            assert first.returncode == 0, first.stdout + first.stderr
            assert listed(first.stdout) == doomed
            # every manifest whose tags went counts, the one whose answer was lost too; GitLab collects the one left untagged
            assert f"deleted {len(doomed) - 1} manifest(s)" in first.stdout, first.stdout
        for name in (BASE, CHILD):
            for digest in before[name]:
                assert seed.exists(name, digest) is (digest[7:19] not in doomed), (name, digest)
        again = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **env)
        assert again.returncode == 0 and "nothing to delete" in again.stdout, again.stdout + again.stderr


def test_cleanup_with_a_read_only_token_is_refused_in_one_line_before_anything_is_deleted(seeded):
    root, seed, standin = seeded
    tags = {name: seed.tags(name) for name in (BASE, CHILD)}
    refused = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", CI_API_V4_URL=standin.api, IMAGEGRAPH_GITLAB_TOKEN="tok-ro")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error")]
    assert errors == [("error: the GitLab token in IMAGEGRAPH_GITLAB_TOKEN has the scopes read_registry; deleting registry tags needs "
                    "the api scope: create a token with api and run again")]
    assert {name: seed.tags(name) - OWN for name in (BASE, CHILD)} == tags
    assert standin.count("DELETE", "/api/") == 0
