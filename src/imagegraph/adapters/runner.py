"""Commands as data, and the one place that executes them.

Adapters (builders, the engine installer, the wheelhouse) never call
``subprocess`` themselves: they return :class:`Command` values, which tests
compare as plain tuples, and hand them to a :class:`Runner`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import CommandFailed, ToolMissing
from ..core.values import redact_urls
from .interrupt import Stop
from .workdirs import no_follow, refuse_link

__all__ = ["Command", "CommandResult", "Runner", "mask"]

TAIL_LINES = 25


@dataclass(frozen=True)
class Command:
    """An external command: argv (never a shell string) plus the environment it adds."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    #: Values that must never appear in logs or error messages.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    #: What to tell the user when the command fails, e.g. the fix.
    hint: str = ""
    #: What it is for, as a phase of an image's work: ``build linux/amd64``, ``push``, ``manifest``, ``prune``,
    #: ``wheels requirements.txt``; its first word also says whose output it prints (BuildKit, docker push, pip).
    purpose: str = ""

    @staticmethod
    def of(*argv: str, env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
           secrets: Sequence[str] = (), hint: str = "", purpose: str = "") -> Command:
        return Command(
            argv=tuple(str(a) for a in argv),
            env=tuple(sorted((env or {}).items())),
            cwd=None if cwd is None else str(cwd),
            secrets=tuple(s for s in secrets if s),
            hint=hint,
            purpose=purpose,
        )

    def display(self) -> str:
        return shown_line(" ".join(self.argv), self.secrets)


@dataclass(frozen=True)
class CommandResult:
    """How a :class:`Command` ended: its exit status and its output (stdout and stderr interleaved, secrets masked)."""

    returncode: int
    output: str



def shown_line(text: str, secrets: Sequence[str]) -> str:
    """What a log, a progress line or an error may show of a command's text: no secret, no userinfo or query of any URL
    (a token in a remote or an index URL that a Dockerfile's RUN line carries), no credential helper's output."""
    return _unshown(mask(text, secrets))


#: How the docker CLI (and buildx) quote a credential helper's output in an error: "... out: `<what it printed>`".
_HELPER_OUTPUT = re.compile(r"(error getting credentials - err: [^`]*?out: )`[^`]*`")


def _unshown(text: str) -> str:
    return _HELPER_OUTPUT.sub(r"\1`(not shown)`", redact_urls(text))


def mask(text: str, secrets: Sequence[str]) -> str:
    """``text`` without the command's secrets."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return text


class Runner:
    """Runs :class:`Command` values: captured output, optional log file, secrets masked.

    ``on_line`` receives each output line as it arrives (already masked), which
    is how long builds show progress without the runner knowing about it.

    With a ``stop`` (:class:`imagegraph.adapters.interrupt.Stop`), each command runs in
    a session of its own, which only the stop ends, and a command that ends
    after the stop was asked for raises :class:`~imagegraph.adapters.interrupt.Stopped`
    whatever it printed (the docker client's "context canceled" is no failure).
    """

    #: A class default too, so a stand-in runner that keeps its own ``__init__`` runs without one.
    stop: Stop | None = None
    #: What every command gets on top of the environment (see :meth:`environment`); replaced, never changed in place.
    env: Mapping[str, str] = {}

    def __init__(self, stop: Stop | None = None) -> None:
        self.stop = stop

    @contextlib.contextmanager
    def environment(self, env: Mapping[str, str]) -> Iterator[None]:
        """Every command run in the block gets ``env`` on top of the environment (and under its own): the docker config
        that lends docker and buildx the registry's credentials (:func:`imagegraph.adapters.docker_login.lend_credentials`)."""
        saved = self.env
        self.env = {**saved, **env}
        try:
            yield
        finally:
            self.env = saved

    def run(
        self,
        command: Command,
        *,
        check: bool = True,
        log_path: Path | None = None,
        on_line: Callable[[str], None] | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
        keep_stderr: bool = True,
    ) -> CommandResult:
        """Run ``command``; its output (stdout and stderr interleaved, masked) line by line to the log and ``on_line``.

        ``keep_stderr=False`` drops what the program writes to stderr unread:
        for a program whose messages may hold a secret (a credential helper).
        """
        program = command.argv[0]
        env = {**os.environ, **self.env, **dict(command.env)}
        if os.sep not in program and shutil.which(program, path=env.get("PATH")) is None:
            raise ToolMissing(f"`{program}` is not installed or not on PATH; run `invoke engine.up` to install the engine tools")
        if self.stop is not None:
            self.stop.check()
        log = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            refuse_link(log_path)  # a log is never written through a link (the caller made its folder, see .workdirs)
            log = open(log_path, "a", encoding="utf-8", opener=no_follow)  # noqa: SIM115 (closed below)
            log.write(f"$ {command.display()}\n")
        lines: list[str] = []
        try:
            proc = subprocess.Popen(
                command.argv,
                cwd=command.cwd,
                env=env,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if keep_stderr else subprocess.DEVNULL,
                start_new_session=self.stop is not None,
            )
            with self.stop.tracking(proc) if self.stop is not None else nullcontext():
                if stdin is not None:
                    feeder = threading.Thread(target=_feed, args=(proc, stdin), daemon=True)
                    feeder.start()
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = mask(raw.decode("utf-8", "replace"), command.secrets)
                    lines.append(line)
                    if log is not None or on_line is not None:
                        line = _unshown(line)
                    if log is not None:
                        log.write(line)
                    if on_line is not None:
                        on_line(line.rstrip("\n"))
                returncode = proc.wait(timeout=timeout)
        finally:
            if log is not None:
                log.close()
        if returncode != 0 and self.stop is not None:
            self.stop.check()
        output = "".join(lines)
        if check and returncode != 0:
            raise CommandFailed(
                tuple(shown_line(a, command.secrets) for a in command.argv),
                returncode,
                output_tail=_unshown("".join(lines[-TAIL_LINES:])),
                log_path=str(log_path) if log_path else None,
                hint=command.hint,
            )
        return CommandResult(returncode, output)


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # a program may end without reading all it was given
        try:
            proc.stdin.write(data)
        finally:
            proc.stdin.close()
