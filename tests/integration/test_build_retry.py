"""`invoke build` against a registry that fails BuildKit for a passing reason: the build is tried again, within bounds.

The family's registry is the fault proxy (tests/integration/faultproxy.py) in front of the shared registry: a
loopback address, which dockerd speaks plain HTTP to. The first `invoke build` pushes base and child; then, as on a
fresh CI runner, the engine's copies go, and a change to child's input builds child alone: BuildKit looks base up in
the registry (its ``FROM``), right after the plan did, and that lookup is where the proxy answers.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.integration.conftest import commit_all, init_repo, remove_local_images, run_invoke
from tests.integration.faultproxy import Answer, start_fault_proxy

pytestmark = pytest.mark.integration

FAMILY = """
registry: {registry}
namespace: {namespace}
images:
  base:
    dockerfile: Dockerfile.base
    inputs: [base.txt]
    platforms: [linux/amd64]
  child:
    dockerfile: Dockerfile.child
    parent: base
    inputs: [child.txt]
"""

#: The parent's fingerprint tag: asked for by the plan, then by BuildKit (its FROM), then by the report.
LOOKUP = r"/base/manifests/[0-9a-f]{16}$"
RETRY_LINE = re.compile(r"\[child\] registry (\S+) answered 500 Internal Server Error to HEAD /v2/\S+/base/manifests/[0-9a-f]{16} "
                        r"while resolving \S+/base:[0-9a-f]+\S*; trying again in \d+\.\d s \(try (\d) of 5\)")


@pytest.fixture(scope="module")
def proxy(registry):
    """One fault proxy in front of the shared registry for the module's builds (rules are cleared before each test)."""
    with start_fault_proxy(registry) as running:
        yield running


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, proxy, docker_client):
    """A family (base, child) pushed through the proxy once for the module; each test then changes child."""
    namespace = f"imagegraph-test/{uuid.uuid4().hex[:8]}"
    repo = init_repo(tmp_path_factory.mktemp("retry") / "repo", {
        "images.yaml": FAMILY.format(registry=proxy.address, namespace=namespace),
        "Dockerfile.base": "FROM python:3.11-slim\nCOPY base.txt /base.txt\n",
        "Dockerfile.child": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY child.txt /child.txt\n",
        "base.txt": f"base of {namespace}\n",
        "child.txt": "first\n",
        "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n",
        ".gitignore": ".imagegraph/\n",
    })
    env = {key: value for key, value in os.environ.items() if key not in ("IMAGEGRAPH_PLATFORMS", "IMAGEGRAPH_REGISTRY")}
    first = subprocess.run([sys.executable, "-m", "invoke", "build", "--progress", "plain", "--no-tags"], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    yield repo, namespace
    remove_local_images(docker_client, lambda tag: f"/{namespace}/" in tag)


@pytest.fixture
def family(pushed, proxy, docker_client, request, monkeypatch):
    """The pushed family with child's input changed (a new child to build), none of it in the engine: as on a fresh CI runner,
    the next build looks base up in the registry, through the proxy."""
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY", raising=False)
    repo, namespace = pushed
    proxy.clear()
    remove_local_images(docker_client, lambda tag: f"/{namespace}/" in tag)
    (repo / "child.txt").write_text(f"{request.node.name}\n")
    commit_all(repo, "child changes")
    return repo


def base_lookups(proxy) -> list[int | None]:
    return [seen.status for seen in proxy.seen("HEAD", LOOKUP)]


def test_a_500_to_the_parent_lookup_is_tried_again_once_and_the_build_succeeds(family, proxy):
    before = len(base_lookups(proxy))
    proxy.inject(Answer(500), "HEAD", LOOKUP, nth=2)
    started = time.monotonic()
    result = run_invoke(family, "build", "--progress", "plain", "--no-tags")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    retried = [line for line in result.stdout.splitlines() if "trying again" in line]
    assert len(retried) == 1 and RETRY_LINE.search(retried[0]), retried
    assert RETRY_LINE.search(retried[0]).group(1, 2) == (proxy.address, "2")
    assert base_lookups(proxy)[before:before + 3] == [200, 500, 200]  # the plan's, BuildKit's, BuildKit's again
    assert re.search(r"\[child\] done in ", result.stdout), result.stdout
    print(f"built after one retry in {seconds:.1f} s")


def test_a_registry_that_keeps_failing_the_lookup_is_given_up_on_in_one_line(family, proxy):
    proxy.inject(Answer(500), "HEAD", LOOKUP, nth=2, times=5)  # every one of the build's tries
    started = time.monotonic()
    result = run_invoke(family, "build", "--progress", "plain", "--no-tags")
    seconds = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    tries = [RETRY_LINE.search(line).group(2) for line in result.stdout.splitlines() if RETRY_LINE.search(line)]
    assert tries == ["2", "3", "4", "5"], result.stdout
    assert base_lookups(proxy)[-7:-1] == [200, *[500] * 5]  # the plan's, BuildKit's five; then the report's
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.match(rf"error: child: registry {re.escape(proxy.address)} answered 500 Internal Server Error to HEAD /v2/\S+"
                    r"/base/manifests/[0-9a-f]{16} while resolving \S+, on 5 tries over \d+\.\d s; check that it is up and healthy", errors[0])
    # waits of 0.5, 1, 2, 4 s, each shortened by up to half, plus five quick failures: within the 30 s bound
    print(f"gave up after {seconds:.1f} s: {errors[0]}")
    assert seconds < 60


def test_a_run_step_that_prints_a_server_error_is_not_tried_again(tmp_path, proxy, namespace, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY", raising=False)
    said = "unexpected status from HEAD request to http://127.0.0.1:5000/v2/x/manifests/y: 500 Internal Server Error"
    repo = init_repo(tmp_path / "repo", {
        "images.yaml": f"registry: {proxy.address}\nnamespace: {namespace}\nimages:\n  solo:\n    dockerfile: Dockerfile\n"
                       "    platforms: [linux/amd64]\n",
        "Dockerfile": f"FROM python:3.11-slim\nRUN echo '{said}' && exit 3\n",
        "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n",
    })
    result = run_invoke(repo, "build", "--progress", "plain", "--no-tags")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "trying again" not in result.stdout
    log = (repo / ".imagegraph/logs/solo.log").read_text()
    assert log.count(" buildx build ") == 1 and said in log
    assert "did not complete successfully: exit code: 3" in result.stderr


def test_a_ctrl_c_during_the_wait_stops_at_once(family, proxy):
    proxy.inject(Answer(500), "HEAD", LOOKUP, nth=2, times=4)  # (then the report's own lookup is answered)
    build = subprocess.Popen([sys.executable, "-m", "invoke", "build", "--progress", "plain", "--no-tags"], cwd=family, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert build.stdout is not None
        for line in build.stdout:  # the longest wait: 2 to 4 s before the fifth try
            if "(try 5 of 5)" in line:
                break
        else:
            pytest.fail("no fourth retry line")
        asked = time.monotonic()
        build.send_signal(signal.SIGINT)
        rest, stderr = build.communicate(timeout=30)
        seconds = time.monotonic() - asked
    finally:
        if build.poll() is None:
            build.kill()
    print(f"stopped {seconds:.2f} s after SIGINT, in the wait")
    assert build.returncode == 130, rest + stderr
    assert seconds < 1.5
    assert "trying again" not in rest and "interrupted: SIGINT" in stderr and "no tags moved" in stderr, stderr
    # the plan's lookup, BuildKit's four, and no fifth: the report's own lookup came next
    assert base_lookups(proxy)[-6:] == [200, 500, 500, 500, 500, 200]
