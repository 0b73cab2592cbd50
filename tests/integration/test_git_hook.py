"""The repository's pre-commit hook (.githooks/pre-commit → `invoke dev.pre-commit`) with real git and ruff."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAMILY, FAMILY_FILES
from tests.integration.conftest import git, init_repo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path) -> Path:
    pytest.importorskip("ruff", reason="the hook lints with ruff (requirements-dev.txt)")
    root = init_repo(tmp_path / "repo", {"images.yaml": FAMILY, **FAMILY_FILES, "tasks.py": (ROOT / "tasks.py").read_text()})
    shutil.copytree(ROOT / "src" / "imagegraph", root / "src" / "imagegraph", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / ".githooks", root / ".githooks")
    git(root, "config", "core.hooksPath", ".githooks")
    return root


def commit(root: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    # The hook runs `invoke`: the one installed with the Python running these tests.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "change", *flags],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_lint_error_in_a_staged_file_stops_the_commit(repo):
    (repo / "bad.py").write_text("import os\n")
    (repo / "notes.md").write_text("import os\n")
    git(repo, "add", "bad.py", "notes.md")
    refused = commit(repo)
    assert refused.returncode == 1
    # git sends a hook's output to stderr
    assert "F401" in refused.stderr and "bad.py" in refused.stderr and "notes.md" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: ruff found problems in 1 staged file(s)")
    assert commit(repo, "--no-verify").returncode == 0


def test_clean_staged_files_commit(repo):
    (repo / "src" / "svc" / "app.py").write_text("print('hello again')\n")
    git(repo, "add", "src/svc/app.py")
    result = commit(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert git(repo, "log", "-1", "--format=%s").strip() == "change"
