"""Which images build together in one bake, and bake's output taken apart per image."""

from __future__ import annotations

import pytest

from imagegraph.core.buildkit import StepCount, count_steps
from imagegraph.core.chain import BakeOutput, bake_groups
from imagegraph.core.plan import Decision, ImagePlan, ReusedImage
from tests.conftest import built_image

PARENTS = {"base": None, "ci": "base", "app": "base", "devcontainer": "base", "tools": "app", "other": None}


def entry(name: str, decision: Decision = Decision.BUILD, *, push: bool = True) -> ImagePlan:
    if decision is Decision.BUILD:
        return built_image(name, f"r/{name}:f", push=push)
    return ReusedImage(name=name, reason="test", fingerprint="f", ref=f"r/{name}:f", parent_ref=None, platforms=("linux/amd64",), push=push)


@pytest.mark.parametrize(("decisions", "expected"), [
    # the cold family: one bake of all
    ({"base": "b", "ci": "b", "app": "b", "devcontainer": "b"}, (("base", "ci", "app", "devcontainer"),)),
    # a code change: the app alone, as before
    ({"base": "r", "ci": "r", "app": "b", "devcontainer": "r"}, ()),
    # siblings without their parent: nothing shares a result, each alone
    ({"base": "r", "ci": "b", "app": "b", "devcontainer": "b"}, ()),
    # a grandchild with its parent, the grandparent reused
    ({"base": "r", "ci": "r", "app": "b", "devcontainer": "r", "tools": "b"}, (("app", "tools"),)),
    # two separate families
    ({"base": "b", "ci": "b", "other": "b"}, (("base", "ci"),)),
    # a chain broken in the middle is two groups or none
    ({"base": "b", "ci": "b", "app": "r", "tools": "b"}, (("base", "ci"),)),
])
def test_bake_groups(decisions, expected):
    kinds = {"b": Decision.BUILD, "r": Decision.REUSE}
    entries = [entry(name, kinds[kind]) for name, kind in decisions.items()]
    assert bake_groups(entries, PARENTS) == expected


def test_images_that_are_not_pushed_build_alone():
    # bake's result is checked in the registry; a local-only build has nothing to check there
    assert bake_groups([entry("base"), entry("ci", push=False)], PARENTS) == ()


# Lines as bake 0.13 prints them for base (two platforms) with app and tools built on it, in the order it printed them:
# base's amd64 RUN is named after tools, which reached that vertex first.
BAKE = """\
#1 [internal] load local bake definitions
#1 DONE 0.0s
#2 [base internal] load build definition from Dockerfile.base
#2 DONE 0.0s
#9 [app linux/amd64 1/2] FROM docker.io/library/python:3.11-slim@sha256:ce5c
#9 CACHED
#14 [tools linux/amd64 2/2] RUN echo ns/1 > /family.txt && uname -m > /arch.txt
#14 DONE 0.4s
#15 [app 1/2] COPY src/svc /app/svc
#15 DONE 0.1s
#19 [base linux/arm64 2/2] RUN echo ns/1 > /family.txt && uname -m > /arch.txt
#19 0.213 hello
#19 DONE 0.5s
#18 [tools 1/2] RUN echo tools > /tools.txt
#18 CACHED
#20 [base] exporting to image
#20 pushing manifest for r/base:f@sha256:0123 0.0s done
#20 DONE 1.0s
"""
DOCKERFILES = {
    "base": ["RUN echo ${NAMESPACE} > /family.txt &&   uname -m > /arch.txt"],
    "app": ["COPY src/svc /app/svc"],
    "tools": ["RUN echo tools > /tools.txt"],
}


def split(text: str) -> BakeOutput:
    output = BakeOutput(["base", "app", "tools"], DOCKERFILES, {"app": "base", "tools": "base"})
    for line in text.splitlines():
        output.feed(line)
    return output


def test_a_parents_step_named_after_a_child_counts_for_the_parent():
    output = split(BAKE)
    assert count_steps(output.output_of("base")) == StepCount(cached=0, total=2)
    assert count_steps(output.output_of("tools")) == StepCount(cached=1, total=1)
    assert count_steps(output.output_of("app")) == StepCount(cached=0, total=1)


def test_lines_lose_the_target_name_and_keep_the_rest():
    output = BakeOutput(["base", "app"], DOCKERFILES, {"app": "base"})
    assert output.feed("#19 [base linux/arm64 2/2] RUN echo x > /family.txt && uname -m > /arch.txt") == (
        {"base"}, "#19 [linux/arm64 2/2] RUN echo x > /family.txt && uname -m > /arch.txt")
    assert output.feed("#19 0.213 hello") == ({"base"}, "#19 0.213 hello")
    assert output.feed("#20 [app] exporting to image") == ({"app"}, "#20 exporting to image")
    assert output.feed("#1 [internal] load local bake definitions") == (set(), "#1 [internal] load local bake definitions")
    assert output.feed("ERROR: failed to solve") == (set(), "ERROR: failed to solve")


def test_a_step_two_siblings_share_counts_for_both_and_a_parents_for_the_parent_alone():
    instructions = {"base": ["RUN setup"], "ci": ["RUN apt-get install -y git", "RUN pip install ci"],
                    "devcontainer": ["RUN apt-get install -y git", "RUN useradd dev"], "app": ["RUN apt-get install -y git"]}
    output = BakeOutput(["base", "ci", "devcontainer", "other"], instructions, {"ci": "base", "devcontainer": "base", "other": None})
    for line in ["#3 [ci 2/3] RUN setup", "#3 DONE 1.0s", "#4 [ci 1/3] RUN apt-get install -y git", "#4 DONE 2.0s",
                 "#5 [ci 2/3] RUN pip install ci", "#5 DONE 1.0s", "#6 [devcontainer 2/3] RUN useradd dev", "#6 CACHED",
                 "#3 [base 2/2] RUN setup"]:
        output.feed(line)
    assert count_steps(output.output_of("base")) == StepCount(cached=0, total=1)
    assert count_steps(output.output_of("ci")) == StepCount(cached=0, total=2)
    assert count_steps(output.output_of("devcontainer")) == StepCount(cached=1, total=2)


def test_a_failed_step_names_the_image_it_belongs_to():
    output = split("#14 [tools linux/amd64 2/2] RUN echo ns/1 > /family.txt && uname -m > /arch.txt\n"
                   "#14 ERROR: process did not complete successfully: exit code: 3\n"
                   "#18 [tools 1/2] RUN echo tools > /tools.txt\n#18 CANCELED\n"
                   "ERROR: failed to solve: exit code: 3\n")
    assert output.failed() == {"base"}
    # bake's closing lines belong to no vertex: every image's log has them
    assert "ERROR: failed to solve" in output.output_of("tools")
    assert "#14 ERROR" not in output.output_of("tools")


def test_only_a_builder_that_builds_all_platforms_at_once_bakes(tmp_path):
    from imagegraph.adapters.engine.builders import BuildxBuilder

    bake_file = tmp_path / "base.json"
    assert BuildxBuilder(docker="docker", multi_platform=False).bake_command(bake_file, ["base", "app"]) is None
    command = BuildxBuilder(docker="docker", builder="farm").bake_command(bake_file, ["base", "app"])
    assert command is not None
    assert command.argv == ("docker", "buildx", "bake", "--progress", "plain", "--builder", "farm", "--file", str(bake_file), "base", "app")


# A cold bake as the engine prints it, in the order of a slow start: base's solve runs its amd64 RUN (#9), and app's
# solve, which holds that vertex too, reaches it only afterwards and is told it is CACHED (the result is in memory).
LATE_SOLVE = """\
#7 [base linux/amd64 1/2] FROM docker.io/library/python:3.11-slim@sha256:7daef380f9b1
#7 DONE 0.1s
#9 [base linux/amd64 2/2] RUN echo ns/1 > /family.txt && uname -m > /arch.txt
#9 DONE 2.3s
#12 [base linux/arm64 2/2] RUN echo ns/1 > /family.txt && uname -m > /arch.txt
#12 0.412 aarch64
#12 DONE 9.1s
#7 [app linux/amd64 1/2] FROM docker.io/library/python:3.11-slim@sha256:7daef380f9b1
#7 DONE 0.2s
#9 [app linux/amd64 2/2] RUN echo ns/1 > /family.txt && uname -m > /arch.txt
#9 CACHED
#15 [app 1/2] COPY src/svc /app/svc
#15 DONE 0.1s
#16 [tools linux/amd64 2/2] RUN echo tools > /tools.txt
#16 CACHED
"""


def test_a_step_one_target_ran_is_not_cached_because_a_later_solve_was_told_so():
    output = split(LATE_SOLVE)
    assert count_steps(output.output_of("base")) == StepCount(cached=0, total=2)
    assert count_steps(output.output_of("app")) == StepCount(cached=0, total=1)
    # a step that no solve ran here was answered from a cache
    assert count_steps(output.output_of("tools")) == StepCount(cached=1, total=1)
    # the same lines on their own (a plain build's output) count the same way
    assert count_steps(LATE_SOLVE) == StepCount(cached=1, total=4)


# A warm build as the engine prints it: app's COPY is answered from the registry cache, and its layer is fetched
# afterwards, when tools' step needs it: the vertex ends twice, CACHED first.
CACHED_THEN_FETCHED = """\
#11 [app 1/2] COPY src/svc /app/svc
#11 CACHED
#14 [app] exporting to image
#11 [app 1/2] COPY src/svc /app/svc
#11 sha256:51bebac378217c7440ce9cda552e33d529fe3634daaa50bb08c26efc5017bc74 161B / 161B 0.0s done
#11 DONE 0.1s
"""


def test_a_cached_step_whose_layer_is_fetched_later_is_still_cached():
    assert count_steps(CACHED_THEN_FETCHED) == StepCount(cached=1, total=1)


# The same, caught another way round (the engine, a warm bake): app's COPY is answered from the registry cache, its
# line is cut by another vertex's ("#11 ..."), and it is never told CACHED: it ends DONE after fetching its layer.
FETCHED_NEVER_TOLD_CACHED = """\
#11 [app 1/2] COPY src/svc /app/svc
#11 ...
#12 [tools internal] load build definition from Dockerfile.tools
#12 DONE 0.0s
#11 [app 1/2] COPY src/svc /app/svc
#11 sha256:a85464527d5bd803da911f9fe78e470c664f6d3b0b57e7ae28377997c4b2b6cf 160B / 160B 0.0s done
#11 sha256:22535c541a41f9ffcd09c981f68a3741ad2e0c3d3340754f574732042d98da0c 181B / 181B 0.0s done
#11 DONE 0.1s
#13 [app 2/2] COPY src/other /app/other
#13 DONE 0.1s
"""


def test_a_step_that_fetched_its_layer_before_it_ended_was_answered_from_the_registry_cache():
    # the COPY that ran here (#13) fetched nothing
    assert count_steps(FETCHED_NEVER_TOLD_CACHED) == StepCount(cached=1, total=2)
