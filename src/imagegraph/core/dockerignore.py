"""Which files an ignore file (``.dockerignore``, ``<Dockerfile>.dockerignore``) keeps out of a build context.

The rules are the docker client's, as docker-py implements them (its
``PatternMatcher``, which the tests use as the reference): a line is a
pattern, ``!`` re-includes, ``*`` and ``?`` never cross a ``/``, ``**``
crosses any number of folders, ``.`` and ``..`` are cleaned away first, a
pattern that names a folder excludes what is in it, matching ignores case,
and the ignore file itself is always sent. They live here, not borrowed from
docker-py, because importing docker-py loads its whole HTTP stack, and every
plan reads ignore files: planning must not pay for an engine client it does
not use.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["IgnorePattern", "context_excludes", "matches", "translate"]


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


def translate(pattern: str) -> str:
    """A pattern as a regular expression over a whole ``/``-separated path."""
    out = ["^"]
    index, size = 0, len(pattern)
    while index < size:
        char = pattern[index]
        index += 1
        if char == "*":
            if index < size and pattern[index] == "*":
                index += 1
                if index < size and pattern[index] == "/":
                    index += 1  # "**/" is "**": it may also match no folder at all
                out.append(".*" if index >= size else "(.*/)?")
            else:
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = index
            if end < size and pattern[end] == "!":
                end += 1
            if end < size and pattern[end] == "]":
                end += 1
            while end < size and pattern[end] != "]":
                end += 1
            if end >= size:
                out.append("\\[")  # no closing bracket: a literal one
                continue
            members = pattern[index:end].replace("\\", "\\\\")
            index = end + 1
            if members.startswith("!"):
                members = "^" + members[1:]
            elif members.startswith("^"):
                members = "\\" + members
            out.append(f"[{members}]")
        else:
            out.append(re.escape(char))
    out.append("$")
    return "".join(out)


@dataclass(frozen=True)
class IgnorePattern:
    """One line of an ignore file, cleaned as the client cleans it."""

    #: A ``!`` line: what it matches is sent after all.
    exclusion: bool
    #: The pattern's path parts after cleaning (``.`` dropped, ``..`` taking the part before it with it).
    dirs: tuple[str, ...]
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, line: str) -> IgnorePattern:
        exclusion = line.startswith("!")
        cleaned: list[str] = []
        for part in _parts((line[1:] if exclusion else line).strip()):
            if part == "..":
                if cleaned:
                    cleaned.pop()
            else:
                cleaned.append(part)
        return cls(exclusion, tuple(cleaned), re.compile(translate("/".join(cleaned).lower())))

    @property
    def cleaned(self) -> str:
        return "/".join(self.dirs)

    def match(self, path: str) -> bool:
        return self.regex.match(path.lower()) is not None


#: The ignore file itself always reaches the builder.
_KEEP_IGNORE_FILE = IgnorePattern.parse("!.dockerignore")


def matches(patterns: Sequence[IgnorePattern], path: str) -> bool:
    """Whether ``path`` is excluded: the last pattern that matches it, or a folder above it, decides."""
    excluded = False
    parent = posixpath.dirname(path)
    parent_parts = _parts(parent)
    for pattern in patterns:
        hit = pattern.match(path)
        if not hit and parent and len(pattern.dirs) <= len(parent_parts):
            hit = pattern.match("/".join(parent_parts[: len(pattern.dirs)]))
        if hit:
            excluded = not pattern.exclusion
    return excluded


class _IgnoreFile:
    """Whether the ignore file keeps a path out of the context, as the client's walk of the context decides.

    The walk skips a folder the patterns exclude unless a ``!`` pattern points
    inside it, and asks :func:`matches` about everything else. Here folder
    decisions are cached, and a file that no pattern's regex matches is
    settled by its folder's result (the only other thing :func:`matches`
    looks at), so :func:`matches` itself only runs for the few files a
    pattern names.
    """

    def __init__(self, lines: Sequence[str]) -> None:
        # The client strips lines and drops blanks and comments before the matcher sees them.
        stripped = [line.strip() for line in lines]
        parsed = [IgnorePattern.parse(line) for line in stripped if line and not line.startswith("#")]
        self._patterns = (*(p for p in parsed if p.dirs), _KEEP_IGNORE_FILE) if parsed else ()
        self._reincluded = tuple(p.cleaned for p in self._patterns if p.exclusion)
        self._named = re.compile("|".join(f"(?:{p.regex.pattern})" for p in self._patterns) or "(?!)")
        self._folders: dict[str, tuple[bool, bool]] = {"": (False, False)}

    def __call__(self, path: str) -> bool:
        if not self._patterns:
            return False
        folder = path.rpartition("/")[0]
        pruned, inherited = self._folder(folder)
        if pruned:
            return True
        if self._named.match(path.lower()) is None:
            return inherited
        return matches(self._patterns, path)

    def _folder(self, folder: str) -> tuple[bool, bool]:
        """(the walk never enters it, what :func:`matches` decides for a file in it that no pattern names)."""
        known = self._folders.get(folder)
        if known is not None:
            return known
        parent_pruned, _ = self._folder(folder.rpartition("/")[0])
        parts = folder.split("/")
        inherited = False
        for pattern in self._patterns:
            if len(pattern.dirs) <= len(parts) and pattern.match("/".join(parts[: len(pattern.dirs)])):
                inherited = not pattern.exclusion
        excluded = matches(self._patterns, folder)
        pruned = parent_pruned or (excluded and not any(p.startswith(folder) for p in self._reincluded))
        self._folders[folder] = (pruned, inherited)
        return pruned, inherited


def context_excludes(ignore_lines: Sequence[str]) -> Callable[[str], bool]:
    """Whether an ignore file with these lines keeps a context-relative path out of the context."""
    return _IgnoreFile(ignore_lines)
