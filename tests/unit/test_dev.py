"""The devcontainer's decisions: which image it opens, what post-create runs, how the tools check reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imagegraph.adapters.devcontainer import (
    HOOKS_PATH,
    MARKER_VARIABLE,
    Container,
    ImageSource,
    describe_image,
    find_cli,
    format_tools,
    image_source,
    in_devcontainer,
    lint_command,
    post_create_steps,
    probes,
    read_image_tag,
    read_probe,
    staged_python,
    tool_problem,
    up_command,
)
from imagegraph.adapters.runner import CommandResult
from imagegraph.core.errors import ConfigError
from imagegraph.core.plan import Availability, make_plan

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = Path("/workspace")
HOME = Path("/home/dev")


def devcontainer_entry(world, availability):
    config, fingerprints, refs = world
    present = {ref: Availability(registry=True) for name, ref in refs.items() if name != "devcontainer"}
    if availability is not None:
        present[refs["devcontainer"]] = availability
    return make_plan(config, fingerprints, present, selected=("devcontainer",)).image("devcontainer")


@pytest.mark.parametrize(("availability", "source"), [
    (Availability(registry=True), ImageSource.REGISTRY),
    (Availability(local=True), ImageSource.LOCAL),
    (None, ImageSource.BUILT),
])
def test_image_source_follows_the_plan(world, availability, source):
    assert image_source(devcontainer_entry(world, availability)) is source


def test_the_image_line_says_where_the_image_came_from():
    ref, tag = "127.0.0.1:5000/imagegraph/devcontainer:abc", "imagegraph/devcontainer:workspace"
    assert describe_image(ImageSource.REGISTRY, ref, tag) == f"devcontainer: prebuilt image {ref} (from the registry) → {tag}"
    assert describe_image(ImageSource.LOCAL, ref, tag).startswith(f"devcontainer: local image {ref} (from this engine")
    assert describe_image(ImageSource.BUILT, ref, tag) == f"devcontainer: built image {ref} (no image had its fingerprint) → {tag}"


def test_read_image_tag_skips_comment_lines(tmp_path):
    (tmp_path / ".devcontainer").mkdir()
    (tmp_path / ".devcontainer/devcontainer.json").write_text('{\n  // the local tag\n  "image": "me/dev:workspace"\n}\n')
    assert read_image_tag(tmp_path) == "me/dev:workspace"


@pytest.mark.parametrize(("text", "message"), [
    (None, "cannot read it"),
    ('{"image": "a" /* no */}', "not valid JSON (line 1"),
    ('{"build": {"dockerfile": "Dockerfile"}}', 'has no "image"'),
])
def test_read_image_tag_refuses_in_one_line(tmp_path, text, message):
    if text is not None:
        (tmp_path / ".devcontainer").mkdir()
        (tmp_path / ".devcontainer/devcontainer.json").write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_image_tag(tmp_path)
    assert str(caught.value).startswith(".devcontainer/devcontainer.json: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_this_repository_devcontainer_json_only_calls_tasks():
    lines = (ROOT / ".devcontainer/devcontainer.json").read_text().splitlines()
    config = json.loads("\n".join(line for line in lines if not line.lstrip().startswith("//")))
    assert read_image_tag(ROOT) == config["image"] and "/" in config["image"] and ":" in config["image"]
    assert "." not in config["image"].split("/")[0]  # a local tag, never a registry's reference
    assert config["initializeCommand"] == "invoke dev.image"
    assert config["postCreateCommand"] == "invoke dev.post-create"
    assert "build" not in config  # the image comes from the plan: `invoke dev.image` builds the Dockerfile when it must
    assert config["containerEnv"][MARKER_VARIABLE] == "1"


def test_post_create_knows_the_devcontainer_by_its_marker():
    assert in_devcontainer({MARKER_VARIABLE: "1"})
    assert not in_devcontainer({}) and not in_devcontainer({MARKER_VARIABLE: ""})


def test_the_pre_commit_hook_is_executable_and_runs_the_task():
    hook = ROOT / HOOKS_PATH / "pre-commit"
    assert os.access(hook, os.X_OK)
    assert hook.read_text().rstrip().endswith("exec invoke dev.pre-commit")


def container(**changes) -> Container:
    settled = dict(root=WORKSPACE, user="dev", uid=1000, owner_uid=1000, hooks_path=HOOKS_PATH, socket="/var/run/docker.sock",
                   socket_gid=999, socket_usable=True, socket_group="docker", python="/usr/local/bin/python3.11", home=HOME)
    return Container(**{**settled, **changes})


def argvs(steps) -> list[tuple[str, ...]]:
    return [step.command.argv for step in steps]


PIP = ("/usr/local/bin/python3.11", "-m", "pip", "install", "--quiet", "--user", "--no-deps", "--no-build-isolation", "--editable", "/workspace")


def test_a_settled_container_only_reinstalls():
    steps = post_create_steps(container())
    assert argvs(steps) == [PIP]
    assert steps[0].command.cwd == str(HOME)  # not the checkout


def test_a_laptop_checkout_of_the_same_uid_is_written_directly():
    steps = post_create_steps(container(hooks_path=None))
    assert argvs(steps) == [PIP, ("git", "-C", "/workspace", "config", "core.hooksPath", ".githooks")]


def test_a_root_owned_checkout_is_trusted_and_written_as_root():
    steps = post_create_steps(container(owner_uid=0, hooks_path=None))
    assert argvs(steps) == [
        ("sudo", "--non-interactive", "git", "config", "--system", "--add", "safe.directory", "/workspace"),
        PIP,
        ("sudo", "--non-interactive", "--user=#0", "--", "git", "-C", "/workspace", "config", "core.hooksPath", ".githooks"),
    ]
    assert "uid 0" in steps[0].what and "as uid 0, its owner" in steps[2].what


def test_a_trusted_checkout_is_not_trusted_twice():
    for trusted in (("/workspace",), ("*",)):
        assert argvs(post_create_steps(container(owner_uid=0, safe_directories=trusted))) == [PIP]


def test_the_socket_group_is_made_when_the_container_has_none():
    steps = post_create_steps(container(socket_usable=False, socket_gid=106, socket_group=None))
    assert argvs(steps)[1:] == [
        ("sudo", "--non-interactive", "groupadd", "--gid", "106", "docker-host"),
        ("sudo", "--non-interactive", "usermod", "--append", "--groups", "docker-host", "dev"),
    ]


def test_the_socket_group_is_joined_when_the_container_has_it():
    steps = post_create_steps(container(socket_usable=False, socket_gid=0, socket_group="root"))
    assert argvs(steps)[1:] == [("sudo", "--non-interactive", "usermod", "--append", "--groups", "root", "dev")]


def test_root_in_the_container_needs_no_sudo_and_no_user_site():
    steps = post_create_steps(container(uid=0, user="root", owner_uid=1000, hooks_path=None))
    assert argvs(steps) == [
        ("git", "config", "--system", "--add", "safe.directory", "/workspace"),
        ("/usr/local/bin/python3.11", "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--editable", "/workspace"),
        ("sudo", "--non-interactive", "--user=#1000", "--", "git", "-C", "/workspace", "config", "core.hooksPath", ".githooks"),
    ]


def probe(name, state=None):
    return next(p for p in probes(state or container()) if p.name == name)


def test_the_probes_cover_every_tool_and_import_from_home():
    assert [p.name for p in probes(container())] == [
        "python", "torch", "imagegraph", "scorer", "invoke", "nox", "ruff", "pytest", "git", "hooks", "docker", "buildx"]
    assert probe("imagegraph").command.cwd == str(HOME)
    assert probe("docker").command.argv == ("docker", "version", "--format", "engine {{.Server.Version}}")
    assert probe("buildx").command.argv == ("docker", "buildx", "version")


def test_the_docker_probe_logs_in_anew_when_the_group_was_just_added():
    state = container(socket_usable=False, socket_gid=106, socket_group=None)
    assert probe("docker", state).command.argv[:4] == ("sudo", "--non-interactive", "--user=dev", "--")


def test_read_probe_checks_the_exit_status_and_the_expectation():
    assert read_probe(probe("torch"), CommandResult(0, "2.13.0+cpu\n")) == read_probe(probe("torch"), CommandResult(0, "\n2.13.0+cpu"))
    assert read_probe(probe("torch"), CommandResult(0, "2.13.0+cpu\n")).ok
    installed = read_probe(probe("imagegraph"), CommandResult(0, "/workspace/src/imagegraph/__init__.py\n"))
    assert installed.ok and installed.detail == "/workspace/src/imagegraph/__init__.py"
    elsewhere = read_probe(probe("imagegraph"), CommandResult(0, "/usr/lib/python3/dist-packages/imagegraph/__init__.py\n"))
    assert not elsewhere.ok and elsewhere.detail.startswith("unexpected: /usr/lib/") and "dev.post-create" in elsewhere.fix
    broken = read_probe(probe("docker"), CommandResult(1, "Client: 20.10\nCannot connect to the Docker daemon at unix:///x.sock\n"))
    assert not broken.ok and broken.detail == "Cannot connect to the Docker daemon at unix:///x.sock"
    assert read_probe(probe("hooks"), CommandResult(1, "")).detail == "exited 1"


def test_the_tools_table_and_the_one_line_problem():
    checks = [read_probe(probe("ruff"), CommandResult(0, "ruff 0.17.5\n")),
              read_probe(probe("docker"), CommandResult(1, "permission denied\n")),
              read_probe(probe("nox"), CommandResult(127, "nox: not installed or not on PATH"))]
    table = format_tools(checks).splitlines()
    assert table[0].split() == ["tool", "status", "detail"]
    assert table[2].split() == ["ruff", "ok", "ruff", "0.17.5"] and table[3].split()[:2] == ["docker", "FAILED"]
    problem = tool_problem(checks)
    assert problem.startswith("docker does not work (permission denied); the engine is not reachable at unix:///var/run/docker.sock")
    assert "invoke engine.up" in problem and "\n" not in problem
    assert tool_problem(checks[:1]) is None


def test_staged_python_files_and_the_lint_command(tmp_path):
    assert staged_python(("src/a.py", "README.md", "stubs/b.pyi", "-x.py")) == ("src/a.py", "stubs/b.pyi", "-x.py")
    assert staged_python(()) == ()
    command = lint_command("/py", ("src/a.py",), tmp_path)
    assert command.argv == ("/py", "-m", "ruff", "check", "--force-exclude", "--", "src/a.py") and command.cwd == str(tmp_path)


def test_up_command_and_finding_the_cli(tmp_path):
    assert up_command("devcontainer", WORKSPACE).argv == ("devcontainer", "up", "--workspace-folder", "/workspace")
    assert up_command("devcontainer", WORKSPACE, rebuild=True).argv[-1] == "--remove-existing-container"
    assert find_cli({"PATH": str(tmp_path / "empty"), "XDG_CACHE_HOME": str(tmp_path)}) is None
    installed = tmp_path / "imagegraph/devcontainers-cli/node_modules/.bin/devcontainer"
    installed.parent.mkdir(parents=True)
    installed.write_text("#!/bin/sh\n")
    assert find_cli({"PATH": str(tmp_path / "empty"), "XDG_CACHE_HOME": str(tmp_path)}) == str(installed)
