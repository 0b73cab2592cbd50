"""A stop ends the runner's real commands (their whole process group), starts no new one, and the executor says what it left."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from imagegraph.adapters.interrupt import Stop, Stopped
from imagegraph.adapters.runner import Command, Runner
from imagegraph.adapters.wheelhouse import Wheelhouse
from imagegraph.core.config import load_config
from imagegraph.execute import BuildExecutor
from tests.conftest import forced_plan, write_tree
from tests.unit.test_execute import DOCKER_DRIVER, FakeRegistry, NoImages, run_family


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_then_stop(stop: Stop, command: Command, signum: int = signal.SIGINT, after: float = 0.5):
    caught: list[Stopped] = []

    def work() -> None:
        with pytest.raises(Stopped) as raised:
            Runner(stop).run(command)
        caught.append(raised.value)

    worker = threading.Thread(target=work)
    worker.start()
    time.sleep(after)
    started = time.monotonic()
    stop.request(signum)
    worker.join(timeout=10)
    return caught, time.monotonic() - started


def test_a_stop_ends_the_command_and_everything_it_started(tmp_path):
    pids = tmp_path / "pids"
    # the shell's own child in the background: only a signal to the whole group reaches it
    command = Command.of("sh", "-c", f"sleep 60 & echo $! > {pids}; sleep 60")
    (stopped,), seconds = run_then_stop(Stop(), command)
    assert str(stopped) == "interrupted by SIGINT" and seconds < 2
    grandchild = int(pids.read_text())
    time.sleep(0.2)
    assert not alive(grandchild) or Path(f"/proc/{grandchild}/stat").read_text().split()[2] == "Z"  # or a zombie


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    command = Command.of("sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60")
    (stopped,), seconds = run_then_stop(Stop(grace=0.5), command, signal.SIGTERM)
    assert stopped.signum == signal.SIGTERM and 0.4 < seconds < 3


def test_nothing_starts_after_a_stop(tmp_path):
    stop = Stop()
    stop.request(signal.SIGTERM)
    with pytest.raises(Stopped, match="interrupted by SIGTERM"):
        Runner(stop).run(Command.of("sh", "-c", f"touch {tmp_path / 'ran'}"))
    assert not (tmp_path / "ran").exists()


def test_a_runner_without_a_stop_runs_commands_in_the_callers_group():
    output = Runner().run(Command.of(sys.executable, "-c", "import os; print(os.getpgrp())")).output
    assert int(output) == os.getpgrp()


class StoppingRunner(Runner):
    """The first build is the one running when the stop comes: it asks for the stop, as the signal handler would."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(stop)
        self.ran: list[str] = []

    def run(self, command: Command, **_):
        self.stop.check()
        self.ran.append(command.argv[-1])
        self.stop.request(signal.SIGINT)
        self.stop.check()


def test_the_executor_marks_the_running_image_interrupted_and_the_rest_not_built(tmp_path):
    write_tree(tmp_path, {"images.yaml": "registry: 127.0.0.1:5000\nnamespace: unit\nimages:\n"
                                         "  base: {dockerfile: Dockerfile, push: false}\n"
                                         "  app: {dockerfile: Dockerfile, parent: base, push: false}\n"
                                         "  other: {dockerfile: Dockerfile, push: false}\n",
                          "Dockerfile": "FROM python:3.11-slim\n"})
    config = load_config(tmp_path)
    runner = StoppingRunner(Stop())
    executor = BuildExecutor(config.root, DOCKER_DRIVER, runner, Wheelhouse(config.root, runner), local=NoImages(), registry=None,
                        log_dir=tmp_path / "logs", jobs=1, say=lambda line: None)
    results = {r.name: r for r in executor.run(forced_plan(config, executor.contexts_dir, builder=executor.builder))}
    assert len(runner.ran) == 1
    assert {name: (r.ok, r.stopped) for name, r in results.items()} == {
        "base": (False, "interrupted"), "app": (False, "not built"), "other": (False, "not built")}
    assert results["app"].error == "not built: the run was stopped by SIGINT first"


def test_a_stopped_bake_marks_every_image_in_it_interrupted(tmp_path):
    runner = StoppingRunner(Stop())
    results = run_family(tmp_path, runner, FakeRegistry(set()))
    assert runner.ran == ["app"]  # the one bake of base and app (its last argument is its last target)
    assert {name: (r.ok, r.stopped, r.error) for name, r in results.items()} == {
        "base": (False, "interrupted", "interrupted by SIGINT"), "app": (False, "interrupted", "interrupted by SIGINT")}
