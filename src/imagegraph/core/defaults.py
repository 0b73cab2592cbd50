"""Defaults and names that several layers share, on their own so that the task list and the config can show them without loading the engine code."""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["CONFIG_NAME", "DEFAULT_REGISTRY", "STATE_DIR", "WHEELHOUSE_DIR", "wheel_folder"]

#: The file that declares the image family, at the repository root.
CONFIG_NAME = "images.yaml"
#: Where `invoke engine.up` serves the local registry (the embedded default where images.yaml names none).
DEFAULT_REGISTRY = "127.0.0.1:5000"

#: imagegraph's own folder in the checkout: logs, reports, assembled contexts, kept results (never an input of an image).
STATE_DIR = ".imagegraph"
#: The folder of the checkout that wheels are hard-linked into: ``.wheelhouse/<requirements stem>/``.
WHEELHOUSE_DIR = ".wheelhouse"


def wheel_folder(requirements: str) -> str:
    """The folder under WHEELHOUSE_DIR that holds a requirements file's wheels: the file's name less its last suffix.

    The Dockerfiles bind-mount it by that name (``.wheelhouse/requirements``),
    so it is their contract: the one rule for the config's checks, the
    wheelhouse that fills it and the contexts that hold it.
    """
    return PurePosixPath(requirements).stem
