"""The CI workflows agree with images.yaml, the Invoke tasks and the Nox sessions.

.github/ is read as data. Each check returns the problems it finds, one
line each, so the real workflows are checked by asserting there are none,
and the small broken workflows further down prove that every check can fail.
The plan's matrices (one per depth of images.yaml) are tested first.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import Collection, Program
from invoke.exceptions import ParseError
from invoke.parser import Parser, ParserContext

from imagegraph.core.changes import BaseRef, Explanation
from imagegraph.core.config import Config, load_config
from imagegraph.core.fingerprint import fingerprint_images
from imagegraph.core.graph import ancestors, with_ancestors
from imagegraph.core.plan import affected
from imagegraph.presentation.ci_matrix import affected_matrix, github_outputs
from tests.conftest import FAMILY, FAMILY_FILES, repository_menu, write_tree
from tests.unit.cli import make_family, run_cli
from tests.unit.test_fingerprint import MemorySources

ROOT = Path(__file__).resolve().parents[2]
namespace = repository_menu()

# -- the plan: one job matrix per depth ----------------------------------------------


def explained(causes: Mapping[str, tuple[str, ...]], same: set[str]) -> Explanation:
    return Explanation(base=BaseRef("a" * 40, "--since main", True), changes=(), causes=dict(causes), same_as_base=frozenset(same))


def plan_matrix(root: Path, causes: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    config = load_config(root)
    files = {path.relative_to(root).as_posix(): path.read_text() for path in root.rglob("*") if path.is_file()}
    fingerprints = fingerprint_images(config, MemorySources(files))
    changed = {name for name in config.names if {name, *ancestors(config, name)} & set(causes)}
    explanation = explained(causes, set(config.names) - changed)
    return affected_matrix(config, explanation, affected(config, fingerprints, explanation))


def test_a_torch_change_plans_base_at_level_0_and_its_children_at_level_1(family):
    matrix = plan_matrix(family, {"base": ("requirements/requirements-torch.txt",)})
    assert [(level["depth"], level["images"]) for level in matrix["levels"]] == [(0, ["base"]), (1, ["ci", "app", "devcontainer"])]
    assert [row["image"] for row in matrix["levels"][1]["matrix"]["include"]] == ["ci", "app", "devcontainer"]
    assert matrix["levels"][1]["matrix"]["include"][0]["parent"] == "base"
    assert matrix["matrix"]["include"] == [row for level in matrix["levels"] for row in level["matrix"]["include"]]


def test_every_depth_has_a_level_even_when_nothing_there_changed(family):
    code = plan_matrix(family, {"app": ("src/svc/app.py",)})
    assert [(level["depth"], level["images"]) for level in code["levels"]] == [(0, []), (1, ["app"])]
    docs = plan_matrix(family, {})
    assert docs["images"] == [] and [level["matrix"] for level in docs["levels"]] == [{"include": []}, {"include": []}]


def test_a_grandchild_gets_a_level_of_its_own(tmp_path):
    deeper = FAMILY + "  app-debug:\n    dockerfile: docker/Dockerfile.debug\n    parent: app\n"
    write_tree(tmp_path, {"images.yaml": deeper, **FAMILY_FILES, "docker/Dockerfile.debug": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"})
    matrix = plan_matrix(tmp_path, {"app": ("src/svc/app.py",)})
    assert [(level["depth"], level["images"]) for level in matrix["levels"]] == [(0, []), (1, ["app"]), (2, ["app-debug"])]


def test_step_outputs_are_one_compact_json_line_each(family):
    outputs = github_outputs(plan_matrix(family, {"app": ("src/svc/app.py",)}))
    assert list(outputs) == ["images", "level-0", "level-0-platforms", "level-1", "level-1-platforms", "join"]
    assert outputs["level-1-platforms"] == '{"include":[]}' and json.loads(outputs["join"]) == {"needed": False, "images": [], "command": []}
    assert outputs["images"] == '["app"]' and outputs["level-0"] == '{"include":[]}'
    assert json.loads(outputs["level-1"])["include"][0]["image"] == "app"
    torch = github_outputs(plan_matrix(family, {"base": ("requirements/requirements-torch.txt",)}))
    base, = json.loads(torch["level-0"])["include"]
    assert base["image"] == "base" and "parent" not in base  # no null in a GitHub matrix
    assert [row["parent"] for row in json.loads(torch["level-1"])["include"]] == ["base"] * 3
    assert all(value == json.dumps(json.loads(value), separators=(",", ":")) for value in outputs.values())


# -- the plan with runners: one job per image and platform, then the join ------------------------


RUNNERS = "runners: {linux/arm64: ubuntu-24.04-arm, linux/amd64: ubuntu-latest}\n"


def family_with_runners(root: Path, runners: str = RUNNERS, *, family: str = FAMILY, **extra: str) -> Path:
    write_tree(root, {"images.yaml": family + runners, **FAMILY_FILES, **extra})
    return root


def test_without_runners_every_image_is_built_whole_and_nothing_is_joined(family):
    matrix = plan_matrix(family, {"base": ("requirements/requirements-torch.txt",)})
    assert matrix["runners"] == {}
    assert [level["platform_matrix"] for level in matrix["levels"]] == [{"include": []}, {"include": []}]
    assert [len(level["matrix"]["include"]) for level in matrix["levels"]] == [1, 3]
    assert matrix["join"] == {"needed": False, "images": [], "command": []}


def test_with_runners_each_platform_of_each_image_is_a_job_on_its_runner(tmp_path):
    matrix = plan_matrix(family_with_runners(tmp_path), {"base": ("requirements/requirements-torch.txt",)})
    assert matrix["runners"] == {"linux/arm64": "ubuntu-24.04-arm", "linux/amd64": "ubuntu-latest"}
    assert [level["matrix"] for level in matrix["levels"]] == [{"include": []}, {"include": []}]  # no job builds an image whole
    assert [level["images"] for level in matrix["levels"]] == [["base"], ["ci", "app", "devcontainer"]]
    base = {row["image"]: row for row in matrix["matrix"]["include"]}["base"]
    jobs = matrix["levels"][0]["platform_matrix"]["include"]
    assert [(job["image"], job["platform"], job["runner"], job["suffix"], job["tag"]) for job in jobs] == [
        ("base", "linux/amd64", "ubuntu-latest", "amd64", f"{base['fingerprint']}-amd64"),
        ("base", "linux/arm64", "ubuntu-24.04-arm", "arm64", f"{base['fingerprint']}-arm64")]
    assert jobs[1]["command"] == ["invoke", "build", "--target", "base", "--only-platform", "linux/arm64", "--no-tags"]
    assert all(job["fingerprint"] == base["fingerprint"] and job["depth"] == 0 for job in jobs)
    # ci, app and devcontainer declare linux/amd64 alone: one job each, pushed under the fingerprint tag itself
    children = matrix["levels"][1]["platform_matrix"]["include"]
    assert [(job["image"], job["platform"], job["runner"], job["parent"]) for job in children] == [
        (name, "linux/amd64", "ubuntu-latest", "base") for name in ("ci", "app", "devcontainer")]
    assert all(job["tag"] == job["fingerprint"] for job in children)
    # only base has platforms to join; the join moves no branch tags (the family job does, after the tests)
    assert matrix["join"] == {"needed": True, "images": ["base"], "command": ["invoke", "join", "--target", "base", "--no-tags"]}


def test_an_image_of_one_platform_needs_no_join(tmp_path):
    matrix = plan_matrix(family_with_runners(tmp_path), {"app": ("src/svc/app.py",)})
    job, = matrix["levels"][1]["platform_matrix"]["include"]
    assert (job["image"], job["platform"], job["tag"]) == ("app", "linux/amd64", job["fingerprint"])
    assert matrix["levels"][0]["platform_matrix"] == {"include": []}
    assert matrix["join"] == {"needed": False, "images": [], "command": []}
    nothing = plan_matrix(family_with_runners(tmp_path), {})
    assert [level["platform_matrix"] for level in nothing["levels"]] == [{"include": []}, {"include": []}]
    assert not nothing["join"]["needed"]


def test_a_platform_without_a_runner_goes_to_the_default_one_and_its_rows_name_none(tmp_path):
    root = family_with_runners(tmp_path, "runners: {linux/arm64: arm-builder}\n")
    matrix = plan_matrix(root, {"base": ("requirements/requirements-torch.txt",)})
    assert [(job["platform"], job["runner"]) for job in matrix["levels"][0]["platform_matrix"]["include"]] == [
        ("linux/amd64", None), ("linux/arm64", "arm-builder")]
    rows = json.loads(github_outputs(matrix)["level-0-platforms"])["include"]
    assert "runner" not in rows[0] and rows[1]["runner"] == "arm-builder"  # no null in a GitHub matrix
    assert all("parent" not in row for row in rows)


def test_a_grandchild_of_two_platforms_is_joined_with_its_parent_and_grandparent(tmp_path):
    deeper = ("  app-debug:\n    dockerfile: docker/Dockerfile.debug\n    parent: app\n    platforms: [linux/amd64, linux/arm64]\n"
              "  tool:\n    dockerfile: docker/Dockerfile.debug\n    parent: app\n    platforms: [linux/arm64]\n    push: false\n")
    app_of_two = FAMILY.replace('inputs: ["src/svc/**"]\n', 'inputs: ["src/svc/**"]\n    platforms: [linux/amd64, linux/arm64]\n')
    root = family_with_runners(tmp_path, deeper + RUNNERS, family=app_of_two,
                               **{"docker/Dockerfile.debug": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"})
    matrix = plan_matrix(root, {"base": ("requirements/requirements-torch.txt",)})
    assert [job["platform"] for job in matrix["levels"][1]["platform_matrix"]["include"] if job["image"] == "app"] == [
        "linux/amd64", "linux/arm64"]
    assert [level["images"] for level in matrix["levels"]] == [["base"], ["ci", "app", "devcontainer"], ["app-debug", "tool"]]
    assert [(job["image"], job["platform"], job["parent"]) for job in matrix["levels"][2]["platform_matrix"]["include"]] == [
        ("app-debug", "linux/amd64", "app"), ("app-debug", "linux/arm64", "app"), ("tool", "linux/arm64", "app")]
    # tool is not pushed (no part to join) and has one platform anyway
    assert matrix["join"]["images"] == ["base", "app", "app-debug"]
    assert matrix["join"]["command"] == ["invoke", "join", "--target", "base,app,app-debug", "--no-tags"]
    outputs = github_outputs(matrix)
    assert [key for key in outputs if key.startswith("level-2")] == ["level-2", "level-2-platforms"]
    assert json.loads(outputs["join"]) == matrix["join"]
    assert len(json.loads(outputs["level-2-platforms"])["include"]) == 3


def test_affected_on_the_command_line_gives_each_job_a_command_the_tasks_take(tmp_path):
    root = make_family(tmp_path / "repo", {"images.yaml": FAMILY + "runners: {linux/arm64: ubuntu-24.04-arm}\n"})
    output = tmp_path / "github-output"
    argv = ["affected", "--force", "base", "--platform", "linux/amd64,linux/arm64", "--since", "main", "--json", "--github-output"]
    run = run_cli(root, argv, {"GITHUB_OUTPUT": str(output)})
    assert run.code == 0, run.stderr
    matrix = json.loads(run.stdout)
    assert dict(line.split("=", 1) for line in output.read_text().splitlines()) == github_outputs(matrix)
    jobs = [row for level in matrix["levels"] for row in level["platform_matrix"]["include"]]
    assert [(row["image"], row["platform"], row.get("runner")) for row in jobs][:2] == [
        ("base", "linux/amd64", None), ("base", "linux/arm64", "ubuntu-24.04-arm")]
    assert len(jobs) == 8 and matrix["join"]["images"] == ["base", "ci", "app", "devcontainer"]
    # each job decides as the plan did: the same platforms (part of the fingerprints), base commit and forced images
    assert jobs[1]["command"] == ["invoke", "build", "--target", "base", "--only-platform", "linux/arm64",
                                  "--platform", "linux/amd64,linux/arm64", "--since", "main", "--force", "base", "--no-tags"]
    for command in [row["command"] for row in jobs] + [matrix["join"]["command"]]:
        (task, args), = invoke_tasks(namespace, command[1:])  # Invoke itself parses it against the real tasks
        assert (args["platform"], args["since"], args["no-tags"]) == (["linux/amd64,linux/arm64"], "main", True)
        assert task == "join" or (args["force"], args["target"]) == ([args["target"][0]], [args["target"][0]])


def test_affected_writes_step_outputs_where_github_says(tmp_path, monkeypatch):
    from imagegraph.core.errors import ConfigError
    from imagegraph.tasks.build import _write_step_outputs

    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    with pytest.raises(ConfigError, match=r"\$GITHUB_OUTPUT is not set"):
        _write_step_outputs({"images": "[]"})
    path = tmp_path / "output"
    path.write_text("earlier=1\n")
    monkeypatch.setenv("GITHUB_OUTPUT", str(path))
    _write_step_outputs({"images": '["app"]', "level-0": '{"include":[]}'})
    assert path.read_text() == 'earlier=1\nimages=["app"]\nlevel-0={"include":[]}\n'


# -- reading workflows ---------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    """What the workflows are checked against, and the workflows (file name -> parsed YAML)."""

    workflows: Mapping[str, Any]
    actions: Mapping[str, Any]  # local actions, by the `uses:` that names them (./.github/actions/NAME)
    config: Config
    tasks: Collection


def load_project(root: Path) -> Project:
    github = root / ".github"
    workflows = {path.name: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted((github / "workflows").glob("*.y*ml"))}
    actions = {f"./.github/actions/{path.parent.name}": yaml.safe_load(path.read_text(encoding="utf-8"))
               for path in sorted((github / "actions").glob("*/action.y*ml"))}
    return Project(workflows, actions, load_config(root), namespace)


def triggers(workflow: Mapping[str, Any]) -> Mapping[str, Any]:
    # YAML 1.1 reads a bare `on` key as the boolean True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on or {}


def jobs(workflow: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield from (workflow.get("jobs") or {}).items()


def steps(project: Project, job: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """A job's steps, with the steps of a local composite action after the step that uses it."""
    for step in job.get("steps") or ():
        yield step
        action = project.actions.get(step.get("uses", ""))
        if action is not None:
            yield from (action.get("runs") or {}).get("steps") or ()


_EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}
_PREFIXES = {"sudo", "env", "exec", "time", "command"}


def commands(script: str) -> Iterator[list[str]]:
    """Each simple command of a `run:` script as its argv; a `${{ ... }}` expression stays one word."""
    expressions: list[str] = []

    def hide(match: re.Match[str]) -> str:
        expressions.append("${{ " + " ".join(match.group(0)[3:-2].split()) + " }}")
        return f"__expression{len(expressions) - 1}__"

    def show(word: str) -> str:
        return re.sub(r"__expression(\d+)__", lambda m: expressions[int(m.group(1))], word)

    for line in _EXPRESSION.sub(hide, script).replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        argv: list[str] = []
        redirect = False
        for token in lexer:
            if token in _SEPARATORS:
                if argv:
                    yield argv
                argv = []
            elif set(token) <= set("<>&"):
                redirect = True
            elif redirect:
                redirect = False
            else:
                argv.append(show(token))
        if argv:
            yield argv


def program(argv: list[str]) -> list[str]:
    """The command proper: without leading VAR=value and sudo/env, and `python -m X` read as X."""
    words = list(argv)
    while words and (re.match(r"^[A-Za-z_]\w*=", words[0]) or words[0] in _PREFIXES):
        words.pop(0)
    if len(words) >= 3 and re.fullmatch(r"python[\d.]*", words[0]) and words[1] == "-m":
        words = words[2:]
    return words


def invoke_tasks(tasks: Collection, argv: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The tasks an `invoke ...` argv runs, with their flags, parsed by Invoke itself against ``tasks``; ParseError when it cannot."""
    parser = Parser(initial=ParserContext(args=Program().core_args()), contexts=tasks.to_contexts())
    core, *called = parser.parse_argv(argv)
    if not called and not any(arg.got_value for arg in core.args.values()):
        return [(tasks.default, {})] if tasks.default else []
    return [(context.name, {name: arg.value for name, arg in context.args.items() if arg.got_value}) for context in called]


def nox_sessions_called(argv: list[str]) -> list[str]:
    """The sessions a `nox ...` argv names with -s/-e/--session(s); none for nox's defaults."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("-s", "-e", "--session", "--sessions", dest="sessions", nargs="*", action="extend", default=[])
    known, _ = parser.parse_known_args(argv[: argv.index("--")] if "--" in argv else argv)
    return known.sessions


@dataclass(frozen=True)
class Run:
    """One command a step runs."""

    where: str  # "ci.yml: level-1"
    step: Mapping[str, Any]
    argv: list[str]  # program(): the command proper


def runs(project: Project, workflow: Mapping[str, Any], job_id: str, where: str) -> Iterator[Run]:
    for step in steps(project, workflow["jobs"][job_id]):
        if isinstance(step.get("run"), str):
            for argv in commands(step["run"]):
                words = program(argv)
                if words:
                    yield Run(where, step, words)


def every_run(project: Project) -> Iterator[Run]:
    for file, workflow in project.workflows.items():
        for job_id, _ in jobs(workflow):
            yield from runs(project, workflow, job_id, f"{file}: {job_id}")


def task_calls(project: Project, workflow: Mapping[str, Any], job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The Invoke tasks a job runs (command lines Invoke cannot parse are `unknown_tasks`' to report)."""
    called: list[tuple[str, dict[str, Any]]] = []
    for run in runs(project, workflow, job_id, job_id):
        if run.argv[0] == "invoke":
            with contextlib.suppress(ParseError):
                called.extend(invoke_tasks(project.tasks, run.argv[1:]))
    return called


def session_calls(project: Project, workflow: Mapping[str, Any], job_id: str) -> list[str]:
    return [name for run in runs(project, workflow, job_id, job_id) if run.argv[0] == "nox" for name in nox_sessions_called(run.argv[1:])]


def depth(config: Config, name: str) -> int:
    return len(ancestors(config, name))


def needs(job: Mapping[str, Any]) -> list[str]:
    value = job.get("needs") or []
    return [value] if isinstance(value, str) else list(value)


def waits_for(workflow: Mapping[str, Any], job_id: str) -> set[str]:
    """Every job ``job_id`` waits for, directly or through others."""
    found: set[str] = set()
    frontier = needs(workflow["jobs"][job_id])
    while frontier:
        name = frontier.pop()
        if name not in found and name in workflow["jobs"]:
            found.add(name)
            frontier.extend(needs(workflow["jobs"][name]))
    return found


_LEVEL_MATRIX = re.compile(r"^\$\{\{\s*fromJSON\(\s*needs\.([\w-]+)\.outputs\.(level-(\d+)(-platforms)?)\s*\)\s*\}\}$")
_STEP_OUTPUT = re.compile(r"^\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}$")
_MATRIX_IMAGE = re.compile(r"^\$\{\{\s*matrix\.image\s*\}\}$")


def plan_output(project: Project, workflow: Mapping[str, Any], job_id: str, key: str) -> str | None:
    """The step output of `invoke affected --github-output` that job ``key`` of plan job ``job_id`` passes on, when it is one."""
    output = _STEP_OUTPUT.match(str((workflow["jobs"][job_id].get("outputs") or {}).get(key, "")))
    if output is None:
        return None
    step = next((s for s in steps(project, workflow["jobs"][job_id]) if s.get("id") == output.group(1)), None)
    if step is None or not isinstance(step.get("run"), str):
        return None
    for argv in map(program, commands(step["run"])):
        if argv and argv[0] == "invoke":
            with contextlib.suppress(ParseError):
                if any(task == "affected" and args.get("github-output") for task, args in invoke_tasks(project.tasks, argv[1:])):
                    return output.group(2)
    return None


def plan_matrix_of(project: Project, workflow: Mapping[str, Any], job_id: str) -> tuple[int, bool] | None:
    """(depth, per platform) of the matrix job ``job_id`` runs, when that matrix is the plan's: a level-N (one job per image) or
    level-N-platforms (one per image and platform) output of `invoke affected --github-output`, passed on as it is."""
    matrix = (workflow["jobs"][job_id].get("strategy") or {}).get("matrix")
    found = _LEVEL_MATRIX.match(matrix) if isinstance(matrix, str) else None
    if found is None or found.group(1) not in needs(workflow["jobs"][job_id]) or found.group(1) not in workflow["jobs"]:
        return None
    if plan_output(project, workflow, found.group(1), found.group(2)) != found.group(2):
        return None
    return int(found.group(3)), found.group(4) is not None


def plan_level(project: Project, workflow: Mapping[str, Any], job_id: str) -> int | None:
    """The depth whose matrix job ``job_id`` runs, of either kind (see :func:`plan_matrix_of`)."""
    found = plan_matrix_of(project, workflow, job_id)
    return None if found is None else found[0]


def build_targets(project: Project, workflow: Mapping[str, Any], job_id: str) -> list[list[str]]:
    """The --target values of each `invoke build` a job runs ([] for a build of the whole family)."""
    return [[t.strip() for value in args.get("target") or () for t in value.split(",") if t.strip()]
            for task, args in task_calls(project, workflow, job_id) if task == "build"]


# -- the checks: each returns its problems, one line each ------------------------------


def unknown_tasks(project: Project) -> list[str]:
    problems = []
    for run in every_run(project):
        if run.argv[0] == "invoke":
            try:
                invoke_tasks(project.tasks, run.argv[1:])
            except ParseError as err:
                problems.append(f"{run.where}: `{shlex.join(run.argv)}`: {str(err).removeprefix('error: ')}")
    return problems


def unknown_sessions(project: Project, sessions: frozenset[str]) -> list[str]:
    return [f"{run.where}: `{shlex.join(run.argv)}`: noxfile.py has no session {name!r} (`nox -l` lists them)"
            for run in every_run(project) if run.argv[0] == "nox" for name in nox_sessions_called(run.argv[1:]) if name not in sessions]


def unbuilt_images(project: Project) -> list[str]:
    """Images no workflow builds: `invoke build` builds all, `--target X` X and its ancestors, `--target ${{ matrix.image }}` a plan level."""
    config = project.config
    built: set[str] = set()
    problems: list[str] = []
    for file, workflow in project.workflows.items():
        for job_id, _ in jobs(workflow):
            level = plan_level(project, workflow, job_id)
            for targets in build_targets(project, workflow, job_id):
                if not targets:
                    built.update(config.names)
                for target in targets:
                    if _MATRIX_IMAGE.match(target) and level is not None:
                        built.update(name for name in config.names if depth(config, name) == level)
                    elif target in config.names:
                        built.update(with_ancestors(config, [target]))
                    else:
                        problems.append(f"{file}: {job_id}: `invoke build --target {target}` names no image of images.yaml, "
                                        "nor a matrix from the plan's level-N output")
    problems += [f"image {name} (depth {depth(config, name)}) is built by no workflow" for name in config.names if name not in built]
    return problems


_ONLY_PLATFORM = re.compile(r"^\$\{\{\s*matrix\.platform\s*\}\}$")


def level_jobs(project: Project) -> dict[tuple[int, bool], list[tuple[str, str]]]:
    """(depth, per platform) -> the (file, job) that build that matrix of the plan with `invoke build --target ${{ matrix.image }}`,
    and, per platform, `--only-platform ${{ matrix.platform }}`."""
    found: dict[tuple[int, bool], list[tuple[str, str]]] = {}
    for file, workflow in project.workflows.items():
        for job_id, _ in jobs(workflow):
            kind = plan_matrix_of(project, workflow, job_id)
            if kind is None:
                continue
            calls = [args for task, args in task_calls(project, workflow, job_id) if task == "build"]
            if any(_MATRIX_IMAGE.match(t.strip()) for args in calls for value in args.get("target") or () for t in value.split(",")
                   if kind[1] == bool(_ONLY_PLATFORM.match(str(args.get("only-platform", ""))))):
                found.setdefault(kind, []).append((file, job_id))
    return found


def missing_levels(project: Project) -> list[str]:
    """Every depth of images.yaml needs a job that builds the plan's level (one per image) and one that builds it per platform
    (one per image and platform, with runners:), each waiting for every build job of the depth before."""
    config = project.config
    deepest = max(depth(config, name) for name in config.names)
    found = level_jobs(project)
    problems = []
    for level in range(deepest + 1):
        names = ", ".join(name for name in config.names if depth(config, name) == level)
        if (level, False) not in found:
            problems.append(f"no job builds depth {level} of images.yaml ({names}): add one whose matrix is the plan's level-{level} "
                            "output and that runs `invoke build --target ${{ matrix.image }}`")
        if (level, True) not in found:
            problems.append(f"no job builds depth {level} of images.yaml ({names}) per platform: add one whose matrix is the plan's "
                            f"level-{level}-platforms output, on `runs-on: ${{{{ matrix.runner }}}}`, that runs "
                            "`invoke build --target ${{ matrix.image }} --only-platform ${{ matrix.platform }}`")
    for (level, _), built in found.items():
        for file, job_id in built:
            before = {j for kind in (False, True) for f, j in found.get((level - 1, kind), ()) if f == file}
            missed = before - waits_for(project.workflows[file], job_id)
            if level > 0 and (missed or not before):
                problems.append(f"{file}: {job_id} builds depth {level} without waiting for depth {level - 1} "
                                f"({', '.join(sorted(missed)) or 'no job in this workflow'}): add it to `needs:`")
    return problems


def builds_images(project: Project, workflow: Mapping[str, Any]) -> bool:
    return any(task in ("build", "affected") for job_id, _ in jobs(workflow) for task, _ in task_calls(project, workflow, job_id)) or any(
        "test" in session_calls(project, workflow, job_id) for job_id, _ in jobs(workflow))


def path_filters(project: Project) -> list[str]:
    """A workflow that builds images runs on every change: the plan, not a copy of the inputs in YAML, decides what to build."""
    return [f"{file}: `on: {event}` filters on {key}: the plan (`invoke affected`) decides what to build"
            for file, workflow in project.workflows.items() if builds_images(project, workflow)
            for event, settings in triggers(workflow).items() if isinstance(settings, Mapping)
            for key in ("paths", "paths-ignore") if key in settings]


_DOCKER_WRITES = {("build",), ("push",), ("tag",), ("buildx", "build"), ("buildx", "bake"), ("image", "build"), ("image", "push"),
                  ("image", "tag"), ("manifest", "push"), ("builder", "build")}
_BUILD_ACTIONS = ("docker/build-push-action@", "docker/bake-action@")


def direct_docker(project: Project) -> list[str]:
    """Images are built, pushed and tagged by `invoke build`/`release` only."""
    problems = []
    for run in every_run(project):
        if run.argv[0] in ("docker", "podman", "buildah"):
            verbs = tuple(word for word in run.argv[1:] if not word.startswith("-"))[:2]
            if verbs[:1] in _DOCKER_WRITES or verbs in _DOCKER_WRITES:
                problems.append(f"{run.where}: `{shlex.join(run.argv)}`: build and push through `invoke build`")
    for file, workflow in project.workflows.items():
        for job_id, job in jobs(workflow):
            problems += [f"{file}: {job_id}: uses {step['uses']}: build and push through `invoke build`"
                         for step in steps(project, job) if str(step.get("uses", "")).startswith(_BUILD_ACTIONS)]
    return problems


_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


def unpinned_actions(project: Project) -> list[str]:
    problems = []
    for file, workflow in project.workflows.items():
        for job_id, job in jobs(workflow):
            for uses in [job.get("uses"), *(step.get("uses") for step in steps(project, job))]:
                if not uses:
                    continue
                if uses.startswith("./"):
                    if uses not in project.actions and not (ROOT / uses).is_file():
                        problems.append(f"{file}: {job_id}: {uses} is no local action (.github/actions/NAME/action.yml)")
                elif not _PINNED.match(uses):
                    problems.append(f"{file}: {job_id}: {uses}: pin a major version (@v4) or a commit SHA")
    return problems


def shallow_checkouts(project: Project) -> list[str]:
    """The plan compares with an earlier commit: every checkout fetches the whole history."""
    return [f"{file}: {job_id}: {step['uses']} without `fetch-depth: 0`: the plan needs the git history"
            for file, workflow in project.workflows.items() for job_id, job in jobs(workflow)
            for step in steps(project, job) if str(step.get("uses", "")).startswith("actions/checkout@")
            and (step.get("with") or {}).get("fetch-depth") != 0]


def broad_permissions(project: Project) -> list[str]:
    """Read-only by default; packages: write only for the jobs that push, move tags or delete."""
    problems = []
    for file, workflow in project.workflows.items():
        top = workflow.get("permissions")
        if top is None:
            problems.append(f"{file}: no top-level `permissions:`: every job gets the repository's default token")
        elif top == "write-all" or (isinstance(top, Mapping) and "write" in top.values()):
            problems.append(f"{file}: top-level `permissions:` grant write to every job; grant it in the jobs that need it")
        for job_id, job in jobs(workflow):
            calls = task_calls(project, workflow, job_id)
            writes = (any(task in ("build", "release", "join") or (task == "cleanup" and args.get("yes")) for task, args in calls)
                      or "test" in session_calls(project, workflow, job_id))
            granted = isinstance(job.get("permissions"), Mapping) and job["permissions"].get("packages") == "write"
            if granted and not writes:
                problems.append(f"{file}: {job_id} has packages: write but pushes, tags and deletes nothing")
            if writes and not granted:
                problems.append(f"{file}: {job_id} pushes, tags or deletes images without `permissions: {{packages: write}}`")
    return problems


def dangling_needs(project: Project) -> list[str]:
    return [f"{file}: {job_id} needs {name}, which is no job of {file}"
            for file, workflow in project.workflows.items() for job_id, job in jobs(workflow) for name in needs(job)
            if name not in workflow["jobs"]]


_NEEDS_OUTPUT = re.compile(r"\bneeds\.([\w-]+)\.outputs\.([\w-]+)")


def unknown_outputs(project: Project, written: frozenset[str]) -> list[str]:
    """Each `needs.JOB.outputs.KEY` a job reads is an output of a job it needs; each output passed on from `invoke affected
    --github-output` is one that it writes (``written``: the keys it writes for this images.yaml)."""
    problems = []
    for file, workflow in project.workflows.items():
        for job_id, job in jobs(workflow):
            text = yaml.safe_dump(dict(job), width=10**6)
            for other, key in dict.fromkeys(_NEEDS_OUTPUT.findall(text)):
                if other not in needs(job) or key not in (workflow["jobs"].get(other, {}).get("outputs") or {}):
                    problems.append(f"{file}: {job_id} reads needs.{other}.outputs.{key}, which no job it needs gives")
            for key in job.get("outputs") or {}:
                passed = plan_output(project, workflow, job_id, key)
                if passed is not None and passed not in written:
                    problems.append(f"{file}: {job_id}: output {key} passes on {passed}, which `invoke affected --github-output` "
                                    f"does not write (it writes {', '.join(sorted(written))})")
    return problems


_MATRIX_FIELD = re.compile(r"\bmatrix\.([A-Za-z_][\w-]*)(\s*\|\|)?")


def matrix_fields(project: Project, rows: Mapping[bool, list[Mapping[str, Any]]]) -> list[str]:
    """Each `matrix.FIELD` a plan matrix job uses is in every row the plan emits for that kind of job (``rows``: per platform or
    not, as :func:`github_outputs` writes them); one with a fallback (`matrix.runner || 'ubuntu-latest'`) in at least one."""
    problems = []
    for file, workflow in project.workflows.items():
        for job_id, job in jobs(workflow):
            kind = plan_matrix_of(project, workflow, job_id)
            if kind is None:
                continue
            text = yaml.safe_dump({k: v for k, v in job.items() if k != "strategy"}, width=10**6)
            for field, fallback in dict.fromkeys(_MATRIX_FIELD.findall(text)):
                having = [row for row in rows[kind[1]] if field in row]
                if not having or (not fallback and len(having) < len(rows[kind[1]])):
                    problems.append(f"{file}: {job_id} uses matrix.{field}, which {'no' if not having else 'not every'} row of the plan's "
                                    f"level-{kind[0]}{'-platforms' if kind[1] else ''} output has"
                                    f"{'' if having else ' (it has ' + ', '.join(sorted({k for r in rows[kind[1]] for k in r})) + ')'}")
    return problems


_EXPRESSION_WORD = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_JOIN_IMAGES = re.compile(r"join\(\s*fromJSON\(\s*needs\.[\w-]+\.outputs\.join\s*\)\.images\s*,\s*','\s*\)")


def resolved(word: str, row: Mapping[str, Any], env: Mapping[str, str], join: Mapping[str, Any]) -> str | None:
    """A command word with the plan's values put in: `${{ matrix.X }}` (with or without `|| 'fallback'`), and `$VAR` of a step's
    env set to `${{ join(fromJSON(needs.plan.outputs.join).images, ',') }}`; None for anything else that is not plain text."""
    if word.startswith("$") and not word.startswith("${{") and word[1:] in env:
        word = env[word[1:]]
    found = _EXPRESSION_WORD.fullmatch(word)
    if found is None:
        return None if "${{" in word or word.startswith("$") else word
    expression = found.group(1)
    field = re.fullmatch(r"matrix\.([\w-]+)(?:\s*\|\|\s*'([^']*)')?", expression)
    if field is not None:
        value = row.get(field.group(1), field.group(2))
        return None if value is None else str(value)
    return ",".join(join["images"]) if _JOIN_IMAGES.fullmatch(expression) else None


def commands_unlike_plan(project: Project, plan: Mapping[str, Any]) -> list[str]:
    """A plan job runs exactly the command the plan gives it: each platform job a row's `command`, the join job the join's."""
    problems = []
    for file, workflow in project.workflows.items():
        for job_id, job in jobs(workflow):
            kind = plan_matrix_of(project, workflow, job_id)
            wanted = "build" if kind is not None and kind[1] else "join"
            rows = plan["levels"][kind[0]]["platform_matrix"]["include"] if kind is not None and kind[0] < len(plan["levels"]) else []
            for step in steps(project, job):
                if not isinstance(step.get("run"), str):
                    continue
                for argv in map(program, commands(step["run"])):
                    if argv[:2] != ["invoke", wanted] or (wanted == "join" and not plan["join"]["needed"]):
                        continue
                    env = {key: str(value) for key, value in (step.get("env") or {}).items()}
                    for row in (rows if wanted == "build" else [{}]):
                        want = row["command"] if wanted == "build" else plan["join"]["command"]
                        got = [resolved(word, row, env, plan["join"]) for word in argv]
                        if got != want:
                            shown_got = shlex.join(w if w is not None else "<?>" for w in got)
                            problems.append(f"{file}: {job_id} runs `{shown_got}` where the plan gives `{shlex.join(want)}`")
                            break
    return problems


def unjoined(project: Project) -> list[str]:
    """Where images are built per platform, one job joins them, after every platform job and when the plan says so, moving no
    tags; the suite and the job that moves the branch tags wait for it."""
    problems = []
    for file, workflow in project.workflows.items():
        platform_jobs = sorted(job_id for job_id, _ in jobs(workflow) if (plan_matrix_of(project, workflow, job_id) or (0, False))[1])
        if not platform_jobs:
            continue
        for job_id in platform_jobs:
            if "matrix.runner" not in str(workflow["jobs"][job_id].get("runs-on", "")):
                problems.append(f"{file}: {job_id} builds per platform but not on `runs-on: ${{{{ matrix.runner }}}}`")
        joins = [job_id for job_id, _ in jobs(workflow) if any(task == "join" for task, _ in task_calls(project, workflow, job_id))]
        if not joins:
            problems.append(f"{file}: builds per platform ({', '.join(platform_jobs)}) but no job runs `invoke join`")
            continue
        for join in joins:
            missed = sorted(set(platform_jobs) - waits_for(workflow, join))
            if missed:
                problems.append(f"{file}: {join} joins without waiting for {', '.join(missed)}: add it to `needs:`")
            if not re.search(r"fromJSON\(\s*needs\.[\w-]+\.outputs\.join\s*\)\.needed", str(workflow["jobs"][join].get("if", ""))):
                problems.append(f"{file}: {join} runs `invoke join` whatever the plan says: add `if: ... "
                                "fromJSON(needs.plan.outputs.join).needed`")
            if any(task == "join" and not args.get("no-tags") for task, args in task_calls(project, workflow, join)):
                problems.append(f"{file}: {join} moves branch tags before the tests ran: give `invoke join` --no-tags")
        for job_id, _ in jobs(workflow):
            uses = "test" in session_calls(project, workflow, job_id) or [] in build_targets(project, workflow, job_id)
            if uses and job_id not in joins and not set(joins) & waits_for(workflow, job_id):
                problems.append(f"{file}: {job_id} uses the family's images without waiting for {', '.join(joins)}: add it to `needs:`")
    return problems


# -- the real workflows ---------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project(ROOT)


@pytest.fixture(scope="module")
def sessions() -> frozenset[str]:
    """noxfile.py's sessions, as nox's own registry has them after loading it."""
    pytest.importorskip("nox", reason="nox is not installed in this environment: pip install -e '.[dev]'")
    from nox import registry

    registry.reset()
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    names = frozenset(registry.get())
    registry.reset()
    return names


@pytest.fixture(scope="module")
def real_plans(project) -> dict[str, dict[str, Any]]:
    """What `invoke affected` plans for this repository's images.yaml when every image changed: without runners, with the runners
    it names (where it names none, ubuntu-24.04-arm for linux/arm64 and ubuntu-latest for linux/amd64), and with a runner for
    linux/arm64 alone (linux/amd64's rows name none)."""
    config = project.config
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    files = {}
    for path in filter(None, listed):
        with contextlib.suppress(UnicodeDecodeError, OSError):
            files[path] = (ROOT / path).read_text(encoding="utf-8")
    fingerprints = fingerprint_images(config, MemorySources(files))
    explanation = explained({name: ("images.yaml",) for name in config.names if config.image(name).parent is None}, set())
    named = config.runners or (("linux/arm64", "ubuntu-24.04-arm"), ("linux/amd64", "ubuntu-latest"))

    def plan(runners: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        with_runners = replace(config, runners=runners)
        return affected_matrix(with_runners, explanation, affected(with_runners, fingerprints, explanation))

    return {"whole": plan(()), "split": plan(named), "partial": plan((("linux/arm64", "ubuntu-24.04-arm"),))}


def emitted_rows(*plans: Mapping[str, Any]) -> dict[bool, list[Mapping[str, Any]]]:
    """The rows of every level's matrices as the step outputs carry them (nulls left out), per platform or not."""
    rows: dict[bool, list[Mapping[str, Any]]] = {False: [], True: []}
    for plan in plans:
        for key, value in github_outputs(plan).items():
            if re.fullmatch(r"level-\d+(-platforms)?", key):
                rows[key.endswith("-platforms")].extend(json.loads(value)["include"])
    return rows


def test_the_workflows_are_there(project):
    assert {"ci.yml", "release.yml", "lint.yml", "cleanup.yml"} <= set(project.workflows)
    assert "./.github/actions/setup" in project.actions


def test_every_task_the_workflows_call_exists(project):
    assert unknown_tasks(project) == []
    called = {task for file, workflow in project.workflows.items() for job_id, _ in jobs(workflow)
              for task, _ in task_calls(project, workflow, job_id)}
    assert {"affected", "build", "release", "cleanup"} <= called


def test_every_nox_session_the_workflows_call_exists(project, sessions):
    assert {"test", "lint"} <= sessions
    assert unknown_sessions(project, sessions) == []


def test_every_image_is_built_by_some_workflow(project):
    assert unbuilt_images(project) == []


def test_every_depth_of_images_yaml_has_its_build_job_after_the_one_before(project):
    assert missing_levels(project) == []


def test_no_path_filters_no_docker_builds_pinned_actions_full_history_least_privilege(project):
    assert path_filters(project) == []
    assert direct_docker(project) == []
    assert unpinned_actions(project) == []
    assert shallow_checkouts(project) == []
    assert broad_permissions(project) == []


def _jobs_on(project: Project, event: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    for workflow in project.workflows.values():
        if event in triggers(workflow):
            for job_id, _ in jobs(workflow):
                yield workflow, job_id


def test_every_need_is_a_job_and_every_output_read_is_given(project, real_plans):
    assert dangling_needs(project) == []
    assert unknown_outputs(project, frozenset(github_outputs(real_plans["whole"]))) == []
    ci = project.workflows["ci.yml"]
    assert {f"level-{n}{kind}" for n in range(2) for kind in ("", "-platforms")} | {"join"} <= set(ci["jobs"]["plan"]["outputs"])
    assert all(plan_output(project, ci, "plan", key) == key for key in ci["jobs"]["plan"]["outputs"])  # each is affected's own


def test_plan_matrix_jobs_use_only_fields_the_plan_emits(project, real_plans):
    rows = emitted_rows(*real_plans.values())
    assert rows[False] and rows[True] and any("runner" not in row for row in rows[True])  # partial: linux/amd64 names none
    assert matrix_fields(project, rows) == []


def test_each_platform_job_and_the_join_run_exactly_what_the_plan_gives(project, real_plans):
    split = real_plans["split"]
    assert split["join"]["needed"] and [len(level["platform_matrix"]["include"]) for level in split["levels"]] == [2, 5]
    assert commands_unlike_plan(project, split) == [] and commands_unlike_plan(project, real_plans["partial"]) == []


def test_images_built_per_platform_are_joined_before_the_suite_and_the_family_tags(project):
    assert unjoined(project) == []
    ci = project.workflows["ci.yml"]
    assert {"level-0-platforms", "level-1-platforms", "join"} <= waits_for(ci, "test") and "join" in waits_for(ci, "family")


def test_pull_requests_and_main_run_the_suite_in_the_ci_image_and_lint(project):
    for event in ("pull_request", "push"):
        called = {name for workflow, job_id in _jobs_on(project, event) for name in session_calls(project, workflow, job_id)}
        assert {"test", "lint"} <= called, event
    ci = project.workflows["ci.yml"]
    # The suite waits for every level, so the images it runs in come from the registry, built once.
    levels = {job_id for job_id, _ in jobs(ci) if plan_level(project, ci, job_id) is not None}
    assert levels and levels <= waits_for(ci, "test")
    assert "main" in triggers(ci)["push"]["branches"]


def test_a_version_tag_builds_what_is_missing_then_promotes(project):
    release = project.workflows["release.yml"]
    assert triggers(release)["push"]["tags"] == ["v*.*.*"]
    (job_id, _), = jobs(release)
    assert [task for task, _ in task_calls(project, release, job_id)] == ["build", "release"]


def test_cleanup_shows_the_dry_run_before_deleting(project):
    cleanup = project.workflows["cleanup.yml"]
    (job_id, _), = jobs(cleanup)
    assert [(task, bool(args.get("yes"))) for task, args in task_calls(project, cleanup, job_id)] == [("cleanup", False), ("cleanup", True)]


# -- each check catches what it is for ------------------------------------------------


def only(project: Project, **workflows: Any) -> Project:
    """The project with just these workflows (file name -> parsed YAML; underscores in names read as dots)."""
    return replace(project, workflows={name.replace("_", "."): workflow for name, workflow in workflows.items()})


def ci_copy(project: Project) -> dict[str, Any]:
    return copy.deepcopy(project.workflows["ci.yml"])


def test_commands_are_split_like_a_shell_and_keep_expressions_whole():
    script = ('echo "a;b" >> "$GITHUB_ENV" && invoke build --target ${{  matrix.image }}\n'
              "IMAGEGRAPH_PLATFORMS=linux/amd64 python -m nox -s test -- -k x  # comment\n"
              "invoke affected \\\n  --github-output | tee out")
    assert [program(argv) for argv in commands(script)] == [
        ["echo", "a;b"], ["invoke", "build", "--target", "${{ matrix.image }}"], ["nox", "-s", "test", "--", "-k", "x"],
        ["invoke", "affected", "--github-output"], ["tee", "out"]]
    assert nox_sessions_called(["-s", "test", "unit", "--", "-s", "nope"]) == ["test", "unit"]
    assert nox_sessions_called(["--session", "lint"]) == ["lint"] and nox_sessions_called([]) == []


def test_a_task_or_a_flag_that_does_not_exist_is_caught(project):
    ci = ci_copy(project)
    ci["jobs"]["plan"]["steps"].append({"run": "invoke engine.up no-such-task"})
    ci["jobs"]["family"]["steps"].append({"run": "invoke build --no-such-flag"})
    problems = unknown_tasks(only(project, ci_yml=ci))
    assert len(problems) == 2
    assert "ci.yml: plan: `invoke engine.up no-such-task`: invoke has no task no-such-task; `invoke --list` lists the tasks" in problems[0]
    assert "ci.yml: family: `invoke build --no-such-flag`: invoke build has no flag --no-such-flag;" in problems[1]
    assert invoke_tasks(namespace, ["engine.up", "build", "--target", "ci"]) == [("engine.up", {}), ("build", {"target": ["ci"]})]
    assert invoke_tasks(namespace, []) == [("build", {})] and invoke_tasks(namespace, ["--list"]) == []


def test_a_session_that_does_not_exist_is_caught(project):
    ci = ci_copy(project)
    ci["jobs"]["test"]["steps"].append({"run": "nox -s tests"})
    assert unknown_sessions(only(project, ci_yml=ci), frozenset({"test", "unit", "lint"})) == [
        "ci.yml: test: `nox -s tests`: noxfile.py has no session 'tests' (`nox -l` lists them)"]


def test_a_missing_level_is_caught_and_its_images_are_unbuilt(project):
    ci = ci_copy(project)
    del ci["jobs"]["level-1"], ci["jobs"]["level-1-platforms"], ci["jobs"]["family"]
    ci["jobs"]["join"]["needs"] = ["plan", "level-0-platforms"]
    broken = only(project, ci_yml=ci)
    assert missing_levels(broken) == [
        "no job builds depth 1 of images.yaml (ci, app, devcontainer): add one whose matrix is the plan's level-1 output and that runs "
        "`invoke build --target ${{ matrix.image }}`",
        "no job builds depth 1 of images.yaml (ci, app, devcontainer) per platform: add one whose matrix is the plan's "
        "level-1-platforms output, on `runs-on: ${{ matrix.runner }}`, that runs "
        "`invoke build --target ${{ matrix.image }} --only-platform ${{ matrix.platform }}`"]
    assert unbuilt_images(broken) == [f"image {name} (depth 1) is built by no workflow" for name in ("ci", "app", "devcontainer")]
    assert unbuilt_images(only(project, ci_yml=ci_copy(project))) == []  # the family job alone would build them all


def test_a_level_that_does_not_wait_for_the_one_before_is_caught(project):
    ci = ci_copy(project)
    ci["jobs"]["level-1"]["needs"] = ["plan"]
    ci["jobs"]["level-1-platforms"]["needs"] = ["plan", "level-0"]
    assert missing_levels(only(project, ci_yml=ci)) == [
        "ci.yml: level-1 builds depth 1 without waiting for depth 0 (level-0, level-0-platforms): add it to `needs:`",
        "ci.yml: level-1-platforms builds depth 1 without waiting for depth 0 (level-0-platforms): add it to `needs:`"]


def test_a_platform_job_that_builds_every_platform_is_no_platform_job(project):
    ci = ci_copy(project)
    ci["jobs"]["level-0-platforms"]["steps"][2]["run"] = "invoke build --target ${{ matrix.image }} --no-tags"
    assert missing_levels(only(project, ci_yml=ci)) == [
        "no job builds depth 0 of images.yaml (base) per platform: add one whose matrix is the plan's level-0-platforms output, on "
        "`runs-on: ${{ matrix.runner }}`, that runs `invoke build --target ${{ matrix.image }} --only-platform ${{ matrix.platform }}`"]


def test_a_matrix_that_does_not_come_from_the_plan_builds_nothing(project):
    hand_made = ci_copy(project)
    hand_made["jobs"]["level-1"]["strategy"]["matrix"] = {"image": ["ci", "app", "devcontainer"]}
    del hand_made["jobs"]["family"]
    assert "no job builds depth 1" in " ".join(missing_levels(only(project, ci_yml=hand_made)))
    assert "ci.yml: level-1: `invoke build --target ${{ matrix.image }}` names no image" in unbuilt_images(only(project, ci_yml=hand_made))[0]
    not_affected = ci_copy(project)
    plan_steps = not_affected["jobs"]["plan"]["steps"]
    plan_steps[-1] = {**plan_steps[-1], "run": "echo 'level-1={\"include\":[]}' >> \"$GITHUB_OUTPUT\""}
    assert len(missing_levels(only(project, ci_yml=not_affected))) == 4  # both levels lose their plan, of both kinds


def test_a_target_that_is_no_image_is_caught(project):
    ci = ci_copy(project)
    ci["jobs"]["family"]["steps"][-1]["run"] = "invoke build --target cii"
    assert unbuilt_images(only(project, ci_yml=ci))[0].startswith("ci.yml: family: `invoke build --target cii` names no image")


def test_path_filters_are_caught(project):
    ci = ci_copy(project)
    triggers(ci)["pull_request"] = {"paths": ["docker/**", "requirements/**"]}
    text = yaml.safe_dump({"on": {"push": {"paths-ignore": ["docs/**"]}}, "permissions": {"contents": "read"},
                           "jobs": {"x": {"runs-on": "ubuntu-latest", "steps": [{"run": "invoke build"}]}}})
    assert path_filters(only(project, ci_yml=ci, other_yml=yaml.safe_load(text))) == [
        "ci.yml: `on: pull_request` filters on paths: the plan (`invoke affected`) decides what to build",
        "other.yml: `on: push` filters on paths-ignore: the plan (`invoke affected`) decides what to build"]
    docs_only = {"on": {"push": {"paths": ["docs/**"]}}, "jobs": {"x": {"steps": [{"run": "mkdocs build"}]}}}
    assert path_filters(only(project, docs_yml=docs_only)) == []


def test_docker_builds_and_pushes_in_steps_are_caught(project):
    ci = ci_copy(project)
    ci["jobs"]["family"]["steps"] += [{"run": "docker build -t x . && docker --debug push x"}, {"run": "docker buildx build ."},
                                      {"uses": "docker/build-push-action@v7"}, {"run": "docker pull python:3.11-slim"}]
    problems = direct_docker(only(project, ci_yml=ci))
    assert [p.split(": ", 2)[2] for p in problems] == [
        "`docker build -t x .`: build and push through `invoke build`", "`docker --debug push x`: build and push through `invoke build`",
        "`docker buildx build .`: build and push through `invoke build`", "uses docker/build-push-action@v7: build and push through `invoke build`"]


def test_unpinned_actions_shallow_checkouts_and_broad_permissions_are_caught(project):
    ci = ci_copy(project)
    ci["permissions"] = {"contents": "read", "packages": "write"}
    ci["jobs"]["plan"]["steps"][0] = {"uses": "actions/checkout@main"}
    ci["jobs"]["plan"]["steps"][1] = {"uses": "./.github/actions/nope"}
    ci["jobs"]["plan"]["permissions"] = {"packages": "write"}
    del ci["jobs"]["family"]["permissions"]
    broken = only(project, ci_yml=ci)
    assert unpinned_actions(broken) == ["ci.yml: plan: actions/checkout@main: pin a major version (@v4) or a commit SHA",
                                        "ci.yml: plan: ./.github/actions/nope is no local action (.github/actions/NAME/action.yml)"]
    assert shallow_checkouts(broken) == ["ci.yml: plan: actions/checkout@main without `fetch-depth: 0`: the plan needs the git history"]
    assert broad_permissions(broken) == [
        "ci.yml: top-level `permissions:` grant write to every job; grant it in the jobs that need it",
        "ci.yml: plan has packages: write but pushes, tags and deletes nothing",
        "ci.yml: family pushes, tags or deletes images without `permissions: {packages: write}`"]
    del ci["permissions"]
    assert broad_permissions(only(project, ci_yml=ci))[0] == "ci.yml: no top-level `permissions:`: every job gets the repository's default token"


def test_a_need_that_is_no_job_and_an_output_nobody_gives_are_caught(project, real_plans):
    written = frozenset(github_outputs(real_plans["whole"]))
    ci = ci_copy(project)
    ci["jobs"]["join"]["needs"] = ["plan", "level-1-platform"]
    ci["jobs"]["level-1"]["if"] = "fromJSON(needs.plan.outputs.level-2).include[0] != null"
    ci["jobs"]["plan"]["outputs"]["level-2-platforms"] = "${{ steps.affected.outputs.level-2-platforms }}"
    broken = only(project, ci_yml=ci)
    assert dangling_needs(broken) == ["ci.yml: join needs level-1-platform, which is no job of ci.yml"]
    assert unknown_outputs(broken, written) == [
        "ci.yml: plan: output level-2-platforms passes on level-2-platforms, which `invoke affected --github-output` does not write "
        "(it writes images, join, level-0, level-0-platforms, level-1, level-1-platforms)",
        "ci.yml: level-1 reads needs.plan.outputs.level-2, which no job it needs gives"]


def test_a_matrix_field_the_plan_does_not_emit_is_caught(project, real_plans):
    rows = emitted_rows(*real_plans.values())
    ci = ci_copy(project)
    ci["jobs"]["level-0-platforms"]["runs-on"] = "${{ matrix.runner }}"  # linux/amd64 without a runner: no runs-on
    ci["jobs"]["level-1-platforms"]["steps"][2]["name"] = "Build ${{ matrix.arch }}"
    ci["jobs"]["level-1"]["steps"][2]["run"] = "invoke build --target ${{ matrix.image }} --only-platform ${{ matrix.platform }}"
    problems = matrix_fields(only(project, ci_yml=ci), rows)
    assert problems[0] == "ci.yml: level-0-platforms uses matrix.runner, which not every row of the plan's level-0-platforms output has"
    assert problems[1].startswith("ci.yml: level-1 uses matrix.platform, which no row of the plan's level-1 output has (it has depth, ")
    assert problems[2].startswith("ci.yml: level-1-platforms uses matrix.arch, which no row of the plan's level-1-platforms output has")
    assert len(problems) == 3


def test_a_job_that_runs_other_than_the_plan_says_is_caught(project, real_plans):
    ci = ci_copy(project)
    ci["jobs"]["level-1-platforms"]["steps"][2]["run"] = "invoke build --target ${{ matrix.image }} --only-platform ${{ matrix.platform }}"
    del ci["jobs"]["join"]["steps"][2]["env"]
    problems = commands_unlike_plan(only(project, ci_yml=ci), real_plans["split"])
    assert problems == [
        "ci.yml: level-1-platforms runs `invoke build --target ci --only-platform linux/amd64` where the plan gives "
        "`invoke build --target ci --only-platform linux/amd64 --no-tags`",
        "ci.yml: join runs `invoke join --target '<?>' --no-tags` where the plan gives `invoke join --target base,app,devcontainer --no-tags`"]


def test_a_join_missing_late_ungated_or_tagging_is_caught(project):
    ci = ci_copy(project)
    ci["jobs"]["join"]["needs"] = ["plan", "level-0-platforms"]
    del ci["jobs"]["join"]["if"]
    ci["jobs"]["join"]["steps"][2]["run"] = 'invoke join --target "$IMAGES"'
    ci["jobs"]["test"]["needs"] = ["plan", "level-1-platforms"]
    ci["jobs"]["level-1-platforms"]["runs-on"] = "ubuntu-latest"
    assert unjoined(only(project, ci_yml=ci)) == [
        "ci.yml: level-1-platforms builds per platform but not on `runs-on: ${{ matrix.runner }}`",
        "ci.yml: join joins without waiting for level-1-platforms: add it to `needs:`",
        "ci.yml: join runs `invoke join` whatever the plan says: add `if: ... fromJSON(needs.plan.outputs.join).needed`",
        "ci.yml: join moves branch tags before the tests ran: give `invoke join` --no-tags",
        "ci.yml: test uses the family's images without waiting for join: add it to `needs:`"]
    no_join = ci_copy(project)
    del no_join["jobs"]["join"]
    assert unjoined(only(project, ci_yml=no_join)) == [
        "ci.yml: builds per platform (level-0-platforms, level-1-platforms) but no job runs `invoke join`"]
