"""A Dockerfile's syntax checked as BuildKit's Dockerfile frontend checks it, so a plan names the line a build would fail on.

BuildKit reads a Dockerfile in three passes, and each refuses its own
mistakes: the parser (parser directives, heredocs, JSON arrays of strings),
the instruction parser (known instructions, each one's flags and their
values, argument counts, stage names) and, for the stages a build reaches,
the expansion of each instruction's words (quotes, ``${...}``, ``--mount``
fields). :func:`syntax_problems` applies the same rules, read from BuildKit's
``frontend/dockerfile/parser`` and ``instructions`` packages: what BuildKit
refuses is an error with its line; what it accepts but surely does not mean
(a broken JSON array it runs as a shell command, a flag that older
frontends do not know) is a warning. A file written for another frontend
(``# syntax=`` naming one that is not docker/dockerfile) is not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .dockerfile_context import go_glob
from .dockerfile_syntax import Instruction, parse_heredoc, parse_instructions, parser_directives, split_keyword
from .values import did_you_mean

__all__ = ["SyntaxProblem", "syntax_problems"]

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
                "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")

_BOOL, _STRING, _STRINGS = "bool", "string", "strings"
#: Each instruction's flags and their kinds (BuildKit's ``BFlags``); an instruction not listed takes none.
_FLAGS = {
    "FROM": {"platform": _STRING},
    "COPY": {"chown": _STRING, "from": _STRING, "chmod": _STRING, "link": _BOOL, "exclude": _STRINGS, "parents": _BOOL},
    "ADD": {"chown": _STRING, "chmod": _STRING, "link": _BOOL, "keep-git-dir": _BOOL, "checksum": _STRING, "unpack": _BOOL,
            "exclude": _STRINGS},
    "RUN": {"mount": _STRINGS, "network": _STRING, "security": _STRING, "device": _STRINGS},
    "HEALTHCHECK": {"interval": _STRING, "timeout": _STRING, "start-period": _STRING, "start-interval": _STRING, "retries": _STRING},
}
#: Instructions whose flags BuildKit never reads (ARG, STOPSIGNAL): any is accepted, and ignored.
_FLAGS_IGNORED = ("ARG", "STOPSIGNAL")
#: Flags that left the frontend's labs late: the Dockerfile frontend release that first accepts each without `-labs`.
_NEWER_FLAGS = {("COPY", "parents"): "1.20", ("RUN", "security"): "1.20", ("COPY", "exclude"): "1.19", ("ADD", "exclude"): "1.19",
                ("ADD", "unpack"): "1.17", ("RUN", "device"): "1.14"}
_NETWORKS = ("default", "none", "host")
_SECURITY = ("insecure", "sandbox")
_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_MOUNT_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode", "uid", "gid", "src", "dst",
               "destination", "ro", "rw", "readwrite", "env")
_SHARING = ("shared", "private", "locked")
_GO_BOOL = ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_DURATION = re.compile(r"^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
#: The frontends whose language this is: docker/dockerfile (any tag, labs included) and its upstream builds.
_OWN_FRONTEND = re.compile(r"^(?:docker\.io/)?docker/dockerfile(?:-upstream)?(?:[:@].*)?$")


@dataclass(frozen=True)
class SyntaxProblem:
    """A line BuildKit refuses (``error``) or reads otherwise than it looks (a warning)."""

    line: int
    message: str
    error: bool = True

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class _Refused(Exception):
    """One instruction's first problem, raised where it is found."""

    def __init__(self, message: str, *, error: bool = True) -> None:
        super().__init__(message)
        self.message, self.error = message, error


def syntax_problems(text: str, *, target: str | None = None) -> tuple[SyntaxProblem, ...]:
    """What BuildKit would refuse in ``text`` (errors, first one first) and what it would read otherwise than written (warnings).

    ``target`` is the stage the image builds (None: the last): an expansion
    error in a stage the build never reaches is only a warning, as BuildKit
    expands only the stages it builds.
    """
    directives = parser_directives(text)
    problems: list[SyntaxProblem] = []
    seen: set[str] = set()
    pinned = False
    for directive in directives:
        if directive.name in seen:
            problems.append(SyntaxProblem(directive.line, f"a second `# {directive.name}=` parser directive; BuildKit allows one: "
                                                          "remove one of them"))
        seen.add(directive.name)
        if directive.name == "escape" and directive.value not in ("\\", "`"):
            problems.append(SyntaxProblem(directive.line, f"`# escape={directive.value}`: the escape character must be \\ or `"))
        if directive.name == "syntax":
            if not _OWN_FRONTEND.match(directive.value):
                return ()  # another frontend reads this file, by its own rules
            pinned = True
    if problems:
        return tuple(problems)
    escape, instructions = parse_instructions(text)
    checker = _Checker(escape, pinned)
    for instruction in instructions:
        checker.check(instruction)
    return checker.problems(target)


@dataclass
class _Stage:
    name: str
    #: The stages (names or indexes, lower case) it is built from, copies or mounts from; images too, which match none.
    needs: set[str]


class _Checker:
    def __init__(self, escape: str, pinned: bool) -> None:
        self.escape, self.pinned = escape, pinned
        self.stages: list[_Stage] = []
        #: (stage index or -1 before the first FROM, problem, found while expanding words).
        self.found: list[tuple[int, SyntaxProblem, bool]] = []
        self.expansion = False

    def check(self, instruction: Instruction) -> None:
        self.expansion = False
        try:
            self._instruction(instruction)
        except _Refused as refused:
            stage = len(self.stages) - 1
            self.found.append((stage, SyntaxProblem(instruction.line, refused.message, refused.error), self.expansion))

    def warn(self, line: int, message: str) -> None:
        self.found.append((len(self.stages) - 1, SyntaxProblem(line, message, error=False), False))

    def problems(self, target: str | None) -> tuple[SyntaxProblem, ...]:
        reached = self._reached(target)
        result = []
        for stage, problem, expansion in self.found:
            if problem.error and expansion and stage >= 0 and stage not in reached:
                problem = SyntaxProblem(problem.line, f"{problem.message} (in a stage this image does not build)", error=False)
            result.append(problem)
        return tuple(sorted(result, key=lambda problem: (not problem.error, problem.line)))

    def _reached(self, target: str | None) -> set[int]:
        """The stages a build of ``target`` runs: the target, and every stage it is built from, copies or mounts from."""
        if not self.stages:
            return set()
        names = {stage.name: index for index, stage in enumerate(self.stages) if stage.name}
        start = names.get(target.lower(), len(self.stages) - 1) if target else len(self.stages) - 1
        reached, todo = set(), [start]
        while todo:
            index = todo.pop()
            if index in reached:
                continue
            reached.add(index)
            for need in self.stages[index].needs:
                found = names.get(need, int(need) if need.isdigit() else None)
                if found is not None and found < len(self.stages):
                    todo.append(found)
        return reached

    # --- one instruction ------------------------------------------------------------------------------------------------

    def _instruction(self, instruction: Instruction) -> None:
        if instruction.unterminated:
            raise _Refused(f"the heredoc <<{instruction.unterminated} is never closed: the file ends before a line "
                           f"`{instruction.unterminated}`; end it with that line")
        keyword, rest = split_keyword(instruction.text)
        if keyword not in INSTRUCTIONS:
            raise _Refused(f"unknown instruction {instruction.text.split(None, 1)[0]}"
                           f"{did_you_mean(keyword, INSTRUCTIONS)}; BuildKit knows {', '.join(INSTRUCTIONS)}")
        if keyword not in ("FROM", "ARG") and not self.stages:
            raise _Refused(f"{keyword} comes before the first FROM, where only ARG may stand; start the stage with FROM first")
        flags, operands, open_quote = builder_flags(rest, self.escape)
        if open_quote:
            flag = flags[-1].split("=", 1)[0]
            raise _Refused(f"a quote in {keyword}'s {flag} flag is never closed, so the rest of the line "
                           f"became part of that flag and {keyword} is left with {'no command' if keyword == 'RUN' else 'no arguments'}; "
                           "close the quote")
        values = self._flags(keyword, flags, operands, instruction.line)
        getattr(self, f"_{keyword.lower()}")(operands, values, instruction)

    def _flags(self, keyword: str, flags: Sequence[str], operands: str, line: int) -> dict[str, list[str]]:
        """Each flag's values, checked as BuildKit's ``BFlags.Parse`` checks them."""
        if keyword in _FLAGS_IGNORED or (keyword == "HEALTHCHECK" and operands.split()[:1] and operands.split()[0].upper() == "NONE"):
            return {}
        known = _FLAGS.get(keyword, {})
        values: dict[str, list[str]] = {}
        for word in flags:
            name, equals, value = word[2:].partition("=")
            kind = known.get(name)
            if kind is None:
                hint = did_you_mean(f"--{name}", [f"--{k}" for k in known]) or (f"; {keyword} takes {', '.join('--' + k for k in known)}" if known else
                                                       f"; {keyword} takes no flags")
                if keyword in ("CMD", "ENTRYPOINT") and not known:
                    hint += f" (to pass {word.split('=', 1)[0]} to the program, write the exec form: {keyword} [\"...\", \"{word}\"])"
                raise _Refused(f"{keyword} has no flag --{name}{hint}")
            if name in values and kind != _STRINGS:
                raise _Refused(f"{keyword} --{name} is given twice; give it once")
            if kind == _BOOL:
                if equals and value.lower() not in ("true", "false"):
                    raise _Refused(f"{keyword} --{name}={value}: a switch takes no value or true/false; write --{name}")
            elif not equals:
                raise _Refused(f"{keyword} --{name} needs a value after =, e.g. --{name}=<value> (BuildKit does not read the next word)")
            values.setdefault(name, []).append(value)
            version = _NEWER_FLAGS.get((keyword, name))
            if version and not self.pinned:
                self.warn(line, f"{keyword} --{name} came with the Dockerfile frontend {version}; an engine's built-in frontend may be "
                                "older and refuse it: put `# syntax=docker/dockerfile:1` on the first line to build with the current one")
        return values

    # --- instructions, as BuildKit's instruction parser reads each -------------------------------------------------------

    def _from(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        words = _WHITESPACE.split(operands) if operands else []
        if not (len(words) == 1 or (len(words) == 3 and words[1].lower() == "as")):
            raise _Refused("FROM takes an image and optionally `AS <name>`: FROM <image> [AS <name>]")
        name = words[2].lower() if len(words) == 3 else ""
        if name and not _STAGE_NAME.match(name):
            raise _Refused(f"{words[2]!r} cannot name a stage: a name starts with a letter and holds only letters, digits, -, _ and .")
        base = words[0].lower()
        self.stages.append(_Stage(name, {base} if any(stage.name == base for stage in self.stages) else set()))
        self._expand("FROM", [words[0]])

    def _copy(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        for source in values.get("from", []):
            self.stages[-1].needs.add(source.lower())
        self._copy_or_add("COPY", operands, values, instruction)

    def _add(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        self._copy_or_add("ADD", operands, values, instruction)

    def _copy_or_add(self, keyword: str, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        args = self._json_or_words(keyword, operands, instruction.line)
        if len(args) < 2:
            raise _Refused(f"{keyword} needs a source and a destination: {keyword} <source>... <destination>")
        if parse_heredoc(args[-1]) is not None:
            raise _Refused(f"{keyword} cannot write to a heredoc: its last word is the destination path")
        self._expand(keyword, [arg for arg in args if parse_heredoc(arg) is None] + values.get("chown", []) + values.get("chmod", []))

    def _volume(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        args = self._json_or_words("VOLUME", operands, instruction.line)
        if not args:
            raise _Refused("VOLUME needs at least one path")
        if any(not arg.strip() for arg in args):
            raise _Refused("VOLUME names an empty path")
        self._expand("VOLUME", args)

    def _json_or_words(self, keyword: str, operands: str, line: int) -> list[str]:
        """BuildKit's ``parseMaybeJSONToList``: a JSON array of strings, else whitespace-separated words."""
        parsed, why = _json_array(operands)
        if parsed is not None:
            return parsed
        words = _WHITESPACE.split(operands) if operands else []
        if why and why != _TRAILING and keyword != "VOLUME" and go_glob(_unquoted(words[0], self.escape)) is None:
            raise _Refused(f"{keyword} {operands[:40]}{'...' if len(operands) > 40 else ''} is not a JSON array ({why}); read as words, "
                           f"its first source {words[0]!r} is no valid path pattern: fix the array, e.g. {keyword} [\"a\", \"b\", \"/dest/\"]")
        if why and (why == _TRAILING or re.match(r"\[\s*\"", operands)):
            self.warn(line, f"{keyword}'s arguments start like a JSON array but are not one ({why}); read as words they start "
                            f"{words[0]!r}: fix the array, or drop the brackets")
        return words

    def _run(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        for value in values.get("network", []):
            if value not in _NETWORKS:
                raise _Refused(f"RUN --network={value}: the network is one of {', '.join(_NETWORKS)}{did_you_mean(value, _NETWORKS)}")
        for value in values.get("security", []):
            if value not in _SECURITY:
                raise _Refused(f"RUN --security={value}: it is insecure or sandbox{did_you_mean(value, _SECURITY)}")
        self._shell_form("RUN", operands, instruction.line)
        mounts = [self._mount_fields(value) for value in values.get("mount", [])]
        for fields in mounts:
            self._mount(fields)

    def _mount_fields(self, value: str) -> list[str]:
        """``RUN --mount=...`` split as BuildKit's ``parseMount`` splits it when it parses the file (CSV fields)."""
        fields = _csv_fields(value)
        if fields is None:
            raise _Refused(f"RUN --mount={value}: not comma-separated key=value fields (a quote inside a field, or nothing); "
                           "e.g. --mount=type=cache,target=/root/.cache")
        for field in fields:
            key, equals, setting = field.partition("=")
            if equals and key.lower() == "from" and "$" in setting[:-1]:
                raise _Refused(f"RUN --mount from={setting}: `from` takes no variables; name a stage (FROM ... AS <name>) instead")
        for field in fields:
            key, equals, setting = field.partition("=")
            if equals and key.lower() == "from" and setting:
                self.stages[-1].needs.add(setting.lower())
        return fields

    def _mount(self, fields: Sequence[str]) -> None:
        """The mount's fields as BuildKit checks them when it builds the stage, after expanding variables."""
        self.expansion = True
        kind, known, options = "bind", True, {}
        for field in fields:
            key, equals, setting = field.partition("=")
            key = key.lower()
            if not equals:
                if key in ("readonly", "ro", "readwrite", "rw"):
                    continue
                if key == "required" and (kind in ("secret", "ssh") or not known):
                    continue
                if key == "required":
                    raise _Refused(f"RUN --mount: `required` is for secret and ssh mounts, not {kind} (put type= first)")
                raise _Refused(f"RUN --mount: {field!r} is not a key=value field")
            self._expand("RUN --mount", [setting])
            if "$" in setting:
                known = known and key != "type"
                continue
            if key not in _MOUNT_KEYS:
                raise _Refused(f"RUN --mount has no field {key!r}{did_you_mean(key, _MOUNT_KEYS)}")
            options[key] = setting
            if key == "type":
                if setting.lower() not in _MOUNT_TYPES:
                    raise _Refused(f"RUN --mount type={setting}: the type is one of {', '.join(_MOUNT_TYPES)}"
                                   f"{did_you_mean(setting.lower(), _MOUNT_TYPES)}")
                kind = setting.lower()
            elif key in ("readonly", "ro", "readwrite", "rw") and setting not in _GO_BOOL:
                raise _Refused(f"RUN --mount {key}={setting}: true or false")
            elif key == "required" and known and (kind not in ("secret", "ssh") or setting not in _GO_BOOL):
                raise _Refused(f"RUN --mount required={setting}: true or false, for secret and ssh mounts only")
            elif key == "size" and known and kind != "tmpfs":
                raise _Refused(f"RUN --mount size=: for tmpfs mounts only, not {kind}")
            elif key == "sharing" and setting.lower() not in _SHARING:
                raise _Refused(f"RUN --mount sharing={setting}: one of {', '.join(_SHARING)}{did_you_mean(setting.lower(), _SHARING)}")
            elif key == "mode" and not re.fullmatch(r"[+]?[0-7]+", setting.removeprefix("0o")):
                raise _Refused(f"RUN --mount mode={setting}: an octal mode, e.g. 0755")
            elif key in ("uid", "gid") and not re.fullmatch(r"[+]?\d+", setting):
                raise _Refused(f"RUN --mount {key}={setting}: a whole number")
        if not known:
            return
        for key in ("mode", "uid", "gid"):
            if key in options and kind not in ("secret", "ssh", "cache"):
                raise _Refused(f"RUN --mount {key}= is for secret, ssh and cache mounts, not {kind}")
        if kind == "secret":
            if options.get("from"):
                raise _Refused("RUN --mount type=secret takes no from=")
            if not (options.get("source") or options.get("src") or options.get("target") or options.get("dst")
                    or options.get("destination") or options.get("id")):
                raise _Refused("RUN --mount type=secret needs id= (or source=/target=), e.g. --mount=type=secret,id=token")
        if options.get("sharing") and kind != "cache":
            raise _Refused(f"RUN --mount sharing= is for cache mounts, not {kind}")

    def _cmd(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        self._shell_form("CMD", operands, instruction.line)

    def _entrypoint(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        self._shell_form("ENTRYPOINT", operands, instruction.line)

    def _shell(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        parsed, why = _json_array(operands)
        if not parsed:
            raise _Refused(f"SHELL takes a JSON array of strings, e.g. SHELL [\"/bin/bash\", \"-c\"]{f' ({why})' if why else ''}")

    def _shell_form(self, keyword: str, operands: str, line: int) -> None:
        """BuildKit's ``parseMaybeJSON``: a JSON array of strings is the exec form, anything else a shell command."""
        parsed, why = _json_array(operands)
        if parsed is None and why and (why == _TRAILING or re.match(r"\[\s*\"", operands)):
            self.warn(line, f"{keyword} starts like a JSON array but is not one ({why}), so BuildKit runs it as a shell command "
                            f"(`/bin/sh -c {operands[:30]}...`): fix the array")

    def _healthcheck(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        words = operands.split(None, 1)
        if not words:
            raise _Refused("HEALTHCHECK needs CMD <command> or NONE")
        kind, rest = words[0].upper(), words[1] if len(words) > 1 else ""
        if kind == "NONE":
            if rest:
                raise _Refused("HEALTHCHECK NONE takes no arguments")
            return
        if kind != "CMD":
            raise _Refused(f"HEALTHCHECK {words[0]}: the form is HEALTHCHECK [flags] CMD <command> (or NONE)")
        if not rest.strip() or _json_array(rest)[0] == []:
            raise _Refused("HEALTHCHECK CMD needs a command")
        for name in ("interval", "timeout", "start-period", "start-interval"):
            for value in values.get(name, []):
                if value and not _duration_ok(value):
                    raise _Refused(f"HEALTHCHECK --{name}={value}: a duration with a unit of at least 1ms (or 0), e.g. --{name}=30s")
        for value in values.get("retries", []):
            if value and not re.fullmatch(r"[+]?\d+", value):
                raise _Refused(f"HEALTHCHECK --retries={value}: a whole number of at least 0")

    def _env(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        self._assignments("ENV", operands)

    def _label(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        self._assignments("LABEL", operands)

    def _assignments(self, keyword: str, operands: str) -> None:
        """BuildKit's ``parseNameVal``: ``KEY value`` (one pair) or ``KEY=value ...``, never mixed."""
        words = _parse_words(operands, self.escape)
        if not words:
            raise _Refused(f"{keyword} needs at least one name=value")
        if "=" not in words[0]:
            parts = _WHITESPACE.split(operands, maxsplit=1)
            if len(parts) < 2:
                raise _Refused(f"{keyword} {words[0]} has no value; write {keyword} {words[0]}=<value>")
            return self._expand(keyword, parts)
        for word in words:
            if "=" not in word:
                raise _Refused(f"{keyword}: {word!r} has no =; with name=value pairs every word is one (quote a value with spaces)")
            if word.startswith("="):
                raise _Refused(f"{keyword}: {word!r} has no name before the =")
        return self._expand(keyword, [part for word in words for part in word.split("=", 1)])

    def _arg(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        words = _parse_words(operands, self.escape)
        if not words:
            raise _Refused("ARG needs a name, e.g. ARG VERSION or ARG VERSION=1.0")
        if any(word.startswith("=") for word in words):
            raise _Refused("ARG has a value with no name before the =")
        self._expand("ARG", [part for word in words for part in word.split("=", 1)])

    def _expose(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        if not operands:
            raise _Refused("EXPOSE needs at least one port, e.g. EXPOSE 8000")
        self._expand("EXPOSE", _WHITESPACE.split(operands))

    def _onbuild(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        if not operands:
            raise _Refused("ONBUILD needs an instruction, e.g. ONBUILD COPY . /app")
        trigger = operands.split(None, 1)[0].upper()
        if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
            raise _Refused(f"ONBUILD {trigger} is not allowed: a trigger cannot be {trigger}")
        if trigger not in INSTRUCTIONS:
            self.warn(instruction.line, f"ONBUILD {trigger} is no instruction{did_you_mean(trigger, INSTRUCTIONS)}: this image builds, but "
                                        "every image built FROM it fails")

    def _one_string(self, keyword: str, operands: str, example: str) -> None:
        if not operands:
            raise _Refused(f"{keyword} needs a value, e.g. {keyword} {example}")
        self._expand(keyword, [operands])

    def _workdir(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        self._one_string("WORKDIR", operands, "/app")

    def _user(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        self._one_string("USER", operands, "app")

    def _stopsignal(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        self._one_string("STOPSIGNAL", operands, "SIGTERM")

    def _maintainer(self, operands: str, values: dict[str, list[str]], instruction: Instruction) -> None:
        if not operands:
            raise _Refused("MAINTAINER needs a name (or use LABEL org.opencontainers.image.authors=...)")

    def _expand(self, keyword: str, words: Sequence[str]) -> None:
        """The words BuildKit's shell lexer expands when it builds the stage: quotes must close, ``${`` must end."""
        self.expansion = True
        for word in words:
            error = _lexer_error(word, self.escape)
            if error:
                raise _Refused(f"{keyword}: {word!r} {error}")


# --- BuildKit's word splitting ----------------------------------------------------------------------------------------


def builder_flags(rest: str, escape: str) -> tuple[list[str], str, bool]:
    """BuildKit's ``extractBuilderFlags``: the leading ``--flag`` words (quotes removed), the operands, and whether a quote stayed open.

    An open quote runs to the end of the line, so the flag swallows what
    should have been the operands.
    """
    words: list[str] = []
    word: list[str] = []
    quote, blank_ok, in_word = "", False, False
    index, total = 0, len(rest)
    while True:
        if not in_word:
            if index == total:
                return words, "", False
            if rest[index].isspace():
                index += 1
                continue
            if not rest.startswith("--", index) or index + 1 == total:
                return words, rest[index:].strip(), False
            in_word = True
        if index == total:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            return words, "", bool(quote)
        char = rest[index]
        index += 1
        if quote:
            if char == quote:
                quote = ""
                continue
            if char == escape:
                if index == total:
                    quote = ""
                    continue
                char = rest[index]
                index += 1
            word.append(char)
            continue
        if char.isspace():
            text = "".join(word)
            in_word = False
            if text == "--":
                return words, rest[index:].strip(), False
            if blank_ok or text:
                words.append(text)
            word, blank_ok = [], False
            continue
        if char in "'\"":
            quote, blank_ok = char, True
            continue
        if char == escape:
            if index == total:
                continue
            char = rest[index]
            index += 1
        word.append(char)


def _parse_words(rest: str, escape: str) -> list[str]:
    """BuildKit's ``parseWords`` (ENV, LABEL, ARG): whitespace-separated, quotes and escapes kept as written."""
    words: list[str] = []
    word: list[str] = []
    quote, blank_ok, in_word = "", False, False
    index, total = 0, len(rest)
    while index < total:
        char = rest[index]
        index += 1
        if not in_word and not quote:
            if char.isspace():
                continue
            in_word = True
        if quote:
            if char == quote:
                quote = ""
            if char == escape and quote != "'":
                if index == total:
                    quote = ""
                    continue
                word.append(char)
                char = rest[index]
                index += 1
            word.append(char)
            continue
        if char.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            continue
        if char in "'\"":
            quote, blank_ok = char, True
        if char == escape:
            if index == total:
                continue
            word.append(char)
            char = rest[index]
            index += 1
        word.append(char)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _unquoted(word: str, escape: str) -> str:
    """A word with its quotes and escapes removed (what a COPY source pattern is matched as)."""
    out, quote, index = [], "", 0
    while index < len(word):
        char = word[index]
        index += 1
        if quote and char == quote:
            quote = ""
        elif not quote and char in "'\"":
            quote = char
        elif char == escape and quote != "'" and index < len(word):
            out.append(word[index])
            index += 1
        else:
            out.append(char)
    return "".join(out)


def _lexer_error(word: str, escape: str) -> str:
    """What BuildKit's shell lexer says of ``word`` when it expands it: an open quote or ``${`` ("" when none)."""
    index, total = 0, len(word)
    while index < total:
        char = word[index]
        if char == "'":
            end = word.find("'", index + 1)
            if end < 0:
                return "opens a ' quote that never closes; close it"
            index = end + 1
        elif char == '"':
            index += 1
            while index < total and word[index] != '"':
                if word[index] == escape:
                    index += 1
                elif word.startswith("${", index):
                    end = word.find("}", index)
                    if end < 0:
                        return "has a ${ with no closing }; close it"
                    index = end
                index += 1
            if index >= total:
                return 'opens a " quote that never closes; close it'
            index += 1
        elif char == escape:
            index += 2
        elif word.startswith("${", index):
            end = word.find("}", index)
            if end < 0:
                return "has a ${ with no closing }; close it"
            index = end + 1
        else:
            index += 1
    return ""


def _json_array(operands: str) -> tuple[list[str] | None, str]:
    """(the strings of a JSON array, "") as BuildKit's ``parseJSON`` reads them; (None, why) when the text starts with [ but is
    not one; (None, "") when it does not start with [.

    A JSON array holding anything but strings is refused here, as BuildKit refuses it.
    """
    text = operands.lstrip()
    if not text.startswith("["):
        return None, ""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as err:
        return None, _TRAILING if _complete_array(text) else (err.msg if isinstance(err, json.JSONDecodeError) else str(err))
    if not isinstance(value, list):
        return None, "not an array"
    if not all(isinstance(item, str) for item in value):
        raise _Refused("a JSON array here holds only strings; quote every item")
    return value, ""


#: Why a JSON array followed by more text is no JSON array: the frontend's version decides how it reads the line.
_TRAILING = "text follows the ]: Dockerfile frontends before 1.9 take the array and drop that text, later ones read the whole line otherwise"


def _complete_array(text: str) -> bool:
    """Whether ``text`` starts with a whole JSON array (followed by more text)."""
    try:
        value, _ = json.JSONDecoder(parse_constant=_no_constant).raw_decode(text)
    except ValueError:
        return False
    return isinstance(value, list)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # Python reads NaN and Infinity; Go's encoding/json, like JSON, does not


def _csv_fields(value: str) -> list[str] | None:
    """go-csvvalue's ``Fields`` (what BuildKit splits ``--mount`` with): None where it fails (nothing, or a stray quote)."""
    if not value:
        return None
    fields: list[str] = []
    index, total = 0, len(value)
    while True:
        if index >= total or value[index] != '"':
            end = value.find(",", index)
            field = value[index:] if end < 0 else value[index:end]
            if '"' in field:
                return None
            fields.append(field)
            if end < 0:
                return fields
            index = end + 1
            continue
        index += 1
        field_parts: list[str] = []
        while True:
            end = value.find('"', index)
            if end < 0:
                return None
            field_parts.append(value[index:end])
            index = end + 1
            if value.startswith('"', index):
                field_parts.append('"')
                index += 1
            elif index == total:
                fields.append("".join(field_parts))
                return fields
            elif value[index] == ",":
                fields.append("".join(field_parts))
                index += 1
                break
            else:
                return None


def _duration_ok(value: str) -> bool:
    """Go's ``time.ParseDuration`` and HEALTHCHECK's floor: 0, or at least 1ms."""
    if value in ("0", "+0", "-0"):
        return True
    if not _DURATION.match(value):
        return False
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(value))
    return seconds == 0 or (not value.startswith("-") and seconds >= 1e-3)
