"""images.yaml `compression:` on the real engine: what the registry holds is what was asked, and the engine pulls and runs it."""

from __future__ import annotations

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.core.errors import InputError
from imagegraph.core.options import BuildOptions
from imagegraph.workspace import Workspace
from tests.conftest import split_ref
from tests.integration.conftest import init_repo, remove_local_images

pytestmark = pytest.mark.integration

ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
GZIP = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip")

# base and app are built in one bake; solo, alone, by `docker buildx build`: both paths are checked
FAMILY = """
registry: {registry}
namespace: {namespace}
compression: {{type: zstd, level: 3}}
images:
  base:
    dockerfile: docker/Dockerfile.base
  app:
    dockerfile: docker/Dockerfile.app
    parent: base
    compression: gzip
  solo:
    dockerfile: docker/Dockerfile.solo
"""


def layer_types(registry: Registry, ref: str) -> list[str]:
    """The media types of the linux/amd64 image's layers that ``ref`` names (through its index, when it is one)."""
    _, repository, tag = split_ref(ref)
    _, body = registry.manifest(repository, tag)
    if "manifests" in body:
        chosen = next(m for m in body["manifests"] if m.get("platform", {}).get("architecture") == "amd64")
        _, body = registry.manifest(repository, chosen["digest"])
    return [layer["mediaType"] for layer in body["layers"]]


def test_zstd_layers_are_pushed_as_zstd_a_gzip_child_recompresses_its_parents_and_all_pull_and_run(
        tmp_path, registry, namespace, docker_client, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    repo = init_repo(tmp_path / "repo", {
        "images.yaml": FAMILY.format(registry=registry, namespace=namespace),
        # the namespace makes the steps this test's own: no cache left by another run answers them
        "docker/Dockerfile.base": f"FROM python:3.11-slim\nRUN echo {namespace} base > /base.txt\n",
        "docker/Dockerfile.app": f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {namespace} app > /app.txt\n",
        "docker/Dockerfile.solo": f"FROM python:3.11-slim\nRUN echo {namespace} solo > /solo.txt\n",
    })
    workspace = Workspace(repo, BuildOptions())
    if not workspace.builder_choice.multi_platform:
        with pytest.raises(InputError) as info:
            workspace.plan()
        assert "compression zstd needs a builder whose exporter pushes the image" in str(info.value)
        return
    said: list[str] = []
    results = {r.name: r for r in workspace.executor(say=said.append).run(workspace.plan())}
    assert all(r.ok for r in results.values()), {name: r.error for name, r in results.items()}
    assert (repo / ".imagegraph/logs/bake-base.log").is_file(), said  # base and app went through bake

    client = Registry(registry)
    for name in ("base", "solo"):
        types = layer_types(client, results[name].ref)
        assert types and set(types) == {ZSTD}, (name, types)  # the python:3.11-slim layers recompressed too
    app = layer_types(client, results["app"].ref)
    assert app and all(t in GZIP for t in app), app  # its parent's zstd layers made gzip again for clients that read gzip only

    # pulled back from the registry (nothing of theirs left in the engine) and run
    remove_local_images(docker_client, lambda tag: f"/{namespace}/" in tag)
    for name, path in (("base", "/base.txt"), ("app", "/app.txt"), ("solo", "/solo.txt")):
        ref = results[name].ref
        docker_client.images.pull(ref)
        output = docker_client.containers.run(ref, ["cat", path], remove=True).decode().strip()
        assert output == f"{namespace} {name}", (name, output)

    # a second plan reuses all three: the fingerprint tags name what was asked
    again = Workspace(repo, BuildOptions()).plan()
    assert {entry.name: entry.decision.value for entry in again.images} == {"base": "reuse", "app": "reuse", "solo": "reuse"}
