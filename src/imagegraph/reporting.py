"""A run's build report: made from the plan and the results, completed with what the registry and the engine know, and kept.

The report's content and its renderings are :mod:`imagegraph.presentation.reports`; this module
gathers what they need from the world (the digest, size and layers of the images the run did not
build, the commit, the builder) and writes them where CI and `invoke report` read them. The
workspace hands it the parts it reads (:class:`ReportSources`), so nothing is made that a report
does not ask for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .adapters.lookups import side_by_side
from .adapters.registry import full_ref
from .core.errors import ImagegraphError
from .core.plan import Decision, Plan
from .core.tags import describe_event

if TYPE_CHECKING:
    from .adapters.engine.builders import Builder
    from .adapters.engine.images import LocalImages
    from .adapters.registry import Registry
    from .adapters.repo import Repository
    from .core.config import Config
    from .core.fingerprint import Fingerprint
    from .core.result import ImageResult
    from .core.tags import Event
    from .presentation.reports.record import BuildReport
    from .presentation.reports.store import ReportStore

__all__ = ["ReportSources", "RunReports"]


class ReportSources(Protocol):
    """What a report reads (the workspace): each part is made only when a report asks for it."""

    root: Path
    config: Config

    @property
    def fingerprints(self) -> Mapping[str, Fingerprint]: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def local(self) -> LocalImages: ...

    @property
    def builder(self) -> Builder: ...

    @property
    def git(self) -> Repository: ...

    def event(self) -> Event: ...


class RunReports:
    """The reports of one project: each run's made and saved, the earlier ones in ``folder``."""

    def __init__(self, sources: ReportSources, folder: Path) -> None:
        self.sources = sources
        self.folder = folder

    @cached_property
    def store(self) -> ReportStore:
        from .presentation.reports.store import ReportStore
        return ReportStore(self.folder, keep=self.sources.config.report_history, within=self.sources.root)

    def report(self, plan: Plan, results: Sequence[ImageResult], tagged: Mapping[str, Sequence[str]], *, started: datetime,
               seconds: float) -> BuildReport:
        """The run's report; digest, size and layers of the images it did not build are looked up (registry, engine)."""
        from .presentation.reports.make import make_report, recipe_of
        sources, config = self.sources, self.sources.config
        unbuilt = [r for r in results if not r.seconds and r.decision is not Decision.SKIP]
        registry, local = (sources.registry, sources.local) if unbuilt else (None, None)  # made here, once, not by the threads

        def look_up(result: ImageResult) -> tuple[str | None, int | None, int | None]:
            digest = None
            if config.image(result.name).push:
                try:
                    image = full_ref(result.ref)
                    digest = registry.manifest_digest(image.repository, image.reference)
                except ImagegraphError:
                    digest = None  # a report never fails a build
            try:
                info = local.info(result.ref)
            except ImagegraphError:
                info = None  # nothing was built, so the engine may be down: the report does without the size
            return digest, info.size if info else None, info.layers if info else None

        known = dict(zip((r.name for r in unbuilt), side_by_side(look_up, unbuilt), strict=True))
        recipes = {entry.name: recipe_of(config, entry.name, sources.fingerprints[entry.name].files, entry.parent_ref)
                   for entry in plan.images}
        return make_report(
            config, plan, results, tagged=tagged, started=started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            seconds=seconds, commit=sources.git.head(), event=describe_event(sources.event()),
            builder=sources.builder.describe() if plan.to_build() else None, known=known, recipes=recipes,
            earlier=[report for _, report in self.store.load()],
        )

    def save(self, report: BuildReport) -> tuple[Path, str]:
        """Write the report (JSON and Markdown) and append the Markdown to $GITHUB_STEP_SUMMARY when CI sets it."""
        from .presentation.reports.render import to_markdown
        from .presentation.reports.trends import check_targets
        markdown = to_markdown(report, check_targets(report, self.sources.config.targets))
        path = self.store.save(report, markdown)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        return path, markdown
