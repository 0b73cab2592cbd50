"""One exception root for everything imagegraph reports to a user.

Each error's message is a single line that says what is wrong and how to fix
it; the task layer prints it without a traceback. Leaves carry the data a
caller may want to inspect (the command, its exit code, the file).
"""

from __future__ import annotations

from collections.abc import Sequence

#: How much of a failed command's last line goes into its one-line message.
REASON_LIMIT = 240

__all__ = [
    "CommandFailed",
    "ConfigError",
    "EngineError",
    "ImagegraphError",
    "InputError",
    "RegistryError",
    "RegistryUnanswered",
    "ToolMissing",
]


class ImagegraphError(Exception):
    """Base of every error that is the user's to fix (bad input, missing tool)."""


class InputError(ImagegraphError):
    """A value the user gave is wrong; ``origin`` says where it came from (a flag, an environment variable, file:line)."""

    def __init__(self, origin: str, message: str) -> None:
        self.origin = origin
        self.path = origin
        super().__init__(f"{origin}: {message}")


class ConfigError(InputError):
    """images.yaml (or a file it names) is wrong."""


class EngineError(ImagegraphError):
    """The container engine is missing, stopped or refuses the request."""


class RegistryError(ImagegraphError):
    """The registry is unreachable, refuses credentials or answers nonsense."""


class RegistryUnanswered(RegistryError):
    """A request to the registry got no answer (a timeout, a dropped connection): it may still be carried out there."""


class ToolMissing(ImagegraphError):
    """An external program that a step needs is not installed."""


class CommandFailed(ImagegraphError):
    """An external command exited non-zero.

    ``output_tail`` holds the last lines of its combined output, already
    stripped of secrets, so the message can show why without a log dive.
    """

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        output_tail: str = "",
        log_path: str | None = None,
        hint: str = "",
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.output_tail = output_tail
        self.log_path = log_path
        self.hint = hint
        why = f": {self.reason}" if self.reason else ""
        where = f" (full log: {log_path})" if log_path else ""
        fix = f"; {hint}" if hint else ""
        super().__init__(f"`{' '.join(self.argv[:4])}{' ...' if len(self.argv) > 4 else ''}` exited {returncode}{why}{where}{fix}")

    @property
    def reason(self) -> str:
        """The command's own last word: the last non-blank line it printed (BuildKit and pip end with the error)."""
        lines = [line.strip() for line in self.output_tail.splitlines() if line.strip()]
        if not lines:
            return ""
        last = lines[-1]
        return last if len(last) <= REASON_LIMIT else f"{last[:REASON_LIMIT - 1]}…"
