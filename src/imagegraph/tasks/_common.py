"""What every task shares: flags parsed into one options object, user errors into one line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from invoke import Exit

from ..core.errors import EngineError, ImagegraphError, InputError
from ..core.options import BuildOptions
from ..core.values import (
    Platform,
    escaped,
    parse_builder_name,
    parse_count,
    parse_platforms,
    parse_registry,
    redact_url,
    redact_urls,
    shown,
    split_list,
)

__all__ = ["build_options", "count_flag", "error_line", "say", "user_errors"]

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn an :class:`ImagegraphError` into ``error: <one line>`` and exit status 1, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EngineError as err:
            raise Exit(error_line(f"{err}{_docker_host_note(str(err))}"), code=1) from None
        except ImagegraphError as err:
            raise Exit(error_line(str(err)), code=1) from None

    return wrapper  # type: ignore[return-value]


def error_line(message: str) -> str:
    """``error: <message>`` as one line: the message's own line breaks become blanks, what a value in it holds (a file
    name, a ref, a CI variable) is escaped, so no value can forge a line or drive the terminal, and no URL in it (git's
    remote in a fetch error, say) keeps its userinfo or query."""
    return f"error: {escaped(redact_urls(' '.join(message.split(chr(10)))))}"


def say(line: str) -> None:
    """A line for people beside the output (stderr): a warning, a step; escaped as :func:`error_line` is."""
    print(escaped(redact_urls(line)), file=sys.stderr)


def _docker_host_note(message: str) -> str:
    """An engine that cannot be reached may be the wrong one: say which DOCKER_HOST the client was pointed at."""
    host = os.environ.get("DOCKER_HOST")
    if host is None or "DOCKER_HOST" in message:
        return ""
    return f" (the client used DOCKER_HOST={shown(redact_url(host))} from the environment: unset it for the default socket, or point it at a running engine)"


def _items(values: Iterable[str] | None, flag: str, example: str) -> tuple[str, ...]:
    # Repeated flags and comma lists alike: --target ci --target app == --target ci,app
    return tuple(item for value in values or () for item in split_list(value, flag, example))


def count_flag(value: str | None, flag: str, *, default: int, minimum: int = 1) -> int:
    """A whole-number flag, taken as text (Invoke's own int conversion would end in a traceback) and parsed here."""
    return default if value is None else parse_count(value, flag, minimum=minimum, example=f"{flag} {default}")


def build_options(*, registry: str | None = None, platform: Iterable[str] | None = (), force: Iterable[str] | None = (),
                  target: Iterable[str] | None = (), no_cache: bool = False, jobs: str | None = None, builder: str | None = None,
                  since: str | None = None, push_pr: bool = False, registry_cache: bool = True,
                  only_platform: str | None = None) -> BuildOptions:
    """The flags of a task as one typed value: an explicitly empty flag is refused, never read as "not given"."""
    if since is not None and not since.strip():
        raise InputError("--since", "is empty; name a git ref (branch, tag or commit), or leave the flag out for the default base")
    platforms = _items(platform, "--platform", "--platform linux/amd64,linux/arm64")
    return BuildOptions(
        registry=None if registry is None else parse_registry(registry, "--registry"),
        platforms=parse_platforms(platforms, "--platform") if platforms else (),
        force=_items(force, "--force", "--force app"),
        targets=_items(target, "--target", "--target app"),
        no_cache=bool(no_cache),
        jobs=count_flag(jobs, "--jobs", default=2),
        builder=None if builder is None else parse_builder_name(builder, "--builder"),
        since=since,
        push_pr=bool(push_pr),
        registry_cache=bool(registry_cache),
        only_platform=None if only_platform is None else _one_platform(only_platform, "--only-platform"),
    )


def _one_platform(text: str, flag: str) -> Platform:
    """One platform (a run builds one; a runner that builds two runs twice)."""
    items = _items((text,), flag, f"{flag} linux/arm64")
    if len(items) != 1:
        raise InputError(flag, f"{shown(text)} names {len(items)} platforms; a run builds one, e.g. {flag} linux/arm64")
    return parse_platforms(items, flag)[0]
