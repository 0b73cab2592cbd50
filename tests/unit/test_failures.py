"""An engine or registry lost mid-build, read from the docker client's real output (captured through a cut engine socket
and a stopped registry), and how the executor names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.adapters.failures import engine_lost, engine_lost_message, registry_lost, registry_lost_message
from imagegraph.adapters.wheelhouse import Wheelhouse
from imagegraph.core.config import load_config
from imagegraph.core.errors import EngineError
from imagegraph.execute import BuildExecutor
from tests.conftest import forced_plan, write_tree
from tests.unit.test_execute import DOCKER_DRIVER, ScriptedRunner

DATA = Path(__file__).parent / "data"
#: The engine socket cut while a RUN step ran; the client started against no engine; a push to no engine.
ENGINE_GONE = ("engine-gone-mid-build.log", "engine-gone-before-build.log", "engine-gone-push.log")
#: Failures of a build with the engine up all along.
ENGINE_UP = ("engine-lost-layer.log", "engine-build-and-push.log")
#: The registry (127.0.0.1:38277, a test's own) stopped while the image's RUN step ran, so the push found no one.
REGISTRY_GONE = (DATA / "registry-gone-mid-push.log").read_text()
REGISTRY = "127.0.0.1:38277"


@pytest.mark.parametrize("name", ENGINE_GONE)
def test_a_lost_engine_is_recognised_in_the_clients_output(name):
    assert engine_lost((DATA / name).read_text())


@pytest.mark.parametrize("name", [*ENGINE_UP, "registry-gone-mid-push.log"])
def test_other_failures_are_no_lost_engine(name):
    assert not engine_lost((DATA / name).read_text())


def test_a_lost_registry_is_recognised_by_its_address():
    assert registry_lost(REGISTRY_GONE, REGISTRY) == "connect: connection refused"
    assert registry_lost(REGISTRY_GONE, "127.0.0.1:5000") is None
    assert registry_lost((DATA / "engine-gone-mid-build.log").read_text(), REGISTRY) is None


def test_the_messages_name_the_engine_or_registry_and_the_fix():
    custom = engine_lost_message("app was built", "unexpected EOF", {"DOCKER_HOST": "unix:///tmp/x.sock"})
    assert custom == ("the Docker engine at unix:///tmp/x.sock (DOCKER_HOST) stopped answering while app was built (unexpected EOF); "
                      "start it with `invoke engine.up`, or point DOCKER_HOST at a running engine, then run `invoke build` again")
    assert "at unix:///var/run/docker.sock stopped answering" in engine_lost_message("app was built", "EOF", {})
    local = registry_lost_message("127.0.0.1:5000", "app", "connect: connection refused", local=True)
    assert local.startswith("registry 127.0.0.1:5000 stopped answering while app was pushed (connect: connection refused); "
                            "start it with `invoke engine.up`")
    assert "check that it is up and reachable from here" in registry_lost_message("ghcr.io", "app", "i/o timeout", local=False)


class Engine:
    """The engine as the executor asks it after a failure: up or gone."""

    def __init__(self, up: bool) -> None:
        self.up = up

    def answers(self) -> bool:
        return self.up

    def info(self, ref: str) -> None:
        if not self.up:
            raise EngineError("the Docker engine is not reachable; run `invoke engine.up` (or start Docker) and retry")
        return None


class GoneRegistry:
    host = REGISTRY
    insecure = True

    def manifest_digest(self, name: str, tag: str) -> str:
        from imagegraph.core.errors import RegistryError

        raise RegistryError(f"registry {self.host} is not reachable")

    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]:
        self.manifest_digest(name, reference)
        raise AssertionError("unreachable")


def build_one(tmp_path, output: str, *, engine_up: bool, registry=None):
    write_tree(tmp_path, {"images.yaml": f"registry: {REGISTRY}\nnamespace: unit\nimages:\n  app:\n    dockerfile: Dockerfile\n",
                          "Dockerfile": "FROM python:3.11-slim\nRUN true\n"})
    config = load_config(tmp_path)
    runner = ScriptedRunner({"buildx": [(1, output)] * 5})  # a registry's passing error is tried again, up to 5 times
    executor = BuildExecutor(config.root, DOCKER_DRIVER, runner, Wheelhouse(config.root, runner), local=Engine(engine_up), registry=registry,
                        log_dir=tmp_path / "logs", say=lambda line: None, sleep=lambda seconds: None)
    (result,) = executor.run(forced_plan(config, executor.contexts_dir, {"app": "f" * 64}, builder=executor.builder))
    return result, len(runner.ran)


def test_a_build_whose_engine_went_away_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/x.sock")
    result, tries = build_one(tmp_path, (DATA / "engine-gone-mid-build.log").read_text(), engine_up=False)
    assert tries == 1
    assert result.error == ("the Docker engine at unix:///tmp/x.sock (DOCKER_HOST) stopped answering while app was built "
                            "(failed to solve: Unavailable: error reading from server: EOF); start it with `invoke engine.up`, "
                            "or point DOCKER_HOST at a running engine, then run `invoke build` again")
    assert result.failure.endswith(f"(log: {tmp_path / 'logs/app.log'})")


def test_the_same_output_from_an_engine_that_still_answers_is_the_commands_own_failure(tmp_path):
    result, _ = build_one(tmp_path, (DATA / "engine-gone-mid-build.log").read_text(), engine_up=True)
    assert result.error.startswith("`/usr/bin/docker buildx build --progress ...` exited 1: ERROR: failed to solve: Unavailable")


def test_a_push_whose_registry_went_away_says_so(tmp_path):
    result, tries = build_one(tmp_path, REGISTRY_GONE, engine_up=True, registry=GoneRegistry())
    assert tries == 5  # a refused connection may be a registry restarting: tried again within the bounds, then named
    assert result.error == (f"registry {REGISTRY} stopped answering while app was pushed (connect: connection refused); "
                            "check that it is up and reachable from here, then run `invoke build` again "
                            "(or build for another registry with --registry)")
