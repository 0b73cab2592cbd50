"""Builders return commands as data: the tests compare argv tuples, nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.engine.builders import BuildRequest, BuildxBuilder, EngineBuilder, detect_builder, platform_suffix
from imagegraph.errors import ToolMissing
from imagegraph.runner import Command, Result

REF = "127.0.0.1:5000/ns/app:0123456789abcdef"


def request(**changes) -> BuildRequest:
    values = dict(image="app", dockerfile=Path("/r/docker/Dockerfile"), context=Path("/r"), ref=REF,
                  platforms=("linux/amd64",), target="runtime", build_args=(("BASE_IMAGE", "reg/ns/base:fp"),),
                  labels=(("imagegraph.fingerprint", "0123456789abcdef"),), push=True, insecure_registry=True)
    values.update(changes)
    return BuildRequest(**values)


COMMON = ("--file", "/r/docker/Dockerfile", "--target", "runtime", "--build-arg", "BASE_IMAGE=reg/ns/base:fp",
          "--label", "imagegraph.fingerprint=0123456789abcdef")


def test_engine_single_platform_builds_then_pushes():
    steps = EngineBuilder(docker="/usr/bin/docker").commands(request())
    assert [s.argv for s in steps] == [
        ("/usr/bin/docker", "build", "--platform", "linux/amd64", *COMMON, "--tag", REF, "/r"),
        ("/usr/bin/docker", "push", REF),
    ]
    assert dict(steps[0].env) == {"DOCKER_BUILDKIT": "1"}


def test_engine_multi_platform_makes_a_manifest_list():
    steps = EngineBuilder(docker="docker").commands(request(platforms=("linux/amd64", "linux/arm64"), no_cache=True))
    argvs = [s.argv for s in steps]
    assert argvs[0] == ("docker", "build", "--platform", "linux/amd64", *COMMON, "--no-cache", "--tag", f"{REF}-amd64", "/r")
    assert argvs[1] == ("docker", "push", f"{REF}-amd64")
    assert argvs[2][:5] == ("docker", "build", "--platform", "linux/arm64", "--file")
    assert argvs[4:] == [
        ("docker", "manifest", "create", "--insecure", "--amend", REF, f"{REF}-amd64", f"{REF}-arm64"),
        ("docker", "manifest", "push", "--insecure", "--purge", REF),
    ]


def test_engine_without_push_only_builds():
    steps = EngineBuilder().commands(request(push=False))
    assert [s.argv[1] for s in steps] == ["build"]


def test_buildx_one_multi_platform_build_pushed():
    (step,) = BuildxBuilder(docker="docker").commands(request(platforms=("linux/amd64", "linux/arm64")))
    assert step.argv == ("docker", "buildx", "build", "--platform", "linux/amd64,linux/arm64", *COMMON, "--tag", REF, "--push", "/r")


def test_buildx_loads_a_single_platform_image_when_not_pushing():
    (step,) = BuildxBuilder().commands(request(push=False))
    assert "--load" in step.argv and "--push" not in step.argv


def test_platform_suffix():
    assert platform_suffix("linux/arm64/v8") == "arm64-v8"
    assert platform_suffix("linux/amd64") == "amd64"


class ScriptedRunner:
    """Answers commands from a table, like a tiny fake docker: the seam detect_builder runs through."""

    def __init__(self, answers: dict[tuple[str, ...], Result]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, ...]] = []

    def run(self, command: Command, **_) -> Result:
        self.seen.append(command.argv)
        return self.answers.get(command.argv[1:], Result(1, "unknown command"))


@pytest.fixture
def one_client(monkeypatch):
    monkeypatch.setattr("imagegraph.engine.builders._docker_clients", lambda: ["/x/docker"])
    monkeypatch.delenv("IMAGEGRAPH_BUILDER", raising=False)


def test_detect_prefers_buildx(one_client):
    runner = ScriptedRunner({("buildx", "version"): Result(0, "github.com/docker/buildx v0.17.1")})
    assert isinstance(detect_builder(runner), BuildxBuilder)


def test_detect_falls_back_to_an_old_client(one_client):
    runner = ScriptedRunner({("version", "--format", "{{.Client.Version}}"): Result(0, "20.10.24+dfsg1\n")})
    builder = detect_builder(runner)
    assert isinstance(builder, EngineBuilder) and builder.docker == "/x/docker"


def test_detect_refuses_a_new_client_without_buildx(one_client):
    runner = ScriptedRunner({("version", "--format", "{{.Client.Version}}"): Result(0, "28.2.2\n")})
    with pytest.raises(ToolMissing, match="install the buildx plugin"):
        detect_builder(runner)


def test_explicit_engine_choice_skips_buildx(one_client):
    runner = ScriptedRunner({("buildx", "version"): Result(0, "v0.17"),
                             ("version", "--format", "{{.Client.Version}}"): Result(0, "20.10.24")})
    assert isinstance(detect_builder(runner, prefer="engine"), EngineBuilder)
    assert ("/x/docker", "buildx", "version") not in runner.seen
