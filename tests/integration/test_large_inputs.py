"""A large untracked input in a real checkout: fingerprinted in constant memory, git's own id, and named once in a warning."""

from __future__ import annotations

import subprocess

import pytest

from imagegraph.workspace import Workspace
from tests.integration.conftest import init_repo

pytestmark = pytest.mark.integration

IMAGES = """
registry: 127.0.0.1:5000
namespace: large
images:
  base:
    dockerfile: Dockerfile
    inputs: ["data/**"]
  app:
    dockerfile: Dockerfile.app
    parent: base
    inputs: ["data/**"]
"""


def test_an_untracked_input_of_150_mb_is_hashed_like_git_and_warned_about_once(tmp_path):
    repo = init_repo(tmp_path / "repo", {"images.yaml": IMAGES, "Dockerfile": "FROM scratch\nCOPY data /data\n",
                                         "Dockerfile.app": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n", "data/small.txt": "small\n"})
    big = repo / "data/model.bin"
    with big.open("wb") as out:  # sparse: no disk used, every byte still read
        out.truncate(150_000_000)
    workspace = Workspace(repo)
    files = dict(workspace.fingerprints["base"].files)
    git_id = subprocess.run(["git", "hash-object", str(big)], capture_output=True, text=True, check=True).stdout.strip()
    assert files["data/model.bin"] == f"100644 {git_id}"
    warnings = [w for w in workspace.input_warnings() if "model.bin" in w]
    assert warnings == ["data/model.bin is 150 MB, an input of base, app: every build copies it into the context (and hashes it while "
                        "it is uncommitted); if no image needs it, leave it out of inputs: in images.yaml or list it in the .dockerignore"]
