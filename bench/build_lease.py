"""What the build lease (one build per fingerprint across runners) costs a run nobody else builds with, side by side.

    python bench/build_lease.py [--rounds 5]

Works in a repository of its own (a temporary one) against the local registry
at 127.0.0.1:5000: a base and two children built on it, one platform each.
Every round changes a salt, so what is built is built cold, and each case runs
twice, once with the registry leases and once without them, in turns (who goes
first turns round between rounds):

- one image: only app changed (a build of one image, the everyday case).
- the family: the base changed (all three built, in one bake).
- a chain alone: the base and app changed, each built on its own (one at a time,
  as a builder that cannot bake builds them).

Prints each round's wall times, then per case the medians with and without the
lease, the difference, and the seconds during which some image of the run waited
for its lease (waits side by side counted once). Other users of this machine
make the wall times noisy; the wait is the lease's own cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from imagegraph.core.options import BuildOptions  # noqa: E402
from imagegraph.core.plan import Decision  # noqa: E402
from imagegraph.workspace import Workspace  # noqa: E402

REGISTRY = "127.0.0.1:5000"
IMAGES_YAML = """registry: {registry}
namespace: {namespace}
images:
  base:
    dockerfile: docker/Dockerfile.base
    platforms: [linux/amd64]
  app:
    dockerfile: docker/Dockerfile.app
    parent: base
    platforms: [linux/amd64]
  tools:
    dockerfile: docker/Dockerfile.tools
    parent: base
    platforms: [linux/amd64]
"""
BASE = "FROM python:3.11-slim\nRUN echo {salt} > /base.txt\n"
CHILD = "ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {salt} > /{name}.txt\n"


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args], cwd=root, check=True,
                   capture_output=True)


def write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "bench")


def covered(spans: list[tuple[float, float]]) -> float:
    """Seconds within any of ``spans``: waits side by side (a bake's members) count once."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def build(root: Path, *, leases: bool, alone: bool) -> tuple[float, float, int]:
    """(wall seconds, seconds some image of the run waited for its build lease, images built)."""
    made = Workspace(root, BuildOptions())
    plan = made.plan()
    executor = made.executor(say=lambda line: None)
    if not leases:
        executor.leases = None
    if alone:
        executor._bake = lambda members: ({}, members)  # each built alone, as a builder that cannot bake builds them
    spans: list[tuple[float, float]] = []
    take = executor._take

    def timed(*args, **kwargs):
        started = time.monotonic()
        try:
            return take(*args, **kwargs)
        finally:
            spans.append((started, time.monotonic()))

    executor._take = timed
    started = time.monotonic()
    results = executor.run(plan)
    wall = time.monotonic() - started
    failed = [f"{r.name}: {r.error}" for r in results if not r.ok]
    if failed:
        raise SystemExit(f"build failed: {failed}")
    return wall, covered(spans), sum(1 for r in results if r.decision is Decision.BUILD)


CASES = {
    "one image": ("app",),
    "the family": ("base",),
    "a chain alone": ("base", "app"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.pop("IMAGEGRAPH_PLATFORMS", None)
    os.environ.pop("GITHUB_ACTIONS", None)
    namespace = f"bench-lease-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-lease-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        salt = {"base": "0", "app": "0", "tools": "0"}

        def files() -> dict[str, str]:
            return {"images.yaml": IMAGES_YAML.format(registry=REGISTRY, namespace=namespace),
                    "docker/Dockerfile.base": BASE.format(salt=f"{namespace} {salt['base']}"),
                    **{f"docker/Dockerfile.{name}": CHILD.format(salt=f"{namespace} {salt[name]}", name=name) for name in ("app", "tools")},
                    "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n"}

        write(root, files())
        build(root, leases=False, alone=False)  # the family once, so each case builds only what it changes
        seen: dict[tuple[str, bool], list[tuple[float, float, int]]] = {}
        for round_ in range(args.rounds):
            for case, changed in CASES.items():
                for leases in ((True, False) if round_ % 2 == 0 else (False, True)):
                    for name in changed:
                        salt[name] = uuid.uuid4().hex[:8]
                    write(root, files())
                    measured = build(root, leases=leases, alone=case == "a chain alone")
                    seen.setdefault((case, leases), []).append(measured)
                    print(f"round {round_ + 1} {case:13} {'with' if leases else 'without'} lease: {measured[0]:6.2f}s wall, "
                          f"{measured[2]} built, {measured[1]:.2f}s waiting for leases", flush=True)
        print()
        print(f"{'case':13}  {'with':>7}  {'without':>7}  {'cost':>6}  {'waiting for leases':>18}   medians of {args.rounds}")
        for case in CASES:
            with_ = seen[case, True]
            without = seen[case, False]
            wall_with = statistics.median(m[0] for m in with_)
            wall_without = statistics.median(m[0] for m in without)
            print(f"{case:13}  {wall_with:6.2f}s  {wall_without:6.2f}s  {wall_with - wall_without:+5.2f}s  "
                  f"{statistics.median(m[1] for m in with_):17.2f}s")


if __name__ == "__main__":
    main()
