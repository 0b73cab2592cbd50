"""Plain-text tables for plans and build results (readable in a terminal and a CI log)."""

from __future__ import annotations

from collections.abc import Sequence

from .execute import ImageResult
from .plan import Plan

__all__ = ["format_plan", "format_results", "human_size", "table"]


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
             for row in (header, ["-" * w for w in widths], *rows)]
    return "\n".join(lines)


def format_plan(plan: Plan) -> str:
    rows = [(e.name, e.decision.value, e.fingerprint, ",".join(e.platforms), e.parent_ref.rsplit("/", 1)[-1] if e.parent_ref else "-", e.reason)
            for e in plan.images]
    return table(("image", "decision", "fingerprint", "platforms", "parent", "reason"), rows)


def format_results(results: Sequence[ImageResult]) -> str:
    rows = []
    for r in results:
        decision = r.decision.value if r.ok else "FAILED"
        time = f"{r.seconds:.1f}s" if r.seconds else "-"
        rows.append((r.name, decision, r.ref.rsplit("/", 1)[-1], human_size(r.size), str(r.layers or "-"), time, r.error or r.reason))
    return table(("image", "decision", "tag", "size", "layers", "time", "note"), rows)
