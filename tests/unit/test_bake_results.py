"""Which images build together in one bake, and each image's result from bake's own records (rawjson progress, metadata file)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from imagegraph.core.bake_results import BakeProgress, BakeTarget, bake_groups, read_metadata
from imagegraph.core.buildkit import StepCount, count_steps, parse
from imagegraph.core.plan import Decision, ImagePlan, ReusedImage
from imagegraph.core.values import ImageRef
from tests.conftest import built_image

PARENTS = {"base": None, "ci": "base", "app": "base", "devcontainer": "base", "tools": "app", "other": None}


def entry(name: str, decision: Decision = Decision.BUILD, *, push: bool = True) -> ImagePlan:
    if decision is Decision.BUILD:
        return built_image(name, f"r/{name}:{'f' * 16}", push=push)
    return ReusedImage(name=name, reason="test", fingerprint="f" * 16, image=ImageRef.parse(f"r/{name}:{'f' * 16}"), parent_image=None,
                       platforms=("linux/amd64",), push=push)


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


DATA = Path(__file__).parent / "data" / "bake"
FAMILY = {"base": None, "child": "base"}


def progress(lines, targets=("base", "child"), parents=None) -> BakeProgress:
    made = BakeProgress(list(targets), parents if parents is not None else FAMILY)
    for line in lines:
        made.feed(line)
    return made


def replay(name: str, targets=("base", "child"), parents=None) -> BakeProgress:
    """A real bake's ``--progress rawjson`` output (buildx 0.13.1, dockerd 26), fed line by line as the runner hands it over."""
    return progress((DATA / name).read_text().splitlines(), targets, parents)


def test_a_childs_own_failed_step_is_the_childs_while_its_parents_steps_are_cancelled():
    # base's FROM was cancelled when the child's COPY of a file its context lacks failed: only the child failed
    output = replay("child-copy-missing.rawjson")
    failures = output.failures()
    assert list(failures) == ["child"]
    assert failures["child"].startswith("[2/3] COPY missing.txt /m.txt: failed to calculate checksum") and failures["child"].endswith(
        '"/missing.txt": not found')
    assert "ERROR: failed to calculate checksum" in output.output_of("child")
    assert "CANCELED" in output.output_of("base") and "#9 ERROR" not in output.output_of("base")
    # bake's closing lines belong to no vertex: every image's log has them
    assert "ERROR: failed to solve" in output.output_of("base")


def test_a_parents_failed_step_is_the_parents_though_the_childs_solve_reported_it_first():
    output = replay("parent-run-fails.rawjson")
    assert list(output.failures()) == ["base"] and "exit code: 3" in output.failures()["base"]
    assert "bkc7985-fail\n" in output.output_of("base") + "\n"  # what the step printed is in the parent's log
    assert "] RUN echo bkc7985-fail" not in output.output_of("child")  # (bake's closing excerpt of the Dockerfile is everyone's)


def without_reports(name: str, of: str) -> list[str]:
    """A real capture as if one solve had never reported a vertex whose name starts with ``of`` (BuildKit ran it for another)."""
    lines: list[str] = []
    buffer: list[str] = []
    for line in (DATA / name).read_text().splitlines():
        if not buffer and line != "{":
            lines.append(line)  # bake's own text
            continue
        buffer.append(line)
        if line == "}":
            status = json.loads("\n".join(buffer))
            buffer = []
            status["vertexes"] = [v for v in status.get("vertexes") or () if not v.get("name", "").startswith(of)]
            if any(status.values()):
                lines.extend(json.dumps(status, indent=2).splitlines())
    return lines


def test_a_parents_failed_step_that_only_the_childs_solve_reported_is_nobodys_for_sure():
    # seen on a loaded engine: base's solve never reported its failed RUN, which the child's solve ran for both
    output = progress(without_reports("parent-run-fails.rawjson", "[base 2/2]"))
    assert "ERROR: process \"/bin/sh -c echo bkc7985-fail && exit 3\"" in output.output_of("child")  # the child's solve said it
    assert output.failures() == {}  # not the child's: the step stands on no context of the child's own; the images build alone


def test_a_childs_failed_step_on_its_own_context_is_its_own_whatever_its_parent_reported():
    output = progress(without_reports("child-copy-missing.rawjson", "[base"))
    assert list(output.failures()) == ["child"] and "COPY missing.txt" in output.failures()["child"]


def test_each_image_gets_its_own_steps_and_the_pushes_of_its_own_tag():
    output = replay("parent-and-two-children.rawjson", ("base", "child", "tools"), {"base": None, "child": "base", "tools": "base"})
    assert output.failures() == {}
    assert {name: count_steps(output.output_of(name)) for name in ("base", "child", "tools")} == dict.fromkeys(
        ("base", "child", "tools"), StepCount(cached=0, total=1))
    for name in ("base", "child", "tools"):
        own = output.output_of(name)
        assert f"pushing manifest for 127.0.0.1:5000/bkc7985-ok/{name}:1@" in own
        assert all(f"/{other}:1" not in own for other in ("base", "child", "tools") if other != name)
        assert [parse(line).kind for line in own.splitlines() if "pushing manifest for" in line] == ["pushed"]


def test_the_metadata_file_names_what_each_target_exported():
    built = read_metadata((DATA / "parent-and-two-children.metadata.json").read_text(), ["base", "child", "tools", "other"])
    assert set(built) == {"base", "child", "tools"}
    assert built["base"] == BakeTarget("sha256:75f1bb1de6300e3e344daf301850d3db500a9d0544bf11e44cff8ad907d54167",
                                       "default/default/yyx72dvccheepqtv365zvw43a")
    # an empty file (a bake that failed writes none) or anything but an object of objects names no target
    assert read_metadata("", ["base"]) == {} and read_metadata("[1]", ["base"]) == {} and read_metadata('{"base": 1}', ["base"]) == {}


def status(*vertexes: dict, logs: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """One rawjson status document as buildx prints it: indented JSON over several lines."""
    document = {"vertexes": list(vertexes),
                "logs": [{"vertex": v, "stream": 1, "data": base64.b64encode(text.encode()).decode(), "timestamp": T1} for v, text in logs]}
    return json.dumps(document, indent=2).splitlines()


T0, T1, T2 = "2024-05-01T10:00:00.000000001Z", "2024-05-01T10:00:01.5Z", "2024-05-01T10:00:02.25Z"
RUN_BASE, RUN_CHILD, RUN_TOOLS = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64


def vertex(digest: str, name: str, *, done: bool = True, cached: bool = False, error: str = "") -> dict:
    found = {"digest": digest, "name": name, "started": T0}
    if done:
        found["completed"] = T2
    if cached:
        found["cached"] = True
    if error:
        found["error"] = error
    return found


def test_a_step_one_target_ran_is_not_cached_because_a_later_solve_was_told_so():
    # base's solve runs its RUN; app's solve, which holds that vertex too, reaches it afterwards and is told CACHED
    output = progress([*status(vertex(RUN_BASE, "[base 2/2] RUN echo base")),
                       *status(vertex(RUN_BASE, "[child 2/2] RUN echo base", cached=True)),
                       *status(vertex(RUN_CHILD, "[child 1/2] RUN echo child", cached=True))])
    assert count_steps(output.output_of("base")) == StepCount(cached=0, total=1)
    assert count_steps(output.output_of("child")) == StepCount(cached=1, total=1)
    assert "#1 DONE 2.2s" in output.output_of("base").splitlines()


def test_a_parents_step_that_its_childs_solve_ran_first_is_run_not_cached():
    # seen on an empty engine: app's solve (amd64 alone) reached base's amd64 RUN first and ran it; base's own solve was told
    # CACHED for it, and ran the arm64 one itself: both of base's steps ran on this engine
    run_arm = "sha256:" + "4" * 64
    output = progress([*status(vertex(RUN_BASE, "[child linux/amd64 2/2] RUN echo base")),
                       *status(vertex(RUN_BASE, "[base linux/amd64 2/2] RUN echo base", cached=True)),
                       *status(vertex(run_arm, "[base linux/arm64 2/2] RUN echo base"))])
    assert count_steps(output.output_of("base")) == StepCount(cached=0, total=2)


def test_a_step_answered_from_the_registry_cache_stays_cached_whichever_solve_fetched_its_layer():
    fetch = {"id": "sha256:" + "9" * 64, "vertex": RUN_BASE, "current": 160, "total": 160, "started": T0, "completed": T1}
    lines = [*json.dumps({"statuses": [fetch]}, indent=2).splitlines(),
             *status(vertex(RUN_BASE, "[child 2/2] RUN echo base")),
             *status(vertex(RUN_BASE, "[base 2/2] RUN echo base", cached=True))]
    assert count_steps(progress(lines).output_of("base")) == StepCount(cached=1, total=1)


def test_a_step_two_siblings_share_is_both_of_theirs_and_a_parents_is_the_parents_alone():
    parents = {"base": None, "app": "base", "tools": "base"}
    lines = [*status(vertex(RUN_BASE, "[tools 2/2] RUN echo base", done=False)),
             *status(vertex(RUN_CHILD, "[app 1/2] RUN pip install x"), vertex(RUN_CHILD, "[tools 1/2] RUN pip install x")),
             *status(vertex(RUN_BASE, "[base 2/2] RUN echo base"), logs=((RUN_BASE, "hello\n"),))]
    output = progress(lines, ("base", "app", "tools"), parents)
    assert output.owners(RUN_BASE) == {"base"} and output.owners(RUN_CHILD) == {"app", "tools"}
    assert "#1 1.500 hello" in output.output_of("base").splitlines()
    assert "RUN echo base" not in output.output_of("tools") and "hello" not in output.output_of("tools")
    assert "RUN pip install x" in output.output_of("app") and "RUN pip install x" in output.output_of("tools")


def test_lines_while_it_runs_go_to_the_image_whose_solve_sent_them_without_the_target_name():
    output = BakeProgress(["base", "child"], FAMILY)
    made = [pair for line in status(vertex(RUN_CHILD, "[child 1/2] RUN echo child")) for pair in output.feed(line)]
    assert made == [(frozenset({"child"}), "#1 [1/2] RUN echo child"), (frozenset({"child"}), "#1 DONE 2.2s")]
    assert output.feed("ERROR: failed to solve: boom") == [(frozenset(), "ERROR: failed to solve: boom")]
    assert output.feed("{}") == []


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


def test_only_a_builder_that_builds_all_platforms_at_once_bakes(tmp_path):
    from imagegraph.adapters.engine.builders import BuildxBuilder

    bake_file, metadata = tmp_path / "base.json", tmp_path / "base.metadata.json"
    assert BuildxBuilder(docker="docker", multi_platform=False).bake_command(bake_file, ["base", "app"], metadata) is None
    command = BuildxBuilder(docker="docker", builder="farm").bake_command(bake_file, ["base", "app"], metadata)
    assert command is not None
    assert command.argv == ("docker", "buildx", "bake", "--progress", "rawjson", "--builder", "farm", "--metadata-file", str(metadata),
                            "--file", str(bake_file), "base", "app")


def test_a_registry_cache_that_cannot_be_read_or_written_fails_nothing():
    # BuildKit builds on without a cache it cannot import, and the export is written with ignore-error=true
    output = progress([*status(vertex(RUN_CHILD, "[child] importing cache manifest from r/child:buildcache", error="not found")),
                       *status(vertex(RUN_TOOLS, "[child] exporting cache to registry", error="500 Internal Server Error"))])
    assert output.failures() == {}
    assert "#1 ERROR: not found" in output.output_of("child")
