"""The trees get all they need of a repository as one small value, :class:`GitAccess`, and nothing else.

Real repositories in temp dirs, the project one folder below the top level
(as in a monorepo). The first test makes the trees from a value of plain
functions, no :class:`Repository` at all: if a tree reached for anything
else, it would fail here. The others go through the repository's own value.
"""

from __future__ import annotations

import gc
import subprocess
from pathlib import Path

import pytest

from imagegraph.adapters.repo import Repository
from imagegraph.adapters.trees import TEXT_LIMIT_BYTES, CommitTree, GitAccess, WorkingTree
from imagegraph.core.errors import InputError
from tests.integration.conftest import commit_all, git, init_repo

pytestmark = pytest.mark.integration

FILES = {"outside.txt": "not the project's\n", "project/images.yaml": "", "project/app/main.py": "print('hi')\n",
         "project/notes.txt": "line\n"}


def plain_access(top: Path, settings: dict[tuple[str, str], str]) -> tuple[GitAccess, list[tuple[str, str]], list[tuple[str, ...]]]:
    """A :class:`GitAccess` made of plain functions over ``top``, and the blob reads and git commands it was asked for."""
    reads: list[tuple[str, str]] = []
    started: list[tuple[str, ...]] = []

    def start(*args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        started.append(args)
        return subprocess.Popen(["git", "-C", str(top), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin)

    def read_blob(path: str, oid: str) -> bytes:
        reads.append((path, oid))
        return subprocess.run(["git", "-C", str(top), "cat-file", "blob", oid], capture_output=True, check=True).stdout

    access = GitAccess(top / "project", "project/", start, read_blob, lambda section, option: settings.get((section, option)))
    return access, reads, started


def test_the_trees_need_nothing_but_their_value(tmp_path):
    top = init_repo(tmp_path / "repo", FILES)
    (top / "project" / "new.txt").write_text("untracked\n")
    (top / "project" / "notes.txt").write_text("changed\n")
    access, reads, started = plain_access(top, {("core", "autocrlf"): "true"})

    working = WorkingTree(access)
    assert list(working.paths()) == ["app/main.py", "images.yaml", "new.txt", "notes.txt"]
    assert "outside.txt" not in working and "../outside.txt" not in working
    assert working.oid("app/main.py") == "100644 " + git(top, "rev-parse", "HEAD:project/app/main.py").strip()
    assert working.oid("notes.txt") == "100644 " + git(top, "hash-object", "project/notes.txt").strip()  # its bytes on disk
    assert working.status == {"new.txt": "??", "notes.txt": " M"}
    # core.autocrlf, as the value's setting answers it: every text file of the index converts on checkout
    assert working.converted() == {"app/main.py": "core.autocrlf=true", "images.yaml": "core.autocrlf=true",
                                   "notes.txt": "core.autocrlf=true"}
    assert all(args[-1] == ":(top,literal)project/" for args in started if args[0] in ("status", "ls-files")), started

    head = git(top, "rev-parse", "HEAD").strip()
    commit = CommitTree(access, head)
    assert list(commit.paths()) == ["app/main.py", "images.yaml", "notes.txt"]
    assert commit.read("notes.txt") == b"line\n"
    assert reads == [("notes.txt", git(top, "rev-parse", "HEAD:project/notes.txt").strip())]


def test_the_repository_gives_its_trees_the_project_below_the_top_level(tmp_path):
    top = init_repo(tmp_path / "repo", FILES)
    repo = Repository(top / "project")
    assert (repo.access.root, repo.access.prefix) == (top.resolve() / "project", "project/")
    assert repo.access.relative("project/app/main.py") == "app/main.py"
    assert repo.access.relative("outside.txt") is None and repo.access.relative("projectx/a") is None
    assert set(repo.working_tree().paths()) == set(repo.commit_tree(repo.head()).paths()) == {"app/main.py", "images.yaml", "notes.txt"}


# The refused blob is never opened: no reader of GitPython's is left to fail when collected ("Exception ignored in ...").
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_commit_tree_refuses_a_blob_far_too_large_and_reads_the_next_one(tmp_path):
    top = init_repo(tmp_path / "repo", FILES)
    (top / "project" / "requirements.txt").write_bytes(b"x" * (TEXT_LIMIT_BYTES + 1))
    commit_all(top, "a huge requirements file")
    tree = Repository(top / "project").commit_tree(git(top, "rev-parse", "HEAD").strip())
    with pytest.raises(InputError, match=r"^requirements.txt: is 17 MB, too large"):
        tree.read("requirements.txt")
    assert tree.read("notes.txt") == b"line\n"
    gc.collect()
