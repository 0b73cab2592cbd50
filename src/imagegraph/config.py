"""images.yaml: read it, validate it, and turn it into frozen dataclasses.

Reading and validating are separate steps so every I/O failure and every
mistake in the file becomes one :class:`ConfigError` line naming the file,
the key and the fix, never a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["CONFIG_NAME", "Config", "ImageSpec", "ReportTargets", "config_from_text", "load_config", "override_platforms", "parse_config"]

CONFIG_NAME = "images.yaml"
DEFAULT_REGISTRY = "127.0.0.1:5000"

_TOP_KEYS = ("registry", "namespace", "python", "builder", "tags", "retention", "report", "images")
_TAGS_KEYS = ("edge", "push_pull_requests")
_RETENTION_KEYS = ("keep", "protect")
_REPORT_KEYS = ("targets", "history")
_TARGET_KEYS = ("code_change_seconds", "max_layers", "cache_hit_rate")
_IMAGE_KEYS = (
    "description",
    "dockerfile",
    "context",
    "parent",
    "inputs",
    "wheels",
    "platforms",
    "target",
    "build_args",
    "push",
)
_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/v[0-9]+)?$")


@dataclass(frozen=True)
class ImageSpec:
    """One image of the family, exactly as images.yaml declares it (paths relative to the root)."""

    name: str
    dockerfile: str
    context: str = "."
    parent: str | None = None
    inputs: tuple[str, ...] = ()
    #: Requirements files whose wheels are fetched on the host into .wheelhouse/<stem>/.
    wheels: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ("linux/amd64",)
    target: str | None = None
    build_args: tuple[tuple[str, str], ...] = ()
    push: bool = True
    description: str = ""

    @property
    def dockerignore(self) -> str:
        """The ignore file BuildKit applies: ``<Dockerfile>.dockerignore`` wins over the context's."""
        return f"{self.dockerfile}.dockerignore"


@dataclass(frozen=True)
class ReportTargets:
    """What `invoke report` holds a build to (report: targets: in images.yaml)."""

    #: Wall time of a build that rebuilt images for a code change only (no requirements or Dockerfile changed).
    code_change_seconds: float = 120.0
    #: Layers any one image may have.
    max_layers: int = 40
    #: Share of Dockerfile steps answered from a cache, over the images a run built.
    cache_hit_rate: float = 0.5


@dataclass(frozen=True)
class Config:
    root: Path
    images: tuple[ImageSpec, ...]
    registry: str = DEFAULT_REGISTRY
    namespace: str = "imagegraph"
    #: The Python version (major.minor) of the images, for fetching matching wheels.
    python: str = "3.11"
    #: tags: the default branch's moving tag, and whether pull request tags (pr-N) are pushed.
    edge_tag: str = "edge"
    push_pull_requests: bool = False
    #: retention: how many recent builds/versions `invoke cleanup` keeps per image, and tag patterns it never deletes.
    keep: int = 10
    protect: tuple[str, ...] = ()
    #: report: the targets builds are held to, and how many build reports .imagegraph/reports keeps.
    targets: ReportTargets = ReportTargets()
    report_history: int = 100
    #: The buildx builder to build on (a team's shared BuildKit, say); None: the current one. --builder and $BUILDX_BUILDER win.
    builder: str | None = None

    def image(self, name: str) -> ImageSpec:
        for spec in self.images:
            if spec.name == name:
                return spec
        raise ConfigError(CONFIG_NAME, f"no image named {name!r}{_did_you_mean(name, self.names)}; images: {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.images)

    def repository(self, name: str) -> str:
        """The image's repository in the registry, e.g. ``127.0.0.1:5000/imagegraph/base``."""
        return "/".join(part for part in (self.registry, self.namespace, name) if part)


def load_config(root: Path | str, *, registry: str | None = None) -> Config:
    """Read ``<root>/images.yaml``; ``registry`` (or $IMAGEGRAPH_REGISTRY) overrides the file's."""
    root = Path(root).resolve()
    path = root / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "not found; run from the repository root or create images.yaml (see README)") from None
    except OSError as err:
        raise ConfigError(str(path), f"cannot be read: {err.strerror}") from None
    return config_from_text(text, root, registry=registry)


def config_from_text(text: str, root: Path, *, registry: str | None = None) -> Config:
    """images.yaml's text (from disk, or from an older commit) as a validated Config."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(CONFIG_NAME, f"is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    config = parse_config(data, root)
    override = registry or os.environ.get("IMAGEGRAPH_REGISTRY")
    if override:
        config = replace(config, registry=override.rstrip("/"))
    return config


def parse_config(data: Any, root: Path) -> Config:
    """Validate the parsed YAML document and check it against the files under ``root``."""
    if not isinstance(data, Mapping):
        raise ConfigError(CONFIG_NAME, "must be a mapping with an `images:` key")
    _reject_unknown(data, _TOP_KEYS, "top level")
    images_data = data.get("images")
    if not isinstance(images_data, Mapping) or not images_data:
        raise ConfigError(CONFIG_NAME, "`images:` must map image names to their settings")
    specs = tuple(_parse_image(str(name), body, root) for name, body in images_data.items())
    names = [spec.name for spec in specs]
    for spec in specs:
        if spec.parent is not None and spec.parent not in names:
            raise ConfigError(
                CONFIG_NAME,
                f"image {spec.name!r}: parent {spec.parent!r} is not an image here{_did_you_mean(spec.parent, names)}; "
                f"declare it under `images:` or remove `parent:`",
            )
    _check_acyclic(specs)
    registry = _string(data.get("registry", DEFAULT_REGISTRY), "registry").rstrip("/")
    namespace = _string(data.get("namespace", "imagegraph"), "namespace").strip("/")
    python = _string(data.get("python", "3.11"), "python")
    if not re.fullmatch(r"3\.\d+", python):
        raise ConfigError(CONFIG_NAME, f"python: {python!r} is not a major.minor version such as \"3.11\"")
    tags = _section(data, "tags", _TAGS_KEYS)
    edge_tag = _string(tags.get("edge", "edge"), "tags: edge")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", edge_tag) or edge_tag == "latest":
        raise ConfigError(CONFIG_NAME, f"tags: edge: {edge_tag!r} is not a usable tag; pick a name such as edge or latest-dev")
    push_pull_requests = tags.get("push_pull_requests", False)
    if not isinstance(push_pull_requests, bool):
        raise ConfigError(CONFIG_NAME, "tags: push_pull_requests must be true or false")
    retention = _section(data, "retention", _RETENTION_KEYS)
    keep = retention.get("keep", 10)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise ConfigError(CONFIG_NAME, f"retention: keep must be a whole number of at least 1, got {keep!r}")
    protect = tuple(_strings(retention.get("protect", ()), "retention: protect"))
    targets, history = _parse_report(_section(data, "report", _REPORT_KEYS))
    builder = _string(data["builder"], "builder") if data.get("builder") is not None else None
    if builder is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", builder):
        raise ConfigError(CONFIG_NAME, f"builder: {builder!r} is not a buildx builder name; `docker buildx ls` lists them")
    return Config(root=root, images=specs, registry=registry, namespace=namespace, python=python, edge_tag=edge_tag,
                  push_pull_requests=push_pull_requests, keep=keep, protect=protect, targets=targets, report_history=history,
                  builder=builder)


def _parse_report(report: Mapping[str, Any]) -> tuple[ReportTargets, int]:
    history = report.get("history", 100)
    if not isinstance(history, int) or isinstance(history, bool) or history < 2:
        raise ConfigError(CONFIG_NAME, f"report: history must be a whole number of at least 2 (reports kept), got {history!r}")
    targets = _section(report, "targets", _TARGET_KEYS) if "targets" in report else {}
    defaults = ReportTargets()

    def number(key: str, default: float, *, whole: bool = False, upper: float | None = None) -> float:
        value = targets.get(key, default)
        kind = int if whole else (int, float)
        if not isinstance(value, kind) or isinstance(value, bool) or value <= 0 or (upper is not None and value > upper):
            limit = f"between 0 and {upper:g}" if upper is not None else ("a whole number above 0" if whole else "a number above 0")
            raise ConfigError(CONFIG_NAME, f"report: targets: {key} must be {limit}, got {value!r}")
        return value

    return ReportTargets(
        code_change_seconds=float(number("code_change_seconds", defaults.code_change_seconds)),
        max_layers=int(number("max_layers", defaults.max_layers, whole=True)),
        cache_hit_rate=float(number("cache_hit_rate", defaults.cache_hit_rate, upper=1)),
    ), history


def _section(data: Mapping[str, Any], key: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    section = data.get(key) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(CONFIG_NAME, f"{key}: must be a mapping with the keys {', '.join(known)}")
    _reject_unknown(section, known, key)
    return section


def _parse_image(name: str, body: Any, root: Path) -> ImageSpec:
    where = f"image {name!r}"
    if not _NAME.match(name):
        raise ConfigError(CONFIG_NAME, f"{where}: names are lowercase letters, digits and . _ - (a registry repository name)")
    if not isinstance(body, Mapping):
        raise ConfigError(CONFIG_NAME, f"{where}: settings must be a mapping (dockerfile:, parent:, inputs:, ...)")
    _reject_unknown(body, _IMAGE_KEYS, where)
    if "dockerfile" not in body:
        raise ConfigError(CONFIG_NAME, f"{where}: `dockerfile:` is required (e.g. dockerfile: docker/Dockerfile.{name})")
    dockerfile = _repo_path(body["dockerfile"], f"{where}: dockerfile")
    if not (root / dockerfile).is_file():
        raise ConfigError(CONFIG_NAME, f"{where}: dockerfile {dockerfile} does not exist{_did_you_mean_file(root, dockerfile)}; fix the path")
    context = _repo_path(body.get("context", "."), f"{where}: context")
    if not (root / context).is_dir():
        raise ConfigError(CONFIG_NAME, f"{where}: context {context} is not a directory; fix the path")
    wheels = tuple(_repo_path(p, f"{where}: wheels") for p in _strings(body.get("wheels", ()), f"{where}: wheels"))
    for requirements in wheels:
        if not (root / requirements).is_file():
            raise ConfigError(CONFIG_NAME, f"{where}: wheels: {requirements} does not exist{_did_you_mean_file(root, requirements)}")
    platforms = tuple(_strings(body.get("platforms", ("linux/amd64",)), f"{where}: platforms"))
    if not platforms:
        raise ConfigError(CONFIG_NAME, f"{where}: platforms: list at least one, e.g. [linux/amd64]")
    for platform in platforms:
        if not _PLATFORM.match(platform):
            raise ConfigError(CONFIG_NAME, f"{where}: platform {platform!r} is not os/arch[/variant], e.g. linux/arm64")
    build_args = body.get("build_args", {}) or {}
    if not isinstance(build_args, Mapping):
        raise ConfigError(CONFIG_NAME, f"{where}: build_args must be a mapping of NAME: value")
    if "BASE_IMAGE" in build_args:
        raise ConfigError(CONFIG_NAME, f"{where}: build_args: BASE_IMAGE is set by imagegraph from `parent:`; remove it")
    push = body.get("push", True)
    if not isinstance(push, bool):
        raise ConfigError(CONFIG_NAME, f"{where}: push must be true or false")
    parent = body.get("parent")
    if parent is not None:
        parent = _string(parent, f"{where}: parent")
        if parent == name:
            raise ConfigError(CONFIG_NAME, f"{where}: an image cannot be its own parent")
    target = body.get("target")
    return ImageSpec(
        name=name,
        dockerfile=dockerfile,
        context=context,
        parent=parent,
        inputs=tuple(_repo_path(p, f"{where}: inputs", glob=True) for p in _strings(body.get("inputs", ()), f"{where}: inputs")),
        wheels=wheels,
        platforms=tuple(dict.fromkeys(platforms)),
        target=None if target is None else _string(target, f"{where}: target"),
        build_args=tuple(sorted((str(k), str(v)) for k, v in build_args.items())),
        push=push,
        description=_string(body.get("description", ""), f"{where}: description"),
    )


def _check_acyclic(specs: Iterable[ImageSpec]) -> None:
    parent_of = {spec.name: spec.parent for spec in specs}
    for start in parent_of:
        seen = [start]
        node = parent_of[start]
        while node is not None:
            if node in seen:
                cycle = " -> ".join([*seen[seen.index(node):], node])
                raise ConfigError(CONFIG_NAME, f"parent cycle {cycle}; one of these images must not name the next as parent")
            seen.append(node)
            node = parent_of.get(node)


def _reject_unknown(data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(CONFIG_NAME, f"{where}: unknown key {key!r}{_did_you_mean(str(key), known)}; known keys: {', '.join(known)}")


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _did_you_mean_file(root: Path, relpath: str) -> str:
    parent = (root / relpath).parent
    if not parent.is_dir():
        return ""
    siblings = [str(PurePosixPath(relpath).parent / p.name) for p in parent.iterdir() if p.is_file()]
    return _did_you_mean(relpath, siblings)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(CONFIG_NAME, f"{where}: expected a string, got {type(value).__name__}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(CONFIG_NAME, f"{where}: expected a list of strings")
    return list(value)


def _repo_path(value: Any, where: str, *, glob: bool = False) -> str:
    """A path (or glob) inside the repository, normalised to POSIX form without ``./``."""
    text = _string(value, where).strip()
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts:
        raise ConfigError(CONFIG_NAME, f"{where}: {text!r} points outside the repository; use a path relative to the directory of images.yaml")
    if not text or (not glob and any(ch in text for ch in "*?[")):
        raise ConfigError(CONFIG_NAME, f"{where}: {text!r} is not a plain relative path")
    return str(path) if str(path) != "" else "."


def override_platforms(config: Config, platforms: tuple[str, ...]) -> Config:
    """The same family built for ``platforms`` instead of what each image declares (`--platform`)."""
    for platform in platforms:
        if not _PLATFORM.match(platform):
            raise ConfigError("--platform", f"{platform!r} is not os/arch[/variant], e.g. linux/amd64")
    images = tuple(replace(spec, platforms=tuple(dict.fromkeys(platforms))) for spec in config.images)
    return replace(config, images=images)
