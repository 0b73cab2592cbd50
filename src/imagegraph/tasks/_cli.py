"""What Invoke's parser lets through or says badly, said as one line with the likely fix.

Users run Invoke's own `invoke` command, so no Program of ours parses the
command line; what runs of ours before the tasks' flags are parsed is only
the loading of this collection. So Invoke's ``ParseMachine`` is wrapped here,
once, at the few methods every word passes through:

- ``error``: its "No idea what 'X' is!" names the task and the closest flag or
  task instead;
- ``complete_flag``, ``see_value``, ``see_positional_arg``,
  ``complete_context``: every value a task's flag takes must be given and not
  be blank. Invoke itself refuses a missing value only for a plain flag seen
  once: an iterable flag (``iterable=[...]``) starts as an empty list, which
  it takes for "given", so ``--target`` alone or ``--target --force app``
  silently means "no target"; an optional-value flag becomes ``True``; a
  flag repeated without its value keeps the first; and a word that looks
  like a flag (``--target --taget``) becomes the value.

Invoke still raises its ParseError, prints the line and exits 1, before any
task runs: nothing is built or contacted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from invoke.parser import parser as invoke_parser

from ..core.values import closest, shown

__all__ = ["VALUES", "explain_unknown_words", "missing_value", "refuse_missing_values", "unknown_word"]

_UNKNOWN = "No idea what "

#: What each value-taking flag of the tasks takes, and a value for the example: the line a missing or blank value gets.
#: Keyed by the flag's name; a positional argument (`invoke ref IMAGE`) is keyed by its name too.
VALUES: dict[str, tuple[str, str]] = {
    "target": ("an image name", "app"),
    "force": ("an image name", "app"),
    "image": ("an image name", "app"),
    "platform": ("a platform", "linux/amd64"),
    "platforms": ("a platform", "linux/amd64"),
    "only-platform": ("a platform", "linux/arm64"),
    "registry": ("a registry", "127.0.0.1:5000"),
    "since": ("a git ref (branch, tag or commit)", "origin/main"),
    "jobs": ("a whole number", "2"),
    "builder": ("a buildx builder's name", "imagegraph"),
    "progress": ("auto, tty or plain", "plain"),
    "bake": ("the file to write", "bake.json"),
    "version": ("a version", "v1.2.3"),
    "keep": ("a whole number", "10"),
    "protect": ("a tag pattern", "'stable-*'"),
    "grace": ("a duration", "1h"),
    "file": ("a report's .json", ".imagegraph/reports/NAME.json"),
    "history": ("a whole number", "10"),
    "chart": ("the PNG to draw", "trend.png"),
    "tag": ("an image reference", "imagegraph/devcontainer:workspace"),
    "name": ("a builder name", "imagegraph"),
    "state-dir": ("a directory", "~/.local/state/imagegraph"),
    "cache-dir": ("a directory", "~/.cache/imagegraph/seed"),
    "image-store": ("containerd or classic", "containerd"),
}


def unknown_word(token: str, task: str | None, flags: Iterable[str], tasks: Iterable[str]) -> str:
    """The one line for a word Invoke does not know: a flag ``task`` does not have, or a task that does not exist."""
    if task and token.startswith("-"):
        name = token.split("=", 1)[0]
        guess = closest(name, [flag for flag in flags if flag.startswith("--")])
        fix = f"did you mean {guess}?" if guess else f"`invoke --help {task}` lists its flags"
        return f"error: invoke {task} has no flag {_word(name)}; {fix}"
    if token.startswith("-"):
        return f"error: invoke has no option {_word(token)}; `invoke --help` lists them"
    guess = closest(token, tasks)
    fix = f"did you mean {guess}?" if guess else "`invoke --list` lists the tasks"
    return f"error: invoke has no task {_word(token)}; {fix}"


def _word(text: str) -> str:
    """A word from the command line as typed, or quoted when it holds blanks or control characters."""
    return text if text.isprintable() and not any(char.isspace() for char in text) and text else shown(text)


def explain_unknown_words() -> None:
    """Wrap Invoke's parser error (idempotent), so that its "No idea what ..." names the task and the closest flag or task."""
    original = invoke_parser.ParseMachine.error
    if getattr(original, "_imagegraph", False):
        return

    def error(machine: invoke_parser.ParseMachine, msg: str) -> None:
        if msg.startswith(_UNKNOWN) and msg.endswith(" is!"):
            token = msg[len(_UNKNOWN):-len(" is!")]
            try:
                token = _literal(token)
            except (ValueError, SyntaxError):
                return original(machine, msg)
            context = machine.context if machine.context is not machine.initial else None
            task = getattr(context, "name", None)
            flags = [*getattr(context, "flags", {}), *getattr(context, "inverse_flags", {})]
            msg = unknown_word(token, task, flags, list(machine.contexts))
        return original(machine, msg)

    error._imagegraph = True  # type: ignore[attr-defined]
    invoke_parser.ParseMachine.error = error  # type: ignore[method-assign]


def _literal(text: str) -> str:
    """The word Invoke's message quotes with ``{!r}`` (a Python string literal), read back without evaluating anything."""
    value = ast.literal_eval(text)
    if not isinstance(value, str):
        raise ValueError(text)
    return value


def missing_value(task: str, name: str, *, value: str | None = None, positional: bool = False) -> str:
    """The one line for a flag of ``task`` given no value (``value`` None), a blank one, or a word that reads as a flag."""
    what, example = VALUES.get(name, ("a value", ""))
    subject = f"invoke {task}" if positional else f"--{name}"
    fix = f"e.g. {subject} {example}" if example else f"see `invoke --help {task}`"
    if value is None:
        return f"error: {subject} needs {what}, {fix}"
    if not value.strip():  # often an unset shell variable: --target "$IMAGE"
        if positional:
            return f"error: invoke {task} {name.upper()} is empty; it needs {what}, {fix}"
        return f"error: {subject} is empty; it needs {what}, {fix}, or leave the flag out"
    return f"error: {subject} needs {what}, not {shown(value)} (which reads as a flag), {fix}"


def _no_value(value: str) -> bool:
    # Blank is no value; neither is a word in a flag's form: no flag of the tasks takes one (`./--x` names such a file).
    return not value.strip() or value.startswith("--")


def _task_flag(machine: invoke_parser.ParseMachine) -> invoke_parser.Argument | None:
    """The flag being parsed when it takes a value and is the task's own (Invoke's core flags keep Invoke's rules)."""
    flag, context = machine.flag, machine.context
    if flag is None or not flag.takes_value or context is None or context is machine.initial:
        return None
    return flag if any(flag is own for own in context.flags.values()) else None


def _help_asked(machine: invoke_parser.ParseMachine) -> bool:
    # `invoke build --help --target`: the task's help is shown, the task does not run
    return machine.initial is not None and "--help" in machine.initial.flags and bool(machine.initial.flags["--help"].value)


def refuse_missing_values() -> None:
    """Wrap Invoke's parser (idempotent) so that every value-taking flag of a task, and its positional argument, gets a
    value that is not blank: a missing one is refused where Invoke completes the flag, a blank one where it stores it."""
    machine = invoke_parser.ParseMachine
    if getattr(machine.complete_flag, "_imagegraph", False):
        return
    complete_flag, see_value = machine.complete_flag, machine.see_value
    see_positional_arg, complete_context = machine.see_positional_arg, machine.complete_context

    def checked_complete_flag(self: invoke_parser.ParseMachine) -> None:
        flag = _task_flag(self)
        if flag is not None and not self.flag_got_value and not _help_asked(self):  # iterable and optional flags too
            self.error(missing_value(self.context.name, flag.names[0], positional=flag.positional))
        complete_flag(self)

    def checked_see_value(self: invoke_parser.ParseMachine, value: str) -> None:
        flag = _task_flag(self)
        if flag is not None and _no_value(value):
            self.error(missing_value(self.context.name, flag.names[0], value=value, positional=flag.positional))
        see_value(self, value)

    def checked_see_positional_arg(self: invoke_parser.ParseMachine, value: str) -> None:
        asked = self.initial.flags[value] if self.initial is not None and value in self.initial.flags else None
        if asked is not None and asked.name == "help":  # `invoke ref --help`: the help, as for a task with no positional argument
            asked.value = self.context.name
            return
        if _no_value(value):
            name = self.context.missing_positional_args[0].name
            self.error(missing_value(self.context.name, name, value=value, positional=True))
        see_positional_arg(self, value)

    def checked_complete_context(self: invoke_parser.ParseMachine) -> None:
        if self.context is not None and self.context is not self.initial and self.context.missing_positional_args:
            if not _help_asked(self):
                self.error(missing_value(self.context.name, self.context.missing_positional_args[0].name, positional=True))
            if self.context not in self.result:  # the help is shown and the task does not run: it needs no argument
                self.result.append(self.context)
            return
        complete_context(self)

    for wrapper in (checked_complete_flag, checked_see_value, checked_see_positional_arg, checked_complete_context):
        wrapper._imagegraph = True  # type: ignore[attr-defined]
    machine.complete_flag = checked_complete_flag  # type: ignore[method-assign]
    machine.see_value = checked_see_value  # type: ignore[method-assign]
    machine.see_positional_arg = checked_see_positional_arg  # type: ignore[method-assign]
    machine.complete_context = checked_complete_context  # type: ignore[method-assign]
