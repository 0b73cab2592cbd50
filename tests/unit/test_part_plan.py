"""A run that builds one platform of each image (`invoke build --only-platform`): the plan of its parts, decided in core."""

from __future__ import annotations

import pytest

from imagegraph.core.cache import BuilderKind
from imagegraph.core.config import override_platforms
from imagegraph.core.errors import InputError
from imagegraph.core.fingerprint import fingerprint_images
from imagegraph.core.join import part_tag
from imagegraph.core.options import BuildOptions
from imagegraph.core.plan import Availability, BuiltImage, Decision, ReusedImage, SkippedImage, make_plan, part_ref
from imagegraph.core.request import BuildSettings
from imagegraph.core.values import parse_platforms
from imagegraph.tasks._common import build_options
from imagegraph.workspace import Workspace
from tests.conftest import FAMILY_FILES
from tests.unit.test_fingerprint import MemorySources

ARM = "linux/arm64"


@pytest.fixture
def world(world):
    """The sample family with every image declared for linux/amd64 and linux/arm64 (its base alone is, in the file)."""
    config = override_platforms(world[0], parse_platforms(("linux/amd64", ARM), "test"))
    fingerprints = fingerprint_images(config, MemorySources(FAMILY_FILES))
    return config, fingerprints, {name: f"{config.repository(name)}:{fp.tag}" for name, fp in fingerprints.items()}


def parts(config, fingerprints, platform=ARM):
    return {name: f"{config.repository(name)}:{fp.tag}-{platform.split('/')[1]}" for name, fp in fingerprints.items()}


def test_every_image_builds_its_part_on_its_parents_part_and_moves_no_tag(world):
    config, fingerprints, _ = world
    plan = make_plan(config, fingerprints, {}, only_platform=ARM)
    part = parts(config, fingerprints)
    assert plan.options["only_platform"] == ARM
    for entry in plan.images:
        assert isinstance(entry, BuiltImage)
        assert entry.fingerprint == fingerprints[entry.name].tag  # the declared platforms' fingerprint, not one of its own
        assert (entry.ref, entry.request.ref) == (part[entry.name], part[entry.name])
        assert entry.platforms == entry.request.platforms == (ARM,)
        assert entry.tags == ()
    for child in ("ci", "app", "devcontainer"):
        entry = plan.image(child)
        assert entry.parent_ref == part["base"]
        assert dict(entry.request.build_args)["BASE_IMAGE"] == part["base"]
        assert entry.request.pin_parent == part["base"]
    assert plan.image("base").request.pin_parent is None
    whole = make_plan(config, fingerprints, {})
    assert {e.name: e.fingerprint for e in whole.images} == {e.name: e.fingerprint for e in plan.images}
    assert whole.image("app").request.pin_parent is None and whole.image("app").tags != () == plan.image("app").tags


def test_a_part_has_its_own_registry_cache_and_reads_the_whole_images_too(world):
    config, fingerprints, _ = world
    repo = config.repository("base")
    index = make_plan(config, fingerprints, {}, only_platform=ARM).image("base").request.cache
    assert [(e.platforms, e.cache_from, e.cache_to) for e in index] == [
        ((ARM,), (f"type=registry,ref={repo}:buildcache-arm64", f"type=registry,ref={repo}:buildcache"),
         (f"type=registry,ref={repo}:buildcache-arm64,mode=max,ignore-error=true",))]
    per_platform = make_plan(config, fingerprints, {}, only_platform=ARM,
                             settings=BuildSettings(builder=BuilderKind.PER_PLATFORM)).image("base").request.cache
    assert [(e.platforms, e.cache_from, e.copy_tag) for e in per_platform] == [
        ((ARM,), (f"type=registry,ref={repo}:buildcache-arm64",), "buildcache-arm64")]


def test_a_part_in_the_registry_is_reused_and_its_children_build_on_it(world):
    config, fingerprints, _ = world
    part = parts(config, fingerprints)
    plan = make_plan(config, fingerprints, {part["base"]: Availability(registry=True)}, only_platform=ARM)
    base = plan.image("base")
    assert isinstance(base, ReusedImage) and base.ref == part["base"] and "linux/arm64 part" in base.reason
    assert plan.image("app").parent_ref == part["base"]


def test_a_whole_image_in_the_registry_is_reused_and_its_children_build_on_the_whole_image(world):
    config, fingerprints, refs = world
    part = parts(config, fingerprints)
    found = {part["base"]: Availability(), refs["base"]: Availability(registry=True)}
    plan = make_plan(config, fingerprints, found, only_platform=ARM)
    base = plan.image("base")
    assert isinstance(base, ReusedImage) and base.ref == refs["base"] and "every platform, joined" in base.reason
    app = plan.image("app")
    assert isinstance(app, BuiltImage) and app.parent_ref == refs["base"] and app.request.pin_parent == refs["base"]
    assert app.ref == part["app"]


def test_a_whole_image_only_in_the_local_engine_does_not_stand_for_a_part(world):
    config, fingerprints, refs = world
    plan = make_plan(config, fingerprints, {refs["base"]: Availability(local=True)}, only_platform=ARM)
    assert plan.image("base").decision is Decision.BUILD


def test_an_image_not_declared_for_the_platform_is_skipped_and_one_of_that_platform_alone_is_its_fingerprint_tag(world):
    config, fingerprints, refs = world
    amd = make_plan(config, fingerprints, {}, only_platform="linux/amd64")
    assert {e.ref for e in amd.images} == {f"{refs[n]}-amd64" for n in refs}
    riscv = make_plan(config, fingerprints, {}, only_platform="linux/riscv64")
    assert all(isinstance(e, SkippedImage) and e.reason.startswith("not declared for linux/riscv64") for e in riscv.images)
    assert part_tag("abc", ("linux/arm64",), ARM) == "abc"
    declared = make_plan(*_as_declared(config), {}, only_platform=ARM)  # the file's own: only base is declared for arm64
    assert [e.name for e in declared.to_build()] == ["base"]
    assert {e.name for e in declared.images if isinstance(e, SkippedImage)} == {"ci", "app", "devcontainer"}
    assert str(part_ref(config, fingerprints, "base", ARM)) == parts(config, fingerprints)["base"]


def test_pinning_names_the_parent_by_digest_in_the_build_argument_and_the_label_only(world):
    config, fingerprints, _ = world
    request = make_plan(config, fingerprints, {}, only_platform=ARM).image("app").request
    digest = "sha256:" + "a" * 64
    pinned = request.pinned(digest)
    exact = f"{request.pin_parent}@{digest}"
    assert dict(pinned.build_args)["BASE_IMAGE"] == exact
    assert dict(pinned.labels)["imagegraph.parent"] == exact
    assert pinned.pin_parent is None and pinned.pinned("sha256:" + "b" * 64) == pinned
    assert {k: v for k, v in pinned.labels if k != "imagegraph.parent"} == {k: v for k, v in request.labels if k != "imagegraph.parent"}


def test_only_platform_is_one_platform():
    assert str(BuildOptions(only_platform="linux/arm64").only_platform) == ARM
    assert str(build_options(only_platform="linux/arm64").only_platform) == ARM
    for bad in ("linux/amd64,linux/arm64", "", "arm64", "--push"):
        with pytest.raises(InputError) as caught:
            build_options(only_platform=bad)
        assert "--only-platform" in str(caught.value) and "\n" not in str(caught.value)


def test_a_platform_no_image_to_build_is_declared_for_is_refused_in_one_line(family, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)  # the file's own platforms: an environment's would replace them
    Workspace(family, options=BuildOptions(only_platform=ARM)).check_only_platform()
    with pytest.raises(InputError) as caught:
        Workspace(family, options=BuildOptions(only_platform="linux/riscv64")).check_only_platform()
    assert "linux/riscv64 is not a platform any image to build is declared for (linux/amd64, linux/arm64" in str(caught.value)


def _as_declared(config):
    from imagegraph.core.config import load_config
    declared = load_config(config.root)
    return declared, fingerprint_images(declared, MemorySources(FAMILY_FILES))


def test_the_refusal_names_the_platforms_an_override_gives(family, monkeypatch):
    monkeypatch.setenv("IMAGEGRAPH_PLATFORMS", "linux/amd64")
    with pytest.raises(InputError) as caught:
        Workspace(family, options=BuildOptions(only_platform=ARM)).check_only_platform()
    assert "(linux/amd64, by --platform or $IMAGEGRAPH_PLATFORMS)" in str(caught.value)
