"""Builders return commands as data: the tests compare argv tuples, nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.engine.builders import (
    BuildRequest,
    BuildxBuilder,
    EngineBuilder,
    StepCount,
    buildkitd_config,
    check_emulation,
    count_steps,
    detect_builder,
    lost_layer,
    platform_suffix,
)
from imagegraph.errors import EngineError, ToolMissing
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
        ("/usr/bin/docker", "build", "--progress", "plain", "--platform", "linux/amd64", *COMMON, "--tag", REF, "/r"),
        ("/usr/bin/docker", "push", REF),
    ]
    assert dict(steps[0].env) == {"DOCKER_BUILDKIT": "1"}


def test_engine_multi_platform_makes_a_manifest_list():
    steps = EngineBuilder(docker="docker").commands(request(platforms=("linux/amd64", "linux/arm64"), no_cache=True))
    argvs = [s.argv for s in steps]
    assert argvs[0] == ("docker", "build", "--progress", "plain", "--platform", "linux/amd64", *COMMON, "--no-cache", "--tag", f"{REF}-amd64", "/r")
    assert argvs[1] == ("docker", "push", f"{REF}-amd64")
    assert argvs[2][:7] == ("docker", "build", "--progress", "plain", "--platform", "linux/arm64", "--file")
    assert argvs[4:] == [
        ("docker", "manifest", "create", "--insecure", "--amend", REF, f"{REF}-amd64", f"{REF}-arm64"),
        ("docker", "manifest", "push", "--insecure", "--purge", REF),
    ]


def test_engine_without_push_only_builds():
    steps = EngineBuilder().commands(request(push=False))
    assert [s.argv[1] for s in steps] == ["build"]


def test_buildx_one_multi_platform_build_pushed():
    (step,) = BuildxBuilder(docker="docker").commands(request(platforms=("linux/amd64", "linux/arm64")))
    assert step.argv == ("docker", "buildx", "build", "--progress", "plain", "--platform", "linux/amd64,linux/arm64", *COMMON,
                         "--tag", REF, "--push", "/r")


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
    runner = ScriptedRunner({("buildx", "version"): Result(0, "github.com/docker/buildx v0.17.1"),
                             ("buildx", "inspect"): Result(0, "Name: ci\nDriver: docker-container\n")})
    builder = detect_builder(runner)
    assert isinstance(builder, BuildxBuilder) and builder.builder is None


def test_detect_creates_a_container_builder_when_the_current_one_is_the_docker_driver(one_client, tmp_path):
    runner = ScriptedRunner({("buildx", "version"): Result(0, "v0.17.1"),
                             ("buildx", "inspect"): Result(0, "Name: default\nDriver: docker\n"),
                             ("buildx", "create", "--name", "imagegraph", "--driver", "docker-container", "--driver-opt", "network=host",
                              "--buildkitd-config", str(tmp_path / "buildkitd.toml")): Result(0, "imagegraph\n")})
    builder = detect_builder(runner, registry="127.0.0.1:5000", state_dir=tmp_path)
    assert builder.builder == "imagegraph"
    assert runner.seen[-1][2] == "create"
    assert (tmp_path / "buildkitd.toml").read_text() == '[registry."127.0.0.1:5000"]\n  http = true\n  insecure = true\n'
    (step,) = builder.commands(request())
    assert step.argv[5:7] == ("--builder", "imagegraph")


def test_an_existing_imagegraph_builder_is_reused(one_client):
    runner = ScriptedRunner({("buildx", "version"): Result(0, "v0.17.1"), ("buildx", "inspect"): Result(0, "Driver: docker\n"),
                             ("buildx", "inspect", "imagegraph"): Result(0, "Driver: docker-container\n")})
    assert detect_builder(runner).builder == "imagegraph"
    assert not any("create" in argv for argv in runner.seen)


def test_no_buildkitd_config_for_a_remote_registry():
    assert buildkitd_config("ghcr.io") == "" and buildkitd_config(None) == ""


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


CACHE = "127.0.0.1:5000/ns/app"


def test_engine_builds_embed_an_inline_cache_and_read_the_platform_cache_tag():
    builder = EngineBuilder(docker="docker")
    req = request(platforms=("linux/amd64", "linux/arm64"), cache_repository=CACHE)
    builds = [s.argv for s in builder.commands(req) if s.argv[1] == "build"]
    assert [argv[argv.index("--cache-from") + 1] for argv in builds] == [f"{CACHE}:buildcache-amd64", f"{CACHE}:buildcache-arm64"]
    assert all("BUILDKIT_INLINE_CACHE=1" in argv for argv in builds)
    assert builder.cache_copies(req) == ((f"{REF}-amd64", "buildcache-amd64"), (f"{REF}-arm64", "buildcache-arm64"))


def test_engine_cache_is_not_read_with_no_cache_and_not_written_without_push():
    builder = EngineBuilder(docker="docker")
    (build, _) = builder.commands(request(cache_repository=CACHE, no_cache=True))
    assert "--cache-from" not in build.argv and "BUILDKIT_INLINE_CACHE=1" in build.argv
    assert builder.cache_copies(request(cache_repository=CACHE, push=False)) == ()


def test_buildx_reads_and_writes_a_registry_cache_in_max_mode():
    (step,) = BuildxBuilder(docker="docker").commands(request(cache_repository=CACHE))
    argv = step.argv
    assert argv[argv.index("--cache-from") + 1] == f"type=registry,ref={CACHE}:buildcache"
    assert argv[argv.index("--cache-to") + 1] == f"type=registry,ref={CACHE}:buildcache,mode=max,ignore-error=true"
    assert BuildxBuilder().cache_copies(request(cache_repository=CACHE)) == ()
    (local,) = BuildxBuilder().commands(request(cache_repository=CACHE, push=False))
    assert "--cache-to" not in local.argv and "--cache-from" in local.argv


PLAIN_OUTPUT = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#4 [1/4] FROM 127.0.0.1:5000/library/python:3.11-slim@sha256:3bd7
#4 DONE 0.0s
#9 importing cache manifest from 127.0.0.1:5000/x:buildcache-amd64
#5 [2/4] RUN echo one > /one
#5 CACHED
#6 [runtime 3/4] RUN --mount=type=bind,source=.wheelhouse,target=/wh pip install
#6 CACHED
#8 [linux/arm64 runtime 4/4] COPY x /x
#8 DONE 0.0s
#10 exporting to image
"""


def test_count_steps_reads_buildkit_plain_progress():
    assert count_steps(PLAIN_OUTPUT) == StepCount(cached=2, total=3)
    assert count_steps("") == StepCount(0, 0)
    assert StepCount(1, 2) + StepCount(2, 3) == StepCount(3, 5)


def test_platforms_the_engine_runs_or_emulates_pass():
    check_emulation(["linux/amd64", "linux/386", "linux/arm64", "linux/arm64/v8"], "linux/amd64", ["linux/arm64"])


def test_a_platform_without_emulation_is_one_line_with_the_fix():
    with pytest.raises(EngineError) as caught:
        check_emulation(["linux/amd64", "linux/s390x", "linux/mips64"], "linux/amd64", ["linux/arm64"])
    message = str(caught.value)
    assert message.startswith("cannot build for linux/s390x, linux/mips64: this engine runs linux/amd64 and emulates only linux/arm64;")
    assert "invoke engine.up" in message and "--platform" in message and "\n" not in message


@pytest.mark.parametrize("reason", [
    "failed to get layer sha256:8edfd9fa5470886779f015428ed019bff2902c078904c42bb3cc7d8fef4847d2: layer does not exist",
    "ERROR: layer does not exist",
    "layer does not exist",
    "failed to export image: failed to create image: "
    "failed to get layer sha256:8edfd9fa5470886779f015428ed019bff2902c078904c42bb3cc7d8fef4847d2: layer does not exist",
])
def test_a_build_cache_naming_a_lost_layer_is_repaired_by_pruning_it(reason):
    engine = EngineBuilder(docker="/usr/bin/docker")
    build = engine.commands(request())[0]
    repair = engine.repair(build, reason)
    assert lost_layer(reason) and repair is not None
    assert repair.command.argv == ("/usr/bin/docker", "builder", "prune", "--all", "--force")
    assert "\n" not in repair.explanation and "pruning the build cache" in repair.explanation
    buildx = BuildxBuilder(docker="docker")
    assert buildx.repair(buildx.commands(request())[0], reason).command.argv == ("docker", "builder", "prune", "--all", "--force")


@pytest.mark.parametrize("reason", [
    "executor failed running [/bin/sh -c exit 3]: exit code: 3",
    "#5 0.215 layer does not exist",  # a RUN step's own output, not the engine
    "",
])
def test_other_build_failures_are_not_repaired(reason):
    engine = EngineBuilder(docker="/usr/bin/docker")
    assert not lost_layer(reason)
    assert engine.repair(engine.commands(request())[0], reason) is None


def test_only_a_build_is_repaired_never_a_push():
    engine = EngineBuilder(docker="/usr/bin/docker")
    push = engine.commands(request())[1]
    assert push.argv[1] == "push"
    assert engine.repair(push, "layer does not exist") is None
