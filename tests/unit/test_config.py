from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from imagegraph.core.config import load_config, override_platforms, parse_config
from imagegraph.core.defaults import wheel_folder
from imagegraph.core.errors import ConfigError, InputError
from imagegraph.core.values import Platform
from tests.conftest import FAMILY, write_tree


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


# Two requirements files of one name less the suffix would fill one .wheelhouse/<name> folder (the Dockerfiles' mount).
OTHER_REQUIREMENTS = "six==1.16.0\n"


@pytest.mark.parametrize(("files", "change", "named"), [
    ({"src/svc/requirements.txt": OTHER_REQUIREMENTS}, {"app": {"wheels": ["src/svc/requirements.txt"]}},
     ["image 'app': wheels: 'src/svc/requirements.txt' and 'requirements/requirements.txt' (image 'ci', images.yaml)"]),
    ({"tools/requirements-dev.txt": OTHER_REQUIREMENTS}, {"ci": {"wheels": ["requirements/requirements-dev.txt", "tools/requirements-dev.txt"]}},
     ["image 'ci': wheels: 'tools/requirements-dev.txt' and 'requirements/requirements-dev.txt' would share", ".wheelhouse/requirements-dev"]),
    ({"requirements/requirements-torch.in": "torch\n"}, {"devcontainer": {"wheels": ["requirements/requirements-torch.in"]}},
     ["'requirements/requirements-torch.in' and 'requirements/requirements-torch.txt' (image 'base'", ".wheelhouse/requirements-torch,"]),
    ({"extra/requirements": OTHER_REQUIREMENTS}, {"devcontainer": {"wheels": ["extra/requirements"]}},
     ["'extra/requirements' and 'requirements/requirements.txt'", ".wheelhouse/requirements,"]),
    ({"extra/Requirements.txt": OTHER_REQUIREMENTS}, {"devcontainer": {"wheels": ["extra/Requirements.txt"]}},
     ["'extra/Requirements.txt' and 'requirements/requirements.txt'",
      ".wheelhouse/Requirements (also named .wheelhouse/requirements where the file system ignores case)"]),
])
def test_two_requirements_files_sharing_a_wheel_folder_are_refused(family, files, change, named):
    write_tree(family, files)
    message = error_of(edited(**change), family)
    for part in (*named, "so one image could be built with the other's wheels", "rename one of the two files"):
        assert part in message, message


def test_the_clash_is_told_at_the_lines_of_both_lists(family):
    (family / "src/svc/requirements.txt").write_text(OTHER_REQUIREMENTS)
    (family / "images.yaml").write_text(FAMILY.replace("    wheels: [requirements/requirements.txt]\n", "    wheels: [src/svc/requirements.txt]\n"))
    with pytest.raises(ConfigError) as info:
        load_config(family)
    assert str(info.value).startswith("images.yaml:18: image 'app': wheels: 'src/svc/requirements.txt' and "
                                      "'requirements/requirements.txt' (image 'ci', images.yaml:12) would share the wheel folder "
                                      ".wheelhouse/requirements,"), info.value


def test_one_file_named_twice_or_through_a_link_shares_its_folder_with_itself(family):
    # The family lists requirements/requirements.txt in ci and app: one file, one folder, the same wheels.
    assert load_config(family).image("app").wheels == ("requirements/requirements.txt",)
    (family / "src/svc").joinpath("requirements.txt").symlink_to("../../requirements/requirements.txt")
    os.link(family / "requirements/requirements-dev.txt", family / "src/svc/requirements-dev.txt")
    config = parse_config(edited(app={"wheels": ["src/svc/requirements.txt", "src/svc/requirements-dev.txt"]}), family)
    assert config.image("app").wheels == ("src/svc/requirements.txt", "src/svc/requirements-dev.txt")


@pytest.mark.parametrize(("path", "folder"), [("requirements/..txt", "."), ("requirements/...txt", ".."), ("..txt", ".")])
def test_a_requirements_file_whose_name_makes_no_folder_is_refused(family, path, folder):
    write_tree(family, {path: OTHER_REQUIREMENTS})
    message = error_of(edited(app={"wheels": [path]}), family)
    assert f"would get the wheel folder '.wheelhouse/{folder}', which is no folder of its own" in message, message
    assert "rename the file" in message


@pytest.mark.parametrize("path", [".", "./", "requirements/", "requirements/.", "requirements//"])
def test_a_wheels_path_with_no_file_name_is_refused(family, path):
    assert "is a directory; name the file in it" in error_of(edited(app={"wheels": [path]}), family)


def test_the_wheel_folder_is_the_file_name_less_its_last_suffix():
    cases = {"requirements/requirements.txt": "requirements", "a/b/dev.in": "dev", "a/requirements": "requirements",
             "a/reqs.lock.txt": "reqs.lock", "a/.txt": ".txt", "a/...txt": ".."}
    assert {path: wheel_folder(path) for path in cases} == cases


# -- runners: which CI runner builds which platform ------------------------------------


def with_runners(family: Path, text: str) -> Path:
    (family / "images.yaml").write_text(FAMILY + text)
    return family


def runners_error(family: Path, text: str) -> str:
    with pytest.raises(InputError) as info:
        load_config(with_runners(family, text))
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message
    return message


def test_no_runners_is_one_runner_for_everything(family):
    config = load_config(family)
    assert config.runners == () and config.runner("linux/arm64") is None


def test_runners_map_each_platform_to_its_label_in_the_order_written(family):
    config = load_config(with_runners(family, "runners:\n  linux/arm64: ubuntu-24.04-arm\n  linux/amd64: my-runner_2.x\n"))
    assert config.runners == (("linux/arm64", "ubuntu-24.04-arm"), ("linux/amd64", "my-runner_2.x"))
    assert config.runner("linux/amd64") == "my-runner_2.x" and config.runner("linux/arm/v7") is None
    partial = load_config(with_runners(family, "runners: {linux/arm64: ubuntu-24.04-arm}\n"))
    assert partial.runners == (("linux/arm64", "ubuntu-24.04-arm"),) and partial.runner("linux/amd64") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("runners:\n", "images.yaml:23: runners: is empty; map each platform to the runner label that builds it"),
    ("runners: {}\n", "images.yaml:23: runners: is empty;"),
    ("runners: [ubuntu-24.04-arm]\n", "images.yaml:23: runners: must be a mapping, got a list"),
    ("runners: ubuntu-latest\n", "images.yaml:23: runners: must be a mapping, got str 'ubuntu-latest'"),
    ("runners:\n  linux/arm64: ok\n  linux/aarch64: arm\n", "images.yaml:25: runners: 'linux/aarch64' is not a platform BuildKit builds "
                                                        "for (BuildKit calls it linux/arm64)"),
    ("runners: {linux/s390x: big-iron}\n", "images.yaml:23: runners: no image declares linux/s390x (declared: linux/amd64, "
                                          "linux/arm64); name one of those platforms, or remove the line"),
    ("runners: {7: x}\n", "images.yaml:23: runners: '7' is not a platform"),
    ("runners: {linux/arm64: -arm}\n", "images.yaml:23: runners: linux/arm64: '-arm' is not a runner label"),
    ("runners: {linux/arm64: --help}\n", "images.yaml:23: runners: linux/arm64: '--help' is not a runner label"),
    ('runners: {linux/arm64: "arm\\e[31m"}\n', "images.yaml:23: runners: linux/arm64: 'arm\\x1b[31m' is not a runner label"),
    ('runners: {linux/arm64: "arm\\nubuntu-latest"}\n', "runners: linux/arm64: 'arm\\nubuntu-latest' is not a runner label"),
    ('runners: {linux/arm64: "${{ github.token }}"}\n', "runners: linux/arm64: '${{ github.token }}' is not a runner label"),
    ('runners: {linux/arm64: "self-hosted, arm64"}\n', "runners: linux/arm64: 'self-hosted, arm64' is not a runner label"),
    ('runners: {linux/arm64: ""}\n', "runners: linux/arm64: '' is not a runner label"),
    (f"runners: {{linux/arm64: {'a' * 101}}}\n", "is not a runner label (a letter or digit, then up to 99 letters"),
    ("runners: {linux/arm64: [self-hosted, arm64]}\n", "images.yaml:23: runners: linux/arm64: expected one runner label, got a list"),
    ("runners: {linux/arm64: 64}\n", "runners: linux/arm64: expected one runner label, got a number '64'"),
    ("runners: {linux/arm64: }\n", "runners: linux/arm64: expected one runner label, got nothing (null)"),
    ("runnres: {linux/arm64: x}\n", "images.yaml:23: top level: unknown key 'runnres' (did you mean 'runners'?)"),
])
def test_a_bad_runners_line_is_one_error_naming_its_line(family, text, expected):
    assert expected in runners_error(family, text)
