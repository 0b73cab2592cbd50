"""Links at imagegraph's own working folders, met once a plan is made: contexts, wheels, logs, the bake file.

The cases of tests/unit/test_links.py that need the plan to ask the registry
first (`invoke plan --bake` assembles contexts and fetches wheels for what it
builds). The registry is the real one, under a namespace of this test's own, so
every image is to build; the wheel cache is filled beforehand (:mod:`tests.outside`).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.outside import BAKE, FILES, PLAN, WHEEL, commit, make_world, refused, snapshot
from tests.unit.cli import run_cli


@pytest.fixture
def world(tmp_path: Path, registry: str) -> dict[str, Path]:
    return make_world(tmp_path)


@pytest.fixture
def env(world, registry: str) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(world["cache"]), "IMAGEGRAPH_REGISTRY": registry}


def fresh_namespace() -> str:
    return f"links-{uuid.uuid4().hex[:10]}"


WRITE_CASES = {
    # name: (link, target below the sentinel folder, argv)
    ".imagegraph": (".imagegraph", "", BAKE),
    ".imagegraph/contexts": (".imagegraph/contexts", "", BAKE),
    ".imagegraph/contexts/<image>": (".imagegraph/contexts/app", "", BAKE),
    ".imagegraph/contexts/<image>/<old fingerprint>": (".imagegraph/contexts/app/0123456789abcdef", "old", BAKE),
    ".imagegraph/logs": (".imagegraph/logs", "", BAKE),
    "the build lock": (".imagegraph/build.lock", "keep.txt", BAKE),
    ".wheelhouse": (".wheelhouse", "", BAKE),
    ".wheelhouse/<requirements>": (".wheelhouse/app", "old", BAKE),
    "a wheel in .wheelhouse/<requirements>": (f".wheelhouse/app/{WHEEL}", "secret.txt", BAKE),
    "the bake file": ("bake.json", "keep.txt", BAKE),
    "the bake file's folder": ("out", "", ("plan", "--bake", "out/bake.json")),
}


@pytest.mark.parametrize("name", sorted(WRITE_CASES))
def test_a_link_at_a_working_folder_is_refused_and_nothing_outside_changes(world, env, name):
    link, target, argv = WRITE_CASES[name]
    commit(world["repo"], FILES, {link: str(world["outside"] / target) if target else str(world["outside"])}, namespace=fresh_namespace())
    line = refused(world, argv, f"{link.split('/')[-1]}'", env=env)
    assert "is a symbolic link" in line and "remove the link (rm " in line, line


def test_a_link_at_a_log_file_is_refused_before_the_command_runs(world, env):
    """The wheels are not in the cache: pip would run and log to bake-wheels.log, which is a link out of the repository."""
    commit(world["repo"], FILES, {".imagegraph/logs/bake-wheels.log": str(world["outside"] / "keep.txt")}, namespace=fresh_namespace())
    shutil.rmtree(world["filled"])
    line = refused(world, BAKE, "bake-wheels.log'", env=env)
    assert "is a symbolic link" in line and "remove the link (rm " in line, line


def test_a_link_in_the_wheel_cache_is_refused(world, env):
    """~/.cache/imagegraph is the user's, but what imagegraph names in it is its own: no link there is followed."""
    commit(world["repo"], FILES, {}, namespace=fresh_namespace())
    filled = world["filled"]
    moved = filled.with_name("elsewhere")
    filled.rename(moved)
    filled.symlink_to(moved)
    line = refused(world, BAKE, filled.name, env=env)
    assert "is a symbolic link" in line


def test_without_links_the_bake_writes_only_its_own_folders(world, env):
    """The same repository without a link bakes: contexts, wheels and the bake file inside it, the sentinel untouched."""
    commit(world["repo"], FILES, {}, namespace=fresh_namespace())
    repo = world["repo"]
    (repo / ".imagegraph" / "contexts" / "app" / "0123456789abcdef").mkdir(parents=True)  # an earlier fingerprint's: it goes
    before = snapshot(world["outside"])
    outcome = run_cli(repo, BAKE, env=env)
    assert outcome.code == 0, outcome.stderr
    assert (repo / "bake.json").is_file()
    assert (repo / ".wheelhouse" / "app" / WHEEL).is_file()
    assert [p.name for p in (repo / ".imagegraph" / "contexts" / "app").iterdir()] != ["0123456789abcdef"]
    assert not (repo / ".imagegraph" / "contexts" / "app" / "0123456789abcdef").exists()
    assert snapshot(world["outside"]) == before


def test_a_link_that_stays_inside_the_repository_plans_as_an_input_and_is_refused_as_the_dockerfile(world, env):
    # An input link enters the fingerprint and the context as the link; a Dockerfile is read through it, so a change to its
    # target would not change the fingerprint: refused in one line (tests/integration/test_hidden_inputs.py has every case).
    commit(world["repo"], {**FILES, "real/data.txt": "data\n"}, {"src/data.txt": "../real/data.txt"}, namespace=fresh_namespace())
    outcome = run_cli(world["repo"], PLAN, env=env)
    assert outcome.code == 0, outcome.stderr
    assert "app" in outcome.stdout
    commit(world["repo"], {**FILES, "real/Dockerfile": "FROM scratch\n"}, {"docker/Dockerfile": "../real/Dockerfile"},
           namespace=fresh_namespace())
    line = refused(world, PLAN, "'docker/Dockerfile' is a symbolic link", env=env)
    assert "replace the link with a copy of its target" in line
