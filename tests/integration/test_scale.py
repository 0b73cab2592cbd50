"""Planning grows about n log n: a parent chain 3,000 deep, 5,000 images and 200,000 changed files, planned by the real CLI.

Each repository is a real git repository written by bench/plan_growth.py's
generators (one ``git fast-import`` stream; the 200,000 changed files stay in
the index and the history but out of the work tree, a sparse checkout, since
writing them to a slow disk takes minutes). Generating is not timed.

The bounds are CPU seconds of `invoke` and the git commands it runs, not wall
time, which other work on a shared machine stretches most. Measured on a
2-core machine (the commit that added this test): chain 3,000 deep 2.5-3.5 s
per command, 5,000 images 5 s, 200,000 changed files 8 s. The quadratic
walks they replace took more than 120 s (the chain; the same files) and
45 s (the images); each bound sits between, about 5-8x over the measured
figure. The family of images is also planned at half the size: doubling the
family may not more than 2.5x the time (a quadratic step gives 4x). The
executor's scheduling of a chain 3,000 deep is timed on its own (0.3 s; the
rescan it replaces took 246 s for 1,000).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from bench.plan_growth import chain_repo, files_repo, images_repo

pytestmark = pytest.mark.integration


def cpu_seconds(repo: Path, *args: str, bound: float, registry: str | None = None) -> tuple[float, str]:
    """The CPU seconds `invoke <args>` took in ``repo`` (its git commands included), and what it printed; it must succeed.

    Stopped at ten times ``bound`` of wall time, so an algorithm gone quadratic fails the test rather than hangs it.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGEGRAPH_REGISTRY", "IMAGEGRAPH_PLATFORMS")}
    if registry is not None:
        env["IMAGEGRAPH_REGISTRY"] = registry
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        result = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=repo, env=env, capture_output=True, text=True,
                                timeout=10 * bound)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`invoke {' '.join(args)}` ran {10 * bound:g} s of wall time, its bound is {bound:g} CPU seconds")
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, result.stderr
    return (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime), result.stdout


def within(seconds: float, bound: float, what: str) -> None:
    assert seconds <= bound, f"{what} took {seconds:.1f} CPU seconds, more than its bound of {bound:g}"


def test_a_parent_chain_3000_deep_is_walked_once(tmp_path):
    repo = chain_repo(tmp_path / "chain", 3000)
    names = repo.expected["all"]

    seconds, out = cpu_seconds(repo.path, "affected", "--since", "HEAD~3", bound=20)
    assert out.split() == names  # the root changed: every image, parents first
    within(seconds, 20, "`invoke affected` of a chain 3,000 deep")

    seconds, out = cpu_seconds(repo.path, "affected", "--json", "--since", "HEAD~2", bound=20)
    matrix = json.loads(out)
    assert matrix["images"] == [names[-1]]
    assert [level["depth"] for level in matrix["levels"]] == list(range(3000))
    assert matrix["levels"][-1]["images"] == [names[-1]] and matrix["matrix"]["include"][0]["depth"] == 2999
    within(seconds, 20, "`invoke affected --json` (3,000 levels)")

    seconds, out = cpu_seconds(repo.path, "plan", "--json", "--since", "HEAD~1", bound=20)
    plan = json.loads(out)
    assert [entry["name"] for entry in plan["images"]] == names and {entry["decision"] for entry in plan["images"]} == {"reuse"}
    within(seconds, 20, "`invoke plan` of a chain 3,000 deep")


def test_5000_images_plan_in_about_linear_time(tmp_path):
    half = images_repo(tmp_path / "half", 2500)
    half_seconds, out = cpu_seconds(half.path, "affected", "--since", "HEAD~3", bound=20)
    assert out.split() == half.expected["all"]

    repo = images_repo(tmp_path / "full", 5000)
    seconds, out = cpu_seconds(repo.path, "affected", "--since", "HEAD~3", bound=20)
    assert out.split() == repo.expected["all"]
    within(seconds, 20, "`invoke affected` of 5,000 images")
    assert seconds <= 2.5 * half_seconds, f"5,000 images took {seconds:.1f} CPU seconds, 2,500 took {half_seconds:.1f}: not linear"

    seconds, out = cpu_seconds(repo.path, "plan", "--json", "--since", "HEAD~1", bound=25)
    decisions = {entry["name"]: entry["decision"] for entry in json.loads(out)["images"]}
    assert len(decisions) == 5000 and set(decisions.values()) == {"reuse"}  # docs only since HEAD~1: nothing looked up
    within(seconds, 25, "`invoke plan` of 5,000 images")


def test_200000_changed_files_under_an_input_plan_in_about_linear_time(tmp_path, registry):
    repo = files_repo(tmp_path / "files", 200_000, sparse=True)
    # The first plan of this content (nothing kept in .imagegraph/cache): git's diff, every content id, the inputs' matching.
    seconds, out = cpu_seconds(repo.path, "plan", "--json", "--since", "HEAD~1", bound=60, registry=registry)
    plan = json.loads(out)
    app = next(entry for entry in plan["images"] if entry["name"] == "app")
    assert len(plan["git"]["changed"]) == 200_000 and len(app["changed"]) == 200_000 and app["decision"] == "build"
    within(seconds, 60, "`invoke plan` of 200,000 changed files")


def test_the_executor_starts_a_chain_3000_deep_in_linear_time(tmp_path):
    """Each finished image makes its children ready by a look-up: a rescan of every waiting image per result took minutes."""
    from imagegraph.adapters.runner import Runner
    from imagegraph.core.plan import ImagePlan, Plan
    from imagegraph.core.result import ImageResult
    from imagegraph.execute import BuildExecutor
    from tests.conftest import built_image

    class Instant(BuildExecutor):
        """Builds nothing: every image is done the moment it starts, so only the scheduling is timed."""

        def _work(self, entry: ImagePlan) -> ImageResult:
            return ImageResult(entry.name, entry.decision, entry.ref, entry.reason)

    entries = tuple(built_image(f"c{i:04d}", f"127.0.0.1:5000/scale/c{i:04d}:{'0' * 16}", push=False, reason="changed",
                                parent=f"c{i - 1:04d}" if i else None)
                    for i in range(3000))
    executor = Instant(tmp_path, lambda: None, Runner(), None, local=None, registry=None, log_dir=tmp_path / "logs", jobs=2,
                       say=lambda line: None)
    used = resource.getrusage(resource.RUSAGE_SELF)
    results = executor.run(Plan(entries, "127.0.0.1:5000"))
    now = resource.getrusage(resource.RUSAGE_SELF)
    assert [r.name for r in results] == [e.name for e in entries] and all(r.ok for r in results)
    within((now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime), 10, "scheduling a chain 3,000 deep")
