"""Progress: trackers read real tool output; the board is live on a terminal and plain in a log."""

from __future__ import annotations

import io
import time
from pathlib import Path

from imagegraph.adapters.engine.builders import BuildxBuilder
from imagegraph.adapters.runner import Command, Runner
from imagegraph.adapters.wheelhouse import Wheelhouse
from imagegraph.core.request import BuildRequest
from imagegraph.presentation.progress import BuildKitTracker, PipTracker, Progress, PushTracker, elapsed, failure_context, phase_of, tracker_for

# `docker build --progress plain` then `docker push` of the app image, as the engine printed them.
ENGINE_LOG = (Path(__file__).parent / "data" / "engine-build-and-push.log").read_text().splitlines()

PIP_DOWNLOAD = """\
Looking in indexes: https://pypi.org/simple
Processing /opt/pypi/files/uvicorn-0.54.0-py3-none-any.whl
Collecting click>=7.0 (from uvicorn==0.54.0)
  Downloading click-8.5.1-py3-none-any.whl (126 kB)
Processing /opt/pypi/files/h11-0.16.0-py3-none-any.whl (from uvicorn==0.54.0)
Saved ./pd/uvicorn-0.54.0-py3-none-any.whl
Saved ./pd/click-8.5.1-py3-none-any.whl
Saved ./pd/h11-0.16.0-py3-none-any.whl
Successfully downloaded uvicorn click h11
""".splitlines()


def feed(tracker, lines):
    notes, seen = [], []
    for line in lines:
        notes += tracker.feed(line)
        seen.append(tracker.describe())
    return notes, seen


def test_buildkit_steps_are_noted_when_they_end_with_their_time():
    build_lines = ENGINE_LOG[: next(i for i, line in enumerate(ENGINE_LOG) if line.startswith("The push refers"))]
    notes, seen = feed(BuildKitTracker(), build_lines)
    assert notes == [
        "step runtime 2/4 RUN groupadd --system --gid 10001 scorer && useradd --system --uid 10...: done",
        "step deps 2/2 RUN --mount=type=bind,source=.wheelhouse/requirements,target=/wheels ...: done in 1s",
        "step runtime 3/4 COPY --from=deps /opt/deps /opt/deps: done",
        "step runtime 4/4 COPY src/scorer /app/scorer: done",
    ]
    assert "step deps 2/2 RUN --mount=type=bind,source=.wheelhouse/requirements,target=/wheels ..." in seen
    assert seen[-1] == "exporting cache"


def test_buildkit_cached_failed_and_buildx_platform_steps():
    tracker = BuildKitTracker()
    lines = ["#4 [linux/arm64 base 2/3] RUN pip install torch", "#4 CACHED",
             "#5 [linux/arm64 base 3/3] RUN python -c 'import torch'", "#5 12.3 Traceback", "#5 ERROR: process exited with 1",
             "#6 [base 3/3] RUN slow", "#6 DONE 75.2s"]
    notes, _ = feed(tracker, [*lines, "#4 CACHED", "#4 DONE 0.0s"])  # a cached step ends at CACHED; repeats say nothing more
    assert notes == ["step linux/arm64 base 2/3 RUN pip install torch: cached",
                     "step linux/arm64 base 3/3 RUN python -c 'import torch': failed",
                     "step base 3/3 RUN slow: done in 1m15s"]


def test_push_counts_layers_in_the_registry():
    push_lines = ENGINE_LOG[next(i for i, line in enumerate(ENGINE_LOG) if line.startswith("The push refers")):]
    tracker = PushTracker()
    notes, seen = feed(tracker, push_lines)
    assert seen[0] == "pushing"
    assert "pushing: 0/7 layers in the registry" in seen
    assert seen[-1] == "pushing: 7/7 layers in the registry"
    assert notes == ["pushed 581b876e6fc4c9aa (7 layer(s), 3 uploaded)"]
    assert tracker.digest == "sha256:992f65c30161eddda2f81f2280a7591c8ab985735e0b2d576d0e2c20621fca0c"


def test_pip_download_shows_what_is_resolved_saved_and_in_flight():
    tracker = PipTracker("requirements.txt")
    _, seen = feed(tracker, PIP_DOWNLOAD)
    assert "wheels requirements.txt: 2 resolved, 0 saved, downloading click-8.5.1-py3-none-any.whl (126 kB)" in seen
    assert seen[-1] == "wheels requirements.txt: 3 resolved, 3 saved"


def test_each_builder_command_gets_its_tracker_and_phase(tmp_path):
    # what a command is for travels with it (its purpose); nothing reads its argv back to learn it
    request = BuildRequest(image="app", dockerfile=tmp_path / "Dockerfile", context=tmp_path, ref="r:5000/ns/app:abc",
                           platforms=("linux/amd64", "linux/arm64"), push=True)
    per_platform = BuildxBuilder(multi_platform=False).commands(request)
    assert [phase_of(c) for c in per_platform] == ["build linux/amd64", "build linux/arm64"]  # the join is no command: the executor's
    assert [type(tracker_for(c)).__name__ for c in per_platform] == ["BuildKitTracker", "BuildKitTracker"]
    (buildx,) = BuildxBuilder(builder="farm").commands(request)
    assert phase_of(buildx) == "build linux/amd64,linux/arm64" and isinstance(tracker_for(buildx), BuildKitTracker)
    bake = BuildxBuilder().bake_command(tmp_path / "bake.json", ["base", "app"], tmp_path / "bake.metadata.json")
    assert bake is not None and phase_of(bake) == "build" and isinstance(tracker_for(bake), BuildKitTracker)
    repair = BuildxBuilder(docker="/usr/bin/docker").repair(buildx, "failed to solve: layer does not exist")
    assert repair is not None and repair.command is not None
    assert phase_of(repair.command) == "prune" and tracker_for(repair.command) is None
    (tmp_path / "r.txt").write_text("click==8.5.1\n")
    download = Wheelhouse(tmp_path, Runner()).download_command("r.txt", "linux/amd64", tmp_path / "d")
    assert "--quiet" not in download.argv  # the tracker needs pip's lines
    tracker = tracker_for(download)
    assert isinstance(tracker, PipTracker) and tracker.requirements == "r.txt"
    anything = Command.of("/usr/bin/docker", "push", "r:5000/ns/app:abc")  # no purpose given: a phase named after the program
    assert phase_of(anything) == "/usr/bin/docker" and tracker_for(anything) is None
    assert isinstance(tracker_for(Command.of("docker", "push", "x", purpose="push")), PushTracker)


def test_elapsed_is_short():
    assert [elapsed(s) for s in (0, 7.9, 65, 3725)] == ["0s", "7s", "1m05s", "1h02m"]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_plain_progress_never_moves_the_cursor_and_beats_with_elapsed_time():
    out, clock = io.StringIO(), Clock()
    board = Progress(out, live=False, heartbeat=0.05, clock=clock)
    with board:
        board.begin("base")
        board.phase("base", "build linux/amd64")
        on_line = board.follow("base", BuildKitTracker())
        on_line("#5 [2/3] RUN pip install torch")
        clock.now += 95
        time.sleep(0.2)  # a few heartbeats
        on_line("#5 DONE 95.0s")
        board.say("[base] a message")
        board.end("base")
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert "[base] still working, 1m35s in: build linux/amd64 1m35s: step 2/3 RUN pip install torch\n" in text
    assert "[base] step 2/3 RUN pip install torch: done in 1m35s\n" in text
    assert text.endswith("[base] a message\n")


def test_live_progress_redraws_one_status_line_and_prints_messages_above_it():
    out, clock = io.StringIO(), Clock()
    board = Progress(out, live=True, clock=clock)
    board.begin("base")
    board.begin("app")
    board.phase("base", "wheels", "wheels requirements-torch.txt: 3 resolved, 1 saved")
    clock.now += 42
    assert board.status() == "app 42s | base 42s wheels: wheels requirements-torch.txt: 3 resolved, 1 saved"
    board.say("[app] building")
    board.end("app")
    board.end("base")
    text = out.getvalue()
    # the message erased the status line, printed, and the status came back under it; ending the last image clears it
    assert text.startswith("[app] building\napp 42s | base 42s wheels")
    assert text.endswith("\r\x1b[2K")


def test_a_say_callback_gets_plain_lines_and_no_status():
    lines: list[str] = []
    board = Progress(say=lines.append, live=True)
    assert not board.live
    board.begin("app")
    board.say("hello")
    board.end("app")
    assert lines == ["hello"]


def test_a_failed_command_is_explained_by_what_its_failed_step_printed():
    run_failed = ("#4 [1/2] FROM docker.io/library/python:3.11-slim\n#4 CACHED\n\n"
                  "#5 [2/2] RUN ./check.sh\n#5 0.159 checking torch\n#5 0.201 ImportError: no module named torch\n"
                  "#5 ERROR: executor failed running [/bin/sh -c ./check.sh]: exit code: 1\n"
                  "------\n > [2/2] RUN ./check.sh:\n------\nexecutor failed running [/bin/sh -c ./check.sh]: exit code: 1\n")
    assert failure_context(run_failed) == ("checking torch", "ImportError: no module named torch")
    assert failure_context(run_failed, limit=1) == ("ImportError: no module named torch",)
    # the engine's export failed: no step printed anything, and the message's last line says it all
    lost_layer = (Path(__file__).parent / "data/engine-lost-layer.log").read_text()
    assert failure_context(lost_layer) == ()
    # not BuildKit (pip, docker push): the lines before the last
    pip = "Collecting torch==9.9\nERROR: Could not find a version that satisfies the requirement torch==9.9\nERROR: No matching distribution found\n"
    assert failure_context(pip) == ("Collecting torch==9.9", "ERROR: Could not find a version that satisfies the requirement torch==9.9")


def test_a_push_by_buildkit_itself_is_a_line_naming_the_reference():
    tracker = BuildKitTracker()
    digest = "sha256:" + "ab" * 32
    assert tracker.feed(f"#9 pushing manifest for 127.0.0.1:5000/ns/base:0c25@{digest}") == []  # started, not done
    assert tracker.feed(f"#9 pushing manifest for 127.0.0.1:5000/ns/base:0c25@{digest} 0.1s done") == ["pushed 127.0.0.1:5000/ns/base:0c25"]
    assert tracker.feed("#12 pushing 127.0.0.1:5000/ns/base:0c25 with docker") == []
