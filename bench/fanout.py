"""A small multi-arch family built as one run against the same family split per platform across two runs plus the join.

    python bench/fanout.py [--rounds 3] [--work 1000000]

Works in a repository of its own (a temporary one, two clones of it acting as
two runners) against the local registry at 127.0.0.1:5000. The family is a
base and two children built on it, each declared for linux/amd64 and
linux/arm64 (arm64 under QEMU here, as on a runner without native arm64);
each image's one step runs a little Python (``--work`` loop turns), so the
foreign platform costs what emulation costs. Every build starts cold: each
run gets a fresh salt in the base's Dockerfile, so no fingerprint, registry
cache or build cache step answers.

In each round, in turn (who goes first turns round between rounds):

- whole: `invoke build` of both platforms in one run, as a single runner does today.
- split: `invoke build --only-platform linux/amd64` and `--only-platform linux/arm64`
  at once in the two clones, then `invoke join`: its wall time is from both starts to
  the join's end.
- arm64 alone / amd64 alone: one platform's run by itself: the slowest platform chain
  is the split's floor.

Prints each timing, then the medians and the ratios: split against whole, split
against its slowest platform chain alone (target: 1.1x or better), the join's
own time as `invoke join` reports it (target: under 2 s), and when the amd64
images were all pushed in the split run against when every image was, in the
whole run: what per-platform children buy a platform that does not wait for
the other. Two runs at once share this machine's cores, where real runners
would not: the split's ratio here is an upper bound.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "127.0.0.1:5000"
PLATFORMS = ("linux/amd64", "linux/arm64")

IMAGES_YAML = """registry: {registry}
namespace: {namespace}
images:
  base:
    dockerfile: docker/Dockerfile.base
    platforms: [linux/amd64, linux/arm64]
  app:
    dockerfile: docker/Dockerfile.child
    parent: base
    platforms: [linux/amd64, linux/arm64]
    build_args: {{ROLE: app}}
  worker:
    dockerfile: docker/Dockerfile.child
    parent: base
    platforms: [linux/amd64, linux/arm64]
    build_args: {{ROLE: worker}}
"""

# a loop of Python bytecode, not sum(range(n)) in C: its CPU time is what emulation multiplies
BASE = "FROM python:3.11-slim\nRUN echo {salt} > /salt && python -c 'print(sum(i * i for i in range({work})))' > /base.txt\n"
CHILD = "ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nARG ROLE\nRUN python -c 'print(sum(i * i for i in range({work})))' > /$ROLE.txt\n"


def run(argv: list[str], cwd: Path) -> str:
    env = {key: value for key, value in os.environ.items() if key != "IMAGEGRAPH_PLATFORMS"}  # the family declares its own
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT / "src"), env.get("PYTHONPATH"))))  # this checkout's imagegraph
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}) in {cwd}:\n{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


def git(repo: Path, *args: str) -> None:
    run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args], repo)


def invoke(repo: Path, *args: str) -> str:
    return run([sys.executable, "-m", "invoke", *args, *(("--progress", "plain") if args[0] == "build" else ())], repo)


class Family:
    """The benchmark's repository, and two clones of it: the runners. Each run gets a namespace and a salt of its own."""

    def __init__(self, root: Path, work: int) -> None:
        self.origin = root / "origin"
        self.work = work
        self.origin.mkdir(parents=True)
        (self.origin / "docker").mkdir()
        (self.origin / "tasks.py").write_text("from imagegraph.tasks import namespace  # noqa: F401\n")
        git(self.origin, "init", "-q", "-b", "main")
        self.runners = [root / "amd64-runner", root / "arm64-runner"]
        self._fresh()
        for runner in self.runners:
            run(["git", "clone", "-q", "--", str(self.origin), str(runner)], root)

    def _fresh(self) -> None:
        salt = uuid.uuid4().hex[:10]
        (self.origin / "images.yaml").write_text(IMAGES_YAML.format(registry=REGISTRY, namespace=f"bench-fanout/{salt}"))
        (self.origin / "docker" / "Dockerfile.base").write_text(BASE.format(salt=salt, work=self.work))
        (self.origin / "docker" / "Dockerfile.child").write_text(CHILD.format(work=self.work))
        git(self.origin, "add", "-A")
        git(self.origin, "commit", "-qm", f"salt {salt}")

    def fresh(self) -> None:
        """A new salt and namespace, pulled by both runners: nothing built before answers."""
        self._fresh()
        for runner in self.runners:
            git(runner, "pull", "-q", "--ff-only")


def whole(family: Family) -> dict[str, float]:
    started = time.monotonic()
    invoke(family.runners[0], "build")
    return {"whole": time.monotonic() - started}


def split(family: Family) -> dict[str, float]:
    started = time.monotonic()
    finished: dict[str, float] = {}

    def part(index: int) -> None:
        invoke(family.runners[index], "build", "--only-platform", PLATFORMS[index])
        finished[PLATFORMS[index]] = time.monotonic() - started

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(part, index) for index in range(2)]:
            future.result()
    output = invoke(family.runners[0], "join")
    total = time.monotonic() - started
    joined = re.search(r"joined \d+ image\(s\) in ([0-9.]+)s", output)
    if joined is None:
        raise SystemExit(f"invoke join said no time:\n{output}")
    return {"split": total, "join": float(joined.group(1)), "amd64 parts": finished["linux/amd64"],
            "join task": total - max(finished.values())}


def alone(family: Family, index: int) -> dict[str, float]:
    started = time.monotonic()
    invoke(family.runners[index], "build", "--only-platform", PLATFORMS[index])
    return {f"{PLATFORMS[index].split('/')[1]} alone": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=int, default=1_000_000, help="loop turns of each image's step (its CPU time)")
    args = parser.parse_args()
    modes = {"whole": whole, "split": split, "arm64 alone": lambda f: alone(f, 1), "amd64 alone": lambda f: alone(f, 0)}
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="imagegraph-fanout-") as tmp:
        family = Family(Path(tmp), args.work)
        for round_ in range(args.rounds):
            order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            for name in order:
                family.fresh()
                measured = modes[name](family)
                for key, seconds in measured.items():
                    times.setdefault(key, []).append(seconds)
                print(f"round {round_ + 1} {name}: " + ", ".join(f"{key} {seconds:.1f}s" for key, seconds in measured.items()), flush=True)
    median = {key: statistics.median(values) for key, values in times.items()}
    print("\nmedians (s): " + ", ".join(f"{key} {value:.2f}" for key, value in median.items()))
    slowest = max(median["arm64 alone"], median["amd64 alone"])
    print(f"split / whole: {median['split'] / median['whole']:.2f}x")
    print(f"split / slowest platform chain alone: {median['split'] / slowest:.2f}x (target 1.1x)")
    print(f"join: {median['join']:.2f}s as invoke join reports it, {median['join task']:.2f}s for the whole task (target: under 2 s)")
    print(f"amd64 images all pushed: {median['amd64 parts']:.1f}s into the split run, against {median['whole']:.1f}s for "
          f"every image in the whole run ({median['amd64 parts'] / median['whole']:.2f}x)")


if __name__ == "__main__":
    main()
