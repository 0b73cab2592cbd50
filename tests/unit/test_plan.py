from __future__ import annotations

import pytest

from imagegraph.config import load_config
from imagegraph.errors import ConfigError
from imagegraph.fingerprint import fingerprint_images
from imagegraph.graph import build_order, descendants, with_ancestors
from imagegraph.plan import Availability, Decision, make_plan
from tests.conftest import FAMILY_FILES
from tests.unit.test_fingerprint import MemorySources


@pytest.fixture
def world(family):
    config = load_config(family)
    fingerprints = fingerprint_images(config, MemorySources(FAMILY_FILES))
    refs = {name: f"{config.repository(name)}:{fp.tag}" for name, fp in fingerprints.items()}
    return config, fingerprints, refs


def decisions(plan) -> dict[str, str]:
    return {entry.name: entry.decision.value for entry in plan.images}


def test_graph_order(world):
    config, _, _ = world
    assert build_order(config) == ("base", "ci", "app", "devcontainer")
    assert set(descendants(config, "base")) == {"ci", "app", "devcontainer"}
    assert with_ancestors(config, ["app"]) == {"app", "base"}


def test_empty_registry_builds_everything_parents_pinned(world):
    config, fingerprints, refs = world
    plan = make_plan(config, fingerprints, {})
    assert decisions(plan) == dict.fromkeys(refs, "build")
    assert plan.image("base").reason.startswith("no image with this fingerprint")
    assert plan.image("app").reason == "parent base is rebuilt"
    assert plan.image("app").parent_ref == refs["base"]
    assert plan.image("base").parent_ref is None


def test_everything_in_the_registry_builds_nothing(world):
    config, fingerprints, refs = world
    plan = make_plan(config, fingerprints, {ref: Availability(registry=True) for ref in refs.values()})
    assert set(decisions(plan).values()) == {"reuse"} and plan.to_build() == ()


def test_only_the_missing_child_builds(world):
    config, fingerprints, refs = world
    present = {ref: Availability(registry=True) for name, ref in refs.items() if name != "app"}
    plan = make_plan(config, fingerprints, present)
    assert [e.name for e in plan.to_build()] == ["app"]


def test_local_only_image_is_reused_and_pushed(world):
    config, fingerprints, refs = world
    present = {ref: Availability(registry=True) for ref in refs.values()}
    present[refs["ci"]] = Availability(local=True)
    ci = make_plan(config, fingerprints, present).image("ci")
    assert (ci.decision, ci.push_existing) == (Decision.REUSE, True)


def test_force_marks_the_image_and_its_dependents(world):
    config, fingerprints, refs = world
    present = {ref: Availability(registry=True) for ref in refs.values()}
    plan = make_plan(config, fingerprints, present, force=["base"])
    assert set(decisions(plan).values()) == {"build"}
    assert plan.image("base").reason == "forced (--force base)"
    assert plan.image("ci").reason == "parent base is forced"
    only_app = make_plan(config, fingerprints, present, force=["app"])
    assert [e.name for e in only_app.to_build()] == ["app"]


def test_target_selects_the_image_and_its_ancestors(world):
    config, fingerprints, _ = world
    plan = make_plan(config, fingerprints, {}, selected=["ci"])
    assert decisions(plan) == {"base": "build", "ci": "build", "app": "skip", "devcontainer": "skip"}


def test_unknown_force_name_is_a_config_error(world):
    config, fingerprints, _ = world
    with pytest.raises(ConfigError, match="did you mean 'base'"):
        make_plan(config, fingerprints, {}, force=["bace"])


def test_no_cache_applies_only_to_builds(world):
    config, fingerprints, refs = world
    present = {refs["base"]: Availability(registry=True)}
    plan = make_plan(config, fingerprints, present, no_cache=True)
    assert not plan.image("base").no_cache and plan.image("app").no_cache
