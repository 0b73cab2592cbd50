"""A build report for people: Markdown (a CI job summary), terminal text (`invoke report`), and a PNG of the trend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...core.config import ReportTargets
from ...core.values import escaped
from ..tables import human_size, table
from .record import BASE_REBUILD, CODE_CHANGE, DEPENDENCY_CHANGE, KINDS, NO_CHANGE, REBUILD, BuildReport, ReportError
from .trends import Comparison, TargetCheck

__all__ = ["draw_chart", "to_markdown", "to_text"]


# -- Markdown ----------------------------------------------------------------------


def to_markdown(report: BuildReport, checks: Sequence[TargetCheck] = ()) -> str:
    """The run as a Markdown summary: a headline, one table row per image, the targets."""
    built, reused = len(report.built), sum(1 for i in report.images if i.decision == "reuse")
    state = "✅" if report.ok else "❌ failed: " + ", ".join(_cell(i.name) for i in report.images if not i.ok)
    lines = [
        f"### imagegraph build: {built} built, {reused} reused in {report.seconds:.1f} s {state}",
        "",
        " · ".join(part for part in (
            f"`{_cell(report.short)}` ({_cell(report.event)})", _cell(report.kind),
            f"since {_cell(report.since)}" if report.since else "",
            _cell(report.builder) if report.builder else "", f"registry `{_cell(report.registry)}`") if part),
        "",
        "| image | decision | why | time | size | layers | cache hits | digest | tags |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for image in report.images:
        decision = f"**{image.outcome}**" if not image.ok else "**built**" if image.built else image.decision
        why = image.error if image.error else image.reason
        time = f"{image.seconds:.1f} s" if image.seconds else "–"
        hits = f"{image.cached_steps}/{image.total_steps} ({image.hit_rate:.0%})" if image.total_steps else "–"
        digest = f"`{image.digest[:19]}…`" if image.digest else "–"
        tags = ", ".join(f"`{_cell(tag)}`" for tag in image.tags) or "–"
        lines.append(f"| {_cell(image.name)} | {decision} | {_cell(why)} | {time} | {human_size(image.size) if image.size else '–'} | "
                     f"{image.layers if image.layers is not None else '–'} | {hits} | {digest} | {tags} |")
    if checks:
        lines += ["", "**Targets:** " + " · ".join(
            f"{c.name} {c.actual} {c.target} {c.mark}" if c.ok is not None else f"{c.name} {c.mark} ({c.note})" for c in checks)]
    phased = [image for image in report.images if image.phases]
    if phased:
        lines += ["", "<details><summary>Where the time went</summary>", ""]
        lines += [f"- **{_cell(image.name)}**: " + ", ".join(f"{_cell(phase)} {seconds:.1f} s" for phase, seconds in image.phases)
                  for image in phased]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def to_text(report: BuildReport, comparisons: Sequence[Comparison], checks: Sequence[TargetCheck]) -> str:
    """`invoke report` in a terminal: the run, how it compares with the runs before it, and the targets."""
    state = "ok" if report.ok else "FAILED (" + ", ".join(i.name for i in report.images if not i.ok) + ")"
    head = escaped(f"{report.started.replace('T', ' ').rstrip('Z')} UTC  {report.short}  {report.event}  {report.kind}  "
                   f"{report.seconds:.1f}s  {len(report.built)} built  {state}")
    rows = []
    for image in report.images:
        hits = f"{image.cached_steps}/{image.total_steps}" if image.total_steps else "-"
        rows.append((image.name, image.outcome.upper() if not image.ok else image.decision, f"{image.seconds:.1f}s" if image.seconds else "-",
                     human_size(image.size), str(image.layers if image.layers is not None else "-"), hits,
                     (image.digest or "-")[:19], ", ".join(image.tags[1:]) or "-"))
    images = table(("image", "decision", "time", "size", "layers", "cached", "digest", "tags moved"), rows)
    shown = [c for c in comparisons if c.now is not None]
    earlier = max((c.runs for c in comparisons), default=0)
    if earlier:
        versus = table(("", "measure", "now", "median before", "change", "runs"),
                       [(c.subject, c.measure, _value(c.now, c.unit), _value(c.before, c.unit),
                         "-" if c.change is None else f"{c.change:+.0%}", str(c.runs)) for c in shown])
    else:
        versus = "no earlier runs to compare with"
    goals = table(("target", "this run", "target", ""), [(c.name, c.actual if c.ok is not None else c.note, c.target, c.mark) for c in checks])
    return f"{head}\n\n{images}\n\nagainst earlier runs:\n{versus}\n\nagainst the targets (images.yaml report: targets:):\n{goals}"


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.0%}"
    if unit == "B":
        return human_size(int(value))
    if unit == "s":
        return f"{value:.1f}s"
    return f"{value:g}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, control characters escaped, no pipe or HTML tag of its own."""
    text = escaped(" ".join(str(text).split()))
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


# -- chart ------------------------------------------------------------------------


def draw_chart(reports: Sequence[BuildReport], targets: ReportTargets, path: Path) -> Path:
    """A PNG of the trend: each run's wall time (coloured by kind, with the code-change target), cache hit rate, most layers."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReportError("--chart needs matplotlib: pip install 'imagegraph[report]' (or pip install matplotlib)") from None
    if not reports:
        raise ReportError("no build reports to chart; run `invoke build` first")
    colours = {NO_CHANGE: "#9e9e9e", CODE_CHANGE: "#2e7d32", DEPENDENCY_CHANGE: "#f9a825", REBUILD: "#1565c0", BASE_REBUILD: "#c62828"}
    xs = list(range(len(reports)))
    labels = [f"{r.short}\n{r.started[5:16].replace('T', ' ')}" for r in reports]
    figure, (times, rates, layers) = plt.subplots(3, 1, figsize=(max(6.0, 0.7 * len(reports) + 3), 7.5), sharex=True,
                                                  gridspec_kw={"height_ratios": [2, 1, 1]})
    times.bar(xs, [r.seconds for r in reports], color=[colours[r.kind] for r in reports])
    times.axhline(targets.code_change_seconds, color=colours[CODE_CHANGE], linestyle="--", linewidth=1)
    walls = [r.seconds for r in reports if r.seconds > 0]
    if walls and max(walls) / max(min(walls), 0.1) > 30:
        times.set_yscale("log")  # a base rebuild next to a no-op: both stay readable
    times.set_ylabel("wall time (s)")
    times.set_title("imagegraph builds")
    times.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in KINDS if any(r.kind == k for r in reports)]
                 + [plt.Line2D([0], [0], color=colours[CODE_CHANGE], linestyle="--")],
                 labels=[k for k in KINDS if any(r.kind == k for r in reports)] + ["code-change target"], fontsize=8, loc="upper left")
    hit = [(x, r.hit_rate * 100) for x, r in zip(xs, reports, strict=True) if r.hit_rate is not None]
    if hit:
        rates.plot([x for x, _ in hit], [y for _, y in hit], marker="o", color="#1565c0")
    rates.axhline(targets.cache_hit_rate * 100, color="#1565c0", linestyle="--", linewidth=1)
    rates.set_ylim(-5, 105)
    rates.set_ylabel("cache hits (%)")
    names = sorted({i.name for r in reports for i in r.images if i.layers is not None})
    for name in names:
        points = [(x, i.layers) for x, r in zip(xs, reports, strict=True) for i in r.images if i.name == name and i.layers is not None]
        layers.plot([x for x, _ in points], [y for _, y in points], marker=".", label=name)
    layers.axhline(targets.max_layers, color="#c62828", linestyle="--", linewidth=1)
    layers.set_ylabel("layers")
    if names:
        layers.legend(fontsize=8, loc="best", ncol=min(4, len(names)))
    layers.set_xticks(xs, labels, fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
