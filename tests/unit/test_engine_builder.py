"""`invoke engine.builder`: a docker-container builder is made only when asked, and a half-made one never stays.

The commands are data (argv tuples); buildx is answered by the scripted runner of test_builders.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.adapters.runner import CommandResult
from imagegraph.core.errors import EngineError
from imagegraph_provision.builder import builder_image_missing, buildkitd_config, container_builder_commands, create_container_builder
from tests.unit.test_builders import INSPECT_CONTAINER, VERSION, ScriptedRunner, assert_created_nothing


@pytest.fixture
def two_clients(monkeypatch):
    monkeypatch.setattr("imagegraph_provision.builder.docker_clients", lambda: ["/usr/local/bin/docker", "/usr/bin/docker"])


# --- the commands and the config ------------------------------------------------

def test_container_builder_commands_create_with_host_network_then_bootstrap(tmp_path):
    create, bootstrap = container_builder_commands("/usr/bin/docker", "imagegraph", tmp_path / "buildkitd.toml")
    assert create.argv == ("/usr/bin/docker", "buildx", "create", "--name", "imagegraph", "--driver", "docker-container",
                           "--driver-opt", "network=host", "--buildkitd-config", str(tmp_path / "buildkitd.toml"))
    assert bootstrap.argv == ("/usr/bin/docker", "buildx", "inspect", "--bootstrap", "imagegraph")
    assert "moby/buildkit" in bootstrap.hint and "docker buildx rm imagegraph" in bootstrap.hint
    (plain, _) = container_builder_commands("docker", "b", None)
    assert "--buildkitd-config" not in plain.argv and plain.argv[-2:] == ("--driver-opt", "network=host")


@pytest.mark.parametrize(
    ("reason", "image"),
    [
        ('ERROR: failed to solve: moby/buildkit:buildx-stable-1: failed to resolve source metadata for '
         'docker.io/moby/buildkit:buildx-stable-1: dial tcp: lookup registry-1.docker.io: no such host', "moby/buildkit:buildx-stable-1"),
        ('Error response from daemon: pull access denied for "moby/buildkit:v0.13.2", repository does not exist',
         "moby/buildkit:v0.13.2"),
        ("executor failed running [/bin/sh -c make]: exit code: 2", None),
        ("failed to resolve source metadata for docker.io/library/python:3.11-slim: not found", None),
    ],
)
def test_builder_image_missing(reason, image):
    assert builder_image_missing(reason) == image


def test_buildkitd_config_speaks_plain_http_to_a_loopback_registry_only():
    assert buildkitd_config("127.0.0.1:5000") == '[registry."127.0.0.1:5000"]\n  http = true\n  insecure = true\n'
    assert buildkitd_config("localhost:5055").startswith('[registry."localhost:5055"]')
    assert buildkitd_config("ghcr.io") == "" and buildkitd_config(None) == "" and buildkitd_config("10.0.0.5:5000") == ""



# --- a container builder, only when asked -----------------------------------------

PULL_FAILED = ('ERROR: Error response from daemon: failed to resolve reference "docker.io/moby/buildkit:buildx-stable-1": '
               "failed to do request: dial tcp: lookup registry-1.docker.io: no such host\n")


def container_answers(bootstrap: CommandResult, config_dir: Path) -> dict[tuple[str, ...], CommandResult]:
    docker = "/usr/local/bin/docker"
    return {
        (docker, "buildx", "version"): CommandResult(0, VERSION),
        (docker, "buildx", "create", "--name", "farm", "--driver", "docker-container", "--driver-opt", "network=host",
         "--buildkitd-config", str(config_dir / "buildkitd-farm.toml")): CommandResult(0, "farm\n"),
        (docker, "buildx", "inspect", "--bootstrap", "farm"): bootstrap,
        (docker, "buildx", "rm", "farm"): CommandResult(0, ""),
    }


def test_a_container_builder_is_created_with_plain_http_for_a_loopback_registry_and_started(two_clients, tmp_path):
    runner, said = ScriptedRunner(container_answers(CommandResult(0, INSPECT_CONTAINER), tmp_path)), []
    info = create_container_builder(runner, "farm", registry="127.0.0.1:5000", config_dir=tmp_path, say=said.append)
    assert info.driver == "docker-container"
    assert (tmp_path / "buildkitd-farm.toml").read_text() == buildkitd_config("127.0.0.1:5000")
    assert [argv[1:3] for argv in runner.seen[1:]] == [("buildx", "inspect"), ("buildx", "create"), ("buildx", "inspect")]
    assert said[-1] == "builder farm runs; build on it with `invoke build --builder farm` (or BUILDX_BUILDER=farm)"


def test_a_container_builder_whose_image_cannot_be_pulled_is_removed_and_the_error_says_what_to_do(two_clients, tmp_path):
    runner = ScriptedRunner(container_answers(CommandResult(1, PULL_FAILED), tmp_path))
    with pytest.raises(EngineError, match=r"^the docker-container builder farm needs the image moby/buildkit:buildx-stable-1, "
                                          r"which cannot be pulled here; load it .*; the half-made builder was removed$"):
        create_container_builder(runner, "farm", registry="127.0.0.1:5000", config_dir=tmp_path, say=lambda _: None)
    assert runner.seen[-1] == ("/usr/local/bin/docker", "buildx", "rm", "farm")


def test_an_existing_builder_of_that_name_is_left_as_it_is(two_clients, tmp_path):
    runner = ScriptedRunner({("/usr/local/bin/docker", "buildx", "version"): CommandResult(0, VERSION),
                             ("/usr/local/bin/docker", "buildx", "inspect", "farm"): CommandResult(0, INSPECT_CONTAINER)})
    create_container_builder(runner, "farm", registry=None, config_dir=tmp_path, say=lambda _: None)
    assert_created_nothing(runner)
