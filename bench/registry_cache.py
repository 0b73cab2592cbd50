"""What the registry cache buys a fresh CI runner: cold-engine rebuilds with and without it, side by side.

    IMAGEGRAPH_PLATFORMS=linux/amd64 python bench/registry_cache.py [--rounds 2]

Two registry namespaces of the benchmark's own, each seeded with one build
of the family: one with the registry cache written, one without (a build
without the cache replaces fingerprint tags with digests the cache never
saw, so the two must not share a namespace). Then, in interleaved rounds,
the engine is emptied (every image but the base OS image removed, the whole
build cache pruned: what a new CI runner has) and:

- family, cache: every image rebuilt (--force) reading the registry cache
- family, no cache: the same with --no-registry-cache
- app, cache / no cache: only app rebuilt (a code change); its base comes from the registry

Prints medians, Dockerfile steps cached / run, and the ratios no-cache / cache.
It removes the engine's images and build cache: run it where that is fine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from imagegraph.core.buildkit import StepCount  # noqa: E402
from imagegraph.core.options import BuildOptions  # noqa: E402
from imagegraph.workspace import Workspace  # noqa: E402

REGISTRY = "127.0.0.1:5000"
#: The seeded base OS image (python:3.11-slim), which a fresh runner has too.
KEEP = "library/python:"


def empty_engine(client: docker.DockerClient) -> None:
    """A fresh runner's engine: no image but the base OS image, no build cache.

    Every image goes, not only the benchmark's: images of other namespaces
    share the family's layers, and a layer present locally is never pulled.
    (They are all in the registry; a later build pulls what it needs.)
    """
    for image in client.images.list():
        if not any(tag.split("/", 1)[-1].startswith(KEEP) for tag in image.tags):
            client.images.remove(image.id, force=True)
    client.api.prune_builds(all=True)


def timed_build(namespace: str, **options) -> tuple[float, StepCount]:
    started = time.monotonic()
    workspace = Workspace(ROOT, BuildOptions(registry=f"{REGISTRY}/{namespace}", **options))
    results = workspace.executor(say=lambda _: None).run(workspace.plan())
    seconds = time.monotonic() - started
    failed = [f"{r.name}: {r.error}" for r in results if not r.ok]
    if failed:
        raise SystemExit(f"build failed: {failed}")
    steps = StepCount()
    for result in results:
        steps += result.steps
    return seconds, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median reported)")
    args = parser.parse_args()
    client = docker.from_env()
    run = uuid.uuid4().hex[:8]
    cached, uncached = f"bench-cache-{run}", f"bench-nocache-{run}"
    everything = ("base", "ci", "app", "devcontainer")
    # app first: a family rebuild answered wholly from the cache reproduces the same base
    scenarios = {
        "app, cache": (cached, dict(force=("app",))),
        "app, no cache": (uncached, dict(force=("app",), registry_cache=False)),
        "family, cache": (cached, dict(force=everything)),
        "family, no cache": (uncached, dict(force=everything, registry_cache=False)),
    }
    for namespace, options in ((cached, {}), (uncached, dict(registry_cache=False))):
        seconds, _ = timed_build(namespace, **options)
        print(f"seed build of the family into {namespace}: {seconds:.1f}s", flush=True)
    measured: dict[str, list[tuple[float, StepCount]]] = {name: [] for name in scenarios}
    for round_ in range(args.rounds):
        for name, (namespace, options) in scenarios.items():
            empty_engine(client)
            measured[name].append(timed_build(namespace, **options))
            took, steps = measured[name][-1]
            print(f"round {round_ + 1}: {name}: {took:.1f}s, {steps.cached}/{steps.total} steps cached", flush=True)
    print()
    print(f"{'scenario':<20} {'median':>8} {'steps cached':>14} {'vs cache':>9}")
    for name in scenarios:
        median = statistics.median(s for s, _ in measured[name])
        steps = measured[name][-1][1]  # the same in every round
        with_cache = statistics.median(s for s, _ in measured[name.replace("no cache", "cache")])
        print(f"{name:<20} {median:>7.1f}s {steps.cached:>6}/{steps.total:<7} {median / with_cache:>8.2f}")


if __name__ == "__main__":
    main()
