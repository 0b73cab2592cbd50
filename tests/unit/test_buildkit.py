"""BuildKit's plain progress lines, taken apart once for every reader."""

from __future__ import annotations

import pytest

from imagegraph.core.buildkit import Line, StepCount, count_steps, parse


@pytest.mark.parametrize(("text", "expected"), [
    ("#7 [runtime 2/4] RUN pip install x", Line("step", "7", "runtime 2/4", "runtime", 2, 4, "RUN pip install x")),
    ("#9 [linux/arm64 runtime 3/5] COPY a b", Line("step", "9", "linux/arm64 runtime 3/5", "linux/arm64 runtime", 3, 5, "COPY a b")),
    ("#5 [2/2] RUN exit 3", Line("step", "5", "2/2", "", 2, 2, "RUN exit 3")),
    ("#14 [tools linux/amd64 2/2] RUN echo", Line("step", "14", "tools linux/amd64 2/2", "tools linux/amd64", 2, 2, "RUN echo")),
    ("#3 [linux/arm64 internal] load metadata for x", Line("vertex", "3", "linux/arm64 internal", text="load metadata for x")),
    ("#20 [base] exporting to image", Line("vertex", "20", "base", text="exporting to image")),
    ("#7 0.412 Collecting torch", Line("log", "7", seconds=0.412, text="Collecting torch")),
    ("#7 CACHED", Line("cached", "7")),
    ("#7 DONE 12.3s", Line("done", "7", seconds=12.3)),
    ("#7 ERROR: process did not complete", Line("error", "7", text="process did not complete")),
    ("#9 pushing manifest for r:5000/ns/app:abc@sha256:" + "0" * 64 + " 0.1s done", Line("pushed", "9", ref="r:5000/ns/app:abc")),
    ("#9 exporting to image", Line("other", "9", text="exporting to image")),
    ("ERROR: failed to solve: exit code: 3", Line("none", text="ERROR: failed to solve: exit code: 3")),
])
def test_parse(text, expected):
    assert parse(text) == expected


def test_instruction_is_the_steps_keyword():
    assert parse("#4 [1/3] FROM docker.io/library/python:3.11-slim").instruction == "FROM"
    assert parse("#4 [internal] load .dockerignore").instruction == ""


def test_count_steps_counts_steps_not_from_lines_and_those_from_a_cache():
    output = "\n".join(["#4 [1/3] FROM python", "#4 CACHED", "#5 [2/3] RUN a", "#5 CACHED", "#6 [3/3] RUN b", "#6 DONE 1.0s",
                        "#5 [2/3] RUN a", "#7 exporting to image", "#7 CACHED"])
    assert count_steps(output) == StepCount(cached=1, total=2)
