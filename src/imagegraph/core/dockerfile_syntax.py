"""The Dockerfile language as BuildKit's frontend reads it: instructions, words, flags, heredocs, variables.

Parsing follows the BuildKit Dockerfile frontend (the Dockerfile reference is
the authority): parser directives (``# escape=``), line continuations,
comments, heredocs (whose bodies are never read as instructions), the shell
and JSON (exec) forms, ``--flag`` words, and the shell lexer's quotes, escapes
and ``$VAR`` / ``${VAR:-default}`` substitution. Nothing here knows about
images.yaml or the build context: :mod:`imagegraph.core.dockerfile` builds on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Directive",
    "Instruction",
    "Stages",
    "Vars",
    "flag_values",
    "instruction_texts",
    "json_list",
    "parse_assignments",
    "parse_heredoc",
    "parse_instructions",
    "parser_directives",
    "read_instructions",
    "shell_word",
    "split_flags",
    "split_keyword",
    "stages",
]

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The instructions whose operands may open heredocs.
_HEREDOC_INSTRUCTIONS = ("RUN", "COPY", "ADD")

#: Variable values while reading a stage; None means "declared, but the value is only known at build time".
Vars = Mapping[str, "str | None"]


@dataclass(frozen=True)
class Instruction:
    """One instruction as BuildKit's parser reads it: a logical line, with the heredocs it opens."""

    #: 1-based line the instruction starts on.
    line: int
    #: The instruction's lines joined, continuations removed, stripped.
    text: str
    #: The delimiter of each heredoc it opens, in order.
    heredocs: tuple[str, ...] = ()
    #: The delimiter of a heredoc whose closing line never came (the file ended first); "" when all were closed.
    unterminated: str = ""


@dataclass(frozen=True)
class Directive:
    """A parser directive (``# syntax=``, ``# escape=``, ``# check=``) from the file's leading comment lines."""

    line: int
    name: str
    value: str


def read_instructions(text: str) -> tuple[str, list[tuple[int, str]]]:
    """The escape character and each instruction as one logical line, with the line it starts on.

    Comment lines and blank lines inside continuations are dropped, as BuildKit
    does; heredoc bodies are skipped so they are never read as instructions.
    """
    escape, found = parse_instructions(text)
    return escape, [(instruction.line, instruction.text) for instruction in found]


def parse_instructions(text: str) -> tuple[str, list[Instruction]]:
    """The escape character and every instruction, as BuildKit's parser splits the file (see :func:`read_instructions`)."""
    lines = _lines(text)
    escape = _escape_directive(lines)
    continuation = re.compile(rf"(?<!{re.escape(escape)}){re.escape(escape)}[ \t]*$")

    def joined(line: str) -> tuple[str, bool]:
        trimmed, count = continuation.subn("", line)
        return trimmed, count == 0

    result: list[Instruction] = []
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
        heredocs = _heredoc_terminators(line)
        unterminated = ""
        for terminator, chomp in heredocs:
            closed = False
            while index < total and not closed:
                body = lines[index]
                index += 1
                closed = (body.lstrip("\t") if chomp else body) == terminator
            if not closed:
                unterminated = terminator
                break
        if line.strip():
            result.append(Instruction(start, line.strip(), tuple(name for name, _ in heredocs), unterminated))
    return escape, result


def _lines(text: str) -> list[str]:
    lines = [raw.rstrip("\r") for raw in text.split("\n")]
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the newline that ends the last line starts no line of its own
    return lines


def parser_directives(text: str) -> list[Directive]:
    """The leading run of directive lines, as BuildKit reads them; a repeated one is listed again (BuildKit refuses it)."""
    found = []
    for number, raw in enumerate(_lines(text), start=1):
        match = _DIRECTIVE.match(raw.lstrip())
        if match is None or match.group(1).lower() not in _DIRECTIVES:
            break
        found.append(Directive(number, match.group(1).lower(), match.group(2)))
    return found


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


def split_keyword(line: str) -> tuple[str, str]:
    """(instruction in upper case, its arguments): instructions are case-insensitive."""
    parts = line.split(None, 1)
    if not parts:
        return "", ""
    return parts[0].upper(), parts[1].strip() if len(parts) > 1 else ""


def _heredoc_terminators(line: str) -> list[tuple[str, bool]]:
    """(delimiter, strip leading tabs) of each heredoc the instruction opens, in order; none for other instructions."""
    if "<<" not in line:
        return []
    keyword, rest = split_keyword(line)
    if keyword == "ONBUILD":
        keyword, rest = split_keyword(rest)
    if keyword not in _HEREDOC_INSTRUCTIONS:
        return []
    _, operands = split_flags(rest)
    if json_list(operands) is not None:
        return []
    terminators = []
    for word in _words(rest, "\\"):
        heredoc = parse_heredoc(word)
        if heredoc is not None:
            terminators.append(heredoc)
    return terminators


def parse_heredoc(word: str) -> tuple[str, bool] | None:
    """``<<EOF``, ``<<-EOF``, ``<<"EOF"`` (quotes only stop expansion of the body) as (delimiter, chomp)."""
    match = _HEREDOC.match(word)
    if match is None or not match.group(3):
        return None
    words = _words(match.group(3), "\\")
    if len(words) != 1:
        return None
    name = shell_word(words[0], None, "\\")
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


def split_flags(rest: str) -> tuple[list[str], str]:
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


def flag_values(flags: Sequence[str], name: str) -> list[str]:
    """The values of every ``--name=value`` flag ("" for a bare ``--name``)."""
    return [value for key, _, value in (flag.partition("=") for flag in flags) if key.lower() == name]


def json_list(operands: str) -> list[str] | None:
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


def shell_word(word: str, variables: Vars | None, escape: str) -> str | None:
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


def _variable(word: str, index: int, variables: Vars, escape: str) -> tuple[str | None, int]:
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
                    return (value, end) if not empty else (shell_word(modifier[len(operator) :], variables, escape), end)
                return ("", end) if empty else (shell_word(modifier[len(operator) :], variables, escape), end)
        return None, end  # ${VAR#pattern} and friends: not worth guessing
    name = _NAME.match(word, index)
    if name is None:
        return "$", index
    return variables.get(name.group()), name.end()


def parse_assignments(rest: str, variables: Vars, escape: str, *, legacy: bool) -> list[tuple[str, bool, str | None]]:
    """(name, has a value, value) of each ``NAME=value`` of ARG or ENV, plus ARG's bare ``NAME`` and the legacy ``ENV NAME value``.

    Values see the variables from before the instruction, not their neighbours:
    ``ENV a=1 b=$a`` gives b the earlier a, as Docker documents.
    """
    words = _words(rest, escape)
    if legacy and words and "=" not in words[0]:
        parts = rest.split(None, 1)
        return [(parts[0], True, shell_word(parts[1].strip() if len(parts) > 1 else "", variables, escape))]
    assignments: list[tuple[str, bool, str | None]] = []
    for word in words:
        name, equals, value = word.partition("=")
        assignments.append((name, bool(equals), shell_word(value, variables, escape) if equals else None))
    return assignments


# --- what the plan reads of a Dockerfile ---------------------------------------------------------------------------


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
    escape, parsed = read_instructions(text)
    froms: list[tuple[int, str, str]] = []
    global_args: set[str] = set()
    for line_number, line in parsed:
        keyword, rest = split_keyword(line)
        if keyword == "ARG" and not froms:
            global_args.update(name for name, _, _ in parse_assignments(rest, {}, escape, legacy=False))
        elif keyword == "FROM":
            words = split_flags(rest)[1].split()
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else ""
            froms.append((line_number, words[0] if words else "", name))
    return Stages(tuple(froms), frozenset(global_args))


def instruction_texts(text: str) -> tuple[str, ...]:
    """Every instruction of a Dockerfile but FROM and ARG, each as one line: what BuildKit names a step after."""
    return tuple(line.strip() for _, line in read_instructions(text)[1] if split_keyword(line)[0] not in ("FROM", "ARG"))
