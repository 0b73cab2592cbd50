"""The Invoke task collection: `invoke --list` shows it as a menu."""

from __future__ import annotations

from invoke import Collection

from . import build as _build
from . import dev as _dev
from . import engine as _engine
from . import reports as _reports
from ._cli import explain_unknown_words, refuse_missing_values

__all__ = ["namespace"]

explain_unknown_words()
refuse_missing_values()

namespace = Collection()
namespace.add_task(_build.build, default=True)
namespace.add_task(_build.plan)
namespace.add_task(_build.affected)
namespace.add_task(_build.ref)
namespace.add_task(_build.release)
namespace.add_task(_build.cleanup)
namespace.add_task(_reports.report)
namespace.add_collection(Collection.from_module(_engine, name="engine"))
namespace.add_collection(Collection.from_module(_dev, name="dev"))
