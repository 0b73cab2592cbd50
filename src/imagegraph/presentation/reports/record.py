"""The build report as data: one :class:`BuildReport` per run, one :class:`ImageRecord` per image, and their JSON form.

Reading is strict: a stored file that is not a report this version wrote
is one :class:`ReportError` line naming the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.errors import ImagegraphError

__all__ = [
    "BASE_REBUILD",
    "CODE_CHANGE",
    "DEPENDENCY_CHANGE",
    "KINDS",
    "NO_CHANGE",
    "REBUILD",
    "SCHEMA",
    "BuildReport",
    "ImageRecord",
    "ReportError",
    "read_report",
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
