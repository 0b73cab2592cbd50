"""Where the registry cache lives, for each kind of builder: one pure function, and the argv and bake file that render it."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.adapters.bake import bake_definition
from imagegraph.adapters.engine.builders import BuildxBuilder
from imagegraph.core.cache import BuildCache, BuilderKind, cache_entries
from imagegraph.core.errors import InputError
from imagegraph.core.request import BuildRequest

REPO = "127.0.0.1:5000/ns/app"
BOTH = ("linux/amd64", "linux/arm64/v8")


def test_a_builder_of_every_platform_at_once_reads_and_writes_one_registry_cache_in_max_mode():
    assert cache_entries(REPO, BOTH, kind=BuilderKind.INDEX, push=True) == (
        BuildCache(REPO, BOTH, (f"type=registry,ref={REPO}:buildcache",),
                   (f"type=registry,ref={REPO}:buildcache,mode=max,ignore-error=true",)),)


def test_the_classic_stores_docker_driver_reads_each_platforms_cache_tag_and_copies_its_pushed_image_there():
    assert cache_entries(REPO, BOTH, kind=BuilderKind.PER_PLATFORM, push=True) == (
        BuildCache(REPO, ("linux/amd64",), (f"type=registry,ref={REPO}:buildcache-amd64",), ("type=inline",), "buildcache-amd64"),
        BuildCache(REPO, ("linux/arm64/v8",), (f"type=registry,ref={REPO}:buildcache-arm64-v8",), ("type=inline",), "buildcache-arm64-v8"),
    )


@pytest.mark.parametrize("kind", list(BuilderKind))
def test_no_repository_means_no_cache(kind):
    assert cache_entries(None, BOTH, kind=kind, push=True) == ()


def test_no_cache_reads_nothing_and_a_build_that_is_not_pushed_writes_nothing():
    (pushed,) = cache_entries(REPO, BOTH, kind=BuilderKind.INDEX, push=True, no_cache=True)
    assert pushed.cache_from == () and pushed.cache_to
    (local,) = cache_entries(REPO, BOTH, kind=BuilderKind.INDEX, push=False)
    assert local.cache_from and local.cache_to == ()
    assert cache_entries(REPO, BOTH, kind=BuilderKind.INDEX, push=False, no_cache=True) == ()
    # the classic store's inline cache travels in the image: without a push nothing is copied to the cache tag
    per_platform = cache_entries(REPO, BOTH, kind=BuilderKind.PER_PLATFORM, push=False, no_cache=True)
    assert [(e.cache_from, e.cache_to, e.copy_tag) for e in per_platform] == [((), ("type=inline",), None)] * 2


def test_to_dict_shows_the_entries_and_where_the_pushed_image_is_copied():
    (entry, _) = cache_entries(REPO, BOTH, kind=BuilderKind.PER_PLATFORM, push=True)
    assert entry.to_dict() == {"platforms": ["linux/amd64"], "cache_from": [f"type=registry,ref={REPO}:buildcache-amd64"],
                               "cache_to": ["type=inline"], "copy_to": f"{REPO}:buildcache-amd64"}


def request(kind: BuilderKind) -> BuildRequest:
    return BuildRequest(image="app", dockerfile=Path("/r/Dockerfile"), context=Path("/r"), ref=f"{REPO}:fp", platforms=BOTH,
                        cache=cache_entries(REPO, BOTH, kind=kind, push=True))


def flags(argv: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(flag, argv[index + 1]) for index, flag in enumerate(argv) if flag in ("--cache-from", "--cache-to")]


@pytest.mark.parametrize("kind", list(BuilderKind))
def test_the_builder_passes_exactly_the_requests_entries(kind):
    made = request(kind)
    builder = BuildxBuilder(multi_platform=kind is BuilderKind.INDEX)
    assert builder.kind is kind
    builds = [command.argv for command in builder.commands(made) if command.argv[2] == "build"]
    assert [flags(argv) for argv in builds] == [
        [*(("--cache-from", value) for value in entry.cache_from), *(("--cache-to", value) for value in entry.cache_to)]
        for entry in made.cache]
    assert builder.cache_copies(made) == tuple((made.platform_tag(e.platforms[0]), e.copy_tag) for e in made.cache if e.copy_tag)
    assert made.to_dict()["cache"] == [entry.to_dict() for entry in made.cache]


def test_the_bake_file_holds_the_requests_entries_and_refuses_a_request_for_a_build_per_platform():
    (entry,) = request(BuilderKind.INDEX).cache
    target = bake_definition([request(BuilderKind.INDEX)], {})["target"]["app"]
    assert (target["cache-from"], target["cache-to"]) == (list(entry.cache_from), list(entry.cache_to))
    with pytest.raises(InputError, match=r"^--bake: app is planned for a builder that builds one platform at a time"):
        bake_definition([request(BuilderKind.PER_PLATFORM)], {})
