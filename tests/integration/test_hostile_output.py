"""Hostile file names through the real `invoke plan` and `invoke build`: a real repository, the real registry, the real engine.

File names carry a clear-screen, a window title, a C1 control sequence
introducer, a right-to-left override and a name of their own that would
print an ``error:`` line; one of them is also a file a Dockerfile copies
without images.yaml declaring it (a warning names it). The output of every
command (its table, reasons, warnings, progress lines, the report files)
shows them escaped; the JSON plan keeps them exactly.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.integration.conftest import commit_all, init_repo, run_invoke

pytestmark = pytest.mark.integration

HOSTILE = ("clear\x1b[2Jscreen", "title\x1b]0;pwned\x07x", "csi\x9b31mx", "rtl\u202eyp.txt", "zero\u200dwidth")
FAMILY = """
registry: {registry}
namespace: {namespace}
images:
  tiny:
    dockerfile: docker/Dockerfile
    inputs: ["files/**"]
    platforms: [linux/amd64]
"""


def inert(text: str) -> bool:
    return all(ch.isprintable() or ch == "\n" for ch in text)


@pytest.fixture
def checkout(tmp_path, registry, namespace):
    files = {"images.yaml": FAMILY.format(registry=registry, namespace=namespace),
             "docker/Dockerfile": "FROM scratch\nCOPY files /files\nCOPY extra\u202e\x7f.txt /extra.txt\n",
             "files/keep.txt": f"{uuid.uuid4().hex}\n", "extra\u202e\x7f.txt": "not declared\n",
             "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n"}
    root = init_repo(tmp_path / "mono", files)
    for name in HOSTILE:
        (root / "files" / name).write_text(f"{name!r}\n")
    commit_all(root, "hostile names")
    # Untracked: git status lists it (GitPython's commit diff cannot parse a committed path with a newline).
    (root / "files" / "forged\nerror: forged.txt").write_text("x\n")
    return root


def test_plan_and_build_print_hostile_file_names_escaped(checkout):
    plan = run_invoke(checkout, "plan", "--since", "HEAD~1")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert re.search(r"^tiny +build ", plan.stdout, re.M)
    assert "clear\\x1b[2Jscreen" in plan.stdout or "files/" in plan.stdout
    assert "extra\\u202e\\x7f.txt" in plan.stderr  # the warning about the undeclared COPY source names it, escaped
    # BuildKit fails on the undeclared file (it is not in the context): its own error line carries the name, escaped.
    built = run_invoke(checkout, "build", "--since", "HEAD~1", "--progress", "plain")
    assert built.returncode == 1 and "COPY extra\\u202e\\x7f.txt /extra.txt: failed" in built.stdout, built.stdout + built.stderr
    for result in (plan, built):
        output = result.stdout + result.stderr
        assert inert(output), [line for line in output.splitlines() if not inert(line)]
        assert [line for line in output.splitlines() if line.startswith("error:")] == ([] if result is plan else
                                                                                      [built.stderr.splitlines()[-1]])
    assert "files/forged\\nerror: forged.txt" in built.stdout  # the build's reason names the untracked file, escaped
    report = sorted((checkout / ".imagegraph/reports").glob("*.md"))[-1].read_text()
    assert inert(report) and "extra\\u202e\\x7f.txt" in report

    exact = json.loads(run_invoke(checkout, "plan", "--json").stdout)  # machines get the names as they are
    assert exact["images"][0]["name"] == "tiny"
