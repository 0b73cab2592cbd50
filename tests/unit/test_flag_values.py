"""A flag that takes a value gets one: missing, blank or a flag's word in its place is one error line, before anything runs.

Invoke refuses a missing value only for a plain flag seen once: an iterable
flag (`--target`) alone or before another flag silently meant "no target" and
built the whole family. Every case runs the real command line (in-process) in
a family checkout, for every value-taking flag of every task, read from the
collection itself, with process starts and network connections forbidden:
the line must come before the task builds, runs or contacts anything.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Collection, Program, task

from imagegraph.tasks._cli import VALUES, missing_value
from tests.conftest import repository_menu
from tests.unit.cli import NO_REGISTRY, make_family, run_cli

ROOT = Path(__file__).resolve().parents[2]
namespace = repository_menu()


def _tasks(collection: Collection, prefix: str = ""):
    for name, each in sorted(collection.tasks.items()):
        yield prefix + name, each
    for name, sub in sorted(collection.collections.items()):
        yield from _tasks(sub, f"{prefix}{name}.")


def _arguments(each):
    return copy.deepcopy(each).get_arguments()  # a copy: Invoke consumes a task's help dict when it reads its arguments


TASKS = dict(_tasks(namespace))
#: Every flag that takes a value, with its task
VALUE_FLAGS = [(name, arg) for name, each in TASKS.items() for arg in _arguments(each) if arg.kind is not bool]
POSITIONALS = {name: [arg.name for arg in _arguments(each) if arg.positional] for name, each in TASKS.items()}


@pytest.fixture(scope="module")
def family(tmp_path_factory) -> Path:
    return make_family(tmp_path_factory.mktemp("family"))


@pytest.fixture
def nothing_runs(monkeypatch):
    """A task that got as far as starting a process or opening a connection fails the test (it is not a parse error)."""
    def refused(*args, **kwargs):
        raise AssertionError(f"the command went on to run or contact something: {args[:2]!r}")

    monkeypatch.setattr(subprocess, "Popen", refused)
    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setattr(socket.socket, "connect_ex", refused)


def test_the_tasks_have_value_flags_of_both_kinds():
    assert {"target", "force", "platform", "protect", "platforms"} <= {arg.names[0] for _, arg in VALUE_FLAGS if arg.kind is list}
    assert {"registry", "since", "jobs", "bake", "state-dir", "image-store"} <= {arg.names[0] for _, arg in VALUE_FLAGS if arg.kind is str}
    assert POSITIONALS["ref"] == ["image"]


@pytest.mark.parametrize(("name", "flag"), [(name, arg.names[0]) for name, arg in VALUE_FLAGS])
def test_every_value_flag_says_what_it_takes_with_an_example(name, flag):
    assert flag in VALUES, f"invoke {name} --{flag}: add what it takes to imagegraph.tasks._cli.VALUES"
    what, example = VALUES[flag]
    assert what and example and not example.startswith("-")


def _forms(name: str, arg) -> dict[str, list[str]]:
    """argv after the task, for each way of leaving ``arg`` without its value."""
    flag, example = f"--{arg.names[0]}", VALUES[arg.names[0]][1]
    # where the value should be, a flag of the same task (the flag itself when it has no other)
    other = next((each for each in _arguments(TASKS[name]) if each.names[0] != arg.names[0]), arg)
    forms = {
        "missing at the end": [flag],
        "followed by another flag": [flag, f"--{other.names[0]}", *([] if other.kind is bool else [VALUES[other.names[0]][1]])],
        "empty": [flag, ""],
        "empty after =": [f"{flag}="],
        "blank": [flag, "  "],
        "a misspelt flag in its place": [flag, "--zzzz"],
        "given again without a value": [flag, example, flag],
    }
    short = next((f"-{nick}" for nick in arg.nicknames if len(nick) == 1), None)
    if short:
        forms["short flag alone"] = [short]
    return forms


_VALUE = {"empty": "", "empty after =": "", "blank": "  ", "a misspelt flag in its place": "--zzzz"}
CASES = [(name, arg.names[0], form) for name, arg in VALUE_FLAGS for form in _forms(name, arg)]


@pytest.mark.parametrize(("name", "flag", "form"), CASES)
def test_a_value_flag_without_its_value_is_one_line_before_anything_runs(family, nothing_runs, name, flag, form):
    arg = next(arg for task_name, arg in VALUE_FLAGS if (task_name, arg.names[0]) == (name, flag))
    positionals = [VALUES[each][1] for each in POSITIONALS[name] if each != flag]
    done = run_cli(family, [name, *positionals, *_forms(name, arg)[form]])
    assert (done.code, done.stdout) == (1, "")
    assert done.stderr == missing_value(name, flag, value=_VALUE.get(form), positional=arg.positional) + "\n"


def test_the_line_reads_as_the_issue_asks(family, nothing_runs):
    assert run_cli(family, ["build", "--target"]).stderr == "error: --target needs an image name, e.g. --target app\n"
    assert run_cli(family, ["build", "--target", "--force", "app"]).stderr == "error: --target needs an image name, e.g. --target app\n"
    assert run_cli(family, ["build", "--target="]).stderr == ("error: --target is empty; it needs an image name, e.g. --target app, "
                                                            "or leave the flag out\n")
    assert run_cli(family, ["plan", "--since", "--upload-pack=x"]).stderr == (
        "error: --since needs a git ref (branch, tag or commit), not '--upload-pack=x' (which reads as a flag), e.g. --since origin/main\n")


@pytest.mark.parametrize(("argv", "line"), [
    (["ref"], "error: invoke ref needs an image name, e.g. invoke ref app"),
    (["ref", ""], "error: invoke ref IMAGE is empty; it needs an image name, e.g. invoke ref app"),
    (["ref", "--platform", "linux/amd64"], "error: invoke ref needs an image name, e.g. invoke ref app"),
    (["ref", "--zzzz"], "error: invoke ref needs an image name, not '--zzzz' (which reads as a flag), e.g. invoke ref app"),
])
def test_a_positional_argument_is_needed_too(family, nothing_runs, argv, line):
    done = run_cli(family, argv)
    assert (done.code, done.stdout, done.stderr) == (1, "", line + "\n")


def test_values_that_are_given_still_reach_the_task(family):
    done = run_cli(family, ["ref", "app", "--platform", "linux/amd64", "--platform=linux/arm64"])
    assert done.code == 0 and done.stdout.startswith(f"{NO_REGISTRY}/test/app:"), done.stderr
    assert run_cli(family, ["build", "--help"]).code == 0
    assert run_cli(family, ["--list"]).code == 0  # Invoke's own optional-value flags keep Invoke's rules
    assert "--jobs: '-1' is not a whole number" in run_cli(family, ["build", "--dry-run", "--jobs=-1"]).error  # one dash is a value


@pytest.mark.parametrize("argv", [["build", "--help", "--target"], ["ref", "--help"], ["ref", "-h"], ["ref", "--help", "--platform"],
                                   ["plan", "--target", "app", "--help"]])
def test_asking_for_a_tasks_help_shows_it_whatever_follows(family, nothing_runs, argv):
    done = run_cli(family, argv)
    assert done.code == 0 and done.stdout.startswith(f"Usage: invoke [--core-opts] {argv[0]} "), done.stderr


@task(optional=["level"], iterable=["item"])
def _probe(c, level=None, item=None, plain=None):
    """A task with the flag kinds Invoke treats differently: optional-value, iterable, plain."""
    print(f"ran: level={level!r} item={item!r} plain={plain!r}")


@pytest.mark.parametrize(("argv", "flag", "value"), [
    (["--level"], "level", None),  # Invoke would pass True
    (["--level", "--plain", "x"], "level", None),
    (["--item"], "item", None),  # Invoke would pass []
    (["--item", "a", "--item"], "item", None),  # Invoke would pass ["a"]
    (["--plain", "x", "--plain"], "plain", None),  # Invoke would keep "x"
    (["--plain", "--level=1"], "plain", "--level=1"),  # Invoke would pass "--level=1" as the value
    (["--item="], "item", ""),
    (["--plain", "--zzzz"], "plain", "--zzzz"),
])
def test_every_kind_of_value_flag_is_refused_alike(tmp_path, argv, flag, value):
    collection = Collection()
    collection.add_task(_probe, name="probe")
    done = run_program(tmp_path, collection, ["probe", *argv])
    assert (done[0], done[1]) == (1, "")
    assert done[2] == missing_value("probe", flag, value=value) + "\n"
    assert "see `invoke --help probe`" in done[2]


def run_program(root: Path, collection: Collection, argv: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), contextlib.chdir(root):
        try:
            Program(namespace=collection, name="probe", binary="invoke").run(["invoke", *argv], exit=True)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
    return code, stdout.getvalue(), stderr.getvalue()


def test_the_invoke_command_itself_refuses_a_target_without_its_image(tmp_path):
    root = make_family(tmp_path, {"tasks.py": (ROOT / "tasks.py").read_text()})
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp_path), "IMAGEGRAPH_REGISTRY": NO_REGISTRY}
    for argv, line in ((["build", "--target"], "error: --target needs an image name, e.g. --target app"),
                       (["build", "--target", "--force", "app"], "error: --target needs an image name, e.g. --target app"),
                       (["engine.up", "--platforms", ""], "error: --platforms is empty; it needs a platform, e.g. --platforms linux/amd64, "
                                                          "or leave the flag out")):
        done = subprocess.run([sys.executable, "-m", "invoke", *argv], cwd=root, capture_output=True, text=True, timeout=60, env=env)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", line + "\n")
    assert not (root / ".imagegraph").exists()  # no plan, lock or report: nothing ran
