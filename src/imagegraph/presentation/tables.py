"""What the tasks print for people: plain-text tables (plans, tags, results, retention verdicts) and the lines beside them.

Readable in a terminal and in a CI log. The JSON a CI job reads is :mod:`imagegraph.presentation.ci_matrix`;
the build report kept per run is :mod:`imagegraph.presentation.reports`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.changes import Explanation
from ..core.plan import Plan
from ..core.values import ImageRef, escaped

if TYPE_CHECKING:
    from ..core.result import ImageResult
    from ..core.retention import Verdict

__all__ = [
    "format_explanation",
    "format_plan",
    "format_results",
    "format_retention",
    "format_tags",
    "garbage_collection_hint",
    "human_size",
    "table",
]


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
    """Columns of cells; every cell escaped (:func:`~imagegraph.core.values.escaped`): a file, tag or repository name in a reason
    shows its control characters, never runs them, and cannot start a row of its own."""
    cells = [[escaped(str(cell)) for cell in row] for row in (header, *rows)]
    widths = [max(len(cell) for cell in column) for column in zip(*cells, strict=False)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
             for row in (cells[0], ["-" * w for w in widths], *cells[1:])]
    return "\n".join(lines)


def format_plan(plan: Plan) -> str:
    rows = [(e.name, e.decision.value, e.fingerprint, ",".join(e.platforms), ImageRef.parse(e.parent_ref).short if e.parent_ref else "-", e.reason)
            for e in plan.images]
    return table(("image", "decision", "fingerprint", "platforms", "parent", "reason"), rows)


def format_tags(plan: Plan) -> str:
    """Which tags this plan moves, image by image, and the rules they move by (each rule said once)."""
    if plan.options.get("only_platform"):
        return f"tags: parts only, under <fingerprint>-<platform> (a run of {plan.options['only_platform']} alone: `invoke join` moves the tags)"
    rules: dict[str, str] = {}
    lines = []
    for entry in plan.images:
        moving = [t for t in entry.tags if t.moves and t.kind != "fingerprint"]
        held = [t for t in entry.tags if not t.moves and t.kind != "fingerprint"]
        if not moving and not held:
            continue
        parts = [", ".join(t.tag for t in moving)] if moving else []
        parts += [f"{t.tag} (not moved)" for t in held]
        lines.append(escaped(f"  {entry.name}: {'; '.join(parts)}"))
        for tag in (*moving, *held):
            rules.setdefault(tag.kind, tag.rule)
    if not lines:
        return "tags: fingerprint tags only"
    return "\n".join(["tags:", *lines, *(escaped(f"  {kind}: {rule}") for kind, rule in rules.items())])


def format_results(results: Sequence[ImageResult]) -> str:
    rows = []
    for r in results:
        decision = r.decision.value if r.ok else (r.stopped or "failed").upper()
        time = f"{r.seconds:.1f}s" if r.seconds else "-"
        cached = f"{r.steps.cached}/{r.steps.total}" if r.steps.total else "-"
        rows.append((r.name, decision, ImageRef.parse(r.ref).short, human_size(r.size), str(r.layers or "-"), cached, time, r.error or r.reason))
    return table(("image", "decision", "tag", "size", "layers", "cached", "time", "note"), rows)


def format_explanation(explanation: Explanation | None) -> str:
    """One line on what git compared: the base commit, how it was chosen, what changed."""
    if explanation is None:
        return "git: not consulted"
    if explanation.base is None:
        return escaped(f"git: {explanation.note}")
    changed = {p for c in explanation.changes for p in c.paths}
    inputs = {p for paths in explanation.causes.values() for p in paths}
    line = f"since {explanation.base.short} ({explanation.base.how}): {len(changed)} path(s) changed"
    if changed:
        line += f", {len(inputs)} of them image inputs"
    ignored = explanation.ignored
    if ignored and not inputs:
        shown = ", ".join(ignored[:3]) + (f" and {len(ignored) - 3} more" if len(ignored) > 3 else "")
        line += f" ({shown}: no image's input)"
    if explanation.note:
        line += f"; {explanation.note}"
    return escaped(line)  # one line, whatever a path, a ref or a CI variable in it holds


def format_retention(verdicts: Sequence[Verdict], *, show_kept: bool = False) -> str:
    """What `invoke cleanup` deletes (or would), and why; with ``show_kept`` what stays too.

    imagegraph's own records (retention, leases) are no images: they are counted on a line of their own, never listed.
    """
    images = [v for v in verdicts if not v.manifest.record]
    shown = [v for v in images if show_kept or not v.keep]
    shown.sort(key=lambda v: (v.manifest.repository, v.keep, v.manifest.label()))
    rows = [(v.manifest.name, "keep" if v.keep else "delete", ", ".join(v.manifest.tags) or "(untagged)",
             v.manifest.digest[7:19], v.manifest.created[:16].replace("T", " ") or "-", v.reason) for v in shown]
    kept = sum(1 for v in images if v.keep)
    summary = f"{len(images)} manifest(s): {kept} kept, {len(images) - kept} to delete"
    replaced = sum(1 for v in verdicts if v.manifest.record and not v.keep)
    if replaced:
        summary += f" (and {replaced} earlier record(s) of imagegraph's own, replaced)"
    return f"{table(('image', 'verdict', 'tags', 'digest', 'created', 'why'), rows)}\n{summary}" if rows else summary


def garbage_collection_hint(registry: str, api: str = "distribution") -> str:
    """How to reclaim the space: deleting manifests only unlinks them, blobs go at the registry's garbage collection.

    ``api`` is the API cleanup deleted through (:class:`imagegraph.core.registry_api.ApiKind`'s value): a hosted
    registry frees the space itself, and GitLab's collects what no tag names on its own.
    """
    if api == "gitlab":
        return (f"{registry} collects the manifests and blobs no tag names any more by itself (self-managed without online "
                f"garbage collection: `sudo gitlab-ctl registry-garbage-collect`)")
    if api in ("github", "dockerhub"):
        return f"{registry} frees the space of what was deleted by itself"
    return (
        f"Space comes back when {registry} garbage-collects its blobs, offline (stop it, or make it read-only, first):\n"
        "  docker-registry garbage-collect /etc/docker/registry/config.yml   (Debian; `registry garbage-collect` in the image)\n"
        "Leave out --delete-untagged on distribution 2.x: it also deletes the platform manifests of multi-arch images "
        "(distribution/distribution#3178); imagegraph already deleted the untagged manifests it could see."
    )
