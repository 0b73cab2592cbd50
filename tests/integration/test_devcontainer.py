"""The devcontainer, brought up by the real Dev Containers CLI from this checkout's prebuilt image.

A copy of this checkout (its tracked and untracked files, committed into a
fresh repository, so every fingerprint is this checkout's) is opened with
`devcontainer up`: its initializeCommand (`invoke dev.image`) must find the
prebuilt image in the registry and build nothing, its postCreateCommand
(`invoke dev.post-create`) must install the checkout, point git at .githooks
and pass the tools check, and the unit tests must pass inside. `nox -s
devcontainer` installs the CLI and runs this file; without the CLI it skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagegraph.adapters.devcontainer import read_image_tag
from imagegraph.core.options import BuildOptions
from imagegraph.workspace import Workspace
from tests.integration.conftest import commit_all, git, one_error_line, run_invoke

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Set by `nox -s devcontainer` to the CLI it installed: then the CLI must be there, and nothing skips.
CLI_VARIABLE = "IMAGEGRAPH_DEVCONTAINER_CLI"
TOOLS = ("python", "torch", "imagegraph", "scorer", "invoke", "nox", "ruff", "pytest", "git", "hooks", "docker")


@pytest.fixture(scope="module")
def cli() -> str:
    wanted = os.environ.get(CLI_VARIABLE)
    if wanted:
        assert Path(wanted).is_file(), f"${CLI_VARIABLE} names {wanted}, which does not exist"
        return wanted
    found = shutil.which("devcontainer")
    if found is None:
        pytest.skip("the Dev Containers CLI (@devcontainers/cli) is not installed; `nox -s devcontainer` installs it and runs this test")
    return found


@pytest.fixture(scope="module")
def prebuilt(docker_client, registry) -> str:
    """This checkout's devcontainer image, in the registry and the engine (built first when CI has not pushed it)."""
    workspace = Workspace(ROOT, BuildOptions(targets=("devcontainer",)))
    results = workspace.executor(say=print).run(workspace.plan())
    failed = [f"{r.name}: {r.error}" for r in results if not r.ok]
    assert not failed, failed
    ref = run_invoke(ROOT, "ref", "devcontainer").stdout.strip().splitlines()[-1]
    if not workspace.local.has(ref):
        docker_client.images.pull(ref)
    return ref


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of this checkout as a fresh one-commit repository, owned by whoever runs the tests (as a host user's clone is)."""
    copy = tmp_path_factory.mktemp("devcontainer") / "imagegraph"
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for path in filter(None, listed):
        source = ROOT / path
        if source.is_file() or source.is_symlink():  # a deleted file stays listed until the deletion is staged
            (copy / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / path, follow_symlinks=False)
    git(copy, "init", "-q", "-b", "main")
    commit_all(copy, "a copy of the checkout")
    return copy


@pytest.fixture(scope="module")
def cli_images(docker_client):
    """Images the CLI makes for the copy (its `-uid` and `-features` images): removed afterwards."""
    names: set[str] = set()
    yield names
    for name in names:
        if name.startswith("vsc-"):  # never the prebuilt image or the devcontainer's tag
            docker_client.images.remove(name)


@dataclass(frozen=True)
class Opened:
    output: str
    container: object  # docker.models.containers.Container


@pytest.fixture(scope="module")
def opened(cli, checkout, prebuilt, docker_client, cli_images):
    """The copy after `devcontainer up`; every container labelled with its folder is removed afterwards."""
    copy_ref = run_invoke(checkout, "ref", "devcontainer").stdout.strip().splitlines()[-1]
    assert copy_ref == prebuilt, "the copy's fingerprint differs from this checkout's: it would not open the prebuilt image"
    try:
        up = _cli(cli, "up", "--workspace-folder", str(checkout))
        outcome = _outcome(up)
        assert outcome.get("outcome") == "success", up.stdout + up.stderr
        container = docker_client.containers.get(outcome["containerId"])
        yield Opened(up.stdout + up.stderr, container)
    finally:
        for leftover in docker_client.containers.list(all=True, filters={"label": f"devcontainer.local_folder={checkout}"}):
            cli_images.add(leftover.attrs["Config"]["Image"])
            leftover.remove(force=True)


def _cli(cli: str, *args: str) -> subprocess.CompletedProcess[str]:
    # initializeCommand runs `invoke` on the host: the one installed with the Python running these tests.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=900, env={**os.environ, "PATH": path})


def _outcome(result: subprocess.CompletedProcess[str]) -> dict:
    """The CLI's JSON verdict: the last stdout line that parses as an object."""
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON outcome from the CLI:\n{result.stdout}\n{result.stderr}")


def _exec(cli: str, checkout: Path, *argv: str, remote_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env_flags = [f"--remote-env={name}={value}" for name, value in (remote_env or {}).items()]
    return _cli(cli, "exec", "--workspace-folder", str(checkout), *env_flags, *argv)


#: The diff id of an empty layer: the containerd image store keeps one for a RUN that changed nothing, the classic one drops it.
EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def _layers(docker_client, image: str) -> list[str]:
    return docker_client.images.get(image).attrs["RootFS"]["Layers"]


def test_post_create_refuses_to_change_a_host_by_mistake(checkout):
    before = git(checkout, "config", "--local", "--list")
    line = one_error_line(run_invoke(checkout, "dev.post-create", IMAGEGRAPH_DEVCONTAINER=""))
    assert "this is not it" in line and "--host" in line
    assert git(checkout, "config", "--local", "--list") == before


def test_it_opens_the_prebuilt_image_and_builds_nothing(opened, checkout, prebuilt, docker_client):
    tag = read_image_tag(checkout)
    assert f"devcontainer: prebuilt image {prebuilt} (from the registry) → {tag}" in opened.output
    assert "[devcontainer] building" not in opened.output and "[base] building" not in opened.output
    assert docker_client.images.get(tag).id == docker_client.images.get(prebuilt).id
    # The container's image has the prebuilt image's layers. The CLI always puts its own `-uid` image on top
    # (updateRemoteUserUID): only metadata where there is no uid to change (a root host, or uid 1000), else one layer.
    layers, base = _layers(docker_client, opened.container.attrs["Image"]), _layers(docker_client, prebuilt)
    assert layers[:len(base)] == base
    added = [layer for layer in layers[len(base):] if layer != EMPTY_LAYER]
    assert len(added) <= (0 if os.getuid() in (0, 1000) else 1)


def test_post_create_installed_the_checkout_and_checked_the_tools(opened, cli, checkout):
    for tool in TOOLS:
        assert re.search(rf"^\S*\s*{tool}\s+ok\s", opened.output, re.MULTILINE), f"no `{tool} ok` row in post-create's table"
    probe = ("import importlib.metadata as m, imagegraph, json, scorer; "
             "print(json.dumps([imagegraph.__file__, scorer.__file__, json.loads(m.distribution('imagegraph').read_text('direct_url.json'))]))")
    # The modules live under src/, not in the working folder: only the editable install makes them importable.
    result = _exec(cli, checkout, "python", "-c", probe)
    assert result.returncode == 0, result.stderr
    imagegraph_file, scorer_file, direct_url = json.loads(result.stdout.strip().splitlines()[-1])
    assert imagegraph_file == "/workspace/src/imagegraph/__init__.py" and scorer_file == "/workspace/src/scorer/__init__.py"
    assert direct_url == {"url": "file:///workspace", "dir_info": {"editable": True}}
    hooks = _exec(cli, checkout, "git", "config", "core.hooksPath")
    assert hooks.stdout.strip() == ".githooks", hooks.stderr
    engine = _exec(cli, checkout, "docker", "version", "--format", "{{.Server.Version}}")
    assert engine.returncode == 0 and engine.stdout.strip(), engine.stderr
    # Nothing in the checkout was written as the container's user: every file is still its owner's, and no build debris.
    owner = checkout.stat().st_uid
    assert [str(p) for p in checkout.rglob("*") if p.lstat().st_uid != owner] == []
    assert not list(checkout.glob("src/*.egg-info")) and not (checkout / "build").exists()


def test_the_unit_tests_pass_inside(opened, cli, checkout):
    result = _exec(cli, checkout, "python", "-m", "pytest", "tests/unit", "-q")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    passed = re.match(r"(\d+) passed\b", summary)
    assert passed and int(passed.group(1)) > 0 and "failed" not in summary and "error" not in summary, summary


def test_a_broken_tool_fails_post_create_with_one_line(opened, cli, checkout):
    result = _exec(cli, checkout, "invoke", "dev.post-create", remote_env={"DOCKER_HOST": "unix:///tmp/no-engine.sock"})
    line = one_error_line(result)
    assert line.startswith("error: docker does not work (") and "unix:///tmp/no-engine.sock" in line and "invoke engine.up" in line
    assert re.search(r"^docker\s+FAILED\s", result.stdout, re.MULTILINE) and re.search(r"^torch\s+ok\s", result.stdout, re.MULTILINE)


def test_devcontainer_build_uses_the_prebuilt_image(opened, cli, checkout, prebuilt, docker_client, cli_images):
    # An image-based devcontainer.json does not run initializeCommand on `build`: `up` (above) tagged the image first.
    result = _cli(cli, "build", "--workspace-folder", str(checkout))
    outcome = _outcome(result)
    assert outcome.get("outcome") == "success", result.stdout + result.stderr
    names = outcome["imageName"]
    cli_images.update(names)
    assert _layers(docker_client, names[0]) == _layers(docker_client, prebuilt)
