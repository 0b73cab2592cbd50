"""imagegraph: build a monorepo's family of container images, exactly what changed, in order."""

from __future__ import annotations

from .config import Config, ImageSpec, load_config
from .errors import ImagegraphError
from .fingerprint import Fingerprint, fingerprint_images
from .plan import Decision, ImagePlan, Plan, make_plan
from .workspace import BuildOptions, Workspace

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
