"""What a build report costs a build: a no-op `invoke build` of this checkout (plan and run, nothing to build) beside
making and saving its report (a digest look-up and an engine inspect per reused image, JSON and Markdown written).

    IMAGEGRAPH_PLATFORMS=linux/amd64 python bench/report_overhead.py [--rounds 5]

Needs the family in the registry (`invoke build` first). Writes its reports to .imagegraph/reports like any build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from imagegraph.core.options import BuildOptions  # noqa: E402
from imagegraph.workspace import Workspace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    build, report = [], []
    for _ in range(args.rounds):
        started = time.monotonic()
        workspace = Workspace(ROOT, BuildOptions())
        plan = workspace.plan()
        results = workspace.executor(say=lambda _: None).run(plan)
        if plan.to_build():
            raise SystemExit("something needs building: run `invoke build` first, so this measures the no-op build")
        planned = time.monotonic()
        workspace.reporting.save(workspace.reporting.report(plan, results, {}, started=datetime.now(UTC), seconds=planned - started))
        build.append(planned - started)
        report.append(time.monotonic() - planned)
    b, r = statistics.median(build), statistics.median(report)
    print(f"no-op build (plan + run): {b * 1000:.0f} ms; report (make + save): {r * 1000:.0f} ms; report / build: {r / b:.2f} "
          f"(medians of {args.rounds})")


if __name__ == "__main__":
    main()
