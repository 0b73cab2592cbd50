"""What a run did with each image of its plan: one :class:`ImageResult` per image.

The executor (:mod:`imagegraph.execute`) makes them; the tables, the build reports and the tag gate
(:func:`imagegraph.core.tags.publication`) read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .buildkit import StepCount
from .plan import Decision

__all__ = ["INTERRUPTED", "NOT_BUILT", "ImageResult"]

#: How a stopped run leaves an image it was to build: stopped while running, or never started.
INTERRUPTED, NOT_BUILT = "interrupted", "not built"


@dataclass(frozen=True)
class ImageResult:
    name: str
    decision: Decision
    ref: str
    reason: str
    seconds: float = 0.0
    size: int | None = None
    layers: int | None = None
    digest: str | None = None
    pushed: bool = False
    error: str | None = None
    log: str | None = None
    #: Dockerfile steps answered from a cache (the engine's or the registry's), and all steps run.
    steps: StepCount = field(default_factory=StepCount)
    #: Where the time went: (phase, seconds) for wheels, build <platform>, push, manifest.
    phases: tuple[tuple[str, float], ...] = ()
    #: :data:`INTERRUPTED` or :data:`NOT_BUILT` when the run was stopped before this image's work was done.
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def failure(self) -> str:
        """One line: which image failed, why, and where its log is; '' when it did not fail."""
        if self.error is None:
            return ""
        where = f" (log: {self.log})" if self.log and self.log not in self.error else ""
        return f"{self.name}: {self.error}{where}"
