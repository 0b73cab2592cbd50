"""The fingerprint changes if and only if what is built changes: random edit sequences, built for real.

A one-image family (``FROM scratch``: no base image to pull, no shell needed)
in a real git repository. Hypothesis draws a short sequence of edits: input
files written, deleted and made executable, a file outside the inputs, a file
git ignores under the input glob, a declared file the image's ignore file
drops, a build arg. After each edit the image is fingerprinted from the
working tree, its context assembled from exactly the fingerprinted files
(:func:`imagegraph.adapters.context.assemble_context`, as ``invoke build`` does), and
built with buildx; the built content is the image's layer diff ids and its
config (no timestamps in either: the context's files carry a fixed time).

The engine test needs Docker with buildx and is skipped when none answers;
bounded to a handful of examples of a few steps each. Its git-only twin runs
everywhere: the same edits, with the assembled context itself (paths, modes,
bytes, times) and the build args standing for the built content.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from imagegraph.adapters.context import assemble_context, assemble_image_context
from imagegraph.core.dockerignore import context_excludes
from imagegraph.core.options import BuildOptions
from imagegraph.workspace import Workspace
from tests.integration.conftest import init_repo

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

pytestmark = pytest.mark.integration

IMAGES = {"registry": "127.0.0.1:9", "namespace": "property", "images": {"app": {
    "dockerfile": "docker/Dockerfile", "inputs": ["src/**"], "build_args": {"MODE": "a"}, "platforms": ["linux/amd64"]}}}
FILES = {
    "docker/Dockerfile": "FROM scratch\nARG MODE\nLABEL mode=$MODE\nCOPY src /src\n",
    "docker/Dockerfile.dockerignore": "*\n!src\n**/*.md\n",
    ".gitignore": "*.tmp\n",
    "src/a.py": "A = 1\n",
    "README.md": "# property family\n",
}
NAMES = ("a.py", "b.py")
TEXTS = ("A = 1\n", "A = 2\n", "")

EDITS = st.one_of(
    st.tuples(st.just("write input"), st.sampled_from(NAMES), st.sampled_from(TEXTS)),
    st.tuples(st.just("delete input"), st.sampled_from(NAMES), st.just("")),
    st.tuples(st.just("executable"), st.sampled_from(NAMES), st.booleans().map(str)),
    st.tuples(st.just("outside the inputs"), st.just("README.md"), st.sampled_from(TEXTS)),
    st.tuples(st.just("ignored by git"), st.just("src/cache.tmp"), st.sampled_from(TEXTS)),
    st.tuples(st.just("dropped by the ignore file"), st.just("src/NOTES.md"), st.sampled_from(TEXTS)),
    st.tuples(st.just("build arg"), st.just("MODE"), st.sampled_from(("a", "b"))),
)


@pytest.fixture(scope="module")
def buildx(docker_client) -> str:
    if shutil.which("docker") is None or subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        pytest.skip("no docker buildx; run `invoke engine.up`")
    return "docker"


def apply(root: Path, edit: tuple[str, str, str]) -> None:
    kind, target, value = edit
    if kind == "build arg":
        config = yaml.safe_load((root / "images.yaml").read_text())
        config["images"]["app"]["build_args"][target] = value
        (root / "images.yaml").write_text(yaml.safe_dump(config))
        return
    path = root / ("src/" + target if kind in ("write input", "delete input", "executable") else target)
    if kind == "delete input":
        if path.exists() and len(list((root / "src").glob("*.py"))) > 1:  # the glob must keep matching a file
            path.unlink()
    elif kind == "executable":
        if path.exists():
            path.chmod(0o755 if value == "True" else 0o644)
    else:
        path.write_text(value)


def built_content(root: Path, work: Path) -> tuple[str, str]:
    """(fingerprint, content) of the image built from the working tree, the way `invoke build` hands it to the builder."""
    workspace = Workspace(root, BuildOptions(registry="127.0.0.1:9"))
    spec = workspace.config.image("app")
    fingerprint = workspace.fingerprints["app"]
    context = assemble_image_context(spec, fingerprint.files, workspace.root, work / "contexts", fingerprint.tag)
    tag = f"imagegraph-property:{uuid.uuid4().hex[:12]}"
    argv = ["docker", "buildx", "build", "--quiet", "--load", "--tag", tag, "--file", str(context.dockerfile),
            *(flag for key, value in spec.build_args for flag in ("--build-arg", f"{key}={value}")), str(context.context)]
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    try:
        inspected = subprocess.run(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}} {{json .Config}}", tag],
                                   check=True, capture_output=True, text=True).stdout
    finally:
        subprocess.run(["docker", "image", "rm", "--force", tag], capture_output=True)
    layers, config = inspected.split(" ", 1)
    return fingerprint.digest, json.dumps([json.loads(layers), json.loads(config)], sort_keys=True)


def received(root: Path, work: Path) -> tuple[str, str]:
    """(fingerprint, what the builder receives): the Dockerfile, its ignore file, the files of the assembled context
    that ignore file lets through (with mode, time and bytes), and the build args."""
    workspace = Workspace(root, BuildOptions(registry="127.0.0.1:9"))
    spec = workspace.config.image("app")
    fingerprint = workspace.fingerprints["app"]
    context = assemble_context(spec, fingerprint.files, workspace.root, work / "context")
    ignore = context.dockerfile.with_name(context.dockerfile.name + ".dockerignore")
    excluded = context_excludes(ignore.read_text().splitlines() if ignore.exists() else [])
    tree = []
    for path in sorted(context.root.rglob("*")):
        relative = path.relative_to(context.root).as_posix()
        if path not in (context.dockerfile, ignore) and excluded(relative):
            continue
        info = path.lstat()
        body = os.readlink(path) if path.is_symlink() else "" if path.is_dir() else path.read_bytes().hex()
        tree.append((relative, oct(info.st_mode), int(info.st_mtime), body))
    return fingerprint.digest, json.dumps([tree, spec.build_args])


@hypothesis.settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(edits=st.lists(EDITS, min_size=1, max_size=6))
def test_the_fingerprint_changes_exactly_when_what_the_builder_receives_does(tmp_path_factory, edits):
    work = tmp_path_factory.mktemp("received")
    root = init_repo(work / "repo", {"images.yaml": yaml.safe_dump(IMAGES), **FILES})
    before = received(root, work)
    for edit in edits:
        apply(root, edit)
        after = received(root, work)
        fingerprint_changed, context_changed = after[0] != before[0], after[1] != before[1]
        assert fingerprint_changed == context_changed, (edit, "fingerprint changed" if fingerprint_changed else "context changed")
        before = after


@pytest.mark.slow
def test_the_fingerprint_changes_exactly_when_the_built_content_does(buildx, tmp_path_factory):
    @hypothesis.settings(max_examples=6, deadline=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.lists(EDITS, min_size=1, max_size=5))
    def check(edits):
        work = tmp_path_factory.mktemp("property")
        root = init_repo(work / "repo", {"images.yaml": yaml.safe_dump(IMAGES), **FILES})
        before = built_content(root, work)
        for edit in edits:
            apply(root, edit)
            after = built_content(root, work)
            fingerprint_changed, content_changed = after[0] != before[0], after[1] != before[1]
            assert fingerprint_changed == content_changed, (edit, "fingerprint changed" if fingerprint_changed else "content changed")
            before = after

    check()
