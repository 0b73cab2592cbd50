"""Shared fixtures: a small image family on disk, and the real engine/registry when reachable."""

from __future__ import annotations

import copy
import os
import runpy
import textwrap
from pathlib import Path

import pytest
import requests

FAMILY = """
registry: 127.0.0.1:5000
namespace: test
images:
  base:
    dockerfile: docker/Dockerfile.base
    wheels: [requirements/requirements-torch.txt]
    platforms: [linux/amd64, linux/arm64]
  ci:
    dockerfile: docker/Dockerfile.ci
    parent: base
    wheels: [requirements/requirements.txt, requirements/requirements-dev.txt]
  app:
    dockerfile: docker/Dockerfile
    parent: base
    target: runtime
    inputs: ["src/svc/**"]
    wheels: [requirements/requirements.txt]
  devcontainer:
    dockerfile: .devcontainer/Dockerfile
    parent: base
    wheels: [requirements/requirements-dev.txt]
"""

FAMILY_FILES = {
    "docker/Dockerfile.base": "FROM python:3.11-slim\n",
    "docker/Dockerfile.ci": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",
    "docker/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS runtime\nCOPY src/svc /app/svc\n",
    ".devcontainer/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",
    "requirements/requirements-torch.txt": "# torch\ntorch==2.13.0\n",
    "requirements/requirements.txt": "starlette==1.10.0\nuvicorn==0.54.0\n",
    "requirements/requirements-dev.txt": "pytest==9.0.0\n",
    "src/svc/__init__.py": "",
    "src/svc/app.py": "print('hello')\n",
    "README.md": "# sample\n",
}


def repository_menu():
    """The menu `invoke` shows in this repository: its tasks.py adds provisioning's `engine.*` to the library's tasks.

    A copy of its own for each caller: Invoke consumes a task's help when it reads the task's arguments.
    """
    return copy.deepcopy(runpy.run_path(str(Path(__file__).resolve().parents[1] / "tasks.py"))["ns"])


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def family(tmp_path: Path) -> Path:
    """A directory holding images.yaml and every file it names (not a git repository)."""
    write_tree(tmp_path, {"images.yaml": FAMILY, **FAMILY_FILES})
    return tmp_path


REGISTRY = os.environ.get("IMAGEGRAPH_TEST_REGISTRY", "127.0.0.1:5000")


@pytest.fixture(scope="session")
def docker_client():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as err:
        pytest.skip(f"no Docker engine reachable ({err.__class__.__name__}); run `invoke engine.up`")
    return client


@pytest.fixture(scope="session")
def registry(docker_client) -> str:
    try:
        requests.get(f"http://{REGISTRY}/v2/", timeout=3)
    except requests.RequestException:
        pytest.skip(f"no registry at {REGISTRY}; run `invoke engine.up`")
    return REGISTRY


def with_request(config, entry, contexts, builder=None):
    """A hand-made plan entry as `Workspace.plan` completes it: parent, wheels, context layout and build request (no labels),
    the request made for ``builder``'s kind (a builder of every platform at once when none is given)."""
    from dataclasses import replace

    from imagegraph.core.cache import BuilderKind
    from imagegraph.core.request import build_request, context_layout

    spec = config.image(entry.name)
    entry = replace(entry, parent=spec.parent, wheels=spec.wheels, layout=context_layout(spec, entry.files))
    return replace(entry, request=build_request(config, entry, entry.layout, contexts, labels={}, insecure_registry=True, registry_cache=True,
                                                     builder=builder.kind if builder is not None else BuilderKind.INDEX))
