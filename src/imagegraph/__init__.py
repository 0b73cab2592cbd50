"""imagegraph: build a monorepo's family of container images, exactly what changed, in order.

The names below are loaded on first use: importing the package (as every
`invoke` call does) costs nothing until a name is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as type checkers and editors see them
    from .core.config import Config, ImageSpec, load_config
    from .core.errors import ImagegraphError
    from .core.fingerprint import Fingerprint, fingerprint_images
    from .core.options import BuildOptions
    from .core.plan import BuiltImage, Decision, ImagePlan, Plan, make_plan
    from .workspace import Workspace

_HOMES = {
    "BuildOptions": "core.options",
    "BuiltImage": "core.plan",
    "Config": "core.config",
    "Decision": "core.plan",
    "Fingerprint": "core.fingerprint",
    "ImagePlan": "core.plan",
    "ImageSpec": "core.config",
    "ImagegraphError": "core.errors",
    "Plan": "core.plan",
    "Workspace": "workspace",
    "fingerprint_images": "core.fingerprint",
    "load_config": "core.config",
    "make_plan": "core.plan",
}

__all__ = [
    "BuildOptions",
    "BuiltImage",
    "Config",
    "Decision",
    "Fingerprint",
    "ImagePlan",
    "ImageSpec",
    "ImagegraphError",
    "Plan",
    "Workspace",
    "fingerprint_images",
    "load_config",
    "make_plan",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
