"""Fixtures that talk to the real engine and registry; tests skip (with the reason) when none is up."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import write_tree


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def init_repo(root: Path, files: dict[str, str]) -> Path:
    write_tree(root, files)
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "initial")
    return root


def commit_all(root: Path, message: str) -> None:
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", message)


@pytest.fixture
def namespace(docker_client, registry):
    """A registry namespace of this test's own; its local images are removed afterwards."""
    name = f"imagegraph-test/{uuid.uuid4().hex[:8]}"
    yield name
    for image in docker_client.images.list():
        for tag in image.tags:
            if f"/{name}/" in tag:
                docker_client.images.remove(tag, force=True)


@pytest.fixture
def private_registry(tmp_path, docker_client):
    """A registry of this test's own (deletes enabled), stopped afterwards."""
    from tests.integration.registries import start_registry

    server = start_registry(tmp_path / "registry")
    yield server
    server.stop()
