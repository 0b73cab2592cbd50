"""A build that a registry's passing error ended is tried again, within the registry client's bounds; nothing else is.

The fixtures in data/registry-faults/ are the real engine's output (Docker 26, buildx 0.13, the docker driver on the
containerd image store) for builds through tests/integration/faultproxy.py, which answered one kind of request
with a fault, every time: the lookup of the parent (``resolve-head``: HEAD of its tag; ``resolve-get``: GET of its
manifest), the pull of its blobs (``pull-blob``), the push's upload start (``push-blob-start``: POST), blob upload
(``push-blob-put``: PUT) and manifests (``push-manifest``), the registry cache (``cache-import``, ``cache-export``:
BuildKit goes on without it unless the export is strict), a bake, ``docker push`` and ``imagetools create``. The
fault is the name's last part: 500, 502, 503, 429, a reset connection (``reset``), one closed without an answer
(``eof``), and the answers that are no passing fault (401, 403, 404). Beside them: a ``RUN`` step whose own output and
command line carry "500 Internal Server Error", and a Dockerfile error. (``imagetools create`` joined the classic image store's
platforms once; imagegraph's own registry client joins them now, and tries its requests again itself.)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from imagegraph.adapters.failures import BuildRetries, registry_fault
from imagegraph.adapters.interrupt import Stop
from imagegraph.adapters.registry_http import REGISTRY_RETRY, RetryPolicy
from imagegraph.adapters.runner import Command
from imagegraph.core.config import load_config
from imagegraph.core.errors import CommandFailed
from imagegraph.core.media_types import OCI_MANIFEST
from imagegraph.execute import BuildExecutor
from tests.conftest import write_tree
from tests.unit.test_execute import (
    BUILT,
    DOCKER_DRIVER,
    IMAGES,
    LOST_LAYER_LOG,
    FakeRegistry,
    MemoryRegistry,
    ScriptedRunner,
    build_per_platform,
    run,
    run_family,
    whole_image,
)

FAULTS = Path(__file__).parent / "data" / "registry-faults"
PASSING = {"500", "502", "503", "429", "reset", "eof"}


def fixture(name: str) -> str:
    return (FAULTS / f"{name}.log").read_text()


#: Builds a cache fault did not fail: BuildKit imports no cache, or exports none (``ignore-error=true``, as imagegraph asks).
SUCCEEDED = ("cache-import-500", "cache-export-500")


def test_a_registry_cache_that_fails_does_not_fail_the_build():
    for name in SUCCEEDED:
        output = fixture(name)
        assert "500 Internal Server Error" in output and "ERROR: failed to solve" not in output
        assert output.rstrip().endswith("------")  # buildx's warnings about the cache, then nothing


@pytest.mark.parametrize("name", sorted(path.stem for path in FAULTS.glob("*.log") if path.stem not in SUCCEEDED))
def test_each_real_failure_is_classed_by_its_kind(name):
    fault = registry_fault(fixture(name))
    passing = not name.startswith("run-failure-") and name.removesuffix("-strict").rsplit("-", 1)[-1] in PASSING
    assert (fault is not None) == passing, (name, fault)
    if fault is not None:
        # one line, naming the registry (the proxy), the request and what it answered
        line = fault.describe()
        assert "\n" not in line and line.startswith("registry 127.0.0.1:") and " /v2/" in line and "?" not in line, line
        assert fault.method in ("GET", "HEAD", "PUT", "POST", "PATCH")


@pytest.mark.parametrize("name, line", [
    ("resolve-head-500", "answered 500 Internal Server Error to HEAD /v2/igfault/22665f47/base/manifests/v1 "
                         "while resolving 127.0.0.1:36729/igfault/22665f47/base:v1"),
    ("resolve-head-429", "answered 429 Too Many Requests to HEAD /v2/igfault/cd057f12/base/manifests/v1 while resolving"),
    ("resolve-head-reset", "reset the connection to HEAD /v2/igfault/24578477/base/manifests/v1 while resolving"),
    ("resolve-head-eof", "closed the connection (EOF) to HEAD /v2/igfault/9f214638/base/manifests/v1 while resolving"),
    ("pull-blob-502", "answered 502 Bad Gateway to GET /v2/igfault/bb88b4a9/base/blobs/sha256:2cabfdaa"),
    ("push-blob-start-503", "answered 503 Service Unavailable to POST /v2/igfault/5e7ccaf4/child/blobs/uploads/ while pushing "
                            "127.0.0.1:37497/igfault/5e7ccaf4/child:v1"),
    ("push-blob-put-eof", "closed the connection to PUT /v2/igfault/9a2cdcce/child/blobs/uploads/d9d9c1e1-5a83-41cb-b621-ecaeec65c7f5 "
                          "while pushing"),
    ("push-manifest-500", "answered 500 Internal Server Error to PUT /v2/igfault/309be34d/child/manifests/sha256:35b997ef"),
    ("cache-export-500-strict", "answered 500 Internal Server Error to PUT /v2/igfault/410e9a4f/child/manifests/buildcache "
                                "while writing the registry cache"),
    ("imagetools-create-503", "answered 503 Service Unavailable to PUT /v2/igfault/8b2dcf32/joined/manifests/v1 while pushing"),
    ("bake-resolve-500", "answered 500 Internal Server Error to HEAD /v2/igfault/8b2dcf32/base/manifests/v1 while resolving"),
])
def test_the_line_says_what_the_registry_answered_to_which_request(name, line):
    assert line in registry_fault(fixture(name)).describe()


@pytest.mark.parametrize("name", ["run-failure-prints-500", "run-failure-output-503", "dockerfile-error", "resolve-head-401",
                                  "resolve-head-403", "resolve-head-404", "push-manifest-401", "push-manifest-403",
                                  "push-manifest-404"])
def test_a_failed_step_a_dockerfile_error_or_a_refusal_is_no_passing_fault(name):
    output = fixture(name)
    assert registry_fault(output) is None
    if name.startswith("run-failure"):
        assert "Server Error" in output or "Service Unavailable" in output  # in the step's log and command line: not BuildKit's word


def test_the_line_keeps_no_userinfo_and_no_query():
    fault = registry_fault('ERROR: failed to solve: failed to push h:5000/ns/x:1: failed to do request: Put '
                           '"https://user:secret@h:5000/v2/ns/x/blobs/uploads/u?_state=token&digest=sha256%3Aab": EOF')
    assert fault.describe() == "registry h:5000 closed the connection (EOF) to PUT /v2/ns/x/blobs/uploads/u while pushing h:5000/ns/x:1"


@pytest.mark.parametrize("line", [
    "ERROR: failed to solve: no space left on device",
    "ERROR: failed to solve: Unavailable: error reading from server: EOF",  # the engine, not a registry
    "#5 0.3 unexpected status from HEAD request to http://127.0.0.1:5000/v2/x/manifests/y: 500 Internal Server Error",
    'ERROR: failed to solve: failed to do request: Head "http://127.0.0.1:5000/v2/x/manifests/y": x509: certificate signed by unknown authority',
    "ERROR: failed to solve: unexpected status from HEAD request to http://127.0.0.1:5000/v2/x/manifests/y: 500 Internal Server Error"
    "\n#7 0.5 a step's last line",
    "",
])
def test_only_a_registrys_passing_error_as_the_last_line_counts(line):
    assert registry_fault(line) is None


# --- the decision ---------------------------------------------------------------------------------

BUILD = Command.of("/usr/bin/docker", "buildx", "build", "--push", ".", purpose="build linux/amd64")


def failure(output: str) -> CommandFailed:
    return CommandFailed(BUILD.argv, 1, output_tail=output)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bounds_are_the_registry_clients_own_policy():
    assert BuildRetries().policy is REGISTRY_RETRY
    assert BuildExecutor.__init__.__kwdefaults__["retry"] is REGISTRY_RETRY
    assert (REGISTRY_RETRY.tries, REGISTRY_RETRY.total, REGISTRY_RETRY.backoff) == (5, 30.0, 0.5)


def test_a_passing_fault_is_tried_again_with_waits_doubling_then_given_up_in_one_line():
    clock = Clock()
    retries = BuildRetries(RetryPolicy(jitter=lambda: 0.0), clock=clock)
    lines, waits = [], []
    while (retry := retries.after(BUILD, failure(fixture("resolve-head-500")))) is not None:
        lines.append(retry.line)
        waits.append(retry.wait)
        clock.now += retry.wait + 0.5  # the wait, then a try that fails in half a second
    assert waits == [0.5, 1.0, 2.0, 4.0]
    assert [line.rsplit("(", 1)[1] for line in lines] == ["try 2 of 5)", "try 3 of 5)", "try 4 of 5)", "try 5 of 5)"]
    assert lines[0] == ("registry 127.0.0.1:36729 answered 500 Internal Server Error to HEAD /v2/igfault/22665f47/base/manifests/v1 "
                        "while resolving 127.0.0.1:36729/igfault/22665f47/base:v1; trying again in 0.5 s (try 2 of 5)")
    assert retries.gave_up() == ("registry 127.0.0.1:36729 answered 500 Internal Server Error to HEAD /v2/igfault/22665f47/base/"
                                 "manifests/v1 while resolving 127.0.0.1:36729/igfault/22665f47/base:v1, on 5 tries over 9.5 s; "
                                 "check that it is up and healthy (`invoke engine.status`, the registry's log) and run `invoke build` again")


def test_no_wait_ends_later_than_the_total_after_the_first_fault():
    clock = Clock()
    retries = BuildRetries(RetryPolicy(jitter=lambda: 0.0), clock=clock)
    assert retries.after(BUILD, failure(fixture("push-manifest-503"))) is not None
    clock.now += 29.8  # a slow try (a long build), then the registry fails again
    assert retries.after(BUILD, failure(fixture("push-manifest-503"))) is None
    assert "on 2 tries over 29.8 s" in retries.gave_up()


def test_a_lost_layer_is_repaired_once_and_a_registry_fault_still_retried_in_the_same_decision():
    retries = BuildRetries(repair=DOCKER_DRIVER.repair)
    repaired = retries.after(BUILD, failure(LOST_LAYER_LOG))
    assert repaired is not None and repaired.repair.argv[1:3] == ("builder", "prune") and repaired.wait == 0
    assert retries.gave_up() is None
    assert retries.after(BUILD, failure(LOST_LAYER_LOG)) is None  # once per image
    assert retries.after(BUILD, failure(fixture("resolve-head-reset"))) is not None
    assert retries.after(BUILD, failure(fixture("run-failure-prints-500"))) is None
    assert retries.gave_up() is None  # the last failure was the step's own: the message is the build's


# --- the executor ---------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path):
    write_tree(tmp_path, {"images.yaml": IMAGES, "docker/Dockerfile.base": "FROM python:3.11-slim\nRUN true\n"})
    return load_config(tmp_path)


def test_a_build_whose_parent_lookup_met_a_500_is_built_again_and_says_so_once(config):
    runner = ScriptedRunner({"buildx": [(1, fixture("resolve-head-500")), BUILT]})
    said, waits = [], []
    result = run(config, runner, said, sleep=waits.append)
    assert result.ok, result.error
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "build")] * 2 and runner.ran[0] == runner.ran[1]
    retried = [line for line in said if "trying again" in line]
    assert len(retried) == 1 and retried[0].startswith("[base] registry 127.0.0.1:36729 answered 500 Internal Server Error to HEAD ")
    assert retried[0].endswith("(try 2 of 5)") and len(waits) == 1 and 0.25 <= waits[0] <= 0.5


def test_a_registry_that_keeps_failing_is_given_up_on_after_five_tries_in_one_line(config):
    runner = ScriptedRunner({"buildx": [(1, fixture("push-blob-start-502"))] * 6})
    said, waits = [], []
    result = run(config, runner, said, sleep=waits.append)
    assert len(runner.ran) == 5 and len(waits) == 4
    assert [line.rsplit("(", 1)[1] for line in said if "trying again" in line] == [f"try {k} of 5)" for k in (2, 3, 4, 5)]
    assert result.error.startswith("registry 127.0.0.1:44701 answered 502 Bad Gateway to POST /v2/igfault/cf381d0d/child/blobs/uploads/ "
                                   "while pushing 127.0.0.1:44701/igfault/cf381d0d/child:v1, on 5 tries over ")
    assert "\n" not in result.failure


@pytest.mark.parametrize("name", ["run-failure-prints-500", "dockerfile-error", "resolve-head-401", "push-manifest-404"])
def test_any_other_failure_is_tried_once(config, name):
    runner = ScriptedRunner({"buildx": [(1, fixture(name)), BUILT]})
    said: list[str] = []
    result = run(config, runner, said)
    assert len(runner.ran) == 1 and not result.ok
    assert not any("trying again" in line for line in said)
    assert result.error.startswith("`/usr/bin/docker buildx build --progress ...` exited 1: ERROR: failed to solve: ")


class Landed:
    """A registry that has the image's tag once the push's answer was lost."""

    host = "127.0.0.1:5000"
    insecure = True

    def __init__(self, answer: tuple[str, str, dict] | None = None) -> None:
        self.answer = answer or whole_image()

    def manifest_digest(self, name: str, tag: str) -> str:
        return self.answer[1]

    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]:
        return self.answer


def test_a_push_that_went_through_although_its_answer_was_lost_is_not_pushed_again(config):
    from imagegraph.adapters.engine.builders import BuildxBuilder

    runner = ScriptedRunner({"buildx": [(1, fixture("push-manifest-reset")), BUILT]})
    said: list[str] = []
    result = run(config, runner, said, BuildxBuilder(docker="/usr/bin/docker"), push=True, registry=Landed())
    assert result.ok and len(runner.ran) == 1  # the tag is not moved a second time
    assert any("is in the registry now: the push went through, not building again" in line for line in said)
    # a lookup that failed leaves nothing in the registry: a tag already there (a forced rebuild) is no reason to stop
    again = ScriptedRunner({"buildx": [(1, fixture("resolve-head-500")), BUILT]})
    assert run(config, again, [], BuildxBuilder(docker="/usr/bin/docker"), push=True, registry=Landed()).ok
    assert len(again.ran) == 2


def test_a_push_cut_short_that_left_the_tag_naming_one_platform_is_pushed_again(tmp_path):
    """buildx's second push on the docker driver writes each platform's manifest to the tag before the index: cut short, the
    tag exists but names one platform. That is no image that went through: the build runs again, which writes the index."""
    from imagegraph.adapters.engine.builders import BuildxBuilder

    write_tree(tmp_path, {"images.yaml": IMAGES + "    platforms: [linux/amd64, linux/arm64]\n",
                          "docker/Dockerfile.base": "FROM python:3.11-slim\nRUN true\n"})
    config = load_config(tmp_path)
    one_platform = (OCI_MANIFEST, "sha256:" + "b" * 64, {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []})
    runner = ScriptedRunner({"buildx": [(1, fixture("push-manifest-reset")), BUILT]})
    said: list[str] = []
    result = run(config, runner, said, BuildxBuilder(docker="/usr/bin/docker"), push=True, registry=Landed(one_platform))
    assert len(runner.ran) == 2 and not any("the push went through" in line for line in said)
    assert result.ok
    # the same tag naming the whole index is a push that went through
    runner = ScriptedRunner({"buildx": [(1, fixture("push-manifest-reset")), BUILT]})
    assert run(config, runner, [], BuildxBuilder(docker="/usr/bin/docker"), push=True, registry=Landed()).ok
    assert len(runner.ran) == 1


class StoppingRunner(ScriptedRunner):
    def __init__(self, script, stop: Stop) -> None:
        super().__init__(script)
        self.stop = stop


def test_a_stop_during_the_wait_ends_it_at_once(config):
    stop = Stop()
    runner = StoppingRunner({"buildx": [(1, fixture("resolve-head-503")), BUILT]}, stop)
    threading.Timer(0.2, stop.request, args=(2,)).start()  # SIGINT, while the executor waits (a minute, by this policy)
    started = time.monotonic()
    result = run(config, runner, [], sleep=None, retry=RetryPolicy(backoff=60, max_backoff=60, total=120, jitter=lambda: 0.0))
    assert time.monotonic() - started < 5
    assert result.stopped == "interrupted" and len(runner.ran) == 1


def test_a_bake_a_registry_failed_counts_as_the_first_try_of_each_image_then_each_builds_alone(tmp_path):
    runner = ScriptedRunner({"buildx": [(1, fixture("bake-resolve-500")), BUILT, (1, fixture("resolve-head-502")), BUILT]})
    said, waits = [], []
    results = run_family(tmp_path, runner, FakeRegistry(set()), said, sleep=waits.append)
    assert all(result.ok for result in results.values()), results
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "bake")] + [("buildx", "build")] * 3
    lines = [line for line in said if "(try " in line]
    assert [line.split("]")[0] + "] " + line.rsplit("; ", 1)[1].split(" in ")[0] for line in lines] == [
        "[base] building it on its own", "[app] building it on its own", "[app] trying again"]
    assert lines[-1].endswith("(try 3 of 5)")  # the bake was app's first try, its lone build the second
    assert len(waits) == 2


def test_per_platform_only_the_failed_platforms_build_is_tried_again_and_the_index_is_joined_once(tmp_path, monkeypatch):
    memory = MemoryRegistry()
    said: list[str] = []
    result, runner = build_per_platform(tmp_path, monkeypatch, memory, script={"buildx": [BUILT, (1, fixture("push-blob-start-503")),
                                                                                          BUILT]}, said=said)
    assert result.ok, result.error
    assert [argv[argv.index("--platform") + 1] for argv in runner.ran] == ["linux/amd64", "linux/arm64", "linux/arm64"]
    assert sum("(try 2 of 5)" in line for line in said) == 1
    # the index only once both are pushed, and once
    put = memory.sent.index(("PUT", "unit/app/manifests/" + "f" * 16))
    assert [path for method, path in memory.sent[:put] if method == "push"] == ["unit/app:" + "f" * 16 + "-amd64",
                                                                                "unit/app:" + "f" * 16 + "-arm64"]
    assert sum(event == ("PUT", "unit/app/manifests/" + "f" * 16) for event in memory.sent) == 1
    assert [m["platform"]["architecture"] for m in memory.body("unit/app", "f" * 16)["manifests"]] == ["amd64", "arm64"]


@pytest.mark.parametrize("request_", [("PUT", "/manifests/" + "f" * 16), ("GET", "/manifests/" + "f" * 16 + "-arm64"),
                                      ("HEAD", "/manifests/" + "f" * 16)], ids=["the index's PUT", "a part's read", "the read-back"])
def test_a_passing_error_of_the_join_is_tried_again_by_the_registry_client_and_builds_nothing_again(tmp_path, monkeypatch, request_):
    """What a 503 to ``imagetools create``'s PUT was to the build's retries, the join's requests are to the registry client's."""
    memory = MemoryRegistry(faults=((*request_, 503),))
    said: list[str] = []
    result, runner = build_per_platform(tmp_path, monkeypatch, memory, said=said)
    assert result.ok, result.error
    assert len(runner.ran) == 2 and not any("trying again" in line for line in said)
    assert memory.sent.count((request_[0], "unit/app" + request_[1])) >= 2 and len(memory.slept) == 1  # the client's own retry
    assert result.digest == memory.digest("unit/app", "f" * 16) is not None


def test_a_join_the_registry_keeps_failing_fails_the_image_in_one_line(tmp_path, monkeypatch):
    memory = MemoryRegistry(faults=(("PUT", "/manifests/" + "f" * 16, 503),) * 6)
    result, runner = build_per_platform(tmp_path, monkeypatch, memory)
    assert not result.ok and len(runner.ran) == 2
    assert result.error.startswith(f"registry 127.0.0.1:5000 answered 503 to PUT /v2/unit/app/manifests/{'f' * 16} on 5 tries over ")
    assert "\n" not in result.error and ("unit/app", "f" * 16) not in memory.manifests
