"""What a Dockerfile really reads from its build context, checked against images.yaml.

A fingerprint only covers the files images.yaml declares. A file the build
copies or mounts without being declared changes the image without changing
its tag, so the registry keeps serving a stale image: every such file is
reported as a warning that names it.

Parsing follows the BuildKit Dockerfile frontend (the Dockerfile reference
is the authority): parser directives, line continuations, comments, heredocs,
the shell and JSON forms of COPY/ADD, and ``RUN --mount=type=bind``. Matching
follows BuildKit's copy rules (Go ``filepath.Match`` wildcards, directories
copied whole), and the ignore file is applied with docker-py's own
dockerignore matcher, so the two never drift apart.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from docker.utils.build import PatternMatcher
from docker.utils.fnmatch import translate as dockerignore_regex

from .config import CONFIG_NAME, Config, ImageSpec, read_repo_text
from .errors import InputError
from .values import did_you_mean

__all__ = ["InputWarning", "Source", "Stages", "check_dockerfile", "check_dockerfiles", "context_excludes", "context_sources", "stages",
           "undeclared_inputs", "used_files"]

COPY = "COPY"
ADD = "ADD"
MOUNT = "RUN --mount"
#: wheelhouse.WHEELHOUSE_DIR, repeated: wheelhouse imports fingerprint, which may well import this module.
WHEELHOUSE_DIR = ".wheelhouse"

_WHOLE_CONTEXT = ("", ".")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git@)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BASE_IMAGE = re.compile(r"\$(?:BASE_IMAGE\b|\{BASE_IMAGE\b)")
BASE_IMAGE = "BASE_IMAGE"
_HEREDOC_INSTRUCTIONS = ("RUN", COPY, ADD)

#: Variable values while reading a stage; None means "declared, but the value is only known at build time".
_Vars = Mapping[str, "str | None"]


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


@dataclass(frozen=True)
class InputWarning:
    """A file the build reads that images.yaml does not declare: it changes the image but not its fingerprint."""

    image: str
    #: Repository-relative path of the file.
    path: str
    source: Source
    #: The Dockerfile (repository-relative), so the warning points at the line to look at.
    dockerfile: str = ""
    #: The image's build context (repository-relative), to turn the source's path into an input glob.
    context: str = "."

    @property
    def suggestion(self) -> str:
        """The input glob that declares this file: the entry the source names (a folder, as `<folder>/**`), or the file itself."""
        prefix = _context_prefix(self.context)
        relative = self.path[len(prefix):] if self.path.startswith(prefix) else self.path
        depth = 0 if self.source.path in _WHOLE_CONTEXT else self.source.path.count("/") + 1
        parts = relative.split("/")
        if depth == 0 or depth >= len(parts):
            return self.path
        return prefix + "/".join(parts[:depth]) + "/**"

    def __str__(self) -> str:
        where = f"{self.dockerfile}:{self.source.line}" if self.dockerfile else f"line {self.source.line}"
        return (
            f"image {self.image!r}: {where} {self.source.describe()} uses {self.path}, which images.yaml does not declare; "
            f'add it to the image\'s inputs (e.g. "{self.suggestion}")'
        )


# --- reading the Dockerfile -------------------------------------------------------------------------------------------


def context_sources(text: str, *, build_args: Mapping[str, str] | None = None) -> tuple[Source, ...]:
    """Every path the Dockerfile reads from the build context.

    ``build_args`` (the values imagegraph passes with ``--build-arg``) resolve
    ``$VAR`` references to declared ARGs; a reference whose value is unknown
    keeps the path as written, so it matches no file rather than a wrong one.
    """
    build_args = dict(build_args or {})
    escape, instructions = _instructions(text)
    global_args: dict[str, str | None] = {}
    stage_envs: dict[str, dict[str, str | None]] = {}
    args: dict[str, str | None] = {}
    env: dict[str, str | None] = {}
    in_stage = False
    sources: list[Source] = []
    for line_number, line in instructions:
        keyword, rest = _split_keyword(line)
        if keyword == "FROM":
            in_stage = True
            args, env = {}, _from(rest, global_args, stage_envs, escape)
        elif keyword == "ARG":
            scope = args if in_stage else global_args
            for name, has_default, value in _assignments(rest, {**scope, **env}, escape, legacy=False):
                if name in build_args:
                    value = build_args[name]
                elif not has_default and in_stage:
                    value = global_args.get(name)  # `ARG NAME` in a stage takes the global ARG's value
                scope[name] = value
        elif keyword == "ENV":
            for name, _, value in _assignments(rest, {**args, **env}, escape, legacy=True):
                env[name] = value
        elif keyword in (COPY, ADD):
            sources += _copy_sources(keyword, rest, {**args, **env}, escape, line_number)
        elif keyword == "RUN":
            sources += _mount_sources(rest, {**args, **env}, escape, line_number)
    return tuple(sources)


def _instructions(text: str) -> tuple[str, list[tuple[int, str]]]:
    """The escape character and each instruction as one logical line, with the line it starts on.

    Comment lines and blank lines inside continuations are dropped, as BuildKit
    does; heredoc bodies are skipped so they are never read as instructions.
    """
    lines = [raw.rstrip("\r") for raw in text.split("\n")]
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    escape = _escape_directive(lines)
    continuation = re.compile(rf"(?<!{re.escape(escape)}){re.escape(escape)}[ \t]*$")

    def joined(line: str) -> tuple[str, bool]:
        trimmed, count = continuation.subn("", line)
        return trimmed, count == 0

    result: list[tuple[int, str]] = []
    index, total = 0, len(lines)
    while index < total:
        first = lines[index].lstrip()
        index += 1
        start = index
        if first.startswith("#"):
            continue
        line, done = joined(first)
        if done and not line.strip():
            continue
        while not done and index < total:
            raw = lines[index]
            index += 1
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            piece, done = joined(raw)
            line += piece
        for terminator, chomp in _heredoc_terminators(line):
            while index < total:
                body = lines[index]
                index += 1
                if (body.lstrip("\t") if chomp else body) == terminator:
                    break
        if line.strip():
            result.append((start, line.strip()))
    return escape, result


def _escape_directive(lines: Sequence[str]) -> str:
    """The ``# escape=`` parser directive: only the leading run of directive lines counts."""
    escape = "\\"
    for raw in lines:
        match = _DIRECTIVE.match(raw.lstrip())
        if match is None or match.group(1).lower() not in _DIRECTIVES:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("\\", "`"):
            escape = match.group(2)
    return escape


def _split_keyword(line: str) -> tuple[str, str]:
    """(instruction in upper case, its arguments): instructions are case-insensitive."""
    parts = line.split(None, 1)
    if not parts:
        return "", ""
    return parts[0].upper(), parts[1].strip() if len(parts) > 1 else ""


def _heredoc_terminators(line: str) -> list[tuple[str, bool]]:
    """(delimiter, strip leading tabs) of each heredoc the instruction opens, in order; none for other instructions."""
    if "<<" not in line:
        return []
    keyword, rest = _split_keyword(line)
    if keyword == "ONBUILD":
        keyword, rest = _split_keyword(rest)
    if keyword not in _HEREDOC_INSTRUCTIONS:
        return []
    _, operands = _flags(rest)
    if _json_list(operands) is not None:
        return []
    terminators = []
    for word in _words(rest, "\\"):
        heredoc = _heredoc(word)
        if heredoc is not None:
            terminators.append(heredoc)
    return terminators


def _heredoc(word: str) -> tuple[str, bool] | None:
    """``<<EOF``, ``<<-EOF``, ``<<"EOF"`` (quotes only stop expansion of the body) as (delimiter, chomp)."""
    match = _HEREDOC.match(word)
    if match is None or not match.group(3):
        return None
    words = _words(match.group(3), "\\")
    if len(words) != 1:
        return None
    name = _shell_word(words[0], None, "\\")
    return (name, match.group(2) == "-") if name else None


def _words(text: str, escape: str) -> list[str]:
    """Whitespace-separated words, quotes and escapes kept as written but never split on."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    in_word = False
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            elif char == escape and quote == '"' and index < len(text):
                current.append(text[index])
                index += 1
            continue
        if char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            continue
        in_word = True
        current.append(char)
        if char in "'\"":
            quote = char
        elif char == escape and index < len(text):
            current.append(text[index])
            index += 1
    if in_word:
        words.append("".join(current))
    return words


def _flags(rest: str) -> tuple[list[str], str]:
    """Leading ``--flag[=value]`` words (quotes removed) and the operands after them, as BuildKit splits them."""
    flags: list[str] = []
    index, total = 0, len(rest)
    while True:
        while index < total and rest[index].isspace():
            index += 1
        if not rest.startswith("--", index):
            return flags, rest[index:]
        word: list[str] = []
        quote = ""
        while index < total and (quote or not rest[index].isspace()):
            char = rest[index]
            index += 1
            if quote and char == quote:
                quote = ""
            elif not quote and char in "'\"":
                quote = char
            elif char == "\\" and index < total:
                word.append(rest[index])
                index += 1
            else:
                word.append(char)
        flag = "".join(word)
        if flag == "--":
            return flags, rest[index:].lstrip()
        flags.append(flag[2:])


def _flag_values(flags: Sequence[str], name: str) -> list[str]:
    """The values of every ``--name=value`` flag ("" for a bare ``--name``)."""
    return [value for key, _, value in (flag.partition("=") for flag in flags) if key.lower() == name]


def _json_list(operands: str) -> list[str] | None:
    """The exec (JSON array) form's strings, or None for the shell form."""
    operands = operands.strip()
    if not operands.startswith("["):
        return None
    try:
        value = json.loads(operands)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _shell_word(word: str, variables: _Vars | None, escape: str) -> str | None:
    """The word as BuildKit's shell lexer reads it: quotes removed, escapes applied, variables substituted.

    ``variables=None`` leaves ``$`` alone (heredoc delimiters). None when a
    variable's value is unknown or a quote is not closed: the caller then keeps
    the word as written.
    """
    out: list[str] = []
    quote = ""
    index, total = 0, len(word)
    while index < total:
        char = word[index]
        index += 1
        if quote == "'":
            if char == "'":
                quote = ""
            else:
                out.append(char)
        elif char == escape:
            if index < total and (quote != '"' or word[index] in ('"', "$", escape)):
                out.append(word[index])
                index += 1
            elif quote == '"' or index < total:
                out.append(char)
        elif char == "$" and variables is not None:
            value, index = _variable(word, index, variables, escape)
            if value is None:
                return None
            out.append(value)
        elif char == '"' and quote == '"':
            quote = ""
        elif char in "'\"" and not quote:
            quote = char
        else:
            out.append(char)
    return None if quote else "".join(out)


def _variable(word: str, index: int, variables: _Vars, escape: str) -> tuple[str | None, int]:
    """The value of the reference after the ``$`` at ``index - 1``, and where the word continues."""
    if index < len(word) and word[index] == "{":
        depth, end = 1, index + 1
        while end < len(word) and depth:
            depth += {"{": 1, "}": -1}.get(word[end], 0)
            end += 1
        if depth:
            return None, len(word)
        body = word[index + 1 : end - 1]
        name = _NAME.match(body)
        if name is None:
            return None, end
        value = variables.get(name.group())
        modifier = body[name.end() :]
        if not modifier:
            return value, end
        for operator in (":-", ":+", "-", "+"):
            if modifier.startswith(operator):
                if value is None:
                    return None, end
                empty = operator.startswith(":") and value == ""
                if operator.endswith("-"):
                    return (value, end) if not empty else (_shell_word(modifier[len(operator) :], variables, escape), end)
                return ("", end) if empty else (_shell_word(modifier[len(operator) :], variables, escape), end)
        return None, end  # ${VAR#pattern} and friends: not worth guessing
    name = _NAME.match(word, index)
    if name is None:
        return "$", index
    return variables.get(name.group()), name.end()


def _assignments(rest: str, variables: _Vars, escape: str, *, legacy: bool) -> list[tuple[str, bool, str | None]]:
    """(name, has a value, value) of each ``NAME=value`` of ARG or ENV, plus ARG's bare ``NAME`` and the legacy ``ENV NAME value``.

    Values see the variables from before the instruction, not their neighbours:
    ``ENV a=1 b=$a`` gives b the earlier a, as Docker documents.
    """
    words = _words(rest, escape)
    if legacy and words and "=" not in words[0]:
        parts = rest.split(None, 1)
        return [(parts[0], True, _shell_word(parts[1].strip() if len(parts) > 1 else "", variables, escape))]
    assignments: list[tuple[str, bool, str | None]] = []
    for word in words:
        name, equals, value = word.partition("=")
        assignments.append((name, bool(equals), _shell_word(value, variables, escape) if equals else None))
    return assignments


def _from(rest: str, global_args: _Vars, stage_envs: dict[str, dict[str, str | None]], escape: str) -> dict[str, str | None]:
    """Start a stage: its ENV starts as the parent stage's when it is built FROM one."""
    _, operands = _flags(rest)
    words = operands.split()
    env: dict[str, str | None] = {}
    if words:
        image = _shell_word(words[0], global_args, escape) or words[0]
        env = dict(stage_envs.get(image.lower(), {}))
        if len(words) >= 3 and words[1].lower() == "as":
            stage_envs[words[2].lower()] = env
    return env


def _copy_sources(keyword: str, rest: str, variables: _Vars, escape: str, line: int) -> list[Source]:
    flags, operands = _flags(rest)
    if any(_flag_values(flags, "from")):
        return []  # another stage, image or named context: nothing from this context
    arguments = _json_list(operands)
    if arguments is None:
        arguments = operands.split()
    sources = []
    for written in arguments[:-1]:
        if _heredoc(written) is not None:
            continue  # inline content written in the Dockerfile
        path = _shell_word(written, variables, escape)
        path = written if path is None else path
        if keyword == ADD and (_REMOTE.match(path) or _REMOTE.match(written)):
            continue
        sources.append(Source(keyword, _normalize(path), line))
    return sources


def _mount_sources(rest: str, variables: _Vars, escape: str, line: int) -> list[Source]:
    flags, _ = _flags(rest)
    sources = []
    for value in filter(None, _flag_values(flags, "mount")):
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
        path = _shell_word(written, variables, escape)
        sources.append(Source(MOUNT, _normalize(written if path is None else path), line))
    return sources


def _normalize(path: str) -> str:
    """Context-relative, as BuildKit resolves it: leading "/" and "./", "." and ".." segments gone; "." for the whole context."""
    return posixpath.normpath("/" + path.strip().lstrip("/")).lstrip("/") or "."


# --- matching the context ---------------------------------------------------------------------------------------------


def used_files(sources: Sequence[Source], context_files: Sequence[str], ignore_lines: Sequence[str]) -> dict[str, Source]:
    """Map each file (path relative to the context, POSIX) that the build can read to the first Source that reads it.

    ``context_files``: every file in the context (relative POSIX paths, e.g.
    from ``git ls-files``); ``ignore_lines``: the lines of the .dockerignore
    that applies (may be empty). The result follows the order of
    ``context_files``. Sources narrow the files first, in one pass of C-level
    string tests; only those files are attributed to a source and checked
    against the ignore file, whose matcher is built once.
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
        candidates = [path for path in context_files if path in exact or path.startswith(below) or any(p.match(path) for p in patterns)]
    if not candidates:
        return {}
    ignored = _IgnoreFile(ignore_lines)
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


def _selector(source: Source) -> tuple[str | None, re.Pattern[str] | None]:
    """(a literal path, a wildcard pattern): the files ``source`` reads; both None when it reads the whole context.

    A literal path names a file or a folder (read whole); COPY and ADD sources
    with wildcards are patterns, while mount sources are always literal.
    """
    path = source.path.strip("/")
    if path in _WHOLE_CONTEXT:
        return None, None
    if source.instruction != MOUNT and _has_wildcards(path):
        return None, _go_glob(path) or _NOTHING
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


def _go_glob(pattern: str) -> re.Pattern[str] | None:
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


class _IgnoreFile:
    """Whether the ignore file keeps a path out of the context, exactly as docker-py's ``PatternMatcher.walk`` decides.

    The walk skips a folder the patterns exclude unless a ``!`` pattern points
    inside it, and asks ``PatternMatcher.matches`` about everything else. Here
    folder decisions are cached, and a file that no pattern's regex matches is
    settled by its folder's result (the only other thing ``matches`` looks at),
    so ``matches`` itself only runs for the few files a pattern names.
    """

    def __init__(self, lines: Sequence[str]) -> None:
        # The client strips lines and drops blanks and comments before the matcher sees them.
        patterns = [line.strip() for line in lines]
        patterns = [line for line in patterns if line and not line.startswith("#")]
        self._matcher = PatternMatcher(patterns) if patterns else None
        self._patterns = tuple(self._matcher.patterns) if self._matcher else ()
        self._reincluded = tuple(p.cleaned_pattern for p in self._patterns if p.exclusion)
        # docker-py matches case-insensitively through its own fnmatch; the same translation, compiled once.
        self._named = re.compile("|".join(f"(?:{dockerignore_regex(p.cleaned_pattern.lower())})" for p in self._patterns) or "(?!)")
        self._folders: dict[str, tuple[bool, bool]] = {"": (False, False)}

    def __call__(self, path: str) -> bool:
        if self._matcher is None:
            return False
        folder = path.rpartition("/")[0]
        pruned, inherited = self._folder(folder)
        if pruned:
            return True
        if self._named.match(path.lower()) is None:
            return inherited
        return self._matcher.matches(_native(path))

    def _folder(self, folder: str) -> tuple[bool, bool]:
        """(the walk never enters it, what ``matches`` decides for a file in it that no pattern names)."""
        known = self._folders.get(folder)
        if known is not None:
            return known
        assert self._matcher is not None
        parent_pruned, _ = self._folder(folder.rpartition("/")[0])
        parts = folder.split("/")
        inherited = False
        for pattern in self._patterns:
            if len(pattern.dirs) <= len(parts) and pattern.match(os.sep.join(parts[: len(pattern.dirs)])):
                inherited = not pattern.exclusion
        excluded = self._matcher.matches(_native(folder))
        pruned = parent_pruned or (excluded and not any(p.startswith(folder) for p in self._reincluded))
        self._folders[folder] = (pruned, inherited)
        return pruned, inherited


def context_excludes(ignore_lines: Sequence[str]) -> Callable[[str], bool]:
    """Whether an ignore file with these lines keeps a context-relative path out of the context."""
    return _IgnoreFile(ignore_lines)


def _native(path: str) -> str:
    return path if os.sep == "/" else path.replace("/", os.sep)


# --- checking a Dockerfile against its image ---------------------------------------------------------------------


@dataclass(frozen=True)
class Stages:
    """What the plan needs to know of a Dockerfile's stages before anything builds."""

    #: 1-based line of each FROM, the image it names as written, and its stage name (lower case; "" for none).
    froms: tuple[tuple[int, str, str], ...]
    #: ARG names declared before the first FROM (the only ones a FROM line can use).
    global_args: frozenset[str]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for _, _, name in self.froms if name)


def stages(text: str) -> Stages:
    """The FROM lines and global ARGs of a Dockerfile."""
    escape, instructions = _instructions(text)
    froms: list[tuple[int, str, str]] = []
    global_args: set[str] = set()
    for line_number, line in instructions:
        keyword, rest = _split_keyword(line)
        if keyword == "ARG" and not froms:
            global_args.update(name for name, _, _ in _assignments(rest, {}, escape, legacy=False))
        elif keyword == "FROM":
            words = _flags(rest)[1].split()
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else ""
            froms.append((line_number, words[0] if words else "", name))
    return Stages(tuple(froms), frozenset(global_args))


def instruction_texts(text: str) -> tuple[str, ...]:
    """Every instruction of a Dockerfile but FROM and ARG, each as one line: what BuildKit names a step after."""
    return tuple(line.strip() for _, line in _instructions(text)[1] if _split_keyword(line)[0] not in ("FROM", "ARG"))


def check_dockerfile(spec: ImageSpec, text: str) -> None:
    """Refuse what would build the wrong image or none: no FROM, an unknown target, a child whose parent is not pinned."""
    found = stages(text)
    where = f"image {spec.name!r}"
    if not found.froms:
        raise InputError(spec.dockerfile, f"has no FROM instruction, so {where} cannot build; start it with FROM <image>"
                                          f"{' (ARG BASE_IMAGE, then FROM ${BASE_IMAGE})' if spec.parent else ''}")
    if spec.target is not None and spec.target.lower() not in found.names:
        stage_list = ", ".join(found.names) or "none are named"
        raise InputError(f"{CONFIG_NAME}: {where}: target", f"{spec.target!r} is not a stage of {spec.dockerfile}"
                                                            f"{did_you_mean(spec.target.lower(), found.names)} (stages: {stage_list}); "
                                                            "name one with `FROM ... AS <name>` or fix `target:`")
    if spec.parent is None:
        return
    pinned = [line for line, image, _ in found.froms if _BASE_IMAGE.search(image)]
    if not pinned:
        raise InputError(spec.dockerfile, f"{where} has parent {spec.parent!r} but no FROM uses ${{{BASE_IMAGE}}}, so the parent is "
                                          f"not pinned; declare `ARG {BASE_IMAGE}` before the first FROM and build `FROM ${{{BASE_IMAGE}}}`, "
                                          "or remove `parent:`")
    if BASE_IMAGE not in found.global_args:
        raise InputError(f"{spec.dockerfile}:{pinned[0]}", f"FROM uses ${{{BASE_IMAGE}}} but no `ARG {BASE_IMAGE}` comes before the first "
                                                           "FROM, so it is empty when the build runs; add that line at the top")


def check_dockerfiles(config: Config) -> None:
    """Every image's Dockerfile (and its own ignore file), read as UTF-8 and checked before any plan or build."""
    for spec in config.images:
        check_dockerfile(spec, read_repo_text(config.root, spec.dockerfile))
        if (config.root / spec.dockerignore).is_file():
            read_repo_text(config.root, spec.dockerignore)


# --- checking images.yaml ---------------------------------------------------------------------------------------------


def undeclared_inputs(
    spec: ImageSpec,
    dockerfile_text: str,
    repo_files: Sequence[str],
    ignore_lines: Sequence[str],
    declared: Collection[str],
) -> tuple[InputWarning, ...]:
    """Files the Dockerfile of ``spec`` uses (inside spec.context, after the ignore file) that are not in ``declared``.

    ``declared`` is a set of repository-relative paths; ``repo_files`` are
    repository-relative, and only those under spec.context count. Wheels under
    ``.wheelhouse/<stem>/`` for one of spec.wheels count as declared: they are
    generated from the declared requirements file, which is what the
    fingerprint hashes.
    """
    prefix = _context_prefix(spec.context)
    context_files = [path[len(prefix):] for path in repo_files if path.startswith(prefix)] if prefix else list(repo_files)
    declared = declared if isinstance(declared, (set, frozenset)) else frozenset(declared)
    stems = frozenset(PurePosixPath(requirements).stem for requirements in spec.wheels)
    used = used_files(context_sources(dockerfile_text, build_args=dict(spec.build_args)), context_files, ignore_lines)
    warnings = []
    for relative, source in sorted(used.items()):
        path = prefix + relative
        if path in declared or _generated_wheel(path, stems):
            continue
        warnings.append(InputWarning(image=spec.name, path=path, source=source, dockerfile=spec.dockerfile, context=spec.context))
    return tuple(warnings)


def _context_prefix(context: str) -> str:
    context = context.strip("/")
    return "" if context in _WHOLE_CONTEXT else context + "/"


def _generated_wheel(path: str, stems: frozenset[str]) -> bool:
    """A file inside a ``.wheelhouse/<stem>/`` folder whose requirements file the image declares under ``wheels:``."""
    parts = path.split("/")
    return any(parts[i] == WHEELHOUSE_DIR and parts[i + 1] in stems for i in range(len(parts) - 2))
