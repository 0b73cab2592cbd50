"""Deleting on Docker Hub through its own API, against the stand-in (tests/standins/dockerhub.py) in front of a real registry."""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.adapters.registry_apis import open_deletion_api
from imagegraph.adapters.registry_apis.dockerhub import DockerHub
from imagegraph.core.errors import RegistryError
from imagegraph.core.registry_api import ApiKind, choose_api
from tests.integration.conftest import run_invoke
from tests.integration.oci_seed import Seeder
from tests.standins.dockerhub import start_dockerhub

APP = "acme/app"
USERS = {"acme": {"dckr_pat_delete": "delete", "dckr_pat_write": "write", "dckr_pat_read": "read"}}


@pytest.fixture
def hub(private_registry, monkeypatch):
    with start_dockerhub(private_registry, USERS, page_size=3) as standin:
        yield standin


def api_for(hub, token: str, lines: list[str] | None = None) -> DockerHub:
    environ = {"IMAGEGRAPH_DOCKERHUB_API": hub.hub_url, "IMAGEGRAPH_DOCKERHUB_USER": "acme", "IMAGEGRAPH_DOCKERHUB_TOKEN": token}
    sink = lines.append if lines is not None else (lambda line: None)
    api = open_deletion_api(choose_api(hub.address, ApiKind.DOCKERHUB), Registry(hub.address), environ=environ, say=sink)
    assert isinstance(api, DockerHub)
    return api


@pytest.fixture
def multiarch(private_registry, hub, monkeypatch):
    """acme/app: v1 (an index of two platforms) tagged v1 and stable; v2 and v3 single images; seven more tags for pages."""
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_USER", "acme")
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_PASSWORD", "dckr_pat_delete")
    seed = Seeder(private_registry.address)
    amd = seed.image(APP, None, text="v1 amd64", created="2026-03-01T00:00:00Z")
    arm = seed.image(APP, None, text="v1 arm64", created="2026-03-01T00:00:00Z", arch="arm64")
    index = seed.index(APP, "v1", {"linux/amd64": amd, "linux/arm64": arm})
    seed.index(APP, "stable", {"linux/amd64": amd, "linux/arm64": arm})
    v2 = seed.image(APP, "v2", text="v2", created="2026-03-02T00:00:00Z")
    for n in range(7):
        seed.image(APP, f"old-{n}", text=f"old {n}", created="2026-02-01T00:00:00Z")
    return {"index": index, "amd": amd, "arm": arm, "v2": v2, "seed": seed}


def test_lists_every_tag_across_pages(hub, multiarch):
    api = api_for(hub, "dckr_pat_delete")
    tags = api.tags(APP)
    assert set(tags) == {"v1", "stable", "v2", *(f"old-{n}" for n in range(7))}
    assert tags["v1"] == tags["stable"] == multiarch["index"] and tags["v2"] == multiarch["v2"]
    assert hub.counts["hub GET"] == 4  # 10 tags, 3 a page: the stand-in's small pages were all followed
    assert api.tags("acme/none") == {}


def test_deletes_an_index_with_its_tags_then_its_platform_manifests(hub, multiarch, private_registry):
    seed, api = multiarch["seed"], api_for(hub, "dckr_pat_delete")
    api.check_rights([APP])
    # a platform manifest an index still names is refused by Docker Hub's registry, and stays
    with pytest.raises(RegistryError, match="still names it"):
        api.delete(APP, multiarch["amd"], ())
    assert seed.exists(APP, multiarch["amd"])
    assert api.delete(APP, multiarch["index"], ("v1", "stable")) is True
    assert not seed.exists(APP, multiarch["index"]) and not {"v1", "stable"} & seed.tags(APP)
    assert api.delete(APP, multiarch["amd"], ()) and api.delete(APP, multiarch["arm"], ())
    assert not seed.exists(APP, multiarch["amd"]) and not seed.exists(APP, multiarch["arm"])
    assert api.delete(APP, multiarch["index"], ()) is False  # gone already
    assert seed.exists(APP, "v2") and seed.walk(APP, "v2") == 2  # nothing else touched
    assert api.http.requests == hub.counts["hub"]  # every Hub request counted, the sign-in included


def test_a_tag_pushed_in_between_stops_the_delete(hub, multiarch):
    seed, api = multiarch["seed"], api_for(hub, "dckr_pat_delete")
    seed.put_manifest(APP, "late", json.loads(seed.raw(APP, "v2")), "application/vnd.docker.distribution.manifest.v2+json")
    with pytest.raises(RegistryError, match="still names it"):
        api.delete(APP, multiarch["v2"], ("v2",))
    assert seed.exists(APP, multiarch["v2"]) and "late" in seed.tags(APP)


@pytest.mark.parametrize("token", ["dckr_pat_read", "dckr_pat_write"])
def test_a_token_without_the_delete_scope_is_named_before_anything_is_deleted(hub, multiarch, token):
    api = api_for(hub, token)
    with pytest.raises(RegistryError) as refused:
        api.check_rights([APP])
    line = str(refused.value)
    assert "\n" not in line and "Read, Write & Delete" in line and APP in line and token not in line
    assert hub.counts["tag deleted"] == 0 and multiarch["seed"].tags(APP) >= {"v1", "v2"}
    # and were it asked anyway, the Hub API refuses the tag's delete with the same line
    with pytest.raises(RegistryError, match="Read, Write & Delete"):
        api.delete(APP, multiarch["v2"], ("v2",))
    assert multiarch["seed"].exists(APP, "v2")


def test_wrong_credentials_are_one_line_without_the_secret(hub, multiarch):
    environ = {"IMAGEGRAPH_DOCKERHUB_API": hub.hub_url, "IMAGEGRAPH_DOCKERHUB_USER": "acme", "IMAGEGRAPH_DOCKERHUB_TOKEN": "dckr_pat_wrong"}
    api = DockerHub.from_environment(Registry(hub.address), environ=environ)
    with pytest.raises(RegistryError) as refused:
        api.check_rights([APP])
    assert "dckr_pat_wrong" not in str(refused.value) and "acme" in str(refused.value)


def test_a_rate_limit_is_waited_out(hub, multiarch):
    lines: list[str] = []
    api = api_for(hub, "dckr_pat_delete", lines)
    waits: list[float] = []
    api.http._sleep = waits.append  # the wait Docker Hub asks for, recorded instead of slept
    hub.limit(2, retry_after=7)
    assert api.delete(APP, multiarch["v2"], ("v2",)) is True
    assert waits == [7.0] and any("rate limit" in line and "7 s" in line for line in lines)
    assert not multiarch["seed"].exists(APP, multiarch["v2"])


def test_release_moves_tags_through_docker_hubs_registry(tmp_path, private_registry, hub):
    """`invoke release` copies manifests by the distribution API, which Docker Hub's registry takes with a write token."""
    from imagegraph.core.plan import fingerprint_ref
    from imagegraph.workspace import Workspace
    from tests.integration.conftest import init_repo
    from tests.integration.test_build import SMALL_FAMILY, family_files

    root = init_repo(tmp_path / "repo", {"images.yaml": SMALL_FAMILY.format(registry=hub.address, namespace="acme"),
                                          **family_files("acme"), "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n"})
    workspace = Workspace(root)
    seed = Seeder(private_registry.address)
    built = {}
    for spec in workspace.config.images:  # this commit's images, as a build would have pushed them (by fingerprint tag)
        ref = fingerprint_ref(workspace.config, workspace.fingerprints, spec.name)
        if len(spec.platforms) > 1:
            children = {p: seed.image(ref.repository, None, text=f"{spec.name} {p}", created="2026-03-01T00:00:00Z", arch=p.split("/")[1])
                        for p in spec.platforms}
            built[ref.repository] = seed.index(ref.repository, ref.reference, children)
        else:
            built[ref.repository] = seed.image(ref.repository, ref.reference, text=spec.name, created="2026-03-01T00:00:00Z")
    env = {"IMAGEGRAPH_REGISTRY_USER": "acme", "IMAGEGRAPH_REGISTRY_PASSWORD": "dckr_pat_write"}
    result = run_invoke(root, "release", "--version", "v1.0.0", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    for repository, digest in built.items():
        assert {seed.digest(repository, tag) for tag in ("1.0.0", "1.0", "latest")} == {digest}, repository
    assert hub.counts["registry"] > 0  # the tags were written through the stand-in, not around it


def test_a_hundred_versions_cost_one_hub_request_each(private_registry, hub, monkeypatch, capsys):
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_USER", "acme")
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_PASSWORD", "dckr_pat_delete")
    seed = Seeder(private_registry.address)
    versions = {f"v{n:03d}": seed.image(APP, f"v{n:03d}", text=f"version {n}", created="2026-03-01T00:00:00Z") for n in range(100)}
    api = api_for(hub, "dckr_pat_delete")
    before = Counter(hub.counts)
    started = time.monotonic()
    api.check_rights([APP])
    listed = api.tags(APP)
    for tag, digest in versions.items():
        assert api.delete(APP, digest, (tag,))
    seconds = time.monotonic() - started
    sent = Counter(hub.counts)
    sent.subtract(before)
    assert listed == versions and not seed.tags(APP) and not hub.revisions(APP)
    # the Hub API: a sign-in, the listing's pages, one DELETE per tag; the registry: one DELETE per manifest (and its token)
    assert sent["hub DELETE"] == 100 and sent["hub"] == 1 + -(-100 // hub.page_size) + 100
    with capsys.disabled():
        print(f"\nDocker Hub stand-in, 100 versions: {api.requests} requests counted by the adapter, "
              f"{sent['hub']} to the Hub API, {sent['registry']} to the registry, {sent['token']} to its token service, {seconds:.2f} s")


# -- `invoke cleanup` end to end, on the family tests/integration/test_cleanup.py seeds, pushed to Docker Hub's stand-in --------

BASE, FAMILY_APP = "test/base", "test/app"
KEPT = {
    BASE: {"b02", "b03", "b05", "b06", "b07"},
    FAMILY_APP: {"a100", "1.0.0", "1.0", "1.1.0", "1.1", "latest", "2.0.0-rc.1", "edge", "sha-1234567", "pr-8", "buildcache-amd64"},
}
GONE = {BASE: {"b01", "b04"}, FAMILY_APP: {"a090", "0.9.0", "0.9", "1.1.0-rc.1", "pr-7", "a-old"}}
CLEANUP_ENV = {"IMAGEGRAPH_DOCKERHUB_USER": "acme", "IMAGEGRAPH_REGISTRY_USER": "acme"}


def day(n: int) -> str:
    return f"2026-03-{n:02d}T12:00:00Z"


@pytest.fixture
def family(tmp_path, private_registry, hub):
    return push_family(tmp_path, private_registry, hub.address)


def push_family(tmp_path, private_registry, address: str):
    """Months of releases, pre-releases, PRs and branch builds, multi-arch lists with untagged platforms, children on bases;
    images.yaml names the registry at ``address`` (the stand-in, or a proxy in front of it)."""
    from tests.conftest import FAMILY, FAMILY_FILES, write_tree

    seed, backing = Seeder(private_registry.address), Registry(private_registry.address)

    def base(tag: str | None, n: int, arch: str = "amd64") -> str:
        return seed.image(BASE, tag, text=f"base {tag} {arch}", created=day(n), arch=arch)

    def app(tag: str | None, n: int, parent: str, arch: str = "amd64") -> str:
        labels = {"imagegraph.parent": f"{address}/{BASE}:{parent}", "org.opencontainers.image.created": day(n)}
        return seed.image(FAMILY_APP, tag, text=f"app {tag} {arch} {n}", created=day(n), labels=labels, arch=arch)

    for n in (1, 2):
        base(f"b0{n}", n)
    seed.index(BASE, "b03", {"linux/amd64": base(None, 3), "linux/arm64": base(None, 3, "arm64")})
    for n in (4, 5, 6, 7):
        base(f"b0{n}", n)
    app("a090", 10, "b01")
    for tag in ("0.9.0", "0.9"):
        backing.copy_tag(FAMILY_APP, "a090", tag)
    app("a100", 11, "b02")
    for tag in ("1.0.0", "1.0"):
        backing.copy_tag(FAMILY_APP, "a100", tag)
    app("1.1.0-rc.1", 12, "b02")
    arm64_110 = app(None, 13, "b03", arch="arm64")
    seed.index(FAMILY_APP, "1.1.0", {"linux/amd64": app(None, 13, "b03"), "linux/arm64": arm64_110})
    for tag in ("1.1", "latest"):
        backing.copy_tag(FAMILY_APP, "1.1.0", tag)
    app("2.0.0-rc.1", 14, "b02")
    app("pr-7", 15, "b04")
    app("edge", 16, "b05")
    for tag in ("sha-1234567", "pr-8", "buildcache-amd64"):
        backing.copy_tag(FAMILY_APP, "edge", tag)
    old_amd64 = app(None, 9, "b01")
    seed.index(FAMILY_APP, "a-old", {"linux/amd64": old_amd64, "linux/arm64": arm64_110})
    root = tmp_path / "project"
    write_tree(root, {"images.yaml": FAMILY.replace("127.0.0.1:5000", address) + "retention:\n  api: dockerhub\n", **FAMILY_FILES,
                      "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n"})
    return root, seed, {"old-amd64": old_amd64, "110-arm64": arm64_110}


def cleanup_env(hub, token: str) -> dict[str, str]:
    return {**CLEANUP_ENV, "IMAGEGRAPH_DOCKERHUB_API": hub.hub_url, "IMAGEGRAPH_DOCKERHUB_TOKEN": token,
            "IMAGEGRAPH_REGISTRY_PASSWORD": token}


def manifests(hub) -> dict[str, set[str]]:
    return {name: hub.revisions(name) for name in (BASE, FAMILY_APP)}


def test_cleanup_on_docker_hub_deletes_exactly_what_the_dry_run_lists(family, hub, private_registry):
    from imagegraph.core.lease import lease_tag
    from imagegraph.core.retention import RETENTION_TAG

    root, seed, untagged = family
    env = cleanup_env(hub, "dckr_pat_delete")
    dry = run_invoke(root, "cleanup", "--keep", "2", **env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "through Docker Hub's API (" in dry.stdout and "dry run: nothing deleted" in dry.stdout
    listed = {re.search(r"\b[0-9a-f]{12}\b", row).group() for row in dry.stdout.splitlines() if re.match(r"\S+\s+delete\s", row)}
    assert len(listed) == 7
    before = manifests(hub)

    done = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    after = manifests(hub)
    deleted = {digest for name in before for digest in before[name] - after[name]}
    assert {digest[7:19] for digest in deleted} == listed  # exactly what the dry run listed, nothing else
    for name in (BASE, FAMILY_APP):
        # imagegraph's own records stay: the retention record, and the lease, which Docker Hub's registry will not delete
        # while its tag names it (the lease then ends by writing an ended claim)
        assert seed.tags(name) - {RETENTION_TAG, lease_tag("tags")} == KEPT[name], name
        assert not GONE[name] & seed.tags(name)
        for tag in KEPT[name]:
            seed.walk(name, tag)  # every kept image whole: its platforms, config and layers
    assert seed.exists(FAMILY_APP, untagged["110-arm64"])  # a kept index's platform, also listed by the deleted a-old
    assert not seed.exists(FAMILY_APP, untagged["old-amd64"])  # a-old's own platform went with it
    assert hub.counts["tag deleted"] >= sum(len(tags) for tags in GONE.values())

    again = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **env)
    assert again.returncode == 0 and "nothing to delete" in again.stdout, again.stdout + again.stderr
    assert all(after[name] <= digests for name, digests in manifests(hub).items())  # (new records and lease claims aside)


def listed_for_deletion(output: str) -> set[str]:
    """The short digests (12 hex) of the table's rows whose verdict is delete."""
    return {re.search(r"\b[0-9a-f]{12}\b", row).group() for row in output.splitlines() if re.match(r"\S+\s+delete\s", row)}


#: A tag's DELETE on the Hub API (hub-tool's path), as the fault proxy matches paths.
TAG_DELETE = r"^/hub/v2/repositories/.+/tags/[^/]+/$"


@pytest.mark.parametrize("stop_at", [None, 1, 3], ids=["passing", "lasting-first", "lasting-third"])
def test_cleanup_through_faults_of_the_hub_api(tmp_path, private_registry, hub, stop_at):
    """Faults between imagegraph and Docker Hub's API: an answer lost after the tag was deleted, 503s; a run either gets
    through them or stops in one line with every kept image whole, and the next run finishes the job."""
    from tests.integration.faultproxy import Answer, Lose, start_fault_proxy

    with start_fault_proxy(hub.address) as proxy:  # the Hub API (/hub), the registry and its token service share one address
        root, seed, _ = push_family(tmp_path, private_registry, proxy.address)
        env = {**cleanup_env(hub, "dckr_pat_delete"), "IMAGEGRAPH_DOCKERHUB_API": f"http://{proxy.address}/hub"}
        dry = run_invoke(root, "cleanup", "--keep", "2", **env)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        listed = listed_for_deletion(dry.stdout)
        before = manifests(hub)
        if stop_at is None:
            rules = [proxy.inject(Lose(), "DELETE", TAG_DELETE, nth=2), proxy.inject(Answer(503), "DELETE", TAG_DELETE, nth=4, times=2)]
        else:
            rules = [proxy.inject(Answer(503), "DELETE", TAG_DELETE, nth=stop_at, times=None)]
        first = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **env)
        assert all(rule.hits for rule in rules), [(rule.path, rule.hits) for rule in rules]
        assert any(seen.path.startswith("/token") for seen in proxy.seen()), "the registry's token service was asked around the proxy"
        for name in (BASE, FAMILY_APP):  # whatever came of the run, every kept image is whole
            for tag in KEPT[name]:
                seed.walk(name, tag)

        def deleted() -> set[str]:
            after = manifests(hub)
            return {digest[7:19] for name in before for digest in before[name] - after[name]}

        assert deleted() <= listed
        if stop_at is not None:
            line = next(line for line in first.stderr.splitlines() if line.startswith("error: "))
            assert first.returncode == 1 and "Traceback" not in first.stderr and first.stderr.strip().endswith(line), first.stderr
            assert "503" in line and "DELETE" in line and "dckr_pat_delete" not in line, line
            proxy.clear()
            second = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **env)
            assert second.returncode == 0, second.stdout + second.stderr
        else:
            assert first.returncode == 0, first.stdout + first.stderr
            assert f"deleted {len(listed)} manifest(s)" in first.stdout, first.stdout  # the one whose answer was lost too
        assert deleted() == listed
        again = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **env)
        assert again.returncode == 0 and "nothing to delete" in again.stdout, again.stdout + again.stderr


def test_cleanup_with_a_token_that_may_not_delete_stops_before_any_delete(family, hub):
    root, _, _ = family
    before = manifests(hub)
    result = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **cleanup_env(hub, "dckr_pat_write"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr  # (after the note naming the API it deletes through)
    assert "Read, Write & Delete" in errors[0] and "dckr_pat_write" not in errors[0]
    assert hub.counts["tag deleted"] == 0 and all(before[name] <= digests for name, digests in manifests(hub).items())


def test_cleanup_with_a_read_only_token_deletes_nothing_and_says_so_in_one_line(family, hub):
    root, _, _ = family
    before = manifests(hub)
    result = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **cleanup_env(hub, "dckr_pat_read"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    # the token service knows the token and grants less than asked: that is said, not "refused the credentials"
    assert "may not push" in errors[0] and "insufficient scope" in errors[0] and "dckr_pat_read" not in errors[0], errors[0]
    assert hub.counts["tag deleted"] == 0 and manifests(hub) == before


def test_invoke_cleanup_of_a_hundred_versions_on_docker_hub(tmp_path, private_registry, hub, capsys):
    from tests.conftest import write_tree

    seed = Seeder(private_registry.address)
    for n in range(100):
        seed.image(APP, f"1.0.{n}", text=f"release {n}", created=f"2026-0{1 + n // 28}-{1 + n % 28:02d}T12:00:00Z")
    root = tmp_path / "project"
    yaml = f"registry: {hub.address}\nnamespace: acme\nretention:\n  api: dockerhub\nimages:\n  app:\n    dockerfile: Dockerfile\n"
    write_tree(root, {"images.yaml": yaml, "Dockerfile": "FROM scratch\n", "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n"})
    env = cleanup_env(hub, "dckr_pat_delete")
    assert run_invoke(root, "cleanup", "--keep", "2", **env).returncode == 0
    before = Counter(hub.counts)
    started = time.monotonic()
    result = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", **env)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert seed.tags(APP) & {f"1.0.{n}" for n in range(100)} == {"1.0.98", "1.0.99"}
    sent = Counter(hub.counts)
    sent.subtract(before)
    assert sent["tag deleted"] == 98
    with capsys.disabled():
        print(f"\n`invoke cleanup --yes` of 100 versions (98 deleted) on the Docker Hub stand-in: {seconds:.1f} s; "
              f"{sent['hub']} Hub API requests, {sent['registry']} registry requests, {sent['token']} token requests; "
              f"cleanup's own count: {[line for line in result.stdout.splitlines() if 'request' in line]}")
