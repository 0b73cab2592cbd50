"""`invoke cleanup` on a real registry seeded with every kind of manifest; then garbage collection, then every kept tag pulled.

The registry is a private docker-registry (deletes enabled), so deleting and
garbage-collecting cannot touch what other tests use.
"""

from __future__ import annotations

import pytest

from imagegraph.engine.images import image_store_of
from imagegraph.registry import Registry
from tests.conftest import FAMILY, FAMILY_FILES, write_tree
from tests.integration.conftest import one_error_line, run_invoke
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
    assert {name: seed.tags(name) for name in (BASE, APP)} == before


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
    for image in docker_client.images.list():
        for tag in image.tags:
            if tag.startswith(private_registry.address):
                docker_client.images.remove(tag, force=True)


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
