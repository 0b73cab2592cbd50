"""`invoke build` from the command line on the real engine: its progress, its flags, the reports it writes for `invoke report`."""

from __future__ import annotations

import json
import re

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.presentation.reports.record import BuildReport
from tests.integration.conftest import commit_all, init_repo, one_error_line, run_invoke
from tests.integration.test_build import SMALL_FAMILY, family_files

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path, registry, namespace, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    config = SMALL_FAMILY.format(registry=registry, namespace=namespace) + "report:\n  targets: {code_change_seconds: 600, max_layers: 30}\n"
    files = {"images.yaml": config, **family_files(namespace), "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n"}
    return init_repo(tmp_path / "repo", files)


def build(repo, summary, *flags):
    result = run_invoke(repo, "build", "--progress", "plain", *flags, GITHUB_STEP_SUMMARY=str(summary))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def reports(repo):
    return sorted((repo / ".imagegraph/reports").glob("*.json"))


def test_every_build_writes_a_report_that_round_trips_through_invoke_report(repo, tmp_path, namespace):
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")

    first = build(repo, summary, "--no-cache")
    # progress: each Dockerfile step of each platform is a line when it ends (a multi-platform build names the platform)
    for platform in ("linux/amd64", "linux/arm64"):
        step = rf"2/2 RUN echo {re.escape(namespace)} > /family.txt && uname -m > /arch.txt"
        assert re.search(rf"^\[base\] step (?:{platform} )?{step}: done(?: in \S+)?$", first, re.MULTILINE), first
    # built in one bake with its parent, whose result stands in for the FROM, BuildKit counts the RUN as step 1 of 2
    tools_step = rf"[12]/2 RUN echo tools {re.escape(namespace)} > /tools.txt"
    assert re.search(rf"^\[tools\] step (?:linux/amd64 )?{tools_step}: done(?: in \S+)?$", first, re.MULTILINE), first
    assert "[base] pushed 127.0.0.1:5000/" in first and "\x1b[" not in first
    (path,) = reports(repo)
    report = BuildReport.from_json(path.read_text())
    assert report.kind == "base rebuild" and report.ok
    assert {i.name: i.decision for i in report.images} == {"base": "build", "app": "build", "tools": "build"}
    base = next(i for i in report.images if i.name == "base")
    assert base.platforms == ("linux/amd64", "linux/arm64") and base.digest.startswith("sha256:")
    assert base.tags[0] == base.ref.rsplit(":", 1)[1] and "edge" in base.tags
    assert base.layers and base.size and (base.cached_steps, base.total_steps) == (0, 2) and base.seconds > 0
    # buildx pushes as it builds; the classic store's per-platform parts are joined by the executor (the manifest phase)
    per_platform = report.builder is not None and "a build per platform" in report.builder
    assert {phase for phase, _ in base.phases} == ({"build", "manifest"} if per_platform else {"build"})

    (repo / "src/svc/__init__.py").write_text("print('version 2')\n")
    commit_all(repo, "code change")
    build(repo, summary)
    first_path, second_path = reports(repo)
    second = BuildReport.from_json(second_path.read_text())
    assert second.kind == "code change"
    assert {i.name: i.decision for i in second.images} == {"base": "reuse", "app": "build", "tools": "reuse"}
    tools = next(i for i in second.images if i.name == "tools")
    assert tools.digest == next(i for i in report.images if i.name == "tools").digest  # reused: the digest looked up

    # JSON round trip: what `invoke report --json` prints is the stored file, byte for byte, for the latest and an older one.
    for stored in (first_path, second_path):
        shown = run_invoke(repo, "report", "--json", "--file", str(stored))
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == stored.read_text()
        assert BuildReport.from_dict(json.loads(shown.stdout)).to_dict() == json.loads(stored.read_text())

    # Markdown: the stored summary, the one printed, and the one CI's step summary received are the same text.
    markdown = run_invoke(repo, "report", "--markdown").stdout
    assert markdown == second_path.with_suffix(".md").read_text()
    assert summary.read_text().startswith("earlier step\n") and summary.read_text().endswith(markdown + "\n")
    assert "| app | **built** | " in markdown and "| tools | reuse | " in markdown
    assert "code-change build" in markdown and "✅" in markdown

    # The comparison: the code-change run against the base rebuild before it; the chart as a real PNG.
    chart = tmp_path / "trend.png"
    text = run_invoke(repo, "report", "--chart", str(chart))
    assert text.returncode == 0, text.stderr
    assert "code change" in text.stdout and "against earlier runs" in text.stdout
    assert any(line.split()[:3] == ["app", "build", "time"] and line.split()[-1] == "1" for line in text.stdout.splitlines())
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_missed_targets_and_bad_report_files_are_one_line(repo, tmp_path):
    build(repo, tmp_path / "summary.md")
    (repo / "images.yaml").write_text((repo / "images.yaml").read_text().replace("max_layers: 30", "max_layers: 1"))
    missed = run_invoke(repo, "report", "--check")
    assert "layers per image" in one_error_line(missed) and "target ≤ 1" in one_error_line(missed)

    garbled = tmp_path / "garbled.json"
    data = json.loads(reports(repo)[0].read_text())
    data["images"][1]["layers"] = "four"
    garbled.write_text(json.dumps(data))
    assert "images[1]: 'layers' must be a whole number or null, got 'four'" in one_error_line(run_invoke(repo, "report", "--file", str(garbled)))
    garbled.write_text(reports(repo)[0].read_text()[:-20])
    assert "not JSON" in one_error_line(run_invoke(repo, "report", "--file", str(garbled)))
    other = tmp_path / "other.json"
    other.write_text('{"images": []}')
    assert "schema None is not" in one_error_line(run_invoke(repo, "report", "--file", str(other)))
    assert "no such file" in one_error_line(run_invoke(repo, "report", "--file", str(tmp_path / "missing.json")))


def test_no_tags_pushes_the_images_but_moves_no_branch_tag(repo, tmp_path, registry, namespace):
    build(repo, tmp_path / "summary.md", "--no-tags")
    client = Registry(registry)
    (report,) = [BuildReport.from_json(path.read_text()) for path in reports(repo)]
    for image in report.images:
        assert image.tags == (image.ref.rsplit(":", 1)[1],)
        tags = client.tags(f"{namespace}/{image.name}")
        assert image.tags[0] in tags and "edge" not in tags and not any(tag.startswith("sha-") for tag in tags)
    build(repo, tmp_path / "summary.md")  # the same commit without --no-tags: nothing builds, every image gets edge
    assert all(client.manifest_digest(f"{namespace}/{image.name}", "edge") == image.digest for image in report.images)


def test_a_failed_build_says_why_in_one_line_and_counts_it_as_failed(repo, tmp_path):
    (repo / "docker/Dockerfile.base").write_text("FROM python:3.11-slim\nRUN echo checking the base >&2 && exit 3\n")
    commit_all(repo, "broken base")
    result = run_invoke(repo, "build", "--progress", "plain", "--target", "base", "--platform", "linux/amd64",
                        GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after the note that no branch tag moved
    # BuildKit's own last word, and the log named once
    assert re.match(r'^error: base: `\S*docker buildx build --progress \.\.\.` exited 1: ERROR: failed to solve: process "/bin/sh -c echo checking',
                    line), line
    assert line.count(".imagegraph/logs/base.log") == 1 and "exit code: 3" in line
    # under the failure: what the step printed, then the count
    assert "[base]   checking the base" in result.stdout
    assert "0 image(s) built or pushed, 1 failed in" in result.stdout
