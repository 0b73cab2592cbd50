"""`invoke cleanup` on a real registry seeded with every kind of manifest; then garbage collection, then every kept tag pulled.

The registry is a private docker-registry (deletes enabled), so deleting and
garbage-collecting cannot touch what other tests use.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from invoke import Context, Exit

from imagegraph.adapters.engine.images import image_store_of
from imagegraph.adapters.prune import read_doomed, write_doomed
from imagegraph.adapters.registry import Registry
from imagegraph.cleanup import cleanup
from imagegraph.core.retention import RETENTION_TAG
from imagegraph.tasks.build import cleanup as cleanup_task
from imagegraph.workspace import Workspace
from tests.conftest import FAMILY, FAMILY_FILES, write_tree
from tests.integration.conftest import commit_all, git, one_error_line, remove_local_images, run_invoke
from tests.integration.faultproxy import Answer, Hold, start_fault_proxy
from tests.integration.oci_seed import Seeder

TASKS = "from imagegraph.tasks import namespace  # noqa: F401\n"
BASE, APP = "test/base", "test/app"


def day(n: int) -> str:
    return f"2026-03-{n:02d}T12:00:00Z"


@pytest.fixture
def seeded(tmp_path, private_registry):
    """The registry after months of work: releases, pre-releases, PRs, the default branch, multi-arch lists, bases."""
    seed = Seeder(private_registry.address)
    registry = Registry(private_registry.address)  # tags are copies, as `invoke release` makes them

    def base(tag: str, n: int) -> str:
        return seed.image(BASE, tag, text=f"base {tag}", created=day(n))

    def app(tag: str | None, n: int, parent: str, arch: str = "amd64") -> str:
        labels = {"imagegraph.parent": f"{private_registry.address}/{BASE}:{parent}", "org.opencontainers.image.created": day(n)}
        return seed.image(APP, tag, text=f"app {tag} {arch} {n}", created=day(n), labels=labels, arch=arch)

    base("b01", 1)
    base("b02", 2)
    amd, arm = seed.image(BASE, None, text="b03 amd64", created=day(3)), seed.image(BASE, None, text="b03 arm64", created=day(3), arch="arm64")
    seed.index(BASE, "b03", {"linux/amd64": amd, "linux/arm64": arm})  # a multi-arch base, platform manifests untagged
    base("b04", 4)
    base("b05", 5)
    base("b06", 6)
    base("b07", 7)

    app("a090", 10, "b01")
    for tag in ("0.9.0", "0.9"):
        registry.copy_tag(APP, "a090", tag)
    app("a100", 11, "b02")
    for tag in ("1.0.0", "1.0"):
        registry.copy_tag(APP, "a100", tag)
    app("1.1.0-rc.1", 12, "b02")
    # the latest release is multi-arch; its platform manifests are untagged
    arm64_110 = app(None, 13, "b03", arch="arm64")
    seed.index(APP, "1.1.0", {"linux/amd64": app(None, 13, "b03"), "linux/arm64": arm64_110})
    for tag in ("1.1", "latest"):
        registry.copy_tag(APP, "1.1.0", tag)
    app("2.0.0-rc.1", 14, "b02")
    app("pr-7", 15, "b04")
    app("edge", 16, "b05")
    for tag in ("sha-1234567", "pr-8", "buildcache-amd64"):
        registry.copy_tag(APP, "edge", tag)
    # an old multi-arch build: its amd64 manifest is its own, its arm64 one is shared with 1.1.0
    old_amd64 = app(None, 9, "b01")
    seed.index(APP, "a-old", {"linux/amd64": old_amd64, "linux/arm64": arm64_110})

    root = tmp_path / "project"
    write_tree(root, {"images.yaml": FAMILY.replace("127.0.0.1:5000", private_registry.address), **FAMILY_FILES, "tasks.py": TASKS})
    return root, seed, {"b03-amd64": amd, "b03-arm64": arm, "old-amd64": old_amd64, "110-arm64": arm64_110}


KEPT = {
    BASE: {"b02", "b03", "b05", "b06", "b07"},
    APP: {"a100", "1.0.0", "1.0", "1.1.0", "1.1", "latest", "2.0.0-rc.1", "edge", "sha-1234567", "pr-8", "buildcache-amd64"},
}
GONE = {BASE: {"b01", "b04"}, APP: {"a090", "0.9.0", "0.9", "1.1.0-rc.1", "pr-7", "a-old"}}


def test_dry_run_lists_what_would_go_and_why_and_deletes_nothing(seeded):
    root, seed, _ = seeded
    before = {name: seed.tags(name) for name in (BASE, APP)}
    result = run_invoke(root, "cleanup", "--keep", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dry run: nothing deleted" in out
    assert "pre-release superseded by 1.1.0" in out
    assert "beyond the 2 most recent" in out
    assert "platform manifest (linux/amd64) of deleted app:a-old" in out
    assert {name: seed.tags(name) - {RETENTION_TAG} for name in (BASE, APP)} == before
    # all a dry run writes: the record that starts the grace period of what it found doomed
    assert len(read_doomed(Registry(seed.address), APP)) == 5


def test_cleanup_keeps_everything_a_kept_image_needs_through_garbage_collection(seeded, private_registry, docker_client):
    root, seed, untagged = seeded
    pr7_layer = seed.http.get(f"{seed.base}/{APP}/manifests/pr-7", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
                              ).json()["layers"][0]["digest"]
    result = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0")
    assert result.returncode == 0, result.stderr
    assert "garbage-collect" in result.stdout and "--delete-untagged" in result.stdout

    for name in (BASE, APP):
        # and the record of what was found doomed, kept in the registry for the next run's grace period
        assert seed.tags(name) == KEPT[name] | {"imagegraph-retention"}, name
    # untagged platform manifests: those of kept lists stay (one of them also listed by a deleted list), the others go
    assert seed.exists(BASE, untagged["b03-amd64"]) and seed.exists(BASE, untagged["b03-arm64"])
    assert seed.exists(APP, untagged["110-arm64"])
    assert not seed.exists(APP, untagged["old-amd64"])

    # what an operator does next: offline garbage collection deletes every blob no manifest links any more
    private_registry.garbage_collect()
    assert seed.http.get(f"{seed.base}/{APP}/blobs/{pr7_layer}").status_code == 404  # collection did delete
    blobs = sum(seed.walk(name, tag) for name, tags in KEPT.items() for tag in tags)
    assert blobs >= 2 * sum(len(tags) for tags in KEPT.values())
    pulled = []
    for name, tags in KEPT.items():
        for tag in sorted(tags):
            image = docker_client.images.pull(f"{private_registry.address}/{name}", tag=tag)
            pulled.append(image.id)
    # pulling the arm64 variant fetches its manifest and every blob of it: it fails if cleanup broke any
    arm = docker_client.images.pull(f"{private_registry.address}/{APP}", tag="latest", platform="linux/arm64")
    if image_store_of(docker_client.info()) == "classic":
        # the containerd store inspects an index as the host's platform; the classic one keeps the variant pulled
        assert arm.attrs["Architecture"] == "arm64"
    assert len(pulled) == sum(len(tags) for tags in KEPT.values())

    # and a second run finds nothing more to delete
    again = run_invoke(root, "cleanup", "--keep", "2")
    assert "nothing to delete" in again.stdout
    remove_local_images(docker_client, lambda tag: tag.startswith(private_registry.address))


def test_gone_tags_are_gone(seeded):
    root, seed, _ = seeded
    assert run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0").returncode == 0
    for name, tags in GONE.items():
        assert not tags & seed.tags(name)


def test_bad_keep_is_one_line(seeded):
    root, _, _ = seeded
    assert "not a whole number" in one_error_line(run_invoke(root, "cleanup", "--keep", "ten"))
    assert "at least 1" in one_error_line(run_invoke(root, "cleanup", "--keep", "0"))


def test_a_registry_that_refuses_deletes_is_one_line(seeded, private_registry):
    root, _, _ = seeded
    config = private_registry.config
    config.write_text(config.read_text().replace("enabled: true", "enabled: false"))
    private_registry.start()
    assert "does not allow deletes" in one_error_line(run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0"))


class Interleaved(Registry):
    """The registry, with another writer's step run at a chosen point of cleanup's work (deterministic races)."""

    def __init__(self, address: str, *, before_reread=None, before_delete=None) -> None:
        super().__init__(address)
        self.before_reread, self.before_delete = before_reread, before_delete
        self.listings: dict[str, int] = {}

    def tags(self, name: str) -> tuple[str, ...]:
        self.listings[name] = self.listings.get(name, 0) + 1
        if self.listings[name] == 2 and name == APP and self.before_reread:
            self.before_reread()  # after cleanup's look, before the second look that precedes its first delete
            self.before_reread = None
        return super().tags(name)

    def delete_manifest(self, name: str, digest: str) -> bool:
        if self.before_delete:
            self.before_delete(name, digest)  # after the second look: the delete itself is delayed
        return super().delete_manifest(name, digest)


def cleanup_with(root, registry: Registry, **kw):
    workspace = Workspace(root)
    workspace.registry = registry  # type: ignore[misc]
    notes: list[str] = []
    return cleanup(workspace, keep=2, apply=True, say=notes.append, **kw), notes


def test_a_release_between_cleanups_look_and_its_delete_is_spared(seeded, private_registry):
    root, seed, _ = seeded
    a090 = seed.http.head(f"{seed.base}/{APP}/manifests/a090", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
                          ).headers["Docker-Content-Digest"]
    released = Registry(private_registry.address)
    registry = Interleaved(private_registry.address, before_reread=lambda: released.copy_tag(APP, a090, "1.2.0"))
    pruning, notes = cleanup_with(root, registry, grace=timedelta(0))
    assert not pruning.broken
    spared = {m.label(): why for m, why in pruning.spared}
    assert spared == {"app:0.9.0": "tagged after cleanup looked: 1.2.0", "base:b01": "base of kept app:1.2.0"}
    assert "spared app:0.9.0: tagged after cleanup looked: 1.2.0" in notes
    # the release is whole: its tag, its image and the base it was built on, pulled blob by blob
    assert seed.exists(APP, "1.2.0") and seed.walk(APP, "1.2.0") == 2 and seed.exists(BASE, "b01")
    # the rest of what was doomed went
    assert not {"pr-7", "1.1.0-rc.1", "a-old"} & seed.tags(APP) and "b04" not in seed.tags(BASE)


def test_a_kept_tag_lost_to_a_delayed_delete_fails_cleanup_in_one_line(seeded, private_registry, monkeypatch):
    root, seed, _ = seeded
    other = Registry(private_registry.address)

    def release_onto_the_doomed(name: str, digest: str) -> None:
        if name == APP and "latest" in seed.tags(APP) and digest != other.manifest_digest(APP, "latest") \
                and seed.http.get(f"{seed.base}/{APP}/manifests/{digest}").json().get("config"):
            other.copy_tag(APP, digest, "latest")  # latest re-pointed onto the digest this DELETE is about to remove

    registry = Interleaved(private_registry.address, before_delete=release_onto_the_doomed)
    monkeypatch.chdir(root)
    monkeypatch.setattr(Workspace, "registry", property(lambda self: registry))
    with pytest.raises(Exit) as info:
        cleanup_task(Context(), keep="2", yes=True, grace="0")
    assert info.value.code == 1
    assert str(info.value.message) == ("error: after the deletions app:latest no longer resolves; push again what is gone "
                                       "(`invoke build` on its commit, then `invoke release` for a version)")


def test_a_digest_is_deleted_only_after_the_grace_period(seeded, private_registry):
    root, seed, _ = seeded
    before = {name: seed.tags(name) for name in (BASE, APP)}
    first = run_invoke(root, "cleanup", "--keep", "2", "--yes")
    assert first.returncode == 0, first.stderr
    assert "deleted 0 manifest(s)" in first.stdout
    assert "waiting 7: found doomed less than 1h ago; a `cleanup --yes` from " in first.stdout
    # nothing went; the registry now holds the record of what was found doomed, and when
    assert {name: seed.tags(name) - {RETENTION_TAG} for name in (BASE, APP)} == before
    registry = Registry(private_registry.address)
    record = read_doomed(registry, APP)
    assert len(record) == 5 and len(read_doomed(registry, BASE)) == 2

    # an hour and a bit later (the record says so), the next run deletes what is still doomed
    earlier = (datetime.now(UTC) - timedelta(hours=1, minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in (BASE, APP):
        write_doomed(registry, name, dict.fromkeys(read_doomed(registry, name), earlier))
    second = run_invoke(root, "cleanup", "--keep", "2", "--yes")
    assert second.returncode == 0, second.stderr
    assert "deleted 7 manifest(s)" in second.stdout and "every kept tag still resolves (read back after the deletions)" in second.stdout
    for name, tags in GONE.items():
        assert not tags & seed.tags(name)
    assert read_doomed(registry, APP) == {} and read_doomed(registry, BASE) == {}


def test_a_bad_grace_is_one_line(seeded):
    root, _, _ = seeded
    assert "--grace: '1 week' is not a duration" in one_error_line(run_invoke(root, "cleanup", "--yes", "--grace", "1 week"))


# --- cleanup and a release of the same digest, at the same time ----------------------------------------------------

RELEASED = ("base", "ci", "app", "devcontainer")


@pytest.fixture
def to_release(seeded, private_registry):
    """The seeded registry, plus a commit whose four images were built long ago: its app is doomed (beyond --keep 2)."""
    root, seed, _ = seeded
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "family")
    workspace = Workspace(root)
    tags = {name: workspace.fingerprints[name].tag for name in RELEASED}
    base_ref = f"{private_registry.address}/{BASE}:{tags['base']}"
    digests = {"base": seed.image(BASE, tags["base"], text="base of the release", created=day(1))}
    for name in RELEASED[1:]:
        labels = {"imagegraph.parent": base_ref, "org.opencontainers.image.created": day(1)}
        digests[name] = seed.image(f"test/{name}", tags[name], text=f"{name} of the release", created=day(1), labels=labels)
    return root, seed, tags, digests


def start_invoke(root, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=240)
    return process.returncode, out, err


def version_tags(seed: Seeder, version: str) -> dict[str, str | None]:
    """image -> the digest ``version`` names in its repository (None: no such tag)."""
    return {name: seed.digest(f"test/{name}", version) for name in RELEASED}


def assert_whole_or_nothing(seed: Seeder, tags: dict[str, str], release: tuple[int, str, str]) -> None:
    """Never half a release: every image has the version on its fingerprint's digest, or none has it and the release failed."""
    code, _, err = release
    released = version_tags(seed, "3.0.0")
    if code == 0:
        assert all(released.values()), released
        assert released == {name: seed.digest(f"test/{name}", tags[name]) for name in RELEASED}  # and each still resolves
    else:
        assert not any(released.values()), f"half a release: {released}"
        assert err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in err, err


def test_a_release_meeting_cleanups_delayed_delete_waits_and_then_says_the_images_are_gone(to_release, private_registry):
    root, seed, tags, digests = to_release
    with start_fault_proxy(private_registry.address) as proxy:
        # cleanup's DELETE of the app's digest is held in flight; the release starts meanwhile
        held = proxy.inject(Hold(), "DELETE", rf"/{APP}/manifests/{digests['app']}$").fault
        cleanup = start_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0", "--registry", proxy.address)
        assert held.wait_until_held(120), cleanup.communicate()
        release = start_invoke(root, "release", "--version", "v3.0.0")
        time.sleep(4)  # long enough for the release to tag, were it not waiting
        held.release()
        cleaned, released = finish(cleanup), finish(release)
    assert_whole_or_nothing(seed, tags, released)
    assert cleaned[0] == 0, cleaned
    # the release waited for cleanup's lease, then found the app gone, and says who deleted it and how to get it back
    assert released[0] == 1
    assert "waiting for the registry lease imagegraph-lease-tags: " in released[2] and "invoke cleanup --yes (holder " in released[2]
    error = released[2].strip().splitlines()[-1]
    assert re.fullmatch(rf"error: app:{tags['app']} \(deleted by `invoke cleanup` at 20\d\d-\d\d-\d\dT[\d:]+Z\): this commit's images were "
                        r"deleted from the registry; rebuild them with `invoke build` on this commit \(it pushes the same fingerprints "
                        r"again\), then run `invoke release --version v3\.0\.0`", error), error
    assert not seed.exists(APP, digests["app"])

    # the recovery it names: the build pushes the same fingerprint again, and the release goes through whole
    seed.image(APP, tags["app"], text="app of the release", created=day(1),
               labels={"imagegraph.parent": f"{private_registry.address}/{BASE}:{tags['base']}", "org.opencontainers.image.created": day(1)})
    again = run_invoke(root, "release", "--version", "v3.0.0")
    assert again.returncode == 0, again.stderr
    assert_whole_or_nothing(seed, tags, (0, again.stdout, again.stderr))


def test_a_cleanup_started_during_a_release_waits_and_keeps_what_it_released(to_release, private_registry):
    root, seed, tags, digests = to_release
    with start_fault_proxy(private_registry.address) as proxy:
        # the release's first version tag write is held in flight; cleanup starts meanwhile
        held = proxy.inject(Hold(), "PUT", r"/manifests/3\.0\.0$").fault
        release = start_invoke(root, "release", "--version", "v3.0.0", "--registry", proxy.address)
        assert held.wait_until_held(120), release.communicate()
        cleanup = start_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0")
        time.sleep(4)  # long enough for cleanup to look and delete, were it not waiting
        held.release()
        released, cleaned = finish(release), finish(cleanup)
    assert released[0] == 0, released
    assert_whole_or_nothing(seed, tags, released)
    assert cleaned[0] == 0, cleaned
    assert "waiting for the registry lease imagegraph-lease-tags: " in cleaned[2] and "invoke release v3.0.0 (holder " in cleaned[2]
    # cleanup looked after the release: 3.0.0 is the newest release, kept with the base it was built on
    assert seed.exists(APP, digests["app"]) and "3.0.0" in seed.tags(APP)
    assert seed.tags(APP) & {"pr-7", "a-old"} == set()  # and it did delete what was doomed


def test_a_tag_written_onto_a_digest_while_cleanup_deletes_it_fails_cleanup_naming_it(seeded, private_registry, monkeypatch):
    """Someone who keeps to no lease (an older imagegraph, a hand-made tag) tags a digest as its DELETE runs: cleanup says so."""
    root, seed, _ = seeded
    pr7, pr7_bytes = seed.digest(APP, "pr-7"), seed.raw(APP, "pr-7")

    class Retagging(Registry):
        def delete_manifest(self, name: str, digest: str) -> bool:
            gone = super().delete_manifest(name, digest)
            if digest == pr7:  # the tag lands right after the registry removed the digest's tags: the manifest is back
                seed.http.put(f"{seed.base}/{APP}/manifests/hand-made", data=pr7_bytes,
                              headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"}).raise_for_status()
            return gone

    registry = Retagging(private_registry.address)
    monkeypatch.chdir(root)
    monkeypatch.setattr(Workspace, "registry", property(lambda self: registry))
    with pytest.raises(Exit) as info:
        cleanup_task(Context(), keep="2", yes=True, grace="0")
    assert info.value.code == 1
    assert str(info.value.message) == (f"error: app:hand-made ({pr7[:19]}…) names a digest this cleanup deleted (tagged while the "
                                       f"DELETE ran): the image may be incomplete; push it again (`invoke build` on its commit, then "
                                       f"`invoke release` for a version)")


# --- credentials that may read only ------------------------------------------------------


def test_a_dry_run_whose_credentials_cannot_push_exits_0_and_says_once_what_it_did_not_record(seeded, private_registry):
    """A fork's pull request, a scheduled job without packages: write: the registry refuses the record's upload (403 DENIED,
    as a registry answers a token without push scope). The dry run still shows its verdicts, records nothing, and says so
    in one line for all repositories."""
    root, seed, _ = seeded
    denied = json.dumps({"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}).encode()
    with start_fault_proxy(private_registry.address) as proxy:
        proxy.inject(Answer(403, body=denied), "POST", r"/blobs/uploads/", times=None)
        proxy.inject(Answer(403, body=denied), "PUT", r"/manifests/", times=None)
        write_tree(root, {"images.yaml": FAMILY.replace("127.0.0.1:5000", proxy.address)})
        result = run_invoke(root, "cleanup", "--keep", "2")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if "was not written" in line]
    assert len(notes) == 1, notes
    assert notes[0].startswith("note: the record of doomed digests was not written in ") and "and 1 more" in notes[0]
    assert "403" in notes[0] and "starts no grace period" in notes[0]
    assert "dry run: nothing deleted" in result.stdout and "beyond the 2 most recent" in result.stdout
    assert RETENTION_TAG not in seed.tags(APP) | seed.tags(BASE)  # nothing recorded, nothing else written


def test_old_records_of_imagegraphs_own_never_show_as_images_and_go_without_a_grace_period(seeded, private_registry):
    """A registry that keeps every pushed manifest (GitHub's package versions) lists each earlier retention record as an
    untagged version. Such a record is imagegraph's own: never a row of the table, deleted at once, and never itself
    recorded as doomed (or each record written would doom the one before, for ever)."""
    from imagegraph.adapters.registry_apis import DistributionApi

    _, seed, _ = seeded
    registry = Registry(private_registry.address)
    write_doomed(registry, APP, {"sha256:" + "1" * 64: "2026-01-01T00:00:00Z"})
    earlier = registry.manifest_digest(APP, RETENTION_TAG)
    write_doomed(registry, APP, {})  # replaced: the earlier record is untagged now

    class KeepsEveryVersion(DistributionApi):
        def untagged(self, repository: str) -> tuple[str, ...]:
            return (earlier,) if repository == APP else ()

    notes: list[str] = []
    api = KeepsEveryVersion(registry)
    from imagegraph.adapters.prune import prune
    from imagegraph.core.retention import RetentionPolicy

    looked = prune(registry, [BASE, APP], RetentionPolicy(keep=2), apply=False, grace=timedelta(hours=1),
                   now=lambda: datetime.now(UTC), say=notes.append, api=api)
    records = [v for v in looked.verdicts if v.manifest.record]
    assert [(v.manifest.digest, v.keep) for v in records if not v.manifest.tags] == [(earlier, False)]
    assert earlier not in read_doomed(registry, APP)  # never recorded as doomed
    from imagegraph.presentation.tables import format_retention
    table = format_retention(looked.verdicts, show_kept=True)
    assert earlier[7:19] not in table and RETENTION_TAG not in table and "1 earlier record(s) of imagegraph's own" in table

    done = prune(registry, [BASE, APP], RetentionPolicy(keep=2), apply=True, grace=timedelta(hours=1),
                 now=lambda: datetime.now(UTC), say=notes.append, api=api)
    assert earlier in {m.digest for m in done.deleted}  # at once, although the grace period holds every image back
    assert not seed.exists(APP, earlier) and registry.manifest_digest(APP, RETENTION_TAG) is not None
    assert not done.broken and not done.appeared


def test_a_registry_that_deletes_only_by_its_own_lifecycle_rules_is_refused_in_one_line_with_the_rule(tmp_path):
    root = tmp_path / "project"
    ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    write_tree(root, {"images.yaml": FAMILY.replace("127.0.0.1:5000", ecr), **FAMILY_FILES, "tasks.py": TASKS})
    line = one_error_line(run_invoke(root, "cleanup", "--keep", "2", "--yes"))
    assert line.startswith(f"error: {ecr} is Amazon ECR, which deletes by lifecycle policy; imagegraph cannot delete there")
    assert '"countType":"imageCountMoreThan","countNumber":2' in line and '"tagStatus":"untagged"' in line


def test_a_dry_run_that_cannot_list_untagged_manifests_goes_on_and_says_so_once_and_a_deleting_run_stops(seeded, private_registry):
    from imagegraph.adapters.prune import prune
    from imagegraph.adapters.registry_apis import DistributionApi
    from imagegraph.core.errors import RegistryError
    from imagegraph.core.retention import RetentionPolicy

    class NoListing(DistributionApi):
        name = "the packages API"

        def untagged(self, repository: str) -> tuple[str, ...]:
            raise RegistryError("the packages API answered 401 (Bad credentials) to GET /versions")

    registry = Registry(private_registry.address)
    notes: list[str] = []
    looked = prune(registry, [BASE, APP], RetentionPolicy(keep=2), apply=False, grace=timedelta(hours=1),
                   now=lambda: datetime.now(UTC), say=notes.append, api=NoListing(registry))
    assert notes == [f"note: the packages API did not list the untagged manifests of {BASE} and 1 more (the packages API answered "
                     "401 (Bad credentials) to GET /versions); this dry run shows only what the registry's tags and lists name"]
    assert any(not v.keep for v in looked.verdicts)
    with pytest.raises(RegistryError, match="Bad credentials"):
        prune(registry, [BASE, APP], RetentionPolicy(keep=2), apply=True, grace=timedelta(0), now=lambda: datetime.now(UTC),
              api=NoListing(registry))
    assert "a090" in registry.tags(APP)  # nothing deleted


def test_platform_manifests_left_by_a_run_stopped_after_their_index_went_are_deleted_by_the_next(seeded, private_registry):
    """Indexes go first; a run stopped right after deleting one leaves its platform manifests named by nothing, out of sight
    of a registry that lists tags only. The record of what an earlier run found doomed names them: the next run finds them."""
    root, seed, untagged = seeded
    assert run_invoke(root, "cleanup", "--keep", "2").returncode == 0  # the dry run records a-old and its platforms doomed
    registry = Registry(private_registry.address)
    a_old = registry.manifest_digest(APP, "a-old")
    assert a_old in read_doomed(registry, APP) and untagged["old-amd64"] in read_doomed(registry, APP)
    assert registry.delete_manifest(APP, a_old)  # what the stopped run did: the index went, its platform manifests did not
    assert seed.exists(APP, untagged["old-amd64"])

    result = run_invoke(root, "cleanup", "--keep", "2", "--yes", "--grace", "0")
    assert result.returncode == 0, result.stderr
    assert not seed.exists(APP, untagged["old-amd64"])  # found through the record, and deleted
    assert seed.exists(APP, untagged["110-arm64"])  # shared with the kept 1.1.0: stays
    assert untagged["old-amd64"] not in read_doomed(registry, APP)
    assert "nothing to delete" in run_invoke(root, "cleanup", "--keep", "2").stdout
