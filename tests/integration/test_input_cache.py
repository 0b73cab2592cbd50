"""The plan's input cache: a hit gives exactly what computing gives, and any change to what fingerprints see is a miss.

Real repositories in temporary folders; each case compares a workspace that
may use the cache with the answer computed from scratch (the cache folder
emptied first), so a stale entry would show as a difference.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from imagegraph.core.defaults import STATE_DIR
from tests.integration.conftest import commit_all, git, init_repo
from tests.integration.test_changes import edit, family_files, workspace

CACHE = Path(STATE_DIR) / "cache" / "inputs"


@pytest.fixture
def repo(tmp_path) -> Path:
    return init_repo(tmp_path / "mono", family_files())


def entries(root: Path) -> list[Path]:
    return sorted((root / CACHE).glob("*.json"))


def fresh(root: Path):
    """Fingerprints and warnings computed from scratch (no cache entry to find)."""
    shutil.rmtree(root / CACHE, ignore_errors=True)
    ws = workspace(root)
    return {name: fp.digest for name, fp in ws.fingerprints.items()}, ws.input_warnings()


def planned(root: Path):
    ws = workspace(root)
    return {name: fp.digest for name, fp in ws.fingerprints.items()}, ws.input_warnings(), ws.sources.hashed


def test_a_second_plan_of_the_same_content_is_a_hit_and_equal(repo):
    first = planned(repo)
    assert len(entries(repo)) == 1
    again = planned(repo)
    assert again[:2] == first[:2] and len(entries(repo)) == 1


@pytest.mark.parametrize("change", [
    "edit a tracked input, uncommitted",
    "edit it again, same size",
    "commit the edit",
    "add an untracked input",
    "delete a tracked input",
    "change the chmod of an input",
    "edit images.yaml",
    "edit a Dockerfile's ignore file",
])
def test_every_change_fingerprints_see_is_a_miss_with_the_computed_answer(repo, change):
    planned(repo)
    scorer = repo / "src" / "scorer" / "model.py"
    if change == "edit a tracked input, uncommitted":
        edit(repo, "src/scorer/model.py", append="# one\n")
    elif change == "edit it again, same size":
        edit(repo, "src/scorer/model.py", append="# one\n")
        planned(repo)
        text = scorer.read_text()
        scorer.write_text(text[:-6] + "# two\n")  # same size, same second: only the content differs
    elif change == "commit the edit":
        edit(repo, "src/scorer/model.py", append="# one\n")
        planned(repo)
        commit_all(repo, "edit")
    elif change == "add an untracked input":
        edit(repo, "src/scorer/extra.py", "VALUE = 1\n")
    elif change == "delete a tracked input":
        git(repo, "rm", "-q", "src/scorer/model.py")
    elif change == "change the chmod of an input":
        scorer.chmod(0o755)
    elif change == "edit images.yaml":
        text = (repo / "images.yaml").read_text().replace('python: "3.11"', 'python: "3.12"', 1)
        assert 'python: "3.12"' in text
        (repo / "images.yaml").write_text(text)
    elif change == "edit a Dockerfile's ignore file":
        edit(repo, "docker/Dockerfile.dockerignore", append="src/scorer/model.py\n")
    before = len(entries(repo))
    got = planned(repo)
    assert len(entries(repo)) == before + 1, "the changed content must not find an old entry"
    assert got[:2] == fresh(repo)


def test_a_damaged_entry_is_computed_again_not_an_error(repo):
    expected = planned(repo)[:2]
    for entry in entries(repo):
        entry.write_text('{"format": 1, "fingerprints": {"base": {"digest": 5}}')
    assert planned(repo)[:2] == expected
    for entry in entries(repo):
        entry.write_text(json.dumps({"format": 1, "fingerprints": {"base": {"digest": "x", "files": []}}, "warnings": []}))
    assert planned(repo)[:2] == expected  # an entry that lacks an image is a miss


def test_git_never_sees_the_cache(repo):
    planned(repo)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == ""
    assert (repo / CACHE / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_hit_reads_no_input_file(repo):
    edit(repo, "src/scorer/extra.py", "VALUE = 1\n")
    assert planned(repo)[2] >= 1  # the untracked file is hashed for the key
    hit = planned(repo)
    assert hit[2] == 1  # only the one file the index cannot name, to make the key
