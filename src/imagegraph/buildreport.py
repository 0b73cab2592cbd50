"""Build reports: what one `invoke build` did, per image, kept as JSON and shown as Markdown.

Every build writes ``.imagegraph/reports/<time>-<commit>.json`` (the record:
for machines, history and `invoke report`) and the same run as Markdown (for
people: a CI job summary, a pull request comment). ``invoke report`` reads
them back to put the last run beside the ones before it and beside the
targets images.yaml sets (``report: targets:``).

Everything here is pure except :class:`ReportStore` (files) and
:func:`draw_chart` (matplotlib, imported only when a chart is asked for).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import CONFIG_NAME, Config, ReportTargets
from .errors import ImagegraphError
from .execute import ImageResult
from .plan import Plan
from .report import human_size, table

__all__ = [
    "SCHEMA",
    "BuildReport",
    "ImageRecord",
    "ReportError",
    "ReportStore",
    "TargetCheck",
    "check_targets",
    "classify",
    "compare",
    "draw_chart",
    "make_report",
    "read_report",
    "recipe_of",
    "to_markdown",
    "to_text",
]

SCHEMA = "imagegraph.build-report/1"

#: Run kinds, from the cheapest to the most expensive.
NO_CHANGE, CODE_CHANGE, DEPENDENCY_CHANGE, REBUILD, BASE_REBUILD = "no change", "code change", "dependency change", "rebuild", "base rebuild"
KINDS = (NO_CHANGE, CODE_CHANGE, DEPENDENCY_CHANGE, REBUILD, BASE_REBUILD)


class ReportError(ImagegraphError):
    """A report file that cannot be read as a build report."""


@dataclass(frozen=True)
class ImageRecord:
    name: str
    #: build, reuse or skip (the plan's decision); ``ok`` False when a build or push failed.
    decision: str
    reason: str
    ok: bool = True
    error: str | None = None
    seconds: float = 0.0
    #: Seconds per phase of the work: wheels, build, push, manifest.
    phases: tuple[tuple[str, float], ...] = ()
    #: Uncompressed size in the engine (the first platform's), and its layer count.
    size: int | None = None
    layers: int | None = None
    #: Dockerfile steps answered from a cache, and all steps run (0/0 when nothing was built).
    cached_steps: int = 0
    total_steps: int = 0
    digest: str | None = None
    #: Every tag this run gave or confirmed: the fingerprint tag first, then edge, sha-, pr- ...
    tags: tuple[str, ...] = ()
    ref: str = ""
    parent: str | None = None
    platforms: tuple[str, ...] = ()
    #: Changed paths (since the base commit) among the image's own inputs.
    changed: tuple[str, ...] = ()
    #: What the image is built *from*, short of its code: parent, Dockerfile, .dockerignore, requirements, target, build
    #: args, platforms. Two builds of the same recipe differ in code only.
    recipe: str = ""
    #: "interrupted" (running when the run was stopped) or "not built" (never started because of the stop); None otherwise.
    stopped: str | None = None

    @property
    def built(self) -> bool:
        return self.decision == "build"

    @property
    def hit_rate(self) -> float | None:
        return self.cached_steps / self.total_steps if self.total_steps else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "decision": self.decision, "reason": self.reason, "ok": self.ok, "error": self.error,
            "seconds": self.seconds, "phases": dict(self.phases), "size": self.size, "layers": self.layers,
            "steps": {"cached": self.cached_steps, "total": self.total_steps}, "digest": self.digest, "tags": list(self.tags),
            "ref": self.ref, "parent": self.parent, "platforms": list(self.platforms), "changed": list(self.changed),
            "recipe": self.recipe, "stopped": self.stopped,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any], where: str) -> ImageRecord:
        read = _Reader(data, where)
        steps = _Reader(read.mapping("steps"), f"{where}: steps")
        return ImageRecord(
            name=read.text("name"), decision=read.text("decision"), reason=read.text("reason"), ok=read.flag("ok"),
            error=read.text("error", optional=True), seconds=read.number("seconds"),
            phases=read.seconds("phases"),
            size=read.whole("size", optional=True), layers=read.whole("layers", optional=True),
            cached_steps=steps.whole("cached"), total_steps=steps.whole("total"),
            digest=read.text("digest", optional=True), tags=read.texts("tags"), ref=read.text("ref"),
            parent=read.text("parent", optional=True), platforms=read.texts("platforms"), changed=read.texts("changed"),
            recipe=read.text("recipe"), stopped=read.text("stopped", optional=True) if "stopped" in data else None,
        )

    @property
    def outcome(self) -> str:
        """One word for a table: the decision, "failed", or how a stop left it (interrupted, not built)."""
        return self.stopped or ("failed" if not self.ok else self.decision)


@dataclass(frozen=True)
class BuildReport:
    #: When the run started, ISO 8601 in UTC (2026-11-21T07:10:03Z).
    started: str
    #: Wall time of the whole run, planning included.
    seconds: float
    commit: str | None
    #: What the build stood for: "branch main", "pull request #12", "tag v1.2.0", "local".
    event: str
    kind: str
    builder: str | None
    registry: str
    images: tuple[ImageRecord, ...]
    #: The commit git compared with, and how it was chosen ("8211083 (merge base with main)").
    since: str = ""
    schema: str = SCHEMA

    @property
    def ok(self) -> bool:
        return all(image.ok for image in self.images)

    @property
    def built(self) -> tuple[ImageRecord, ...]:
        return tuple(image for image in self.images if image.built)

    @property
    def hit_rate(self) -> float | None:
        total = sum(image.total_steps for image in self.built)
        return sum(image.cached_steps for image in self.built) / total if total else None

    @property
    def short(self) -> str:
        return (self.commit or "-")[:7]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "started": self.started, "seconds": self.seconds, "commit": self.commit, "event": self.event,
            "kind": self.kind, "since": self.since, "builder": self.builder, "registry": self.registry,
            "images": [image.to_dict() for image in self.images],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @staticmethod
    def from_dict(data: Any, where: str = "report") -> BuildReport:
        if not isinstance(data, Mapping):
            raise ReportError(f"{where}: not an imagegraph build report (a JSON object with \"schema\": \"{SCHEMA}\")")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise ReportError(f"{where}: schema {schema!r} is not {SCHEMA!r}; it was written by another imagegraph version, or is no build report")
        read = _Reader(data, where)
        kind = read.text("kind")
        if kind not in KINDS:
            raise ReportError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        images = data.get("images")
        if not isinstance(images, list):
            raise ReportError(f"{where}: images must be a list")
        return BuildReport(
            started=read.text("started"), seconds=read.number("seconds"), commit=read.text("commit", optional=True),
            event=read.text("event"), kind=kind, builder=read.text("builder", optional=True), registry=read.text("registry"),
            images=tuple(ImageRecord.from_dict(item, f"{where}: images[{i}]") for i, item in enumerate(images)),
            since=read.text("since"),
        )

    @staticmethod
    def from_json(text: str, where: str = "report") -> BuildReport:
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ReportError(f"{where}: not JSON ({err}); pass a file `invoke build` wrote under .imagegraph/reports/") from None
        except RecursionError:
            raise ReportError(f"{where}: nested too deeply to be a build report; pass a file `invoke build` wrote") from None
        return BuildReport.from_dict(data, where)


def _seconds(value: float, where: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise ReportError(f"{where} is {value!r}, not a number of seconds; the file was edited: delete it or restore it")
    return float(value)


def read_report(path: Path) -> BuildReport:
    """A stored report: unreadable, not UTF-8 or not a report is one ReportError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ReportError(f"{path}: cannot be read: {err.strerror}; pass a report .json `invoke build` wrote") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ReportError(f"{path}: byte 0x{data[err.start]:02x} at offset {err.start} is not UTF-8, so this is no report "
                          "`invoke build` wrote; delete it or restore it") from None
    return BuildReport.from_json(text, str(path))


class _Reader:
    """Typed reads from a decoded JSON object; a wrong or missing field is one ReportError line."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ReportError(f"{where}: expected an object")
        self.data, self.where = data, where

    def _get(self, key: str, kinds: tuple[type, ...], what: str, optional: bool) -> Any:
        if key not in self.data:
            raise ReportError(f"{self.where}: missing {key!r}")
        value = self.data[key]
        if value is None and optional:
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ReportError(f"{self.where}: {key!r} must be {what}{' or null' if optional else ''}, got {value!r}")
        return value

    def text(self, key: str, *, optional: bool = False) -> Any:
        return self._get(key, (str,), "a string", optional)

    def number(self, key: str) -> float:
        return _seconds(self._get(key, (int, float), "a number", False), f"{self.where}: {key!r}")

    def whole(self, key: str, *, optional: bool = False) -> Any:
        value = self._get(key, (int,), "a whole number", optional)
        if value is not None and value < 0:
            raise ReportError(f"{self.where}: {key!r} is {value}, not a count; the file was edited: delete it or restore it")
        return value

    def flag(self, key: str) -> bool:
        return self._get(key, (bool,), "true or false", False)

    def seconds(self, key: str) -> tuple[tuple[str, float], ...]:
        """An object of phase names to seconds."""
        value = self._get(key, (dict,), "an object", False)
        for name, inner in value.items():
            if not isinstance(inner, (int, float)) or isinstance(inner, bool):
                raise ReportError(f"{self.where}: {key!r}: {name!r} is {str(inner)[:40]!r}, not a number of seconds; "
                                  "the file was edited or written by something else: delete it or restore it")
        return tuple((str(name), _seconds(inner, f"{self.where}: {key!r}: {name!r}")) for name, inner in value.items())

    def mapping(self, key: str) -> Mapping[str, Any]:
        return self._get(key, (dict,), "an object", False)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key, (list,), "a list of strings", False)
        if not all(isinstance(item, str) for item in value):
            raise ReportError(f"{self.where}: {key!r} must be a list of strings")
        return tuple(value)


def recipe_of(config: Config, name: str, files: Sequence[tuple[str, str]], parent_ref: str | None) -> str:
    """A short digest of what ``name`` is built from short of its code (see :attr:`ImageRecord.recipe`)."""
    spec = config.image(name)
    recipe = _recipe_files(config, name)
    parts = [f"{path} {oid}" for path, oid in files if path in recipe]
    parts += [f"parent {parent_ref or '-'}", f"target {spec.target or '-'}", f"platforms {','.join(spec.platforms)}",
              *(f"arg {k}={v}" for k, v in sorted(dict(spec.build_args).items()))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def make_report(config: Config, plan: Plan, results: Sequence[ImageResult], *, tagged: Mapping[str, Sequence[str]], started: str,
                seconds: float, commit: str | None, event: str, builder: str | None,
                known: Mapping[str, tuple[str | None, int | None, int | None]] | None = None,
                recipes: Mapping[str, str] | None = None, earlier: Sequence[BuildReport] = ()) -> BuildReport:
    """The report of one run. ``known`` fills in, for images the run did not build, (digest, size, layers) looked up elsewhere;
    ``recipes`` are the images' :func:`recipe_of`; ``earlier`` reports tell a code change from a dependency change."""
    known = known or {}
    recipes = recipes or {}
    records = []
    for result in results:
        entry = plan.image(result.name)
        digest, size, layers = result.digest, result.size, result.layers
        if result.name in known and not result.seconds:
            digest, size, layers = known[result.name]
        fingerprint_tag = entry.ref.rsplit(":", 1)[-1]
        records.append(ImageRecord(
            name=result.name, decision=result.decision.value, reason=result.reason, ok=result.ok, error=result.error,
            seconds=round(result.seconds, 2), phases=result.phases, size=size, layers=layers,
            cached_steps=result.steps.cached, total_steps=result.steps.total, digest=digest,
            tags=(fingerprint_tag, *tagged.get(result.name, ())), ref=entry.ref,
            parent=config.image(result.name).parent, platforms=entry.platforms, changed=entry.changed,
            recipe=recipes.get(result.name, ""), stopped=result.stopped,
        ))
    explanation = plan.explanation
    since = "" if explanation is None or explanation.base is None else f"{explanation.base.short} ({explanation.base.how})"
    return BuildReport(started=started, seconds=round(seconds, 2), commit=commit, event=event, kind=classify(config, records, earlier),
                       builder=builder, registry=config.repository("").rstrip("/"), images=tuple(records), since=since)


# -- what kind of run -----------------------------------------------------------


def classify(config: Config, images: Sequence[ImageRecord], earlier: Sequence[BuildReport] = ()) -> str:
    """The kind of run, by what it built and why: a code change is what the layered family makes cheap.

    - base rebuild: an image without a parent was built (the heavy layer);
    - dependency change: a built image's recipe (parent, Dockerfile, .dockerignore, requirements, images.yaml) differs from
      its last recorded build, or, with no record of it, git says one of those files changed;
    - code change: every built image has the recipe of its last record (or git shows only code changed);
    - rebuild: built with nothing to tell why (forced, or missing from the registry, and no record);
    - no change: nothing was built.
    """
    built = [image for image in images if image.built]
    if not built:
        return NO_CHANGE
    if any(config.image(image.name).parent is None for image in built):
        return BASE_REBUILD
    kinds = {_image_kind(config, image, earlier) for image in built}
    for kind in (DEPENDENCY_CHANGE, REBUILD):
        if kind in kinds:
            return kind
    return CODE_CHANGE


def _image_kind(config: Config, image: ImageRecord, earlier: Sequence[BuildReport]) -> str:
    last = next((i for report in reversed(earlier) for i in report.images if i.name == image.name and i.recipe), None)
    if last is not None and image.recipe:
        return CODE_CHANGE if last.recipe == image.recipe else DEPENDENCY_CHANGE
    if not image.changed:
        return REBUILD
    return DEPENDENCY_CHANGE if set(image.changed) & _recipe_files(config, image.name) else CODE_CHANGE


def _recipe_files(config: Config, name: str) -> set[str]:
    """The files that say what an image is built from, short of its code."""
    spec = config.image(name)
    return {CONFIG_NAME, spec.dockerfile, spec.dockerignore, *spec.wheels}


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
    built: build time and cache hit rate (against earlier builds of it), size and layers (against every earlier run's)."""
    same_kind = [r.seconds for r in earlier if r.kind == latest.kind]
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


# -- Markdown ----------------------------------------------------------------------


def to_markdown(report: BuildReport, checks: Sequence[TargetCheck] = ()) -> str:
    """The run as a Markdown summary: a headline, one table row per image, the targets."""
    built, reused = len(report.built), sum(1 for i in report.images if i.decision == "reuse")
    state = "✅" if report.ok else "❌ failed: " + ", ".join(i.name for i in report.images if not i.ok)
    lines = [
        f"### imagegraph build: {built} built, {reused} reused in {report.seconds:.1f} s {state}",
        "",
        " · ".join(part for part in (
            f"`{report.short}` ({_cell(report.event)})", report.kind,
            f"since {_cell(report.since)}" if report.since else "",
            _cell(report.builder) if report.builder else "", f"registry `{report.registry}`") if part),
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
        tags = ", ".join(f"`{tag}`" for tag in image.tags) or "–"
        lines.append(f"| {image.name} | {decision} | {_cell(why)} | {time} | {human_size(image.size) if image.size else '–'} | "
                     f"{image.layers if image.layers is not None else '–'} | {hits} | {digest} | {tags} |")
    if checks:
        lines += ["", "**Targets:** " + " · ".join(
            f"{c.name} {c.actual} {c.target} {c.mark}" if c.ok is not None else f"{c.name} {c.mark} ({c.note})" for c in checks)]
    phased = [image for image in report.images if image.phases]
    if phased:
        lines += ["", "<details><summary>Where the time went</summary>", ""]
        lines += [f"- **{image.name}**: " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in image.phases) for image in phased]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def to_text(report: BuildReport, comparisons: Sequence[Comparison], checks: Sequence[TargetCheck]) -> str:
    """`invoke report` in a terminal: the run, how it compares with the runs before it, and the targets."""
    state = "ok" if report.ok else "FAILED (" + ", ".join(i.name for i in report.images if not i.ok) + ")"
    head = (f"{report.started.replace('T', ' ').rstrip('Z')} UTC  {report.short}  {report.event}  {report.kind}  "
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
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


# -- files ------------------------------------------------------------------------


@dataclass
class ReportStore:
    """``.imagegraph/reports/``: one JSON and one Markdown file per run, the oldest dropped beyond ``keep``."""

    folder: Path
    keep: int = 100
    skipped: list[str] = field(default_factory=list)

    def save(self, report: BuildReport, markdown: str) -> Path:
        """Write ``<time>-<commit>.json`` and its ``.md``; a name another run took first gets ``-2``, ``-3``, ... (never overwritten)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = report.started.replace("-", "").replace(":", "").replace("Z", "")
        path = _create_new(self.folder, f"{stamp}-{report.short}", report.to_json())
        path.with_suffix(".md").write_text(markdown, encoding="utf-8")
        # by stem, so that "<time>-<commit>" comes before the "-2" of a run that started in the same second
        for old in sorted(self.folder.glob("*.json"), key=lambda path: path.stem)[: -self.keep]:
            old.unlink()
            old.with_suffix(".md").unlink(missing_ok=True)
        return path

    def load(self) -> list[tuple[Path, BuildReport]]:
        """Every readable report, oldest first; unreadable files are listed in ``skipped``, not fatal."""
        found: list[tuple[Path, BuildReport]] = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else ():
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
            with path.open("x", encoding="utf-8") as out:
                out.write(text)
        except FileExistsError:
            continue
        return path
    raise ReportError(f"{folder}: 999 reports are named {stem}*.json; delete old reports there and run again")


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
