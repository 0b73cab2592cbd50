"""Build times of this repository's image family, measured side by side in one run.

    IMAGEGRAPH_PLATFORMS=linux/amd64 python bench/build_times.py [--rounds 3]

Scenarios, each timed end to end (plan + build + push), in a registry
namespace of the benchmark's own so nothing a user built is touched:

- cold: every image built with --no-cache into an empty namespace
- no-op: the same checkout again (everything reused)
- code: a one-line change in src/scorer (only app rebuilds)
- code, no cache: the same change with app built --no-cache (what a build
  pays when its dependency layers are not reused)

Prints a table of medians and the ratios against the cold build. The
machine is noisy: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from imagegraph.core.options import BuildOptions  # noqa: E402
from imagegraph.core.plan import Decision  # noqa: E402
from imagegraph.workspace import Workspace  # noqa: E402

REGISTRY = "127.0.0.1:5000"
PROBE = ROOT / "src" / "scorer" / "app.py"


def timed_build(namespace: str, **options) -> tuple[float, list[str]]:
    started = time.monotonic()
    workspace = Workspace(ROOT, BuildOptions(registry=f"{REGISTRY}/{namespace}", **options))
    results = workspace.executor(say=lambda _: None).run(workspace.plan())
    seconds = time.monotonic() - started
    failed = [f"{r.name}: {r.error}" for r in results if not r.ok]
    if failed:
        raise SystemExit(f"build failed: {failed}")
    return seconds, [r.name for r in results if r.decision is Decision.BUILD]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of the warm scenarios (median reported)")
    args = parser.parse_args()
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    original = PROBE.read_text()
    rows: list[tuple[str, float, str]] = []
    try:
        cold, built = timed_build(namespace, no_cache=True)
        rows.append(("cold (all --no-cache)", cold, ",".join(built)))
        noop = [timed_build(namespace)[0] for _ in range(args.rounds)]
        rows.append(("no change", statistics.median(noop), "-"))
        code, layered_built = [], []
        plain = []
        for round_ in range(args.rounds):
            PROBE.write_text(original + f"\n# bench {uuid.uuid4().hex}\n")
            seconds, layered_built = timed_build(namespace)
            code.append(seconds)
            PROBE.write_text(original + f"\n# bench {uuid.uuid4().hex} {round_}\n")
            plain.append(timed_build(namespace, targets=("app",), no_cache=True)[0])
        rows.append(("code change (layered)", statistics.median(code), ",".join(layered_built)))
        rows.append(("code change, app --no-cache", statistics.median(plain), "app"))
    finally:
        PROBE.write_text(original)
    print(f"{'scenario':32} {'median s':>9} {'vs cold':>8}  built")
    for name, seconds, what in rows:
        print(f"{name:32} {seconds:9.2f} {seconds / cold:8.3f}  {what}")


if __name__ == "__main__":
    main()
