"""``.imagegraph/reports/``: the build reports on disk, one JSON and one Markdown file per run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...adapters.workdirs import no_follow, open_own, own_folder, refuse_link
from .record import BuildReport, ReportError, read_report

__all__ = ["ReportStore"]


@dataclass
class ReportStore:
    """``.imagegraph/reports/``: one JSON and one Markdown file per run, the oldest dropped beyond ``keep``."""

    folder: Path
    keep: int = 100
    skipped: list[str] = field(default_factory=list)
    #: Where the folder's own parts start (the repository's root); None: the folder's parent. No part below it may be a link.
    within: Path | None = None

    @property
    def _within(self) -> Path:
        return self.within if self.within is not None else self.folder.parent

    def save(self, report: BuildReport, markdown: str) -> Path:
        """Write ``<time>-<commit>.json`` and its ``.md``; a name another run took first gets ``-2``, ``-3``, ... (never overwritten)."""
        own_folder(self.folder, self._within)
        stamp = report.started.replace("-", "").replace(":", "").replace("Z", "")
        path = _create_new(self.folder, f"{stamp}-{report.short}", report.to_json())
        with open_own(path.with_suffix(".md"), self._within) as out:
            out.write(markdown)
        # by stem, so that "<time>-<commit>" comes before the "-2" of a run that started in the same second
        for old in sorted(self.folder.glob("*.json"), key=lambda path: path.stem)[: -self.keep]:
            old.unlink()
            old.with_suffix(".md").unlink(missing_ok=True)
        return path

    def load(self) -> list[tuple[Path, BuildReport]]:
        """Every readable report, oldest first; unreadable files are listed in ``skipped``, not fatal."""
        found: list[tuple[Path, BuildReport]] = []
        own_folder(self.folder, self._within, make=False)
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else ():
            refuse_link(path)
            try:
                found.append((path, read_report(path)))
            except ReportError as err:
                self.skipped.append(str(err))
        found.sort(key=lambda item: (item[1].started, item[0].stem))
        return found


def _create_new(folder: Path, stem: str, text: str) -> Path:
    """Write ``text`` to a file of ``folder`` no one else has: ``stem.json``, else ``stem-2.json``, ... (exclusive create)."""
    for number in range(1, 1000):
        path = folder / f"{stem}{'' if number == 1 else f'-{number}'}.json"
        try:
            with open(path, "x", encoding="utf-8", opener=no_follow) as out:
                out.write(text)
        except FileExistsError:
            continue
        return path
    raise ReportError(f"{folder}: 999 reports are named {stem}*.json; delete old reports there and run again")
