"""Builds spread across runners, on the real engine and registry: two clones of one repository act as two runners, each
building one platform of a small multi-arch family (`invoke build --only-platform`), then `invoke join` makes the images.

linux/arm64 builds under QEMU here; the images are small (a file written on python:3.11-slim).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.core.manifests import is_index, platform_of
from imagegraph.core.options import BuildOptions
from imagegraph.workspace import Workspace
from tests.integration.conftest import init_repo, one_error_line, run_invoke

pytestmark = pytest.mark.integration

FAMILY = """
registry: {registry}
namespace: {namespace}
images:
  base:
    dockerfile: docker/Dockerfile.base
    platforms: [linux/amd64, linux/arm64]
  app:
    dockerfile: docker/Dockerfile.child
    parent: base
    platforms: [linux/amd64, linux/arm64]
  tools:
    dockerfile: docker/Dockerfile.child
    parent: base
    platforms: [linux/amd64]
    build_args: {{ROLE: tools}}
"""

FILES = {
    "docker/Dockerfile.base": "FROM python:3.11-slim\nRUN uname -m > /base-arch.txt\n",
    "docker/Dockerfile.child": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG ROLE=app\nRUN echo $ROLE > /role.txt\n",
    "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n",
}


@pytest.fixture
def runners(tmp_path, registry, namespace, monkeypatch):
    """The repository and two clones of it, one per runner; the images' fingerprint references."""
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    origin = init_repo(tmp_path / "origin", {"images.yaml": FAMILY.format(registry=registry, namespace=namespace), **FILES})
    clones = []
    for name in ("amd64-runner", "arm64-runner"):
        subprocess.run(["git", "clone", "-q", "--", str(origin), str(tmp_path / name)], check=True)
        clones.append(tmp_path / name)
    workspace = Workspace(clones[0], BuildOptions())
    refs = {name: workspace.config.image_ref(name, workspace.fingerprints[name].tag) for name in workspace.config.names}
    return clones, refs


def _invoke(root, *args) -> subprocess.CompletedProcess[str]:
    """`invoke ARGS` in ``root`` as a runner runs it: the suite's $IMAGEGRAPH_PLATFORMS (which would change the fingerprints) unset."""
    env = {key: value for key, value in os.environ.items() if key != "IMAGEGRAPH_PLATFORMS"}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=root, capture_output=True, text=True, timeout=600, env=env)


def _image_of(client: Registry, repository: str, tag: str, platform: str) -> tuple[str, dict, dict]:
    """(digest, manifest, config) of ``platform``'s image that ``repository:tag`` names, directly or through an index."""
    media_type, data = client.read_manifest(repository, tag)
    body = json.loads(data)
    digest = client.manifest_digest(repository, tag)
    if is_index(media_type, body):
        entry = next(m for m in body["manifests"] if platform_of(m) == platform)
        digest = entry["digest"]
        media_type, data = client.read_manifest(repository, digest)
        body = json.loads(data)
    config = json.loads(client.blob(repository, body["config"]["digest"]))
    return digest, body, config


def _layers(manifest: dict) -> list[str]:
    return [layer["digest"] for layer in manifest["layers"]]


def test_two_runners_build_a_platform_each_then_the_join_makes_every_image(runners, registry):
    (amd, arm), refs = runners
    client = Registry(registry)
    multi_platform = Workspace(amd, BuildOptions()).builder_choice.multi_platform
    # the two runners at once: amd64 builds the family (base and its children in one bake), arm64 only base for now
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_invoke, amd, "build", "--only-platform", "linux/amd64", "--progress", "plain")
        second = pool.submit(_invoke, arm, "build", "--only-platform", "linux/arm64", "--target", "base", "--progress", "plain")
        amd_run, arm_run = first.result(), second.result()
    assert amd_run.returncode == 0, amd_run.stdout + amd_run.stderr
    assert arm_run.returncode == 0, arm_run.stdout + arm_run.stderr
    assert "tags: none moved (a run of linux/amd64 alone: `invoke join` moves them)" in amd_run.stdout
    # nothing whole yet: each part under its own tag, the fingerprint tags untouched (tools, of one platform, is its own part)
    for name in ("base", "app"):
        assert client.manifest_digest(refs[name].repository, refs[name].tag) is None
        assert client.manifest_digest(refs[name].repository, f"{refs[name].tag}-amd64") is not None
    assert client.manifest_digest(refs["base"].repository, f"{refs['base'].tag}-arm64") is not None
    assert client.manifest_digest(refs["tools"].repository, refs["tools"].tag) is not None

    # a join now is refused: app's arm64 part is missing
    line = one_error_line(run_invoke(arm, "join"))
    assert "app" in line and "linux/arm64" in line and "the run that builds linux/arm64" in line
    assert client.manifest_digest(refs["base"].repository, refs["base"].tag) is None  # the refusal wrote nothing

    # the arm64 runner goes on: app alone, built FROM base's arm64 part, pinned to its digest
    arm_rest = _invoke(arm, "build", "--only-platform", "linux/arm64", "--progress", "plain")
    assert arm_rest.returncode == 0, arm_rest.stdout + arm_rest.stderr
    base_part = f"{refs['base']}-arm64"
    base_digest, base_manifest, _ = _image_of(client, refs["base"].repository, f"{refs['base'].tag}-arm64", "linux/arm64")
    part_digest = client.manifest_digest(refs["base"].repository, f"{refs['base'].tag}-arm64")
    _, app_manifest, app_config = _image_of(client, refs["app"].repository, f"{refs['app'].tag}-arm64", "linux/arm64")
    labels = app_config["config"]["Labels"]
    assert labels["imagegraph.parent"] == f"{base_part}@{part_digest}"
    assert labels["imagegraph.fingerprint"] == refs["app"].tag  # the declared platforms' fingerprint
    assert app_config["architecture"] == "arm64"
    assert _layers(app_manifest)[:len(_layers(base_manifest))] == _layers(base_manifest)
    # the amd64 child, baked with its parent (built alone after it on the classic store): on exactly the parent's amd64 image
    _, amd_base, _ = _image_of(client, refs["base"].repository, f"{refs['base'].tag}-amd64", "linux/amd64")
    _, amd_app, _ = _image_of(client, refs["app"].repository, f"{refs['app'].tag}-amd64", "linux/amd64")
    assert _layers(amd_app)[:len(_layers(amd_base))] == _layers(amd_base)

    joined = run_invoke(amd, "join")
    assert joined.returncode == 0, joined.stdout + joined.stderr
    for name in ("base", "app"):
        media_type, data = client.read_manifest(refs[name].repository, refs[name].tag)
        body = json.loads(data)
        assert is_index(media_type, body)
        platforms = [platform_of(m) for m in body["manifests"]]
        assert {"linux/amd64", "linux/arm64"} <= set(platforms)
        if multi_platform:  # the runs' provenance attestations stay (the classic store's builds make none)
            assert "unknown/unknown" in platforms
    assert _image_of(client, refs["base"].repository, refs["base"].tag, "linux/arm64")[0] == base_digest
    again = run_invoke(amd, "join")
    assert again.returncode == 0 and "nothing" in again.stdout.lower(), again.stdout + again.stderr

    # a run of a platform after the join builds nothing: its parts are there
    rerun = _invoke(arm, "plan", "--only-platform", "linux/arm64", "--json")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    planned = {entry["name"]: entry for entry in json.loads(rerun.stdout)["images"]}
    assert {name: entry["decision"] for name, entry in planned.items()} == {"base": "reuse", "app": "reuse", "tools": "skip"}
    assert planned["app"]["ref"] == f"{refs['app']}-arm64" and planned["app"]["platforms"] == ["linux/arm64"]
