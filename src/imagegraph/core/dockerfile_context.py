"""What a Dockerfile reads from its build context: the paths of COPY, ADD and ``RUN --mount=type=bind``, and the files they name.

Sources are read with :mod:`imagegraph.core.dockerfile_syntax` (build args and
ARG/ENV values substituted where they are known). Matching follows BuildKit's
copy rules (Go ``filepath.Match`` wildcards, directories copied whole), and
the ignore file is applied with the client's own dockerignore rules
(:mod:`imagegraph.core.dockerignore`), so the two never drift apart.
"""

from __future__ import annotations

import bisect
import csv
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .dockerfile_syntax import Vars, flag_values, json_list, parse_assignments, parse_heredoc, read_instructions, shell_word, split_flags, split_keyword
from .dockerignore import context_excludes

__all__ = ["ADD", "COPY", "MOUNT", "WHOLE_CONTEXT", "Source", "context_sources", "go_glob", "used_files"]

COPY = "COPY"
ADD = "ADD"
MOUNT = "RUN --mount"
#: How a source (or an image's context) names the whole build context.
WHOLE_CONTEXT = ("", ".")
_REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git@)")


@dataclass(frozen=True)
class Source:
    """One path a Dockerfile takes from the build context."""

    #: "COPY", "ADD" or "RUN --mount".
    instruction: str
    #: As written (variables substituted when their value is known), without leading "./" or "/"; "." is the whole context.
    path: str
    #: 1-based line number of the instruction in the Dockerfile.
    line: int

    def describe(self) -> str:
        """The instruction as a reader finds it in the Dockerfile."""
        if self.instruction == MOUNT:
            return f"RUN --mount=type=bind,source={self.path}"
        return f"{self.instruction} {self.path}"


def context_sources(text: str, *, build_args: Mapping[str, str] | None = None) -> tuple[Source, ...]:
    """Every path the Dockerfile reads from the build context.

    ``build_args`` (the values imagegraph passes with ``--build-arg``) resolve
    ``$VAR`` references to declared ARGs; a reference whose value is unknown
    keeps the path as written, so it matches no file rather than a wrong one.
    """
    build_args = dict(build_args or {})
    escape, parsed = read_instructions(text)
    global_args: dict[str, str | None] = {}
    stage_envs: dict[str, dict[str, str | None]] = {}
    args: dict[str, str | None] = {}
    env: dict[str, str | None] = {}
    in_stage = False
    sources: list[Source] = []
    for line_number, line in parsed:
        keyword, rest = split_keyword(line)
        if keyword == "FROM":
            in_stage = True
            args, env = {}, _from(rest, global_args, stage_envs, escape)
        elif keyword == "ARG":
            scope = args if in_stage else global_args
            for name, has_default, value in parse_assignments(rest, {**scope, **env}, escape, legacy=False):
                if name in build_args:
                    value = build_args[name]
                elif not has_default and in_stage:
                    value = global_args.get(name)  # `ARG NAME` in a stage takes the global ARG's value
                scope[name] = value
        elif keyword == "ENV":
            for name, _, value in parse_assignments(rest, {**args, **env}, escape, legacy=True):
                env[name] = value
        elif keyword in (COPY, ADD):
            sources += _copy_sources(keyword, rest, {**args, **env}, escape, line_number)
        elif keyword == "RUN":
            sources += _mount_sources(rest, {**args, **env}, escape, line_number)
    return tuple(sources)




def _from(rest: str, global_args: Vars, stage_envs: dict[str, dict[str, str | None]], escape: str) -> dict[str, str | None]:
    """Start a stage: its ENV starts as the parent stage's when it is built FROM one."""
    _, operands = split_flags(rest)
    words = operands.split()
    env: dict[str, str | None] = {}
    if words:
        image = shell_word(words[0], global_args, escape) or words[0]
        env = dict(stage_envs.get(image.lower(), {}))
        if len(words) >= 3 and words[1].lower() == "as":
            stage_envs[words[2].lower()] = env
    return env


def _copy_sources(keyword: str, rest: str, variables: Vars, escape: str, line: int) -> list[Source]:
    flags, operands = split_flags(rest)
    if any(flag_values(flags, "from")):
        return []  # another stage, image or named context: nothing from this context
    arguments = json_list(operands)
    if arguments is None:
        arguments = operands.split()
    sources = []
    for written in arguments[:-1]:
        if parse_heredoc(written) is not None:
            continue  # inline content written in the Dockerfile
        path = shell_word(written, variables, escape)
        path = written if path is None else path
        if keyword == ADD and (_REMOTE.match(path) or _REMOTE.match(written)):
            continue
        sources.append(Source(keyword, _normalize(path), line))
    return sources


def _mount_sources(rest: str, variables: Vars, escape: str, line: int) -> list[Source]:
    flags, _ = split_flags(rest)
    sources = []
    for value in filter(None, flag_values(flags, "mount")):
        try:
            fields = next(csv.reader([value]), [])
        except csv.Error:
            continue
        options: dict[str, str] = {}
        for field in fields:
            key, equals, setting = field.partition("=")
            options[key.strip().lower()] = setting if equals else "true"
        if options.get("type", "bind").lower() != "bind" or options.get("from"):
            continue
        written = options.get("source", options.get("src", ""))
        path = shell_word(written, variables, escape)
        sources.append(Source(MOUNT, _normalize(written if path is None else path), line))
    return sources


def _normalize(path: str) -> str:
    """Context-relative, as BuildKit resolves it: leading "/" and "./", "." and ".." segments gone; "." for the whole context."""
    return posixpath.normpath("/" + path.strip().lstrip("/")).lstrip("/") or "."


# --- matching the context ---------------------------------------------------------------------------------------------


def used_files(sources: Sequence[Source], context_files: Sequence[str], ignore_lines: Sequence[str], *,
               ordered: bool = False) -> dict[str, Source]:
    """Map each file (path relative to the context, POSIX) that the build can read to the first Source that reads it.

    ``context_files``: every file in the context (relative POSIX paths, e.g.
    from ``git ls-files``); ``ignore_lines``: the lines of the .dockerignore
    that applies (may be empty). The result follows the order of
    ``context_files``. Sources narrow the files first, in one pass of C-level
    string tests; only those files are attributed to a source and checked
    against the ignore file, whose matcher is built once. ``ordered`` says
    ``context_files`` are sorted: then that pass looks only at the slices
    that start with each source's literal part (found by bisection), so a
    family of many images does not scan the whole tree once per image.
    """
    selectors = [(source, *_selector(source)) for source in sources]
    if not selectors:
        return {}
    if any(literal is None and pattern is None for _, literal, pattern in selectors):
        candidates: Sequence[str] = context_files
    else:
        exact = frozenset(literal for _, literal, _ in selectors if literal is not None)
        below = tuple(literal + "/" for literal in exact)
        patterns = [pattern for _, _, pattern in selectors if pattern is not None]
        if ordered:
            context_files = _starting_with(context_files, [_literal_part(source.path.strip("/")) for source, _, _ in selectors])
        candidates = [path for path in context_files if path in exact or path.startswith(below) or any(p.match(path) for p in patterns)]
    if not candidates:
        return {}
    ignored = context_excludes(ignore_lines)
    used: dict[str, Source] = {}
    for path in candidates:
        if path in used:
            continue
        for source, literal, pattern in selectors:
            if (
                (literal is None and pattern is None)
                or (literal is not None and (path == literal or path.startswith(literal + "/")))
                or (pattern is not None and pattern.match(path))
            ):
                if not ignored(path):
                    used[path] = source
                break
    return used


_NOTHING = re.compile("(?!)")


def _literal_part(path: str) -> str:
    """What every file a source reads starts with: its path up to the first wildcard or escape."""
    return re.split(r"[*?\[\\]", path, maxsplit=1)[0]


def _starting_with(files: Sequence[str], prefixes: Sequence[str]) -> Sequence[str]:
    """The sorted ``files`` that start with one of ``prefixes``, in their order: a few slices found by bisection."""
    if any(not prefix for prefix in prefixes):
        return files
    spans = sorted((bisect.bisect_left(files, prefix), bisect.bisect_left(files, prefix[:-1] + chr(ord(prefix[-1]) + 1)))
                   for prefix in set(prefixes))
    found: list[str] = []
    end = 0
    for lo, hi in spans:
        found.extend(files[max(lo, end):hi])
        end = max(end, hi)
    return found


def _selector(source: Source) -> tuple[str | None, re.Pattern[str] | None]:
    """(a literal path, a wildcard pattern): the files ``source`` reads; both None when it reads the whole context.

    A literal path names a file or a folder (read whole); COPY and ADD sources
    with wildcards are patterns, while mount sources are always literal.
    """
    path = source.path.strip("/")
    if path in WHOLE_CONTEXT:
        return None, None
    if source.instruction != MOUNT and _has_wildcards(path):
        return None, go_glob(path) or _NOTHING
    return path, None


def _has_wildcards(path: str) -> bool:
    """BuildKit's test: an unescaped ``*``, ``?`` or ``[`` makes the source a pattern."""
    index = 0
    while index < len(path):
        if path[index] == "\\":
            index += 2
            continue
        if path[index] in "*?[":
            return True
        index += 1
    return False


def go_glob(pattern: str) -> re.Pattern[str] | None:
    """Go ``filepath.Match`` as BuildKit applies it to COPY sources, one path segment at a time.

    The regex matches an entry the pattern names and everything under it (a
    matched folder is copied whole). None for a malformed pattern, which
    matches nothing.
    """
    out: list[str] = []
    index, total = 0, len(pattern)

    def literal(at: int) -> tuple[str, int] | None:
        if at >= total:
            return None
        if pattern[at] == "\\":
            return (pattern[at + 1], at + 2) if at + 1 < total else None
        if pattern[at] in "-]":
            return None
        return pattern[at], at + 1

    while index < total:
        char = pattern[index]
        if char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "\\":
            if index + 1 >= total:
                return None
            out.append(re.escape(pattern[index + 1]))
            index += 2
        elif char == "[":
            index += 1
            negate = index < total and pattern[index] == "^"
            if negate:
                index += 1
            ranges: list[str] = []
            items = 0
            while index >= total or pattern[index] != "]" or not items:
                low = literal(index)
                if low is None:
                    return None
                first, index = low
                last = first
                if index < total and pattern[index] == "-":
                    high = literal(index + 1)
                    if high is None:
                        return None
                    last, index = high
                items += 1
                if first <= last:  # Go accepts a reversed range; it just matches nothing
                    ranges.append(re.escape(first) if first == last else f"{re.escape(first)}-{re.escape(last)}")
            index += 1
            if ranges:
                out.append(f"(?!/)[{'^' if negate else ''}{''.join(ranges)}]")
            else:
                out.append("[^/]" if negate else "(?!)")
        else:
            out.append(re.escape(char))
            index += 1
    return re.compile("".join(out) + "(?:/|$)")
