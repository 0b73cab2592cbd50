"""The Invoke task collection: `invoke --list` shows it as a menu.

`engine.*` (making an engine usable) is the package ``imagegraph_provision`` beside the library: the menu
has it wherever that package is importable, and without it every other task is there as before. The menu is
made on first use (``namespace`` is looked up lazily), because provisioning's tasks use this package's error
wiring: made at import, the menu would fail when provisioning's tasks are the first thing imported.
"""

from __future__ import annotations

from types import ModuleType

from invoke import Collection

from . import build as _build
from . import dev as _dev
from . import reports as _reports
from ._cli import explain_unknown_words, refuse_missing_values

__all__ = ["namespace"]

explain_unknown_words()
refuse_missing_values()


def _menu() -> Collection:
    menu = Collection()
    menu.add_task(_build.build, default=True)
    menu.add_task(_build.plan)
    menu.add_task(_build.affected)
    menu.add_task(_build.ref)
    menu.add_task(_build.release)
    menu.add_task(_build.cleanup)
    menu.add_task(_reports.report)
    engine = _provisioning()
    if engine is not None:
        menu.add_collection(Collection.from_module(engine, name="engine"))
    menu.add_collection(Collection.from_module(_dev, name="dev"))
    return menu


def _provisioning() -> ModuleType | None:
    """Provisioning's task module, or None where the package is not installed (a library user's monorepo)."""
    try:
        import imagegraph_provision.tasks as engine
    except ModuleNotFoundError as missing:
        if missing.name != "imagegraph_provision":
            raise  # the package is there but broken: that is an error to see, not a menu without engine.*
        return None
    return engine


def __getattr__(name: str) -> Collection:
    if name == "namespace":
        menu = globals()["namespace"] = _menu()
        return menu
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
