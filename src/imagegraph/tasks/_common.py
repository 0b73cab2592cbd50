"""What every task shares: options into one object, user errors into one line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from invoke import Exit

from ..errors import ImagegraphError
from ..workspace import BuildOptions

__all__ = ["build_options", "user_errors"]

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn an :class:`ImagegraphError` into ``error: <one line>`` and exit status 1, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ImagegraphError as err:
            raise Exit(f"error: {err}", code=1) from None

    return wrapper  # type: ignore[return-value]


def build_options(*, registry=None, platform=(), force=(), target=(), no_cache=False, jobs=2, builder=None, since=None,
                  push_pr=False, registry_cache=True) -> BuildOptions:
    def split(values) -> tuple[str, ...]:
        # Accept both repeated flags and comma lists: --target ci --target app == --target ci,app
        return tuple(item.strip() for value in values or () for item in value.split(",") if item.strip())

    return BuildOptions(registry=registry or None, platforms=split(platform), force=split(force), targets=split(target),
                        no_cache=bool(no_cache), jobs=int(jobs), builder=builder or None, since=since or None,
                        push_pr=bool(push_pr), registry_cache=bool(registry_cache))
