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


def split_ref(ref: str) -> tuple[str, str, str]:
    """``host:5000/ns/name:tag`` -> (``host:5000``, ``ns/name``, ``tag``): a test's shorthand over the one parser."""
    from imagegraph.adapters.registry import full_ref

    image = full_ref(ref)
    return image.domain, image.repository, image.reference


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


def forced_plan(config, contexts, digests=None, files=None, builder=None):
    """The plan `invoke build --force` makes of every image in ``config``, as `Workspace.plan` makes it (no labels, no CI event).

    ``digests`` and ``files`` stand in for the fingerprints (by image name; a
    digest of zeros and no files unless given): each entry is a
    :class:`~imagegraph.core.plan.BuiltImage` whose build request assembles
    its context in ``contexts``, made for ``builder``'s kind (a builder of every platform at once when none is given).
    """
    from imagegraph.core.cache import BuilderKind
    from imagegraph.core.fingerprint import Fingerprint
    from imagegraph.core.plan import make_plan
    from imagegraph.core.request import BuildSettings

    digests, files = digests or {}, files or {}
    fingerprints = {name: Fingerprint(name, digests.get(name, "0" * 64), tuple(files.get(name, ()))) for name in config.names}
    return make_plan(config, fingerprints, {}, force=config.names, settings=BuildSettings(
        contexts=contexts, insecure_registry=True, builder=builder.kind if builder is not None else BuilderKind.INDEX))


def built_image(name, ref, *, push=True, parent=None, parent_ref=None, platforms=("linux/amd64",), reason="test", changed=()):
    """A plan entry of an image that is built, made by hand for code that reads only its name, decision and reference (a report,
    bake's grouping, the executor's scheduling): its request names a context no test assembles."""
    from imagegraph.core.plan import BuiltImage
    from imagegraph.core.request import BuildRequest, ContextLayout
    from imagegraph.core.values import ImageRef

    fingerprint = ref.rsplit(":", 1)[1]
    request = BuildRequest(name, Path(name, "Dockerfile"), Path(name), ref, platforms, push=push)
    parent_image = ImageRef.parse(parent_ref) if parent_ref else None
    return BuiltImage(name, reason, fingerprint, ImageRef.parse(ref), parent_image, platforms, push, changed=changed, parent=parent,
                      layout=ContextLayout((), (), ".", "Dockerfile"), request=request)
