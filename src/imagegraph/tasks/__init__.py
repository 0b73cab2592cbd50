"""The Invoke task collection: `invoke --list` shows it as a menu.

A monorepo's ``tasks.py`` exposes :data:`namespace`, or :func:`menu` with collections of its own added. This
repository adds `engine.*` (making an engine usable), which is the package ``imagegraph_provision`` beside the
library: the library never names it, so a monorepo that installs only the library gets every other task.
"""

from __future__ import annotations

from invoke import Collection

from . import build as _build
from . import dev as _dev
from . import join as _join
from . import reports as _reports
from ._cli import explain_unknown_words, refuse_missing_values

__all__ = ["menu", "namespace"]

explain_unknown_words()
refuse_missing_values()


def menu(*more: Collection) -> Collection:
    """imagegraph's tasks, and ``more`` collections (each under its own name) beside ``dev``: a new menu on each call."""
    made = Collection()
    made.add_task(_build.build, default=True)
    made.add_task(_build.plan)
    made.add_task(_build.affected)
    made.add_task(_build.ref)
    made.add_task(_join.join)
    made.add_task(_build.release)
    made.add_task(_build.cleanup)
    made.add_task(_reports.report)
    for collection in more:
        made.add_collection(collection)
    made.add_collection(Collection.from_module(_dev, name="dev"))
    return made


namespace = menu()
