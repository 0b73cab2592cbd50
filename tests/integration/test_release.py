"""`invoke release` for real: tags move by manifest copy in the registry, digests stay the tested ones."""

from __future__ import annotations

import time

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.core.options import BuildOptions
from imagegraph.core.tags import ReleaseError, TagError
from imagegraph.release import release
from imagegraph.workspace import Workspace
from tests.conftest import split_ref
from tests.integration.conftest import commit_all
from tests.integration.test_build import build, repo  # noqa: F401 (the small family fixture)

pytestmark = pytest.mark.integration


def digests(client: Registry, ref: str, tags: list[str]) -> dict[str, str | None]:
    _, name, _ = split_ref(ref)
    return {tag: client.manifest_digest(name, tag) for tag in tags}


def test_release_promotes_built_digests_without_building(repo, registry):  # noqa: F811
    built, _ = build(repo)
    client = Registry(registry)
    workspace = Workspace(repo, BuildOptions())
    started = time.monotonic()
    promotions, moves = release(workspace, version="v1.0.0", say=lambda _: None)
    assert moves.ok and moves.line == "tags: moved 1.0.0, 1.0, latest on base, app, tools"
    seconds = time.monotonic() - started
    assert {p.image: p.names for p in promotions} == dict.fromkeys(("base", "app", "tools"), ("1.0.0", "1.0", "latest"))
    for name, result in built.items():
        moved = digests(client, result.ref, ["1.0.0", "1.0", "latest"])
        assert set(moved.values()) == {result.digest}, name  # the tested digest, byte for byte
    # The multi-arch base keeps its index: one tag, both platforms.
    _, base_name, _ = split_ref(built["base"].ref)
    media_type, index = client.manifest(base_name, "1.0.0")
    assert "index" in media_type or "list" in media_type
    # (buildx's provenance attestations ride along as unknown/unknown manifests)
    assert sorted(m["platform"]["architecture"] for m in index["manifests"] if m["platform"]["os"] != "unknown") == ["amd64", "arm64"]
    assert seconds < 10

    # A new build, released as a patch to an older line: its own tags move, latest stays on 1.0.0.
    (repo / "src/svc/__init__.py").write_text("print('version 0.9.1')\n")
    commit_all(repo, "backport")
    second, _ = build(repo)
    notes: list[str] = []
    release(Workspace(repo, BuildOptions()), version="v0.9.1", say=notes.append)
    app = digests(client, second["app"].ref, ["0.9.1", "0.9", "latest", "1.0.0"])
    assert app["0.9.1"] == app["0.9"] == second["app"].digest
    assert app["latest"] == app["1.0.0"] == built["app"].digest
    assert "[app] latest stays at 1.0.0: 0.9.1 is not the highest stable version" in notes


def test_release_of_a_commit_never_built_moves_nothing(repo, registry):  # noqa: F811
    built, _ = build(repo)
    (repo / "src/svc/__init__.py").write_text("print('unbuilt')\n")
    commit_all(repo, "not built")
    client = Registry(registry)
    _, app_name, _ = split_ref(built["app"].ref)
    before = client.tags(app_name)
    with pytest.raises(ReleaseError, match=r"app:[0-9a-f]{16} not in the registry: this commit was not built, or its images were deleted "
                                           r"since; rebuild them with `invoke build` on this commit"):
        release(Workspace(repo, BuildOptions()), version="v2.0.0", say=lambda _: None)
    assert client.tags(app_name) == before and "2.0.0" not in before
    _, base_name, _ = split_ref(built["base"].ref)
    assert "2.0.0" not in client.tags(base_name)  # not even the images that were built got a tag


def test_a_version_that_is_not_semver_is_refused(repo, registry):  # noqa: F811
    build(repo, targets=("base",))
    with pytest.raises(TagError, match=r"'v1\.2' is not semver"):
        release(Workspace(repo, BuildOptions(targets=("base",))), version="v1.2", dry_run=True)
