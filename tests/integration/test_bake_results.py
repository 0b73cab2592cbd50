"""A parent and its child in one real bake: each image's result comes from bake's own records, a child's failure is its own."""

from __future__ import annotations

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.core.options import BuildOptions
from imagegraph.workspace import Workspace
from tests.conftest import split_ref
from tests.integration.conftest import init_repo

pytestmark = pytest.mark.integration

FAMILY = """
registry: {registry}
namespace: {namespace}
images:
  base:
    dockerfile: docker/Dockerfile.base
    platforms: [linux/amd64]
  app:
    dockerfile: docker/Dockerfile.app
    parent: base
    platforms: [linux/amd64]
"""


@pytest.mark.parametrize("before_copy", ["", "RUN sleep 2\n"], ids=["at once", "after the parent's steps finished"])
def test_a_childs_copy_of_a_missing_file_fails_the_child_with_its_own_error_and_the_parent_is_built(
        tmp_path, registry, namespace, monkeypatch, before_copy):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    repo = init_repo(tmp_path / "repo", {
        "images.yaml": FAMILY.format(registry=registry, namespace=namespace),
        # the namespace makes the steps this test's own: no cache left by another run answers them
        "docker/Dockerfile.base": f"FROM python:3.11-slim\nRUN echo {namespace} > /base.txt\n",
        "docker/Dockerfile.app": f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {namespace} app > /app.txt\n{before_copy}"
                                 "COPY missing.txt /missing.txt\n",
    })
    workspace = Workspace(repo, BuildOptions())
    if not workspace.builder_choice.multi_platform:
        pytest.skip("bake needs a builder that builds every platform at once, which the docker driver on the classic store is not")
    said: list[str] = []
    results = {r.name: r for r in workspace.executor(say=said.append).run(workspace.plan())}

    logs = repo / ".imagegraph/logs"
    assert (logs / "bake-base.log").is_file(), said  # the two were built in one bake
    app = results["app"]
    assert not app.ok
    assert "COPY missing.txt /missing.txt" in app.error and '"/missing.txt": not found' in app.error, app.error
    assert "parent base failed" not in app.error
    assert app.log == str(logs / "app.log") and "ERROR: failed to calculate checksum" in (logs / "app.log").read_text()

    base = results["base"]
    assert base.ok, base.error
    assert base.pushed and base.digest is not None
    _, repository, tag = split_ref(base.ref)
    assert Registry(registry).manifest_digest(repository, tag) == base.digest
    assert "missing.txt" not in "\n".join(line for line in (logs / "base.log").read_text().splitlines() if "ERROR" in line and "#" in line)
    assert not any(line.startswith("[base] FAILED") for line in said), said
