"""Build reports: made from a run, stored, read back, classified, compared, held to targets, rendered."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from imagegraph.core.buildkit import StepCount
from imagegraph.core.config import ReportTargets, load_config
from imagegraph.core.plan import Decision, Plan, ReusedImage
from imagegraph.core.result import ImageResult
from imagegraph.core.values import ImageRef
from imagegraph.presentation.reports.make import classify, make_report, recipe_of
from imagegraph.presentation.reports.record import BuildReport, ImageRecord, ReportError
from imagegraph.presentation.reports.render import to_markdown, to_text
from imagegraph.presentation.reports.store import ReportStore
from imagegraph.presentation.reports.trends import check_targets, compare
from tests.conftest import built_image


@pytest.fixture
def config(family):
    return load_config(family)


def record(name, decision="build", **fields):
    return ImageRecord(name=name, decision=decision, reason="why", ref=f"r/{name}:f", **fields)


def report(*images, kind="code change", seconds=10.0, started="2026-11-21T07:00:00Z", commit="a" * 40):
    return BuildReport(started=started, seconds=seconds, commit=commit, event="branch main", kind=kind, builder="engine",
                       registry="127.0.0.1:5000/test", images=tuple(images), since="abc1234 (merge base with main)")


def test_make_report_takes_results_tags_and_what_was_looked_up(config):
    plan = Plan(images=(
        ReusedImage("base", "unchanged", "b" * 16, ImageRef.parse("127.0.0.1:5000/test/base:" + "b" * 16), None, ("linux/amd64",), True),
        built_image("app", "127.0.0.1:5000/test/app:" + "c" * 16, reason="src/svc/app.py changed → app", parent="base",
                    parent_ref="127.0.0.1:5000/test/base:" + "b" * 16, changed=("src/svc/app.py",)),
    ), registry="127.0.0.1:5000")
    results = (
        ImageResult("base", Decision.REUSE, plan.images[0].ref, "unchanged"),
        ImageResult("app", Decision.BUILD, plan.images[1].ref, plan.images[1].reason, seconds=3.456, size=1000, layers=7,
                    digest="sha256:" + "d" * 64, steps=StepCount(3, 4), phases=(("wheels", 0.1), ("build", 2.0), ("push", 1.3))),
    )
    made = make_report(config, plan, results, tagged={"app": ("edge", "sha-1234567")}, started="2026-11-21T07:00:00Z", seconds=5.04,
                       commit="f" * 40, event="branch main", builder="engine",
                       known={"base": ("sha256:" + "e" * 64, 2000, 4)}, recipes={"app": "r1", "base": "r0"})
    base, app = made.images
    assert (base.digest, base.size, base.layers, base.tags) == ("sha256:" + "e" * 64, 2000, 4, ("b" * 16,))
    assert (app.cached_steps, app.total_steps, app.seconds, app.tags) == (3, 4, 3.46, ("c" * 16, "edge", "sha-1234567"))
    assert app.parent == "base" and app.changed == ("src/svc/app.py",) and app.recipe == "r1"
    assert made.kind == "code change" and made.registry == "127.0.0.1:5000/test" and made.hit_rate == 0.75


def test_json_round_trips_exactly():
    original = report(record("base", "reuse", digest="sha256:" + "1" * 64, tags=("b1", "edge"), size=5, layers=3),
                      record("app", seconds=2.5, phases=(("build", 2.0), ("push", 0.5)), cached_steps=1, total_steps=4,
                             changed=("src/a.py",), platforms=("linux/amd64",), parent="base", recipe="abc"),
                      record("tools", ok=False, error="`docker build` exited 1"))
    text = original.to_json()
    again = BuildReport.from_json(text)
    assert again == original
    assert again.to_json() == text


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(schema="other/2"), "schema 'other/2' is not 'imagegraph.build-report/1'"),
    (lambda d: d.pop("started"), "report: missing 'started'"),
    (lambda d: d.update(kind="sideways"), "kind 'sideways' is not one of"),
    (lambda d: d.update(seconds="10"), "'seconds' must be a number"),
    (lambda d: d["images"][0].update(ok="yes"), "images[0]: 'ok' must be true or false"),
    (lambda d: d["images"][0]["steps"].update(cached=1.5), "images[0]: steps: 'cached' must be a whole number"),
    (lambda d: d["images"][0].update(tags="edge"), "images[0]: 'tags' must be a list of strings"),
    (lambda d: d.update(images={}), "images must be a list"),
])
def test_a_malformed_report_is_one_line_naming_the_field(mutate, message):
    data = report(record("app")).to_dict()
    mutate(data)
    with pytest.raises(ReportError, match=None) as caught:
        BuildReport.from_dict(data)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_not_json_or_not_an_object_is_refused():
    with pytest.raises(ReportError, match="not JSON"):
        BuildReport.from_json("{", "x.json")
    with pytest.raises(ReportError, match="not an imagegraph build report"):
        BuildReport.from_json("[]", "x.json")


def test_classify_by_recipe_history_then_git(config):
    app = record("app", recipe="r1")
    assert classify(config, [record("app", "reuse")]) == "no change"
    assert classify(config, [record("base"), app]) == "base rebuild"
    earlier_same = [report(record("app", "build", recipe="r1"))]
    earlier_other = [report(record("app", "reuse", recipe="r0"))]
    assert classify(config, [app], earlier_same) == "code change"
    assert classify(config, [app], earlier_other) == "dependency change"
    # no record of the image: git's changed paths decide, then nothing to tell
    assert classify(config, [record("app", changed=("src/svc/app.py",))]) == "code change"
    assert classify(config, [record("app", changed=("requirements/requirements.txt",))]) == "dependency change"
    assert classify(config, [record("app", changed=("docker/Dockerfile",)), record("ci", changed=())]) == "dependency change"
    assert classify(config, [record("app")]) == "rebuild"


def test_the_recipe_ignores_code_but_not_what_the_image_is_built_from(config):
    files = (("docker/Dockerfile", "1"), ("requirements/requirements.txt", "2"), ("src/svc/app.py", "3"))
    first = recipe_of(config, "app", files, "r/base:1")
    assert recipe_of(config, "app", (*files[:2], ("src/svc/app.py", "4")), "r/base:1") == first
    assert recipe_of(config, "app", (files[0], ("requirements/requirements.txt", "5"), files[2]), "r/base:1") != first
    assert recipe_of(config, "app", files, "r/base:2") != first


def test_targets_apply_only_where_they_mean_something():
    targets = ReportTargets(code_change_seconds=60, max_layers=10, cache_hit_rate=0.5)
    fast = report(record("app", layers=4, cached_steps=3, total_steps=4), record("ci", "reuse", layers=12), seconds=30)
    code, layers, cache = check_targets(fast, targets)
    assert (code.ok, code.actual) == (True, "30.0 s")
    assert (layers.ok, layers.actual) == (False, "12 (ci)")
    assert (cache.ok, cache.actual) == (True, "75%")
    slow = check_targets(replace(fast, seconds=61), targets)[0]
    assert slow.ok is False
    base = check_targets(replace(fast, kind="base rebuild"), targets)[0]
    assert base.ok is None and base.note == "this run was a base rebuild"
    nothing = check_targets(report(record("app", "reuse"), kind="no change"), targets)
    assert [c.ok for c in nothing] == [None, None, None]


def test_compare_uses_medians_of_like_runs():
    earlier = [
        report(record("app", seconds=10, size=100, layers=7, cached_steps=2, total_steps=4), seconds=20),
        report(record("app", seconds=30, size=100, layers=7, cached_steps=4, total_steps=4), seconds=40),
        report(record("app", "reuse", size=100, layers=7), seconds=1, kind="no change"),
        report(record("app", seconds=99, ok=False, error="boom"), seconds=200, kind="dependency change"),
    ]
    latest = report(record("app", seconds=15, size=110, layers=8, cached_steps=4, total_steps=4), seconds=25)
    rows = {(c.subject, c.measure): c for c in compare(latest, earlier)}
    run = rows[("run (code change)", "wall time")]
    assert (run.before, run.runs, round(run.change, 3)) == (30, 2, -0.167)
    assert (rows[("app", "build time")].before, rows[("app", "build time")].runs) == (20, 2)  # the failed build is no reference
    assert rows[("app", "cache hit rate")].before == 0.75
    assert (rows[("app", "size")].before, rows[("app", "size")].runs) == (100, 3)  # reused runs count, runs without a size do not
    assert rows[("app", "layers")].now == 8
    assert "against earlier runs" in to_text(latest, compare(latest, earlier), ())


def test_a_run_cut_short_or_failed_sets_no_median_of_its_kind():
    whole = [report(record("app", seconds=s / 2), seconds=s) for s in (20, 40, 60)]
    cut = [report(record("app", seconds=1, ok=False, error="interrupted by SIGINT", stopped="interrupted"), seconds=s) for s in (2, 3)]
    failed = report(record("app", seconds=4, ok=False, error="exited 1"), seconds=5)
    rows = {(c.subject, c.measure): c for c in compare(report(record("app", seconds=15), seconds=25), [*cut, *whole, failed])}
    run = rows[("run (code change)", "wall time")]
    assert (run.before, run.runs) == (40, 3)  # with the cut and failed runs counted it would be the median of 2, 3, 5, 20, 40, 60: 12.5


def test_markdown_is_a_table_with_targets_and_safe_cells():
    failed = report(record("app", seconds=2, error="`docker build` | exited 1", ok=False),
                    record("ci", "reuse", digest="sha256:" + "a" * 64, tags=("c1", "edge"), layers=5), seconds=3)
    text = to_markdown(failed, check_targets(failed, ReportTargets()))
    lines = text.splitlines()
    assert lines[0] == "### imagegraph build: 1 built, 1 reused in 3.0 s ❌ failed: app"
    assert "| app | **failed** | `docker build` \\| exited 1 | 2.0 s | – | – | – | – | – |" in lines
    assert "| ci | reuse | why | – | – | 5 | – | `sha256:aaaaaaaaaaaa…` | `c1`, `edge` |" in lines
    assert lines[-1].startswith("**Targets:** code-change build 3.0 s ≤ 120 s ✅")


def test_store_keeps_the_newest_and_skips_what_it_cannot_read(tmp_path):
    store = ReportStore(tmp_path / "reports", keep=2)
    for minute in range(3):
        store.save(report(record("app"), started=f"2026-11-21T07:0{minute}:00Z", commit=f"{minute}" * 40), "md\n")
    assert sorted(p.name for p in store.folder.iterdir()) == [
        "20261121T070100-1111111.json", "20261121T070100-1111111.md", "20261121T070200-2222222.json", "20261121T070200-2222222.md"]
    (store.folder / "20261121T070300-junk.json").write_text(json.dumps({"schema": "x"}))
    loaded = store.load()
    assert [r.started for _, r in loaded] == ["2026-11-21T07:01:00Z", "2026-11-21T07:02:00Z"]
    assert len(store.skipped) == 1 and "junk.json: schema 'x'" in store.skipped[0]


def test_two_runs_of_one_second_and_commit_keep_both_reports(tmp_path):
    store = ReportStore(tmp_path / "reports")
    first = report(record("app", ok=False, error="interrupted by SIGINT", stopped="interrupted"))
    second = report(record("app"))
    paths = [store.save(first, "first\n"), store.save(second, "second\n")]
    assert [p.name for p in paths] == ["20261121T070000-aaaaaaa.json", "20261121T070000-aaaaaaa-2.json"]
    assert [BuildReport.from_json(p.read_text()) for p in paths] == [first, second]
    assert [p.with_suffix(".md").read_text() for p in paths] == ["first\n", "second\n"]
    assert [r for _, r in store.load()] == [first, second]


def test_an_interrupted_image_is_marked_so_and_older_reports_without_the_field_still_read():
    stopped = report(record("base", ok=False, error="interrupted by SIGTERM", stopped="interrupted"),
                     record("app", ok=False, error="not built: the run was stopped by SIGTERM first", stopped="not built"))
    assert [image["stopped"] for image in stopped.to_dict()["images"]] == ["interrupted", "not built"]
    assert "| base | **interrupted** | interrupted by SIGTERM |" in to_markdown(stopped)
    older = report(record("app")).to_dict()
    del older["images"][0]["stopped"]
    assert BuildReport.from_dict(older).images[0].stopped is None
