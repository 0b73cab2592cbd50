"""Invoke's "No idea what 'X' is!" said as one line with the likely fix: which task has no such flag, and the closest one.

Users run Invoke's own `invoke` command, so no Program of ours parses the
command line; what runs of ours before the tasks' flags are parsed is only
the loading of this collection. Invoke raises every unknown word through one
method, ``ParseMachine.error``, which knows the task being parsed (its flags)
and every task name: that one method is wrapped here, once, and only its
"No idea what" message is replaced. Invoke still prints it and exits 1.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from invoke.parser import parser as invoke_parser

from ..core.values import closest, shown

__all__ = ["explain_unknown_words", "unknown_word"]

_UNKNOWN = "No idea what "


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
