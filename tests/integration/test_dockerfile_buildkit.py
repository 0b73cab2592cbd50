"""The real BuildKit gives every Dockerfile case of the syntax check the same verdict: what the check refuses fails the
build, what it lets through builds.

Each case builds on the engine's current builder (linux/amd64, nothing pushed,
the result thrown away) in a context whose root file system is the host's
own dash and C library, so RUN works with no image pulled.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import one_error_line, run_invoke
from tests.unit.cli import make_family
from tests.unit.test_dockerfile_check import CASES, dockerfile, errors

SHELL_FILES = ("/bin/dash", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2")


@pytest.fixture(scope="module")
def context(tmp_path_factory, docker_client):
    if not all(Path(path).is_file() for path in SHELL_FILES):
        pytest.skip("needs the host's dash and glibc (x86_64) to give the test builds a shell")
    root = tmp_path_factory.mktemp("buildkit-context")
    for path in SHELL_FILES:
        target = root / "rootfs" / ("bin/sh" if path == "/bin/dash" else path.lstrip("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (root / "a").write_text("a\n")
    (root / "b").write_text("b\n")
    return root


def buildkit_accepts(context: Path, text: str) -> tuple[bool, str]:
    dockerfile = context.parent / f"Dockerfile.{uuid.uuid4().hex[:8]}"
    dockerfile.write_text(text)
    try:
        done = subprocess.run(["docker", "buildx", "build", "--platform", "linux/amd64", "--progress", "plain", "--output",
                               "type=tar,dest=/dev/null", "--file", str(dockerfile), str(context)],
                              capture_output=True, text=True, timeout=300)
    finally:
        dockerfile.unlink()
    return done.returncode == 0, done.stderr[-400:]


@pytest.mark.parametrize("case", sorted(CASES))
def test_buildkit_and_the_check_agree(context, case):
    text = dockerfile(case)
    accepted, output = buildkit_accepts(context, text)
    refused = errors(text)
    assert accepted == (not refused), f"BuildKit {'accepts' if accepted else 'refuses'} it, the check says {refused}:\n{output}"


def test_a_dry_run_names_a_builder_that_does_not_exist_and_where_it_came_from(tmp_path, registry, docker_client):
    root = make_family(tmp_path, {"tasks.py": "from imagegraph.tasks import namespace as ns\n"})
    env = {"IMAGEGRAPH_REGISTRY": f"{registry}/dfcheck-{uuid.uuid4().hex[:8]}", "BUILDX_BUILDER": ""}
    line = one_error_line(run_invoke(root, "build", "--dry-run", "--builder", "no-such-builder", **env))
    assert "no buildx builder named 'no-such-builder' (--builder)" in line and "docker buildx ls" in line
    line = one_error_line(run_invoke(root, "build", "--dry-run", **{**env, "BUILDX_BUILDER": "gone"}))
    assert "'gone' ($BUILDX_BUILDER)" in line and "invoke engine.builder --name gone" in line
    (root / "images.yaml").write_text((root / "images.yaml").read_text() + "builder: missing-one\n")
    line = one_error_line(run_invoke(root, "build", "--dry-run", **env))
    assert "'missing-one' (images.yaml builder:)" in line
    (root / "images.yaml").write_text((root / "images.yaml").read_text().replace("builder: missing-one\n", "builder: default\n"))
    done = run_invoke(root, "build", "--dry-run", "--platform", "linux/amd64", **env)
    assert done.returncode == 0, done.stderr
    assert "builder: default (docker driver), named by images.yaml builder:" in done.stdout
