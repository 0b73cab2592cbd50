"""The registry cache `invoke plan --json` shows is the one the builder passes and the one a real build writes, on both stores.

One engine is one image store at a time, and the store decides only one
thing here: whether the docker driver builds all platforms at once
(containerd) or one at a time (classic). This engine's real builder is
asked as `invoke plan` asks it; the classic store's docker driver is the
same builder with the store it reports said to be classic (the one fact
this engine cannot show), and its per-platform builds and cache copies run
for real on this engine all the same.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from imagegraph.adapters.engine.builder_choice import choose_builder, named_builder, observe_builder
from imagegraph.adapters.registry import Registry
from imagegraph.adapters.runner import Runner
from imagegraph.core.cache import BuilderKind, cache_entries
from imagegraph.core.options import BuildOptions
from imagegraph.workspace import Workspace
from tests.conftest import split_ref
from tests.integration.conftest import run_invoke
from tests.integration.test_build import repo  # noqa: F401 (the small family fixture)

pytestmark = pytest.mark.integration


def cache_flags(argv: tuple[str, ...]) -> dict[str, list[str]]:
    return {flag: [argv[i + 1] for i, a in enumerate(argv) if a == flag] for flag in ("--cache-from", "--cache-to")}


def check_against_the_builder(workspace: Workspace, shown: dict[str, dict]) -> None:
    """Every build command the builder runs for a planned image carries exactly the cache entries the plan shows."""
    for entry in workspace.plan().to_build():
        commands = [c for c in workspace.builder.commands(entry.request) if c.argv[2] == "build"]
        assert [cache_flags(c.argv) for c in commands] == [
            {"--cache-from": e["cache_from"], "--cache-to": e["cache_to"]} for e in shown[entry.name]["build"]["cache"]], entry.name


def test_plan_json_shows_the_cache_this_engines_builder_reads_and_writes(repo, registry, namespace):  # noqa: F811
    workspace = Workspace(repo, BuildOptions())
    kind = workspace.builder_choice.kind
    result = run_invoke(repo, "plan", "--json")
    assert result.returncode == 0, result.stderr
    shown = {entry["name"]: entry for entry in json.loads(result.stdout)["images"]}
    # a registry cache export carries the image's compression (imagegraph's default: gzip level 1), as the build passes it
    compressed = ",compression=gzip,compression-level=1" if kind is BuilderKind.INDEX else ""
    for name, entry in shown.items():
        repository = f"{registry}/{namespace}/{name}"
        expected = [e.to_dict() for e in cache_entries(repository, tuple(entry["build"]["platforms"]), kind=kind, push=True)]
        for cache in expected:
            cache["cache_to"] = [value + compressed if value.startswith("type=registry,") else value for value in cache["cache_to"]]
        assert entry["build"]["cache"] == expected
    base = f"{registry}/{namespace}/base"
    if kind is BuilderKind.INDEX:
        assert shown["base"]["build"]["cache"] == [{
            "platforms": ["linux/amd64", "linux/arm64"], "cache_from": [f"type=registry,ref={base}:buildcache"],
            "cache_to": [f"type=registry,ref={base}:buildcache,mode=max,ignore-error=true,compression=gzip,compression-level=1"],
            "copy_to": None}]
    check_against_the_builder(workspace, shown)

    results = {r.name: r for r in workspace.executor(say=lambda _: None).run(workspace.plan())}
    assert all(r.ok for r in results.values()), {n: r.error for n, r in results.items()}
    client = Registry(registry)
    for name, entry in shown.items():
        for cache in entry["build"]["cache"]:
            # the tag each build reads its cache from is there now, written by this build
            for source in cache["cache_from"]:
                _, repository, tag = split_ref(source.split("ref=", 1)[1])
                assert client.manifest_digest(repository, tag) is not None, (name, source)


def test_plan_shows_the_classic_stores_per_platform_cache_and_a_real_build_writes_it_there(repo, registry, namespace):  # noqa: F811
    named, origin = named_builder(None, {}, None)
    facts = observe_builder(Runner(), named=named, named_from=origin)
    if facts.builder is None or facts.builder.driver != "docker":
        pytest.skip("the current builder is no docker driver: the classic store's way is the docker driver's alone")
    choice = choose_builder(replace(facts, image_store="classic"))
    assert choice.kind is BuilderKind.PER_PLATFORM
    workspace = Workspace(repo, BuildOptions(), builder_choice=choice)
    shown = {entry["name"]: entry for entry in workspace.plan().to_dict()["images"]}  # what `invoke plan --json` prints
    base = f"{registry}/{namespace}/base"
    assert shown["base"]["build"]["cache"] == [
        {"platforms": [platform], "cache_from": [f"type=registry,ref={base}:buildcache-{suffix}"], "cache_to": ["type=inline"],
         "copy_to": f"{base}:buildcache-{suffix}"} for platform, suffix in (("linux/amd64", "amd64"), ("linux/arm64", "arm64"))]
    check_against_the_builder(workspace, shown)

    results = {r.name: r for r in workspace.executor(say=lambda _: None).run(workspace.plan())}
    assert all(r.ok for r in results.values()), {n: r.error for n, r in results.items()}
    client = Registry(registry)
    for name, entry in shown.items():
        for cache in entry["build"]["cache"]:
            # the copy the plan named is there, and it is the platform image this build pushed (its inline cache)
            _, repository, tag = split_ref(cache["copy_to"])
            pushed = entry["ref"] if len(entry["build"]["platforms"]) == 1 else f"{entry['ref']}-{tag.removeprefix('buildcache-')}"
            _, _, pushed_tag = split_ref(pushed)
            assert client.manifest_digest(repository, tag) == client.manifest_digest(repository, pushed_tag) is not None, (name, tag)
