"""Strict YAML for images.yaml: safe, no anchors or aliases, no duplicate keys, and every fault one ConfigError at its line.

Mappings load as :class:`YamlMapping`, which remembers each key's line and
each scalar as written, so that a message can point at the line and quote
the value as the reader wrote it (3.10, not 3.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from .errors import ConfigError
from .values import shown

__all__ = ["YamlMapping", "load_yaml"]


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
