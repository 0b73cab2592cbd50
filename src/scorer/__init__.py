"""scorer: the sample PyTorch HTTP service packaged by the monorepo's production image."""

from .app import create_app
from .model import MODEL_NAME, Scorer

__all__ = ["MODEL_NAME", "Scorer", "create_app"]
