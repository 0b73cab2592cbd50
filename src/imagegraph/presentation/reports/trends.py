"""How the last run measures up: against the median of the runs before it, and against images.yaml's targets."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ...core.config import ReportTargets
from .record import CODE_CHANGE, BuildReport

__all__ = ["Comparison", "TargetCheck", "check_targets", "compare"]


# -- targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    name: str
    actual: str
    target: str
    #: None when the target does not apply to this run (e.g. no code change was built).
    ok: bool | None
    note: str = ""

    @property
    def mark(self) -> str:
        return {True: "✅", False: "❌", None: "–"}[self.ok]


def check_targets(report: BuildReport, targets: ReportTargets) -> tuple[TargetCheck, ...]:
    checks: list[TargetCheck] = []
    if report.kind == CODE_CHANGE:
        checks.append(TargetCheck("code-change build", f"{report.seconds:.1f} s", f"≤ {targets.code_change_seconds:g} s",
                                  report.seconds <= targets.code_change_seconds))
    else:
        checks.append(TargetCheck("code-change build", "-", f"≤ {targets.code_change_seconds:g} s", None, f"this run was a {report.kind}"))
    layered = [image for image in report.images if image.layers is not None]
    if layered:
        worst = max(layered, key=lambda image: image.layers or 0)
        checks.append(TargetCheck("layers per image", f"{worst.layers} ({worst.name})", f"≤ {targets.max_layers}",
                                  (worst.layers or 0) <= targets.max_layers))
    else:
        checks.append(TargetCheck("layers per image", "-", f"≤ {targets.max_layers}", None, "no image's layers known"))
    rate = report.hit_rate
    if rate is None:
        checks.append(TargetCheck("cache hit rate", "-", f"≥ {targets.cache_hit_rate:.0%}", None, "no Dockerfile step ran"))
    else:
        checks.append(TargetCheck("cache hit rate", f"{rate:.0%}", f"≥ {targets.cache_hit_rate:.0%}", rate >= targets.cache_hit_rate))
    return tuple(checks)


# -- comparison with earlier runs ----------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One line of `invoke report`: a measure of the last run beside the median of the runs before it."""

    subject: str
    measure: str
    now: float | None
    before: float | None
    #: How many earlier runs the median is of.
    runs: int
    unit: str = "s"

    @property
    def change(self) -> float | None:
        if self.now is None or not self.before:
            return None
        return (self.now - self.before) / self.before


def compare(latest: BuildReport, earlier: Sequence[BuildReport]) -> tuple[Comparison, ...]:
    """The last run against the median of ``earlier`` runs: the run's wall time (runs of the same kind), and for each image it
    built: build time and cache hit rate (against earlier builds of it), size and layers (against every earlier run's).

    Only whole runs set the medians: a run that failed or that a stop cut short (Ctrl-C, SIGTERM) took a time that says
    nothing about its kind.
    """
    same_kind = [r.seconds for r in earlier if r.kind == latest.kind and r.ok]
    rows = [Comparison(f"run ({latest.kind})", "wall time", latest.seconds, _median(same_kind), len(same_kind))]
    for image in latest.built:
        before = [i for r in earlier for i in r.images if i.name == image.name and i.built and i.ok]
        rows.append(Comparison(image.name, "build time", image.seconds, _median([i.seconds for i in before]), len(before)))
        rates = [i.hit_rate for i in before if i.hit_rate is not None]
        rows.append(Comparison(image.name, "cache hit rate", image.hit_rate, _median(rates), len(rates), unit="%"))
        # size and layers of any earlier run that had this image, built or not: a reused image is what the last build made
        known = [i for r in earlier for i in r.images if i.name == image.name]
        sizes = [float(i.size) for i in known if i.size is not None]
        layers = [float(i.layers) for i in known if i.layers is not None]
        rows.append(Comparison(image.name, "size", None if image.size is None else float(image.size), _median(sizes), len(sizes), unit="B"))
        rows.append(Comparison(image.name, "layers", None if image.layers is None else float(image.layers), _median(layers), len(layers),
                               unit=""))
    return tuple(rows)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
