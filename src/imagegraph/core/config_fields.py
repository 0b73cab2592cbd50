"""Reading one field of images.yaml: the right type or one ConfigError naming the file, line, key and fix.

Each reader takes a mapping as :mod:`imagegraph.core.config_yaml` loads it (any
mapping works; a :class:`~imagegraph.core.config_yaml.YamlMapping` adds the line
and the value as written) and a ``where`` that says which setting it is for
the message (``image 'app': platforms``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from .config_yaml import YamlMapping
from .defaults import CONFIG_NAME
from .errors import ConfigError
from .values import did_you_mean, shown

__all__ = [
    "check_file",
    "described",
    "located",
    "read_flag",
    "read_repo_path",
    "read_section",
    "read_string",
    "read_strings",
    "read_whole",
    "reject_unknown",
    "repo_path",
]


#: The longest file name (one path part) and path the file systems imagegraph runs on accept, in bytes (Linux NAME_MAX, PATH_MAX - 1).
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4095

def located(data: Any, key: Any) -> str:
    """Where ``key`` of ``data`` is written: ``images.yaml:12``, or just the file when the line is not known."""
    line = data.lines.get(key) if isinstance(data, YamlMapping) else None
    return f"{CONFIG_NAME}:{line}" if line else CONFIG_NAME


def described(data: Any, key: Any) -> str:
    """The value at ``key`` as a reader wrote it, for a message: a YAML number keeps its spelling (3.10, not 3.1)."""
    value = data[key]
    written = data.written.get(key) if isinstance(data, YamlMapping) else None
    kind = "nothing" if value is None else {bool: "true/false", int: "a number", float: "a number", list: "a list"}.get(type(value))
    kind = kind or ("a mapping" if isinstance(value, Mapping) else type(value).__name__)
    if written is not None and isinstance(value, float) and written != repr(value):
        return f"the number {written}, which YAML reads as {value!r}"
    return f"{kind} {shown(written if written is not None else str(value))}" if value is not None else "nothing (null)"


def read_section(data: Mapping[str, Any], key: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    section = data.get(key)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(located(data, key), f"{key}: must be a mapping with the keys {', '.join(known)}, got {described(data, key)}")
    reject_unknown(section, known, key)
    return section


def reject_unknown(data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(located(data, key), f"{where}: unknown key {shown(str(key))}{did_you_mean(str(key), known)}; "
                                                  f"known keys: {', '.join(known)}")


def _did_you_mean_file(root: Path, relpath: str, listed: Iterable[str]) -> str:
    """A close file beside ``relpath`` that the image does not already list (a listed one cannot be what was meant)."""
    parent = (root / relpath).parent
    if not parent.is_dir():
        return ""
    siblings = [str(PurePosixPath(relpath).parent / p.name) for p in parent.iterdir() if p.is_file()]
    return did_you_mean(relpath, [s for s in siblings if s not in set(listed)])


def check_file(root: Path, relpath: str, origin: str, where: str, listed: Iterable[str]) -> None:
    path = root / relpath
    try:
        path.stat()
    except FileNotFoundError:
        pass  # said below, with a close file when there is one
    except OSError as err:  # too long for this file system, a loop of links, no permission: the system's own reason
        raise ConfigError(origin, f"{where}: {shown(relpath)} cannot be read ({err.strerror or err}); fix the path") from None
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.endswith(".dockerignore"))
        example = f"{relpath}/{inside[0]}" if inside else f"{relpath}/<file>"
        raise ConfigError(origin, f"{where}: {relpath} is a directory; name the file in it, e.g. {example}")
    if not path.is_file():
        raise ConfigError(origin, f"{where}: {relpath} does not exist{_did_you_mean_file(root, relpath, listed)}; fix the path")


def read_string(data: Mapping[str, Any], key: str, default: str | None, where: str) -> str:
    if key not in data and default is not None:
        return default
    value = data[key]
    if not isinstance(value, str):
        example = f'"{data.written[key]}"' if isinstance(data, YamlMapping) and data.written.get(key) else '"..."'
        raise ConfigError(located(data, key), f"{where}: expected a string, got {described(data, key)}; quote it: {key}: {example}")
    if "\0" in value:
        raise ConfigError(located(data, key), f"{where}: holds a NUL character; remove it")
    return value


def read_strings(data: Mapping[str, Any], key: str, where: str, default: tuple[str, ...] = ()) -> list[str]:
    value = data.get(key)
    if value is None:
        if key in data:
            raise ConfigError(located(data, key), f"{where}: is empty; list at least one or remove `{key}:`")
        return list(default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(located(data, key), f"{where}: expected a list of strings, e.g. [a, b]; quote numbers")
    return list(value)


def read_flag(data: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(located(data, key), f"{where} must be true or false, got {described(data, key)}")
    return value


def read_whole(data: Mapping[str, Any], key: str, default: int, minimum: int, where: str, what: str) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(located(data, key), f"{where} must be a {what}, got {described(data, key)}")
    return value


def read_repo_path(data: Mapping[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    return repo_path(read_string(data, key, default, f"{where}: {key}"), located(data, key), f"{where}: {key}")


def repo_path(text: str, origin: str, where: str, *, glob: bool = False) -> str:
    """A path (or glob) inside the repository, normalised to POSIX form without ``./``."""
    text = text.strip()
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts:
        raise ConfigError(origin, f"{where}: {text!r} points outside the repository; use a path relative to the directory of images.yaml")
    if not text or (not glob and any(ch in text for ch in "*?[")) or not text.isprintable():
        raise ConfigError(origin, f"{where}: {shown(text)} is not a plain relative path; e.g. docker/Dockerfile")
    longest = max(path.parts, key=lambda part: len(part.encode("utf-8", "surrogateescape")), default="")
    if len(longest.encode("utf-8", "surrogateescape")) > NAME_MAX_BYTES:
        raise ConfigError(origin, f"{where}: {shown(text)} has a part of {len(longest.encode('utf-8', 'surrogateescape'))} bytes, "
                                  f"longer than a file name can be ({NAME_MAX_BYTES}); fix the path")
    if len(text.encode("utf-8", "surrogateescape")) > PATH_MAX_BYTES:
        raise ConfigError(origin, f"{where}: {shown(text)} is longer than a path can be ({PATH_MAX_BYTES} bytes); fix the path")
    return str(path) if str(path) != "" else "."
