"""The command line explains itself: `invoke --list` and `nox -l` read as menus, `invoke --help TASK` covers every flag."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import repository_menu

ROOT = Path(__file__).resolve().parents[2]
namespace = repository_menu()


def all_tasks(collection, prefix=""):
    for name, task in sorted(collection.tasks.items()):
        yield prefix + name, task
    for name, sub in sorted(collection.collections.items()):
        yield from all_tasks(sub, f"{prefix}{name}.")


TASKS = dict(all_tasks(namespace))


def test_the_menu_has_the_everyday_tasks():
    assert {"build", "plan", "affected", "join", "release", "cleanup", "report", "ref", "engine.up", "dev.post-create"} <= set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_has_a_one_line_summary_then_its_details(name):
    lines = (TASKS[name].__doc__ or "").strip().splitlines()
    assert lines, f"{name} has no docstring"
    assert lines[0].endswith("."), f"{name}: the summary line is a sentence"
    assert len(lines[0]) <= 60, f"{name}: the summary fits on one menu line: {lines[0]!r} ({len(lines[0])} chars)"
    assert len(lines) == 1 or lines[1] == "", f"{name}: the summary stands alone; details follow a blank line"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_flag_is_explained(name):
    # get_arguments also refuses help for a flag that does not exist, so stale help fails here too
    missing = [arg.name for arg in TASKS[name].get_arguments() if not (arg.help or "").strip()]
    assert not missing, f"invoke --help {name}: no help for {', '.join('--' + m for m in missing)}"


def test_invoke_list_prints_one_line_per_task_in_80_columns():
    listed = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "80"}, check=True).stdout
    entries = [line for line in listed.splitlines() if line.startswith("  ")]
    continuations = [line for line in entries if line.startswith("   ")]
    assert not continuations, "a task summary wraps in `invoke --list`:\n" + "\n".join(continuations)
    assert sorted(line.split()[0] for line in entries) == sorted(TASKS)


def test_every_nox_session_says_what_it_is_for():
    listed = subprocess.run([sys.executable, "-m", "nox", "-l", "--no-color"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=True).stdout
    sessions = [line for line in listed.splitlines() if line[:2] in ("* ", "- ")]
    assert {line[2:].split(" -> ")[0] for line in sessions} >= {"test", "unit", "lint", "devcontainer"}
    for line in sessions:
        name, _, summary = line[2:].partition(" -> ")
        assert summary.endswith("."), f"nox session {name} has no one-line description"


def _a_flag(name):
    # a copy: Invoke consumes a task's help dict when it reads the task's arguments.
    # A positional argument eats the word as its value, as Invoke does for any word there.
    arguments = copy.deepcopy(TASKS[name]).get_arguments()
    return next((arg for arg in arguments if len(arg.name) > 3 and not arg.positional), None)


@pytest.mark.parametrize("name", sorted(name for name in TASKS if _a_flag(name)))
def test_a_misspelt_flag_of_every_task_is_one_line_with_the_flag_it_resembles(name, tmp_path):
    from tests.unit.cli import run_cli
    flag = _a_flag(name)
    long_name = "--" + flag.name.replace("_", "-")
    typo = long_name[:3] + long_name[4:]  # one letter dropped
    positionals = ["x" for arg in copy.deepcopy(TASKS[name]).get_arguments() if arg.positional]
    done = run_cli(tmp_path, [name, *positionals, typo])
    assert done.code == 1 and done.stdout == ""
    assert done.stderr.strip() == f"error: invoke {name} has no flag {typo}; did you mean {long_name}?"


@pytest.mark.parametrize(("argv", "line"), [
    (["biuld"], "error: invoke has no task biuld; did you mean build?"),
    (["engine.upp"], "error: invoke has no task engine.upp; did you mean engine.up?"),
    (["xyzzy"], "error: invoke has no task xyzzy; `invoke --list` lists the tasks"),
    (["build", "--zzzzzz"], "error: invoke build has no flag --zzzzzz; `invoke --help build` lists its flags"),
    (["build", "--taget=ci"], "error: invoke build has no flag --taget; did you mean --target?"),
    (["plan", "--no-registry-cach"], "error: invoke plan has no flag --no-registry-cach; did you mean --no-registry-cache?"),
    (["build", "--dry-run", "--\x1b[2Jx"], "error: invoke build has no flag '--\\x1b[2Jx'; `invoke --help build` lists its flags"),
])
def test_unknown_words_are_one_line_with_the_likely_fix(argv, line, tmp_path):
    from tests.unit.cli import run_cli
    done = run_cli(tmp_path, argv)
    assert (done.code, done.stderr.strip()) == (1, line)


def test_the_invoke_command_itself_suggests_the_flag(tmp_path):
    (tmp_path / "tasks.py").write_text("from imagegraph.tasks import namespace as ns\n")
    done = subprocess.run([sys.executable, "-m", "invoke", "build", "--taget", "ci"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert (done.returncode, done.stderr) == (1, "error: invoke build has no flag --taget; did you mean --target?\n")
