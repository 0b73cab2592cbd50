"""`invoke report`: the last build beside the runs before it and the targets."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Exit, task

from ..workspace import Workspace
from ._common import count_flag, say, user_errors


@task(help={
    "file": "the report to show (a .json `invoke build` wrote); default: the newest in .imagegraph/reports/",
    "history": "how many earlier runs to compare with (default 10)",
    "json": "print the report itself as JSON, exactly as stored",
    "markdown": "print the report as the Markdown summary CI shows",
    "chart": "also draw the trend of the shown runs (wall time, cache hit rate, layers) as a PNG at this path",
    "check": "exit 1 when the run misses a target (images.yaml report: targets:)",
})
@user_errors
def report(c, file=None, history=None, json_=False, markdown=False, chart=None, check=False):
    """Show the last build against earlier runs and the targets.

    Reads .imagegraph/reports/ (one JSON per `invoke build`). Per image built:
    time, cache hit rate, size and layers beside the median of earlier runs;
    then the targets of images.yaml's report: section. --chart draws the
    trend as a PNG; --json and --markdown print the report itself.
    """
    from ..presentation.reports.record import ReportError, read_report  # loaded by this task only
    from ..presentation.reports.render import draw_chart, to_markdown, to_text
    from ..presentation.reports.trends import check_targets, compare

    shown_runs = count_flag(history, "--history", default=10)
    if file is not None and not file.strip():
        raise ReportError("--file: is empty; name a report .json, or leave the flag out for the newest")
    if chart is not None and not chart.strip():
        raise ReportError("--chart: is empty; name the PNG to draw, e.g. --chart trend.png")
    workspace = Workspace()
    store = workspace.reporting.store
    stored = store.load()
    for problem in store.skipped:
        say(f"warning: skipped {problem}")
    if file:
        path = Path(file)
        if path.is_dir():
            raise ReportError(f"--file: {file} is a directory; name one report .json in it (reports are under {store.folder})")
        if not path.is_file():
            raise ReportError(f"--file: {file}: no such file; reports are under {store.folder}")
        latest = read_report(path)
        earlier = [r for p, r in stored if p.resolve() != path.resolve() and r.started <= latest.started]
    elif stored:
        latest, earlier = stored[-1][1], [r for _, r in stored[:-1]]
    else:
        raise ReportError(f"no build reports in {store.folder}; run `invoke build` first, or pass --file")
    earlier = earlier[-shown_runs:]
    checks = check_targets(latest, workspace.config.targets)
    if json_:
        sys.stdout.write(latest.to_json())
    elif markdown:
        sys.stdout.write(to_markdown(latest, checks))
    else:
        print(to_text(latest, compare(latest, earlier), checks))
    if chart:
        drawn = draw_chart([*earlier, latest], workspace.config.targets, Path(chart))
        print(f"chart: {drawn} ({len(earlier) + 1} run(s))", file=sys.stderr)
    missed = [c for c in checks if c.ok is False]
    if check and missed:
        raise Exit("error: target missed: " + "; ".join(f"{c.name} {c.actual}, target {c.target}" for c in missed), code=1)
