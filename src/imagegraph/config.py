"""images.yaml: read it, validate it, and turn it into frozen dataclasses.

Reading and validating are separate steps so every I/O failure and every
mistake in the file becomes one :class:`ConfigError` line naming the file,
the key and the fix, never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .defaults import DEFAULT_REGISTRY
from .errors import ConfigError, InputError
from .values import (
    Platform,
    RegistryAddress,
    check_repository,
    did_you_mean,
    is_tag,
    parse_build_arg_name,
    parse_builder_name,
    parse_image_name,
    parse_namespace,
    parse_platforms,
    parse_python_version,
    parse_registry,
    shown,
)

__all__ = [
    "CONFIG_NAME",
    "Config",
    "ImageSpec",
    "ReportTargets",
    "config_from_text",
    "decode_text",
    "load_config",
    "load_yaml",
    "override_platforms",
    "parse_config",
    "read_repo_text",
    "registry_from_env",
]

CONFIG_NAME = "images.yaml"
REGISTRY_ENV = "IMAGEGRAPH_REGISTRY"
_DEFAULT_ADDRESS = parse_registry(DEFAULT_REGISTRY, "DEFAULT_REGISTRY")

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
# BuildKit stage names: a letter, then letters, digits, '-', '_', '.'.
_STAGE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


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
    registry_address: RegistryAddress = _DEFAULT_ADDRESS
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

    @property
    def registry(self) -> str:
        """The registry as images show it: ``host[:port][/path]``."""
        return str(self.registry_address)

    def image(self, name: str, origin: str = CONFIG_NAME) -> ImageSpec:
        for spec in self.images:
            if spec.name == name:
                return spec
        raise ConfigError(origin, f"no image named {shown(name)}{did_you_mean(name, self.names)}; images: {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.images)

    def repository(self, name: str) -> str:
        """The image's repository in the registry, e.g. ``127.0.0.1:5000/imagegraph/base``."""
        return "/".join(part for part in (self.registry, self.namespace, name) if part)


def load_config(root: Path | str, *, registry: RegistryAddress | None = None) -> Config:
    """Read ``<root>/images.yaml``; ``registry`` (or $IMAGEGRAPH_REGISTRY) overrides the file's."""
    root = Path(root).resolve()
    path = root / CONFIG_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "not found; run from the repository root or create images.yaml (see README)") from None
    except OSError as err:
        raise ConfigError(str(path), f"cannot be read: {err.strerror}; check that it is a readable file") from None
    return config_from_text(decode_text(data, CONFIG_NAME), root, registry=registry)


def decode_text(data: bytes, name: str) -> str:
    """A file's bytes as UTF-8 text; a byte that is not UTF-8 is one error naming the file, line and byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(f"{name}:{line}", f"byte 0x{data[err.start]:02x} is not UTF-8; save the file as UTF-8") from None


def read_repo_text(root: Path, relpath: str) -> str:
    """A text file of the repository (a Dockerfile, an ignore file) as UTF-8; unreadable or not UTF-8 is one error naming it."""
    try:
        data = (root / relpath).read_bytes()
    except OSError as err:
        raise InputError(relpath, f"cannot be read: {err.strerror}; check that it is a readable file") from None
    return decode_text(data, relpath)


def config_from_text(text: str, root: Path, *, registry: RegistryAddress | None = None) -> Config:
    """images.yaml's text (from disk, or from an older commit) as a validated Config."""
    config = parse_config(load_yaml(text, CONFIG_NAME), root)
    override = registry or registry_from_env(os.environ)
    return replace(config, registry_address=override) if override else config


def registry_from_env(environ: Mapping[str, str]) -> RegistryAddress | None:
    """$IMAGEGRAPH_REGISTRY, parsed; None when unset. Set but empty is refused: an unset shell variable must not pick a registry."""
    text = environ.get(REGISTRY_ENV)
    return None if text is None else parse_registry(text, f"${REGISTRY_ENV}")


# -- YAML ------------------------------------------------------------------------


class YamlMapping(dict):  # type: ignore[type-arg]
    """A mapping from images.yaml that remembers, per key, its line and the value's text as written."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}
        self.written: dict[Any, str] = {}
        self.line = 0


class _Loader(yaml.SafeLoader):
    """Safe YAML without aliases (no alias bombs, no shared values) and without duplicate keys."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"{self.name}:{event.start_mark.line + 1}",
                             f"alias *{event.anchor} is not supported (no anchors, aliases or << merges); write the value out")
        return super().compose_node(parent, index)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[YamlMapping]:
    data = YamlMapping()
    data.line = node.start_mark.line + 1
    yield data
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key = loader.construct_object(key_node, deep=False)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise ConfigError(f"{loader.name}:{line}", "a key must be a plain word; write `name: value`")
        if key in data:
            raise ConfigError(f"{loader.name}:{line}", f"duplicate key {shown(str(key))} (first at line {data.lines[key]}); "
                                                      "keep one, a second would silently replace the first")
        data[key] = loader.construct_object(value_node, deep=False)
        data.lines[key] = line
        if isinstance(value_node, yaml.ScalarNode):
            data.written[key] = value_node.value


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def load_yaml(text: str, name: str) -> Any:
    """The YAML document in ``text``; any fault is one ConfigError at its real line."""
    loader = None
    try:
        loader = _Loader(text, name)
        return loader.get_single_data()
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise ConfigError(f"{name}:{line}", f"character U+{err.character:04X} is not allowed in YAML; remove it") from None
    except yaml.MarkedYAMLError as err:
        raise ConfigError(*_yaml_fault(err, name)) from None
    except yaml.YAMLError as err:
        raise ConfigError(name, f"is not valid YAML: {err}; fix the syntax") from None
    except RecursionError:
        raise ConfigError(name, "is nested too deeply to be images.yaml; fix the brackets") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_fault(err: yaml.MarkedYAMLError, name: str) -> tuple[str, str]:
    """(file:line, message) of a YAML error, at the line the mistake is on.

    A scanner gives up where the broken token ends (a key without its colon,
    an unclosed quote or bracket: often lines later); the construct it was
    reading starts on the real line. A block structure is wrong where the
    parser found the unexpected token.
    """
    context = err.context or ""
    starts_there = context.startswith(("while scanning", "while parsing a flow", "while parsing a quoted"))
    mark = err.context_mark if starts_there and err.context_mark is not None else err.problem_mark
    mark = mark or err.context_mark
    where = f"{name}:{mark.line + 1}" if mark is not None else name
    noticed = err.problem_mark.line + 1 if err.problem_mark is not None else None
    later = f" (noticed at line {noticed})" if mark is not None and noticed not in (None, mark.line + 1) else ""
    what = " ".join(part for part in (context, err.problem) if part)
    return where, f"is not valid YAML: {what}{later}; fix the syntax"


def _at(data: Any, key: Any) -> str:
    """Where ``key`` of ``data`` is written: ``images.yaml:12``, or just the file when the line is not known."""
    line = data.lines.get(key) if isinstance(data, YamlMapping) else None
    return f"{CONFIG_NAME}:{line}" if line else CONFIG_NAME


def _described(data: Any, key: Any) -> str:
    """The value at ``key`` as a reader wrote it, for a message: a YAML number keeps its spelling (3.10, not 3.1)."""
    value = data[key]
    written = data.written.get(key) if isinstance(data, YamlMapping) else None
    kind = "nothing" if value is None else {bool: "true/false", int: "a number", float: "a number", list: "a list"}.get(type(value))
    kind = kind or ("a mapping" if isinstance(value, Mapping) else type(value).__name__)
    if written is not None and isinstance(value, float) and written != repr(value):
        return f"the number {written}, which YAML reads as {value!r}"
    return f"{kind} {shown(written if written is not None else str(value))}" if value is not None else "nothing (null)"


# -- validation ------------------------------------------------------------------


def parse_config(data: Any, root: Path) -> Config:
    """Validate the parsed YAML document and check it against the files under ``root``."""
    if not isinstance(data, Mapping):
        raise ConfigError(CONFIG_NAME, "must be a mapping with an `images:` key")
    _reject_unknown(data, _TOP_KEYS, "top level")
    images_data = data.get("images")
    if not isinstance(images_data, Mapping) or not images_data:
        raise ConfigError(_at(data, "images"), "`images:` must map image names to their settings")
    specs = tuple(_parse_image(name, body, root, _at(images_data, name)) for name, body in images_data.items())
    names = [spec.name for spec in specs]
    for spec in specs:
        if spec.parent is not None and spec.parent not in names:
            raise ConfigError(
                _at(images_data[spec.name], "parent"),
                f"image {spec.name!r}: parent {spec.parent!r} is not an image here{did_you_mean(spec.parent, names)}; "
                f"declare it under `images:` or remove `parent:`",
            )
    _check_acyclic(specs)
    registry = parse_registry(_string(data, "registry", DEFAULT_REGISTRY, "registry"), f"{_at(data, 'registry')}: registry",
                              fallback=f"the default, {DEFAULT_REGISTRY}")
    namespace = parse_namespace(_string(data, "namespace", "imagegraph", "namespace"), f"{_at(data, 'namespace')}: namespace")
    for spec in specs:
        check_repository(registry, namespace, spec.name, _at(images_data, spec.name))
    python = parse_python_version(_string(data, "python", "3.11", "python"), f"{_at(data, 'python')}: python")
    tags = _section(data, "tags", _TAGS_KEYS)
    edge_tag = _string(tags, "edge", "edge", "tags: edge")
    if not is_tag(edge_tag) or edge_tag == "latest":
        raise ConfigError(_at(tags, "edge"), f"tags: edge: {edge_tag!r} is not a usable tag; pick a name such as edge or latest-dev")
    push_pull_requests = _flag(tags, "push_pull_requests", False, "tags: push_pull_requests")
    retention = _section(data, "retention", _RETENTION_KEYS)
    keep = _whole(retention, "keep", 10, 1, "retention: keep", "whole number of at least 1")
    protect = tuple(_strings(retention, "protect", "retention: protect"))
    targets, history = _parse_report(_section(data, "report", _REPORT_KEYS))
    builder = parse_builder_name(_string(data, "builder", None, "builder"), f"{_at(data, 'builder')}: builder") \
        if data.get("builder") is not None else None
    return Config(root=root, images=specs, registry_address=registry, namespace=namespace, python=python, edge_tag=edge_tag,
                  push_pull_requests=push_pull_requests, keep=keep, protect=protect, targets=targets, report_history=history,
                  builder=builder)


def _parse_report(report: Mapping[str, Any]) -> tuple[ReportTargets, int]:
    history = _whole(report, "history", 100, 2, "report: history", "whole number of at least 2 (reports kept)")
    targets = _section(report, "targets", _TARGET_KEYS)
    defaults = ReportTargets()

    def number(key: str, default: float, *, whole: bool = False, upper: float | None = None) -> float:
        value = targets.get(key, default)
        kind = int if whole else (int, float)
        if not isinstance(value, kind) or isinstance(value, bool) or not value > 0 or (upper is not None and value > upper) \
                or value == float("inf"):
            limit = f"between 0 and {upper:g}" if upper is not None else ("a whole number above 0" if whole else "a number above 0")
            raise ConfigError(_at(targets, key), f"report: targets: {key} must be {limit}, got {_described(targets, key)}")
        return value

    return ReportTargets(
        code_change_seconds=float(number("code_change_seconds", defaults.code_change_seconds)),
        max_layers=int(number("max_layers", defaults.max_layers, whole=True)),
        cache_hit_rate=float(number("cache_hit_rate", defaults.cache_hit_rate, upper=1)),
    ), history


def _section(data: Mapping[str, Any], key: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    section = data.get(key)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(_at(data, key), f"{key}: must be a mapping with the keys {', '.join(known)}, got {_described(data, key)}")
    _reject_unknown(section, known, key)
    return section


def _parse_image(name: Any, body: Any, root: Path, origin: str) -> ImageSpec:
    if not isinstance(name, str):
        raise ConfigError(origin, f"image name {name!r} is not a name; image names are lowercase words such as base or app")
    parse_image_name(name, f"{origin}: image")
    where = f"image {name!r}"
    if not isinstance(body, Mapping):
        raise ConfigError(origin, f"{where}: settings must be a mapping (dockerfile:, parent:, inputs:, ...)")
    _reject_unknown(body, _IMAGE_KEYS, where)
    if "dockerfile" not in body:
        raise ConfigError(origin, f"{where}: `dockerfile:` is required (e.g. dockerfile: docker/Dockerfile.{name})")
    dockerfile = _repo_path(body, "dockerfile", where)
    _check_file(root, dockerfile, _at(body, "dockerfile"), f"{where}: dockerfile", ())
    context = _repo_path(body, "context", where, default=".")
    if not (root / context).is_dir():
        raise ConfigError(_at(body, "context"), f"{where}: context {context} is not a directory; fix the path")
    wheels = tuple(_repo_path_item(p, _at(body, "wheels"), f"{where}: wheels") for p in _strings(body, "wheels", f"{where}: wheels"))
    for requirements in wheels:
        _check_file(root, requirements, _at(body, "wheels"), f"{where}: wheels", wheels)
    platforms = parse_platforms(_strings(body, "platforms", f"{where}: platforms", default=("linux/amd64",)),
                                f"{_at(body, 'platforms')}: {where}: platforms")
    push = _flag(body, "push", True, f"{where}: push")
    parent = None
    if body.get("parent") is not None:
        parent = _string(body, "parent", None, f"{where}: parent")
        if parent == name:
            raise ConfigError(_at(body, "parent"), f"{where}: an image cannot be its own parent; remove `parent:` or name another image")
    target = None if body.get("target") is None else _string(body, "target", None, f"{where}: target")
    if target is not None and not _STAGE.fullmatch(target):
        raise ConfigError(_at(body, "target"), f"{where}: target {shown(target)} is not a stage name (as `FROM ... AS name` gives it)")
    return ImageSpec(
        name=name,
        dockerfile=dockerfile,
        context=context,
        parent=parent,
        inputs=tuple(_repo_path_item(p, _at(body, "inputs"), f"{where}: inputs", glob=True)
                     for p in _strings(body, "inputs", f"{where}: inputs")),
        wheels=wheels,
        platforms=tuple(str(p) for p in platforms),
        target=target,
        build_args=_build_args(body, where),
        push=push,
        description=_string(body, "description", "", f"{where}: description"),
    )


def _build_args(body: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    """NAME: value pairs passed as --build-arg; a value is taken exactly as written (1.10 stays 1.10), null/list/map refused."""
    if body.get("build_args") is None:
        return ()
    args = body["build_args"]
    if not isinstance(args, Mapping):
        raise ConfigError(_at(body, "build_args"), f"{where}: build_args must be a mapping of NAME: value, got {_described(body, 'build_args')}")
    pairs: list[tuple[str, str]] = []
    for key, value in args.items():
        origin = f"{_at(args, key)}: {where}: build_args"
        name = parse_build_arg_name(str(key), origin) if isinstance(key, str) else parse_build_arg_name(repr(key), origin)
        if name == "BASE_IMAGE":
            raise ConfigError(origin, "BASE_IMAGE is set by imagegraph from `parent:`; remove it")
        written = args.written.get(key) if isinstance(args, YamlMapping) else None
        if isinstance(value, str):
            text = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and written is not None:
            text = written
        elif isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            raise ConfigError(origin, f"{name}: {_described(args, key)} is not a value --build-arg can pass; "
                                     f'write a string, e.g. {name}: "value" (an empty one is "")')
        if "\0" in text:
            raise ConfigError(origin, f"{name}: the value holds a NUL character, which no command line can pass; remove it")
        pairs.append((name, text))
    return tuple(sorted(pairs))
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
            raise ConfigError(_at(data, key), f"{where}: unknown key {shown(str(key))}{did_you_mean(str(key), known)}; "
                                             f"known keys: {', '.join(known)}")


def _did_you_mean_file(root: Path, relpath: str, listed: Iterable[str]) -> str:
    """A close file beside ``relpath`` that the image does not already list (a listed one cannot be what was meant)."""
    parent = (root / relpath).parent
    if not parent.is_dir():
        return ""
    siblings = [str(PurePosixPath(relpath).parent / p.name) for p in parent.iterdir() if p.is_file()]
    return did_you_mean(relpath, [s for s in siblings if s not in set(listed)])


def _check_file(root: Path, relpath: str, origin: str, where: str, listed: Iterable[str]) -> None:
    path = root / relpath
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.endswith(".dockerignore"))
        example = f"{relpath}/{inside[0]}" if inside else f"{relpath}/<file>"
        raise ConfigError(origin, f"{where}: {relpath} is a directory; name the file in it, e.g. {example}")
    if not path.is_file():
        raise ConfigError(origin, f"{where}: {relpath} does not exist{_did_you_mean_file(root, relpath, listed)}; fix the path")


def _string(data: Mapping[str, Any], key: str, default: str | None, where: str) -> str:
    if key not in data and default is not None:
        return default
    value = data[key]
    if not isinstance(value, str):
        example = f'"{data.written[key]}"' if isinstance(data, YamlMapping) and data.written.get(key) else '"..."'
        raise ConfigError(_at(data, key), f"{where}: expected a string, got {_described(data, key)}; quote it: {key}: {example}")
    if "\0" in value:
        raise ConfigError(_at(data, key), f"{where}: holds a NUL character; remove it")
    return value


def _strings(data: Mapping[str, Any], key: str, where: str, default: tuple[str, ...] = ()) -> list[str]:
    value = data.get(key)
    if value is None:
        if key in data:
            raise ConfigError(_at(data, key), f"{where}: is empty; list at least one or remove `{key}:`")
        return list(default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(_at(data, key), f"{where}: expected a list of strings, e.g. [a, b]; quote numbers")
    return list(value)


def _flag(data: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(_at(data, key), f"{where} must be true or false, got {_described(data, key)}")
    return value


def _whole(data: Mapping[str, Any], key: str, default: int, minimum: int, where: str, what: str) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(_at(data, key), f"{where} must be a {what}, got {_described(data, key)}")
    return value


def _repo_path(data: Mapping[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    return _repo_path_item(_string(data, key, default, f"{where}: {key}"), _at(data, key), f"{where}: {key}")


def _repo_path_item(text: str, origin: str, where: str, *, glob: bool = False) -> str:
    """A path (or glob) inside the repository, normalised to POSIX form without ``./``."""
    text = text.strip()
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts:
        raise ConfigError(origin, f"{where}: {text!r} points outside the repository; use a path relative to the directory of images.yaml")
    if not text or (not glob and any(ch in text for ch in "*?[")) or not text.isprintable():
        raise ConfigError(origin, f"{where}: {shown(text)} is not a plain relative path; e.g. docker/Dockerfile")
    return str(path) if str(path) != "" else "."


def override_platforms(config: Config, platforms: tuple[Platform, ...]) -> Config:
    """The same family built for ``platforms`` instead of what each image declares (`--platform`, $IMAGEGRAPH_PLATFORMS)."""
    names = tuple(str(p) for p in dict.fromkeys(platforms))
    images = tuple(replace(spec, platforms=names) for spec in config.images)
    return replace(config, images=images)
