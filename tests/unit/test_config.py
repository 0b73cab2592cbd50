from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imagegraph.core.config import load_config, override_platforms, parse_config
from imagegraph.core.errors import ConfigError, InputError
from imagegraph.core.values import Platform
from tests.conftest import FAMILY


def edited(**images_changes) -> dict:
    data = yaml.safe_load(FAMILY)
    for name, change in images_changes.items():
        if change is None:
            del data["images"][name]
        else:
            data["images"][name] = {**data["images"].get(name, {}), **change}
    return data


def error_of(data, root: Path) -> str:
    with pytest.raises(InputError) as info:
        parse_config(data, root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_loads_the_family_into_frozen_specs(family):
    config = load_config(family)
    assert config.names == ("base", "ci", "app", "devcontainer")
    app = config.image("app")
    assert (app.parent, app.target, app.inputs, app.platforms) == ("base", "runtime", ("src/svc/**",), ("linux/amd64",))
    assert config.image("base").platforms == ("linux/amd64", "linux/arm64")
    assert config.repository("ci") == "127.0.0.1:5000/test/ci"
    with pytest.raises(AttributeError):
        app.parent = "ci"  # type: ignore[misc]


def test_unknown_image_key_suggests_the_right_one(family):
    message = error_of(edited(app={"platfroms": ["linux/amd64"]}), family)
    assert "unknown key 'platfroms'" in message and "did you mean 'platforms'" in message


def test_unknown_top_level_key(family):
    data = edited()
    data["registyr"] = "x"
    assert "did you mean 'registry'" in error_of(data, family)


def test_unknown_parent_names_the_fix(family):
    message = error_of(edited(app={"parent": "bsae"}), family)
    assert "parent 'bsae' is not an image" in message and "did you mean 'base'" in message


def test_cycle_is_reported_as_a_chain(family):
    message = error_of(edited(base={"parent": "ci"}), family)
    assert "parent cycle base -> ci -> base" in message


def test_missing_dockerfile_suggests_a_sibling(family):
    message = error_of(edited(ci={"dockerfile": "docker/Dockerfile.cii"}), family)
    assert "docker/Dockerfile.cii does not exist" in message and "did you mean 'docker/Dockerfile.ci'" in message


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd"])
def test_inputs_outside_the_repository_are_refused(family, path):
    assert "points outside the repository" in error_of(edited(app={"inputs": [path]}), family)


def test_bad_platform_and_reserved_build_arg(family):
    assert "'amd64' is not a platform BuildKit builds for" in error_of(edited(app={"platforms": ["amd64"]}), family)
    assert "BASE_IMAGE is set by imagegraph" in error_of(edited(app={"build_args": {"BASE_IMAGE": "x"}}), family)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path)
    (tmp_path / "images.yaml").write_text("images: [unclosed\n")
    with pytest.raises(ConfigError, match=r"images.yaml:1: is not valid YAML"):
        load_config(tmp_path)


def test_registry_override_from_environment(family, monkeypatch):
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY", "registry.example:443/")
    assert load_config(family).repository("base") == "registry.example:443/test/base"


def test_platform_override_replaces_every_image(family):
    config = override_platforms(load_config(family), (Platform("linux", "arm64"),))
    assert {spec.platforms for spec in config.images} == {("linux/arm64",)}


def test_tags_and_retention_settings(family):
    data = {**yaml.safe_load(FAMILY), "tags": {"edge": "latest-dev", "push_pull_requests": True},
            "retention": {"keep": 3, "protect": ["stable-*", "lts"]}}
    config = parse_config(data, family)
    assert (config.edge_tag, config.push_pull_requests, config.keep, config.protect) == ("latest-dev", True, 3, ("stable-*", "lts"))
    defaults = parse_config(yaml.safe_load(FAMILY), family)
    assert (defaults.edge_tag, defaults.push_pull_requests, defaults.keep, defaults.protect) == ("edge", False, 10, ())


@pytest.mark.parametrize(("section", "message"), [
    ({"tags": {"edge": "latest"}}, "tags: edge: 'latest' is not a usable tag"),
    ({"tags": {"edge": "has space"}}, "is not a usable tag"),
    ({"tags": {"egde": "x"}}, "did you mean 'edge'"),
    ({"tags": {"push_pull_requests": "yes"}}, "push_pull_requests must be true or false"),
    ({"retention": {"keep": 0}}, "keep must be a whole number of at least 1"),
    ({"retention": {"keep": True}}, "keep must be a whole number"),
    ({"retention": ["keep"]}, "retention: must be a mapping"),
])
def test_bad_tags_and_retention_settings_are_one_line(family, section, message):
    assert message in error_of({**yaml.safe_load(FAMILY), **section}, family)
