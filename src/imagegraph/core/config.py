"""images.yaml as frozen dataclasses (:class:`Config`, :class:`ImageSpec`): read the file, validate it, build the model.

Reading and validating are separate steps so every I/O failure and every
mistake in the file becomes one :class:`ConfigError` line naming the file,
the key and the fix, never a traceback. The YAML itself is read by
:mod:`imagegraph.core.config_yaml`; each field by the readers of
:mod:`imagegraph.core.config_fields`. This module holds the model and what ties
the fields together: the keys each section knows, the image settings, the
parent links.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from .config_fields import (
    check_file,
    described,
    located,
    read_flag,
    read_repo_path,
    read_section,
    read_string,
    read_strings,
    read_whole,
    reject_unknown,
    repo_path,
)
from .config_yaml import YamlMapping, load_yaml
from .defaults import CONFIG_NAME, DEFAULT_REGISTRY, WHEELHOUSE_DIR, wheel_folder
from .errors import ConfigError, InputError
from .links import inside, link_outside
from .registry_api import ApiKind, parse_api
from .values import (
    ImageRef,
    Platform,
    RegistryAddress,
    check_repository,
    did_you_mean,
    is_tag,
    parse_build_arg_name,
    parse_builder_name,
    parse_duration,
    parse_image_name,
    parse_namespace,
    parse_platform,
    parse_platforms,
    parse_python_version,
    parse_registry,
    parse_runner_label,
    shown,
)

__all__ = [
    "Compression",
    "Config",
    "ImageSpec",
    "ReportTargets",
    "config_from_text",
    "decode_text",
    "load_config",
    "override_platforms",
    "parse_config",
    "read_repo_text",
    "registry_from_env",
]

REGISTRY_ENV = "IMAGEGRAPH_REGISTRY"
_DEFAULT_ADDRESS = parse_registry(DEFAULT_REGISTRY, "DEFAULT_REGISTRY")

_TOP_KEYS = ("registry", "namespace", "python", "builder", "compression", "runners", "tags", "retention", "report", "images")
_TAGS_KEYS = ("edge", "push_pull_requests")
_RETENTION_KEYS = ("keep", "protect", "api", "pull_requests")
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
    "compression",
)
_COMPRESSION_KEYS = ("type", "level")
# BuildKit stage names: a letter, then letters, digits, '-', '_', '.'.
_STAGE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Compression:
    """How an image's layers are compressed when it is pushed (images.yaml ``compression:``): BuildKit's image exporter options."""

    #: gzip (what every client pulls) or zstd (faster to make, pulled by newer clients only: see the README).
    type: str = "gzip"
    #: The algorithm's level (gzip 0-9, zstd 0-22); None: the type's default (:attr:`DEFAULT_LEVELS`).
    level: int | None = None

    #: The levels BuildKit's exporter accepts per type.
    LEVELS = MappingProxyType({"gzip": (0, 9), "zstd": (0, 22)})
    #: The level of a type given none: gzip's is 1, not BuildKit's own default, which makes a large layer (PyTorch's 1.2 GB)
    #: about 2.5 times slower for some 12% fewer bytes (bench/compression.py); zstd's is BuildKit's own (None: no option passed).
    DEFAULT_LEVELS = MappingProxyType({"gzip": 1, "zstd": None})

    @property
    def effective_level(self) -> int | None:
        """The level the exporter is given: the one written, else the type's default; None: the exporter's own."""
        return self.level if self.level is not None else self.DEFAULT_LEVELS[self.type]

    def __str__(self) -> str:
        return self.type if self.level is None else f"{self.type} level {self.level}"


#: What an image gets when images.yaml says nothing: gzip, which every client pulls, at gzip's default level here (1).
DEFAULT_COMPRESSION = Compression()


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
    compression: Compression = DEFAULT_COMPRESSION

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
    #: retention: api: the API cleanup deletes through, for a host it does not know (None: chosen from the host, core.registry_api).
    retention_api: ApiKind | None = None
    #: retention: pull_requests: how long after its pull request closed (or its branch went) an image expires; None: not at all.
    pull_request_age: timedelta | None = None
    #: report: the targets builds are held to, and how many build reports .imagegraph/reports keeps.
    targets: ReportTargets = ReportTargets()
    report_history: int = 100
    #: The buildx builder to build on (a team's shared BuildKit, say); None: the current one. --builder and $BUILDX_BUILDER win.
    builder: str | None = None
    #: runners: (platform, CI runner label) pairs, in images.yaml's order: each platform is built on its own runner and the
    #: platforms are joined (`invoke affected` plans it). Empty: one runner builds every platform of an image, as one build.
    runners: tuple[tuple[str, str], ...] = ()

    def runner(self, platform: str) -> str | None:
        """The runner label images.yaml gives ``platform``; None: the CI's default runner builds it."""
        return next((label for name, label in self.runners if name == platform), None)

    @property
    def registry(self) -> str:
        """The registry as images show it: ``host[:port][/path]``."""
        return str(self.registry_address)

    def image(self, name: str, origin: str = CONFIG_NAME) -> ImageSpec:
        spec = self.by_name.get(name)
        if spec is not None:
            return spec
        raise ConfigError(origin, f"no image named {shown(name)}{did_you_mean(name, self.names)}; images: {', '.join(self.names)}")

    @cached_property
    def by_name(self) -> Mapping[str, ImageSpec]:
        """Every image by its name (the first of a name, should a hand-made Config repeat one): a look-up, not a scan."""
        found: dict[str, ImageSpec] = {}
        for spec in self.images:
            found.setdefault(spec.name, spec)
        return MappingProxyType(found)

    @cached_property
    def children_of(self) -> Mapping[str, tuple[str, ...]]:
        """Each parent's children, in images.yaml order (see :mod:`imagegraph.core.graph`)."""
        found: dict[str, list[str]] = {}
        for spec in self.images:
            if spec.parent is not None:
                found.setdefault(spec.parent, []).append(spec.name)
        return MappingProxyType({name: tuple(names) for name, names in found.items()})

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.images)

    def repository(self, name: str) -> str:
        """The image's repository with its registry, e.g. ``127.0.0.1:5000/imagegraph/base`` (the text of :meth:`image_ref` without a tag)."""
        return "/".join(part for part in (self.registry, self.namespace, name) if part)

    def repository_path(self, name: str) -> str:
        """The image's repository inside the registry, as its HTTP API names it: ``imagegraph/base`` (``acme/imagegraph/base`` on ``ghcr.io/acme``)."""
        return "/".join(part for part in (self.registry_address.path, self.namespace, name) if part)

    def image_ref(self, name: str, tag: str = "") -> ImageRef:
        """The image's reference as a value, e.g. ``127.0.0.1:5000/imagegraph/base:<tag>``: built from the parts, never parsed from text."""
        domain = replace(self.registry_address, path="")
        return ImageRef(domain, self.repository_path(name), tag)


def load_config(root: Path | str, *, registry: RegistryAddress | None = None) -> Config:
    """Read ``<root>/images.yaml``; ``registry`` (or $IMAGEGRAPH_REGISTRY) overrides the file's."""
    root = Path(root).resolve()
    path = inside(root, CONFIG_NAME)
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
        data = inside(root, relpath).read_bytes()
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


# -- validation ------------------------------------------------------------------


def parse_config(data: Any, root: Path) -> Config:
    """Validate the parsed YAML document and check it against the files under ``root``."""
    if not isinstance(data, Mapping):
        raise ConfigError(CONFIG_NAME, "must be a mapping with an `images:` key")
    reject_unknown(data, _TOP_KEYS, "top level")
    images_data = data.get("images")
    if not isinstance(images_data, Mapping) or not images_data:
        raise ConfigError(located(data, "images"), "`images:` must map image names to their settings")
    family = _parse_compression(data, "top level", DEFAULT_COMPRESSION)
    specs = tuple(_parse_image(name, body, root, located(images_data, name), family) for name, body in images_data.items())
    names = [spec.name for spec in specs]
    known = frozenset(names)
    for spec in specs:
        if spec.parent is not None and spec.parent not in known:
            raise ConfigError(
                located(images_data[spec.name], "parent"),
                f"image {spec.name!r}: parent {spec.parent!r} is not an image here{did_you_mean(spec.parent, names)}; "
                f"declare it under `images:` or remove `parent:`",
            )
    _check_acyclic(specs)
    _check_wheel_folders(specs, images_data, root)
    registry = parse_registry(read_string(data, "registry", DEFAULT_REGISTRY, "registry"), f"{located(data, 'registry')}: registry",
                              fallback=f"the default, {DEFAULT_REGISTRY}")
    namespace = parse_namespace(read_string(data, "namespace", "imagegraph", "namespace"), f"{located(data, 'namespace')}: namespace")
    for spec in specs:
        check_repository(registry, namespace, spec.name, located(images_data, spec.name))
    python = parse_python_version(read_string(data, "python", "3.11", "python"), f"{located(data, 'python')}: python")
    tags = read_section(data, "tags", _TAGS_KEYS)
    edge_tag = read_string(tags, "edge", "edge", "tags: edge")
    if not is_tag(edge_tag) or edge_tag == "latest":
        raise ConfigError(located(tags, "edge"), f"tags: edge: {edge_tag!r} is not a usable tag; pick a name such as edge or latest-dev")
    push_pull_requests = read_flag(tags, "push_pull_requests", False, "tags: push_pull_requests")
    retention = read_section(data, "retention", _RETENTION_KEYS)
    keep = read_whole(retention, "keep", 10, 1, "retention: keep", "whole number of at least 1")
    protect = tuple(read_strings(retention, "protect", "retention: protect"))
    retention_api = parse_api(retention["api"], f"{located(retention, 'api')}: retention: api") \
        if retention.get("api") is not None else None
    age = retention.get("pull_requests")
    pull_request_age = parse_duration(str(age), f"{located(retention, 'pull_requests')}: retention: pull_requests", example="7d") \
        if age is not None else None
    targets, history = _parse_report(read_section(data, "report", _REPORT_KEYS))
    builder = parse_builder_name(read_string(data, "builder", None, "builder"), f"{located(data, 'builder')}: builder") \
        if data.get("builder") is not None else None
    return Config(root=root, images=specs, registry_address=registry, namespace=namespace, python=python, edge_tag=edge_tag,
                  push_pull_requests=push_pull_requests, keep=keep, protect=protect, retention_api=retention_api,
                  pull_request_age=pull_request_age, targets=targets, report_history=history,
                  builder=builder, runners=_parse_runners(data, specs))


def _parse_runners(data: Mapping[str, Any], specs: Iterable[ImageSpec]) -> tuple[tuple[str, str], ...]:
    """``runners: {linux/arm64: ubuntu-24.04-arm}``: the CI runner label that builds each platform.

    A platform no image declares is refused rather than ignored: it is most
    likely a slip for one that is declared (``linux/arm/v8``), whose builds
    would then go, without a word, to the default runner and its emulator.
    A label lands in a workflow's ``runs-on``, so it is held to the form of
    one label: nothing a runner could not be called, nothing that reads as an
    option or an expression.
    """
    if "runners" not in data:
        return ()
    value = data["runners"]
    example = "runners: {linux/arm64: ubuntu-24.04-arm}"
    if not isinstance(value, Mapping) or not value:
        what = "is empty" if value is None or isinstance(value, Mapping) else f"must be a mapping, got {described(data, 'runners')}"
        raise ConfigError(located(data, "runners"), f"runners: {what}; map each platform to the runner label that builds it, e.g. "
                                                    f"{example}, or remove `runners:`")
    declared = list(dict.fromkeys(platform for spec in specs for platform in spec.platforms))
    pairs: list[tuple[str, str]] = []
    for key, label in value.items():
        origin = located(value, key)
        if not isinstance(key, str):
            raise ConfigError(origin, f"runners: {shown(str(key))} is not a platform; use os/arch[/variant], e.g. {example}")
        platform = str(parse_platform(key, f"{origin}: runners"))
        if platform not in declared:
            raise ConfigError(origin, f"runners: no image declares {platform} (declared: {', '.join(declared)}); "
                                      f"name one of those platforms, or remove the line")
        if not isinstance(label, str):
            raise ConfigError(origin, f"runners: {platform}: expected one runner label, got {described(value, key)}; "
                                      f"e.g. {platform}: ubuntu-24.04-arm")
        pairs.append((platform, parse_runner_label(label, f"{origin}: runners: {platform}")))
    return tuple(pairs)


def _parse_report(report: Mapping[str, Any]) -> tuple[ReportTargets, int]:
    history = read_whole(report, "history", 100, 2, "report: history", "whole number of at least 2 (reports kept)")
    targets = read_section(report, "targets", _TARGET_KEYS)
    defaults = ReportTargets()

    def number(key: str, default: float, *, whole: bool = False, upper: float | None = None) -> float:
        value = targets.get(key, default)
        kind = int if whole else (int, float)
        if not isinstance(value, kind) or isinstance(value, bool) or not value > 0 or (upper is not None and value > upper) \
                or value == float("inf"):
            limit = f"between 0 and {upper:g}" if upper is not None else ("a whole number above 0" if whole else "a number above 0")
            raise ConfigError(located(targets, key), f"report: targets: {key} must be {limit}, got {described(targets, key)}")
        return value

    return ReportTargets(
        code_change_seconds=float(number("code_change_seconds", defaults.code_change_seconds)),
        max_layers=int(number("max_layers", defaults.max_layers, whole=True)),
        cache_hit_rate=float(number("cache_hit_rate", defaults.cache_hit_rate, upper=1)),
    ), history


def _parse_compression(data: Mapping[str, Any], where: str, default: Compression) -> Compression:
    """``compression: {type: zstd, level: 3}`` (or just ``compression: zstd``); absent: ``default`` (the family's, for an image)."""
    value = data.get("compression")
    if value is None:
        if "compression" in data:
            raise ConfigError(located(data, "compression"), f"{where}: compression: is empty; write e.g. compression: {{type: zstd, level: 3}} "
                                                            f"or remove it")
        return default
    allowed = ", ".join(Compression.LEVELS)
    if not isinstance(value, (str, Mapping)):
        raise ConfigError(located(data, "compression"), f"{where}: compression must be {allowed} or a mapping such as "
                                                        f"{{type: zstd, level: 3}}, got {described(data, 'compression')}")
    section: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    reject_unknown(section, _COMPRESSION_KEYS, f"{where}: compression")
    kind = value if isinstance(value, str) else section.get("type", "gzip")
    if not isinstance(kind, str) or kind not in Compression.LEVELS:
        origin, what = (located(section, "type"), described(section, "type")) if "type" in section \
            else (located(data, "compression"), described(data, "compression"))
        raise ConfigError(origin, f"{where}: compression: type must be one of {allowed}, got {what}")
    if section.get("level") is None:
        if "level" in section:
            raise ConfigError(located(section, "level"), f"{where}: compression: level is empty; give a number or remove it")
        return Compression(kind)
    low, high = Compression.LEVELS[kind]
    level = read_whole(section, "level", 0, low, f"{where}: compression: level", f"whole number from {low} to {high} for {kind}")
    if level > high:
        raise ConfigError(located(section, "level"), f"{where}: compression: level must be a whole number from {low} to {high} for "
                                                     f"{kind}, got {described(section, 'level')}")
    return Compression(kind, level)


def _parse_image(name: Any, body: Any, root: Path, origin: str, family: Compression = DEFAULT_COMPRESSION) -> ImageSpec:
    if not isinstance(name, str):
        raise ConfigError(origin, f"image name {name!r} is not a name; image names are lowercase words such as base or app")
    parse_image_name(name, f"{origin}: image")
    where = f"image {name!r}"
    if not isinstance(body, Mapping):
        raise ConfigError(origin, f"{where}: settings must be a mapping (dockerfile:, parent:, inputs:, ...)")
    reject_unknown(body, _IMAGE_KEYS, where)
    if "dockerfile" not in body:
        raise ConfigError(origin, f"{where}: `dockerfile:` is required (e.g. dockerfile: docker/Dockerfile.{name})")
    dockerfile = read_repo_path(body, "dockerfile", where)
    _refuse_outside(root, dockerfile, located(body, "dockerfile"), f"{where}: dockerfile")
    check_file(root, dockerfile, located(body, "dockerfile"), f"{where}: dockerfile", ())
    context = read_repo_path(body, "context", where, default=".")
    _refuse_outside(root, context, located(body, "context"), f"{where}: context")
    if not (root / context).is_dir():
        raise ConfigError(located(body, "context"), f"{where}: context {context} is not a directory; fix the path")
    # The ignore files the builder may read, whether or not they exist yet (a missing one is fine, a link out is not).
    for key, ignore in (("dockerfile", f"{dockerfile}.dockerignore"), ("context", str(PurePosixPath(context) / ".dockerignore"))):
        _refuse_outside(root, ignore, located(body, key), f"{where}: ignore file")
    wheels = tuple(repo_path(p, located(body, "wheels"), f"{where}: wheels") for p in read_strings(body, "wheels", f"{where}: wheels"))
    for requirements in wheels:
        _refuse_outside(root, requirements, located(body, "wheels"), f"{where}: wheels")
        check_file(root, requirements, located(body, "wheels"), f"{where}: wheels", wheels)
        folder = wheel_folder(requirements)
        if folder in ("", ".", "..") or "/" in folder:
            raise ConfigError(located(body, "wheels"), f"{where}: wheels: {shown(requirements)} would get the wheel folder "
                                                       f"{shown(f'{WHEELHOUSE_DIR}/{folder}')}, which is no folder of its own; "
                                                       "rename the file (e.g. requirements.txt)")
    platforms = parse_platforms(read_strings(body, "platforms", f"{where}: platforms", default=("linux/amd64",)),
                                f"{located(body, 'platforms')}: {where}: platforms")
    push = read_flag(body, "push", True, f"{where}: push")
    parent = None
    if body.get("parent") is not None:
        parent = read_string(body, "parent", None, f"{where}: parent")
        if parent == name:
            raise ConfigError(located(body, "parent"), f"{where}: an image cannot be its own parent; remove `parent:` or name another image")
    target = None if body.get("target") is None else read_string(body, "target", None, f"{where}: target")
    if target is not None and not _STAGE.fullmatch(target):
        raise ConfigError(located(body, "target"), f"{where}: target {shown(target)} is not a stage name (as `FROM ... AS name` gives it)")
    return ImageSpec(
        name=name,
        dockerfile=dockerfile,
        context=context,
        parent=parent,
        inputs=tuple(repo_path(p, located(body, "inputs"), f"{where}: inputs", glob=True)
                     for p in read_strings(body, "inputs", f"{where}: inputs")),
        wheels=wheels,
        platforms=tuple(str(p) for p in platforms),
        target=target,
        build_args=_build_args(body, where),
        push=push,
        description=read_string(body, "description", "", f"{where}: description"),
        compression=_parse_compression(body, where, family),
    )


def _check_wheel_folders(specs: Iterable[ImageSpec], images_data: Mapping[str, Any], root: Path) -> None:
    """Each wheel folder holds one requirements file's wheels: two files of one name less the suffix (``a/requirements.txt``,
    ``b/requirements.txt``), in one image or two, would fill the same ``.wheelhouse/<name>`` and one image could be built with
    the other's wheels. The folder's name is the Dockerfiles' contract, so the files are renamed, not the folder. Folders
    that differ only in case are one folder where the file system ignores case (macOS, Windows)."""
    first: dict[str, tuple[str, str]] = {}
    for spec in specs:
        for requirements in spec.wheels:
            folder = wheel_folder(requirements)
            earlier, owner = first.setdefault(folder.casefold(), (requirements, spec.name))
            if earlier == requirements or _same_file(root, earlier, requirements):
                continue
            other = wheel_folder(earlier)
            shared = f"{WHEELHOUSE_DIR}/{folder}"
            if other != folder:
                shared += f" (also named {WHEELHOUSE_DIR}/{other} where the file system ignores case)"
            listed = "" if owner == spec.name else f" (image {owner!r}, {located(images_data[owner], 'wheels')})"
            raise ConfigError(located(images_data[spec.name], "wheels"),
                              f"image {spec.name!r}: wheels: {shown(requirements)} and {shown(earlier)}{listed} would share the wheel "
                              f"folder {shared}, so one image could be built with the other's wheels; rename one of the two files "
                              f"(the folder is the file's name less its suffix)")


def _same_file(root: Path, one: str, other: str) -> bool:
    """Two paths to one file (a link inside the repository, a hard link): they fill the folder with the same wheels."""
    try:
        return os.path.samefile(root / one, root / other)
    except OSError:
        return False


def _refuse_outside(root: Path, relpath: str, origin: str, where: str) -> None:
    """A path images.yaml names that a link on the way takes outside the repository: refused before anything reads it."""
    found = link_outside(root, relpath)
    if found is not None:
        raise ConfigError(origin, f"{where}: {shown(relpath)} leads outside the repository through the link {found}; {found.fix()}")


def _build_args(body: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    """NAME: value pairs passed as --build-arg; a value is taken exactly as written (1.10 stays 1.10), null/list/map refused."""
    if body.get("build_args") is None:
        return ()
    args = body["build_args"]
    if not isinstance(args, Mapping):
        raise ConfigError(located(body, "build_args"), f"{where}: build_args must be a mapping of NAME: value, got {described(body, 'build_args')}")
    pairs: list[tuple[str, str]] = []
    for key, value in args.items():
        origin = f"{located(args, key)}: {where}: build_args"
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
            raise ConfigError(origin, f"{name}: {described(args, key)} is not a value --build-arg can pass; "
                                     f'write a string, e.g. {name}: "value" (an empty one is "")')
        if "\0" in text:
            raise ConfigError(origin, f"{name}: the value holds a NUL character, which no command line can pass; remove it")
        pairs.append((name, text))
    return tuple(sorted(pairs))


def _check_acyclic(specs: Iterable[ImageSpec]) -> None:
    """Follow each image's parents; a walk stops at an image an earlier walk cleared, so a chain n deep costs n, not n²."""
    parent_of = {spec.name: spec.parent for spec in specs}
    cleared: set[str] = set()
    for start in parent_of:
        walk: list[str] = []
        at: dict[str, int] = {}
        node: str | None = start
        while node is not None and node not in cleared:
            if node in at:
                cycle = " -> ".join([*walk[at[node]:], node])
                raise ConfigError(CONFIG_NAME, f"parent cycle {cycle}; one of these images must not name the next as parent")
            at[node] = len(walk)
            walk.append(node)
            node = parent_of.get(node)
        cleared.update(walk)


def override_platforms(config: Config, platforms: tuple[Platform, ...]) -> Config:
    """The same family built for ``platforms`` instead of what each image declares (`--platform`, $IMAGEGRAPH_PLATFORMS)."""
    names = tuple(str(p) for p in dict.fromkeys(platforms))
    images = tuple(replace(spec, platforms=names) for spec in config.images)
    return replace(config, images=images)
