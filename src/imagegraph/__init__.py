"""imagegraph: build a monorepo's family of container images, exactly what changed, in order.

The names below are loaded on first use: importing the package (as every
`invoke` call does) costs nothing until a name is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as type checkers and editors see them
    from .config import Config, ImageSpec, load_config
    from .errors import ImagegraphError
    from .fingerprint import Fingerprint, fingerprint_images
    from .plan import Decision, ImagePlan, Plan, make_plan
    from .workspace import BuildOptions, Workspace

_HOMES = {
    "BuildOptions": "workspace",
    "Config": "config",
    "Decision": "plan",
    "Fingerprint": "fingerprint",
    "ImagePlan": "plan",
    "ImageSpec": "config",
    "ImagegraphError": "errors",
    "Plan": "plan",
    "Workspace": "workspace",
    "fingerprint_images": "fingerprint",
    "load_config": "config",
    "make_plan": "plan",
}

__all__ = [
    "BuildOptions",
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
