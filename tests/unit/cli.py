"""Run the real command line in-process, in a family checkout, with a given environment.

Invoke's own Program parses the flags (its argument conversion included) and
runs the tasks; whatever escapes as an exception other than SystemExit is a
traceback a user would have seen.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from invoke import Program

from tests.conftest import FAMILY, FAMILY_FILES, repository_menu, write_tree

#: Nothing listens here: a registry lookup fails at once, as "not reachable".
NO_REGISTRY = "127.0.0.1:9"
#: What the environment of a run starts from: no CI, no overrides, an unreachable registry.
CLEARED = ("IMAGEGRAPH_", "GITHUB_", "DOCKER_HOST", "INVOKE_", "CI")


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    @property
    def error(self) -> str:
        """The one error line; fails the test when there is not exactly one."""
        assert self.code == 1, f"exit {self.code}, expected 1:\n{self.stderr}"
        assert len(self.errors) == 1, f"expected exactly one error line:\n{self.stderr}"
        return self.errors[0]


def make_family(root: Path, files: Mapping[str, str] | None = None) -> Path:
    """The sample family as a git repository with one commit."""
    write_tree(root, {"images.yaml": FAMILY, **FAMILY_FILES, **(files or {})})
    git = ("git", "-c", "user.email=test@example.com", "-c", "user.name=test", "-c", "init.defaultBranch=main")
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "family"], cwd=root, check=True)
    return root


@contextlib.contextmanager
def environment(root: Path, env: Mapping[str, str]) -> Iterator[None]:
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    for name in list(os.environ):
        if name.startswith(CLEARED):
            del os.environ[name]
    os.environ.update({"IMAGEGRAPH_REGISTRY": NO_REGISTRY, **env})
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)

#: This repository's menu (the library's tasks and `engine.*`), as `invoke` runs it here.
namespace = repository_menu()


def run_cli(root: Path, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Outcome:
    """``invoke *argv`` in ``root``; an exception other than SystemExit propagates (it is a traceback)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with environment(root, env or {}), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            # A copy: Invoke consumes a task's help dict when it reads the task's arguments.
            Program(namespace=copy.deepcopy(namespace), name="imagegraph", binary="invoke").run(["invoke", *argv], exit=True)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
    return Outcome(code, stdout.getvalue(), stderr.getvalue())
