"""imagegraph against `docker buildx bake` and a plain `docker buildx build`, side by side on one engine.

    IMAGEGRAPH_PLATFORMS=linux/amd64 python bench/engine_compare.py [--rounds 1]

Works in a clone of this repository (commits of its own: a code change, a
requirements change), with registry namespaces of its own. Each tool
pushes to its own namespace and keeps its own registry cache there, so
neither answers from the other's work:

- imagegraph: `invoke build` (the CLI as contributors run it).
- bake: `docker buildx bake -f FILE` of the same four images, the file
  written by `invoke plan --force ... --bake FILE`: the same Dockerfiles,
  contexts, arguments and registry cache, every image built by bake.
- plain: `docker buildx build` of the app alone (on imagegraph's base, with
  the app's registry cache), pushed: the least any tool can do for a code change.

Scenarios, each timed for every tool in the same round, one after the other:

- cold: an empty engine and an empty namespace: the whole family built.
- no-op: an empty engine (what a fresh CI runner has), nothing changed.
- code: an empty engine, one line of the service code changed.
- requirements: an empty engine, a dependency added to requirements.txt.

"Empty engine" removes every image but the seeded python:3.11-slim and
prunes the whole build cache: run it where that is fine. Prints each
timing, then the medians and the ratios against imagegraph.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "127.0.0.1:5000"
#: The seeded base OS image (python:3.11-slim), which a fresh runner has too.
KEEP = "library/python:"
FAMILY = ("base", "ci", "app", "devcontainer")
#: A dependency the requirements change adds (pure Python, on PyPI, not yet in the family).
ADDED_REQUIREMENT = "six==1.17.0"
SCENARIOS = ("cold", "no-op", "code", "requirements")


def empty_engine(client: docker.DockerClient) -> None:
    """A fresh runner's engine: no image but the base OS image, no build cache.

    Refuses to start while containers exist: their images could not go, and would answer steps a fresh runner cannot.
    """
    containers = client.containers.list(all=True)
    if containers:
        raise SystemExit(f"containers exist ({', '.join(c.name for c in containers)}): remove them, the benchmark empties the engine")
    for image in client.images.list():
        if not any(tag.split("/", 1)[-1].startswith(KEEP) for tag in image.tags):
            client.images.remove(image.id, force=True)
    client.api.prune_builds(all=True)


def run(argv: list[str], cwd: Path, **env: str) -> str:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env={**os.environ, **env}, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


def git(repo: Path, *args: str) -> None:
    run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args], repo)


class Tools:
    """The three ways to build, on one clone; each pushes to a namespace of its own."""

    def __init__(self, repo: Path, run_id: str) -> None:
        self.repo = repo
        self.run_id = run_id
        self.generation = 0
        self.new_namespaces()

    def new_namespaces(self) -> None:
        """Empty namespaces: nothing built, no registry cache."""
        self.generation += 1
        self.ours = f"bench-{self.run_id}-{self.generation}/imagegraph"
        self.bakes = f"bench-{self.run_id}-{self.generation}/bake"

    def imagegraph(self) -> None:
        run([sys.executable, "-m", "invoke", "build", "--progress", "plain", "--no-tags"], self.repo,
            IMAGEGRAPH_REGISTRY=f"{REGISTRY}/{self.ours}")

    def bake(self) -> None:
        # Writing the file (and the wheels it needs) is imagegraph's work, not bake's: untimed, before the clock starts.
        run(["docker", "buildx", "bake", "--progress", "plain", "-f", str(self.bake_file)], self.repo)

    def prepare_bake(self) -> None:
        self.bake_file = self.repo / ".imagegraph" / "bench-bake.json"
        forced = [arg for name in FAMILY for arg in ("--force", name)]
        run([sys.executable, "-m", "invoke", "plan", *forced, "--bake", str(self.bake_file)], self.repo,
            IMAGEGRAPH_REGISTRY=f"{REGISTRY}/{self.bakes}")

    def prepare_plain(self) -> None:
        """The app's build request as bake would send it, turned into one `docker buildx build` on imagegraph's base."""
        self.bake_file_ours = self.repo / ".imagegraph" / "bench-app.json"
        run([sys.executable, "-m", "invoke", "plan", "--force", "app", "--bake", str(self.bake_file_ours)], self.repo,
            IMAGEGRAPH_REGISTRY=f"{REGISTRY}/{self.ours}")
        target = json.loads(self.bake_file_ours.read_text())["target"]["app"]
        argv = ["docker", "buildx", "build", "--progress", "plain", "--platform", ",".join(target["platforms"]),
                "--file", target["dockerfile"], "--target", target["target"], "--tag", target["tags"][0] + "-plain"]
        for key, value in target["args"].items():
            argv += ["--build-arg", f"{key}={value}"]
        for cache in target.get("cache-from", []):
            argv += ["--cache-from", cache]
        self.plain_argv = [*argv, "--push", target["context"]]

    def plain(self) -> None:
        run(self.plain_argv, self.repo)


def timed(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every scenario (median reported)")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only this scenario (repeatable); default: all")
    args = parser.parse_args()
    wanted = set(args.only or SCENARIOS)
    if not os.environ.get("IMAGEGRAPH_PLATFORMS"):
        raise SystemExit("set IMAGEGRAPH_PLATFORMS (linux/amd64 where PyTorch's arm64 CPU wheel cannot be had)")
    client = docker.from_env()
    measured: dict[tuple[str, str], list[float]] = {}

    def record(scenario: str, tool: str, seconds: float) -> None:
        measured.setdefault((scenario, tool), []).append(seconds)
        print(f"{scenario:<13} {tool:<11} {seconds:7.1f}s", flush=True)

    with tempfile.TemporaryDirectory(prefix="imagegraph-bench-") as tmp:
        repo = Path(tmp) / "repo"
        run(["git", "clone", "-q", str(ROOT), str(repo)], ROOT)
        tools = Tools(repo, uuid.uuid4().hex[:8])
        for round_ in range(args.rounds):
            print(f"-- round {round_ + 1}", flush=True)
            tools.new_namespaces()
            tools.prepare_bake()
            if "cold" in wanted:
                # each on an emptied engine and an empty namespace; who goes first alternates between rounds
                first_ours = round_ % 2 == 0
                for tool, action in (("imagegraph", tools.imagegraph), ("bake", tools.bake))[:: 1 if first_ours else -1]:
                    empty_engine(client)
                    record("cold", tool, timed(action))
            if wanted == {"cold"}:
                continue

            tools.prepare_bake()
            for tool, action in (("imagegraph", tools.imagegraph), ("bake", tools.bake)):
                empty_engine(client)
                record("no-op", tool, timed(action))

            service = repo / "src/scorer/model.py"
            service.write_text(service.read_text() + f"\n# bench round {round_ + 1}\n")
            git(repo, "commit", "-qam", f"bench: code change {round_ + 1}")
            tools.prepare_bake()
            tools.prepare_plain()
            # plain first: it writes no cache, and what imagegraph writes must not answer its steps
            for tool, action in (("plain build", tools.plain), ("imagegraph", tools.imagegraph), ("bake", tools.bake)):
                empty_engine(client)
                record("code", tool, timed(action))

            requirements = repo / "requirements/requirements.txt"
            lines = requirements.read_text().splitlines()
            if ADDED_REQUIREMENT in lines:
                lines.remove(ADDED_REQUIREMENT)
            else:
                lines.append(ADDED_REQUIREMENT)
            requirements.write_text("\n".join(lines) + "\n")
            git(repo, "commit", "-qam", f"bench: requirements change {round_ + 1}")
            tools.prepare_bake()
            # each on an emptied engine: whichever ran second would otherwise reuse the first one's local cache
            for tool, action in (("imagegraph", tools.imagegraph), ("bake", tools.bake)):
                empty_engine(client)
                record("requirements", tool, timed(action))

    print()
    print(f"{'scenario':<13} {'tool':<11} {'median':>8} {'vs imagegraph':>14}")
    for scenario in SCENARIOS:
        if (scenario, "imagegraph") not in measured:
            continue
        ours = statistics.median(measured[(scenario, "imagegraph")])
        for tool in ("imagegraph", "bake", "plain build"):
            if (scenario, tool) in measured:
                median = statistics.median(measured[(scenario, tool)])
                print(f"{scenario:<13} {tool:<11} {median:7.1f}s {median / ours:13.2f}x")


if __name__ == "__main__":
    main()
