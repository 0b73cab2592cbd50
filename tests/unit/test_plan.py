from __future__ import annotations

import pytest

from imagegraph.core.errors import ConfigError
from imagegraph.core.graph import build_order, descendants, with_ancestors
from imagegraph.core.plan import Availability, Decision, make_plan
from imagegraph.core.values import ImageRef


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


# -- plans explained by git --------------------------------------------------------

from imagegraph.core.changes import BaseRef, Change, Explanation  # noqa: E402
from imagegraph.core.plan import affected, lookups_needed  # noqa: E402


def explained(causes, same, *, trusted=True, changes=()):
    return Explanation(base=BaseRef("a" * 40, "--since main", trusted), changes=tuple(changes), causes=causes, same_as_base=frozenset(same))


ALL = {"base", "ci", "app", "devcontainer"}


def test_docs_only_change_since_a_trusted_base_asks_nothing_and_builds_nothing(world):
    config, fingerprints, _ = world
    docs = explained({}, ALL, changes=[Change("README.md", "modified")])
    assert lookups_needed(config, docs) == frozenset()
    plan = make_plan(config, fingerprints, {}, explanation=docs)
    assert set(decisions(plan).values()) == {"reuse"}
    assert plan.image("ci").reason == "unchanged since aaaaaaa (--since main)"
    assert docs.ignored == ("README.md",)


def test_untrusted_base_still_asks_the_registry(world):
    config, fingerprints, refs = world
    local = explained({}, ALL, trusted=False)
    assert lookups_needed(config, local) == ALL
    plan = make_plan(config, fingerprints, {refs["app"]: Availability(registry=True)}, explanation=local)
    assert decisions(plan) == {"base": "build", "ci": "build", "app": "reuse", "devcontainer": "build"}
    assert plan.image("base").reason == "unchanged since aaaaaaa (--since main), but its fingerprint tag is not in the registry"


def test_code_change_asks_about_the_image_and_its_parent_only(world):
    config, fingerprints, refs = world
    code = explained({"app": ("src/svc/app.py",)}, ALL - {"app"})
    assert lookups_needed(config, code) == {"app", "base"}
    plan = make_plan(config, fingerprints, {refs["base"]: Availability(registry=True)}, explanation=code)
    assert decisions(plan) == {"base": "reuse", "ci": "reuse", "app": "build", "devcontainer": "reuse"}
    assert plan.image("app").reason == "src/svc/app.py changed → app"
    assert plan.image("app").changed == ("src/svc/app.py",)


def test_a_parent_missing_from_the_registry_is_rebuilt_without_its_unchanged_siblings(world):
    config, fingerprints, refs = world
    code = explained({"app": ("src/svc/app.py",)}, ALL - {"app"})
    looked_up_and_missing = {refs["base"]: Availability(), refs["app"]: Availability()}
    plan = make_plan(config, fingerprints, looked_up_and_missing, explanation=code)
    assert decisions(plan) == {"base": "build", "ci": "reuse", "app": "build", "devcontainer": "reuse"}
    assert plan.image("app").reason == "src/svc/app.py changed → app (and parent base is rebuilt)"


def test_reason_chain_runs_from_the_changed_file_through_the_family(world):
    config, fingerprints, _ = world
    torch = explained({"base": ("requirements/requirements-torch.txt",)}, set())
    plan = make_plan(config, fingerprints, {}, explanation=torch)
    assert plan.image("base").reason == "requirements/requirements-torch.txt changed → base → ci, app, devcontainer"
    assert plan.image("ci").reason == "requirements/requirements-torch.txt changed → base → ci"
    assert [e.name for e in affected(config, fingerprints, torch)] == ["base", "ci", "app", "devcontainer"]


def test_comment_only_requirements_edit_is_reused_and_not_affected(world):
    config, fingerprints, _ = world
    comment = explained({"base": ("requirements/requirements-torch.txt",)}, ALL)
    plan = make_plan(config, fingerprints, {}, explanation=comment)
    assert plan.to_build() == ()
    assert plan.image("base").reason.startswith("requirements/requirements-torch.txt changed, but not in substance")
    assert affected(config, fingerprints, comment) == ()


def test_revert_to_a_published_state_is_reused_from_the_registry(world):
    config, fingerprints, refs = world
    revert = explained({"app": ("src/svc/app.py",)}, ALL - {"app"})
    plan = make_plan(config, fingerprints, {refs["app"]: Availability(registry=True), refs["base"]: Availability(registry=True)}, explanation=revert)
    assert plan.to_build() == ()
    assert plan.image("app").reason == "src/svc/app.py changed, to content already built: fingerprint tag in the registry"


def test_affected_without_a_base_counts_every_selected_image(world):
    config, fingerprints, _ = world
    unknown = Explanation(base=None, note="shallow clone without the base commit")
    assert [e.name for e in affected(config, fingerprints, unknown, selected=["ci"])] == ["base", "ci"]


def test_force_needs_no_lookup_for_what_it_rebuilds(world):
    config, _, _ = world
    assert lookups_needed(config, explained({}, ALL), force=["base"]) == frozenset()
    assert lookups_needed(config, explained({}, ALL, trusted=False), force=["app"]) == {"base", "ci", "devcontainer"}


def test_plan_json_round_trips(world):
    import json

    config, fingerprints, _ = world
    code = explained({"app": ("src/svc/app.py",)}, ALL - {"app"}, changes=[Change("src/svc/app.py", "modified")])
    plan = make_plan(config, fingerprints, {}, explanation=code)
    data = json.loads(json.dumps(plan.to_dict()))
    assert [i["decision"] for i in data["images"]] == ["reuse", "reuse", "build", "reuse"]
    assert data["git"]["changed"] == [{"path": "src/svc/app.py", "kind": "modified"}]
    assert data["git"]["base"]["trusted"] is True


def test_a_trusted_base_that_was_never_published_is_distrusted(world):
    from imagegraph.core.plan import trust_broken

    config, fingerprints, refs = world
    code = explained({"app": ("src/svc/app.py",)}, ALL - {"app"})
    assert not trust_broken(config, fingerprints, code, {refs["base"]: Availability(registry=True)})
    assert trust_broken(config, fingerprints, code, {refs["base"]: Availability()})
    everything = lookups_needed(config, code, trust=False)
    assert everything == ALL
    plan = make_plan(config, fingerprints, {ref: Availability() for ref in refs.values()}, explanation=code)
    assert [e.name for e in plan.to_build()] == ["base", "ci", "app", "devcontainer"]
    assert plan.image("ci").reason == "parent base is rebuilt"


def test_each_entry_carries_the_files_its_build_context_holds(world):
    config, fingerprints, _ = world
    plan = make_plan(config, fingerprints, {})
    assert {entry.name: entry.files for entry in plan.images} == {name: fp.files for name, fp in fingerprints.items()}
    assert "src/svc/app.py" in dict(plan.image("app").files) and "src/svc/app.py" not in dict(plan.image("ci").files)
    assert "files" not in plan.image("app").to_dict()


def test_a_deep_chains_reasons_count_its_middle_so_each_stays_one_line(tmp_path):
    from imagegraph.core.config import config_from_text
    from imagegraph.core.fingerprint import fingerprint_images
    from tests.conftest import write_tree
    from tests.unit.test_fingerprint import MemorySources

    depth = 200
    lines = ["images:"]
    files = {}
    for level in range(depth):
        files[f"d/Dockerfile.{level}"] = "FROM python:3.11-slim\n" if level == 0 else "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
        lines += [f"  i{level}:", f"    dockerfile: d/Dockerfile.{level}"] + ([f"    parent: i{level - 1}"] if level else [])
    write_tree(tmp_path, {"images.yaml": "\n".join(lines) + "\n", **files})
    config = config_from_text((tmp_path / "images.yaml").read_text(), tmp_path)
    fingerprints = fingerprint_images(config, MemorySources(files))
    plan = make_plan(config, fingerprints, {}, explanation=explained({"i0": ("d/Dockerfile.0",)}, set()))
    reasons = {entry.name: entry.reason for entry in plan.images}
    assert reasons["i1"] == "d/Dockerfile.0 changed → i0 → i1"
    assert reasons["i4"] == "d/Dockerfile.0 changed → i0 → i1 → i2 → i3 → i4"
    assert reasons["i5"] == "d/Dockerfile.0 changed → i0 → i1 → i2 → … (1 more) → i4 → i5"
    assert reasons[f"i{depth - 1}"] == f"d/Dockerfile.0 changed → i0 → i1 → i2 → … ({depth - 5} more) → i{depth - 2} → i{depth - 1}"
    assert max(len(reason) for name, reason in reasons.items() if name != "i0") < 80


# --- one pass: the plan is whole when it is made ---------------------------------------------------


def test_each_entry_is_of_its_decisions_kind_and_only_a_built_one_carries_a_request(world):
    from imagegraph.core.plan import BuiltImage, ReusedImage, ReusedLocalImage, SkippedImage

    config, fingerprints, refs = world
    present = {refs["base"]: Availability(registry=True), refs["ci"]: Availability(local=True)}
    plan = make_plan(config, fingerprints, present, selected=["ci", "app"], no_cache=True)
    kinds = {entry.name: type(entry) for entry in plan.images}
    assert kinds == {"base": ReusedImage, "ci": ReusedLocalImage, "app": BuiltImage, "devcontainer": SkippedImage}
    assert decisions(plan) == {"base": "reuse", "ci": "reuse", "app": "build", "devcontainer": "skip"}
    (app,) = plan.to_build()
    assert app is plan.image("app") and isinstance(app, BuiltImage)
    # the request is the entry's own: its reference, platforms, parent pinned by fingerprint, context from the fingerprint's files
    assert (app.request.image, app.request.ref, app.request.platforms) == ("app", app.ref, app.platforms)
    assert dict(app.request.build_args)["BASE_IMAGE"] == app.parent_ref == refs["base"]
    assert app.layout.files == app.files == fingerprints["app"].files
    assert app.request.no_cache and app.no_cache and not plan.image("base").no_cache
    for entry in plan.images:
        assert hasattr(entry, "request") == (entry.decision is Decision.BUILD), entry.name
        assert entry.push_existing == (entry.name == "ci"), entry.name


def test_an_entry_cannot_be_made_without_what_its_kind_takes():
    from imagegraph.core.plan import BuiltImage, ImagePlan

    common = {"name": "app", "reason": "forced", "fingerprint": "f" * 16, "image": ImageRef.parse("r/app:" + "f" * 16), "parent_image": None,
              "platforms": ("linux/amd64",), "push": True}
    with pytest.raises(TypeError, match="request"):
        BuiltImage(**common)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="its kind is its decision"):
        ImagePlan(**common)


def test_the_same_pass_decides_every_images_tags_and_the_labels_of_each_build(world):
    from datetime import UTC, datetime, timedelta, timezone

    from imagegraph.core.request import BuildSettings, Revision
    from imagegraph.core.tags import Event, TagPolicy, planned_tags

    config, fingerprints, refs = world
    event = Event("tag", "a" * 40, "v1.2.0")
    policy = TagPolicy(edge="latest-dev")
    revision = Revision("a" * 40, datetime(2026, 1, 2, 4, 5, 6, tzinfo=timezone(timedelta(hours=2))), "https://git.example.com/acme/mono")
    settings = BuildSettings(contexts=config.root / "ctx", insecure_registry=True, registry_cache=False)
    plan = make_plan(config, fingerprints, {refs["base"]: Availability(registry=True)}, event=event, policy=policy, revision=revision,
                     settings=settings)
    for entry in plan.images:  # every image, built or not: the tags are the tag policy's, as they are
        assert entry.tags == planned_tags(event, entry.fingerprint, policy, push=entry.push), entry.name
    assert [entry.name for entry in plan.to_build()] == ["ci", "app", "devcontainer"]
    for entry in plan.to_build():
        labels = dict(entry.request.labels)
        assert labels["org.opencontainers.image.revision"] == "a" * 40 and labels["org.opencontainers.image.version"] == "1.2.0"
        assert labels["org.opencontainers.image.created"] == datetime(2026, 1, 2, 2, 5, 6, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert labels["org.opencontainers.image.source"] == "https://git.example.com/acme/mono"
        assert labels["imagegraph.fingerprint"] == entry.fingerprint and labels["imagegraph.parent"] == refs["base"]
        assert entry.request.context.is_relative_to(config.root / "ctx" / entry.name / entry.fingerprint)
        assert entry.request.insecure_registry and entry.request.cache == ()  # registry_cache=False: no cache read or written
    # before a first commit there is no revision to name: no OCI labels, the image's own still
    unborn = make_plan(config, fingerprints, {}, event=event, revision=None).image("base")
    assert not any(key.startswith("org.opencontainers.image.") and key != "org.opencontainers.image.title"
                   for key in dict(unborn.request.labels))


def test_the_plan_shows_the_same_fields_for_every_kind_of_entry(world):
    config, fingerprints, refs = world
    plan = make_plan(config, fingerprints, {refs["base"]: Availability(registry=True), refs["ci"]: Availability(local=True)},
                     selected=["ci", "app"])
    shown = {entry["name"]: entry for entry in plan.to_dict()["images"]}
    keys = ["name", "decision", "reason", "fingerprint", "ref", "parent_ref", "platforms", "push", "push_existing", "no_cache", "changed",
            "parent", "wheels", "build", "tags"]
    assert all(list(entry) == keys for entry in shown.values())
    assert shown["app"]["build"] == plan.image("app").request.to_dict()  # type: ignore[attr-defined]
    assert [shown[name]["build"] for name in ("base", "ci", "devcontainer")] == [None, None, None]
    assert (shown["ci"]["push_existing"], shown["base"]["push_existing"]) == (True, False)


def test_what_only_a_build_needs_is_asked_only_when_something_is_built(world):
    from imagegraph.core.cache import BuilderKind
    from imagegraph.core.request import BuildSettings

    config, fingerprints, refs = world
    asked: list[str] = []

    def revision():
        asked.append("revision")
        return None

    def settings():
        asked.append("settings")
        return BuildSettings(contexts=config.root / "ctx", builder=BuilderKind.PER_PLATFORM)

    everything = {ref: Availability(registry=True) for ref in refs.values()}
    assert not make_plan(config, fingerprints, everything, revision=revision, settings=settings).to_build()
    assert asked == []  # a plan that builds nothing asks neither git nor the engine
    plan = make_plan(config, fingerprints, {}, revision=revision, settings=settings)
    assert asked == ["revision", "settings"]  # once each, for every build of the plan
    pushed = [entry for entry in plan.to_build() if entry.push]
    assert pushed and all(len(entry.request.cache) == len(entry.platforms) for entry in pushed)  # the classic store's: one per platform


@pytest.mark.parametrize("registry", ["127.0.0.1:5000", "ghcr.io/acme", "[::1]:5000/mirror", "registry.gitlab.com/group/project"])
def test_an_entry_carries_its_references_as_values_made_from_the_config(world, registry):
    from dataclasses import replace as changed

    from imagegraph.core.values import parse_registry

    config, fingerprints, _ = world
    config = changed(config, registry_address=parse_registry(registry, "test"))
    plan = make_plan(config, fingerprints, {})
    for entry in plan.images:
        assert entry.ref == f"{config.repository(entry.name)}:{fingerprints[entry.name].tag}" == str(entry.image)
        assert entry.image.repository == config.repository_path(entry.name) and entry.image.tag == entry.fingerprint
        assert ImageRef.parse(entry.ref) == entry.image  # the one parser reads back what was made
        parent = config.image(entry.name).parent
        assert entry.parent_image == (None if parent is None else plan.image(parent).image)
