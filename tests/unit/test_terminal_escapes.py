"""Every untrusted string in human output is escaped: control characters are shown, never interpreted.

Hostile values: a clear-screen (ESC [2J), a window title (OSC ... BEL), a
C1 control sequence introducer (U+009B), DEL, a right-to-left override
(U+202E), a zero-width joiner, a line separator (U+2028), and a newline
that would forge an ``error:`` line of its own. Each is tried from the
sources it reaches output from: file names in the checkout (the real command
line, in-process), ``--since``, CI variables, images.yaml, and tag and
repository names as the registry lists them (the tables that show them).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagegraph.core.plan import Decision
from imagegraph.core.result import ImageResult
from imagegraph.core.retention import Manifest, Verdict
from imagegraph.core.values import escaped
from imagegraph.presentation.progress import Progress
from imagegraph.presentation.reports.record import BuildReport, ImageRecord
from imagegraph.presentation.reports.render import to_markdown, to_text
from imagegraph.presentation.tables import format_results, format_retention, table
from imagegraph.tasks._common import error_line
from tests.unit.cli import make_family, run_cli

HOSTILE = {
    "clear-screen": "a\x1b[2Jb",
    "window-title": "t\x1b]0;pwned\x07t",
    "c1-csi": "c\x9b31mc",
    "del": "d\x7fd",
    "bidi": "evil\u202etxt.py",
    "zero-width": "z\u200dz",
    "line-separator": "l\u2028l",
    "forged-line": "n\nerror: forged",
}


def inert(text: str) -> bool:
    """Nothing a terminal would obey: every character printable, line breaks aside."""
    return all(ch.isprintable() or ch == "\n" for ch in text)


def forged(text: str) -> bool:
    return any(line.startswith("error: forged") for line in text.splitlines())


@pytest.mark.parametrize("name", HOSTILE)
def test_escaped_shows_every_control_character_as_an_escape(name):
    value = HOSTILE[name]
    shown = escaped(value)
    assert inert(shown) and "\n" not in shown and shown != value
    assert escaped(shown) == shown  # already safe text is left as it is
    assert escaped("plain text, é, 日本, → …") == "plain text, é, 日本, → …"


def test_the_escapes_name_the_characters():
    assert escaped("a\x1b[2Jb\x9b\x7f\u202e\n\t") == "a\\x1b[2Jb\\x9b\\x7f\\u202e\\n\\t"


# -- the real command line: file names from git, --since, CI variables -----------------------------------------------


@pytest.fixture
def hostile_checkout(tmp_path) -> Path:
    """The sample family, then a commit that adds a file of each hostile name under app's inputs and beside them."""
    root = make_family(tmp_path / "family")
    for name, value in HOSTILE.items():
        if name == "forged-line":
            continue  # GitPython cannot parse a committed path with a newline; the untracked case below has one
        (root / "src" / "svc" / f"{value}.py").write_text("x\n")
        (root / "docs").mkdir(exist_ok=True)
        (root / "docs" / f"{value}.md").write_text("x\n")
    git = ("git", "-c", "user.email=t@example.com", "-c", "user.name=t")
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "hostile names"], cwd=root, check=True)
    return root


def test_affected_shows_hostile_file_names_escaped(hostile_checkout):
    outcome = run_cli(hostile_checkout, ("affected", "--since", "HEAD~1"))
    assert outcome.code == 0, outcome.stderr
    assert inert(outcome.stdout + outcome.stderr) and not forged(outcome.stderr)
    assert outcome.stdout.split() == ["app"]


def test_a_docs_only_change_names_the_ignored_files_escaped(tmp_path):
    root = make_family(tmp_path / "family")
    (root / "docs").mkdir()
    (root / "docs" / f"{HOSTILE['clear-screen']}.md").write_text("x\n")
    (root / "docs" / f"{HOSTILE['forged-line']}.md").write_text("x\n")  # untracked: listed by git status, not by a diff
    outcome = run_cli(root, ("affected", "--since", "HEAD"))
    assert outcome.code == 0, outcome.stderr
    assert "docs/a\\x1b[2Jb.md" in outcome.stderr and "\\nerror: forged" in outcome.stderr
    assert inert(outcome.stdout + outcome.stderr) and not forged(outcome.stderr)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_since_is_one_escaped_error_line(name, tmp_path):
    outcome = run_cli(make_family(tmp_path / "family"), ("affected", "--since", f"main{HOSTILE[name]}"))
    assert outcome.error and inert(outcome.stderr) and not forged(outcome.stderr)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_ci_variables_are_escaped(name, tmp_path):
    """A GitLab merge request whose branch names and base are hostile: whatever imagegraph makes of it, it prints inertly."""
    value = HOSTILE[name]
    env = {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": f"main{value}",
           "CI_MERGE_REQUEST_DIFF_BASE_SHA": f"abc{value}", "CI_COMMIT_REF_NAME": f"feature{value}", "CI_MERGE_REQUEST_IID": "7"}
    outcome = run_cli(make_family(tmp_path / "family"), ("affected",), env)
    assert inert(outcome.stdout + outcome.stderr) and not forged(outcome.stderr), outcome.stderr


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_value_in_images_yaml_is_an_escaped_error_line(name, tmp_path):
    files = {"images.yaml": "registry: 127.0.0.1:5000\nnamespace: test\nimages:\n  base:\n"
                            f"    dockerfile: \"docker/Dockerfile.base{HOSTILE[name].encode('unicode_escape').decode()}\"\n"}
    outcome = run_cli(make_family(tmp_path / "family", files), ("affected",))
    assert outcome.error and inert(outcome.stderr) and not forged(outcome.stderr)


# -- what the tables, lines and reports show of names from the registry and of build output ------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_tables_escape_every_cell(name):
    value = HOSTILE[name]
    text = table(("image", "note"), [("app", f"{value} changed"), (value, "x")])
    assert inert(text) and not forged(text) and len(text.splitlines()) == 4


@pytest.mark.parametrize("name", HOSTILE)
def test_cleanup_shows_registry_tag_and_repository_names_escaped(name):
    value = HOSTILE[name]
    manifest = Manifest(repository=f"test/app{value}", digest="sha256:" + "a" * 64, tags=(f"edge{value}",), created="2026-01-01T00:00:00Z")
    text = format_retention([Verdict(manifest, keep=False, reason=f"older than {value}")])
    assert inert(text) and not forged(text)


@pytest.mark.parametrize("name", HOSTILE)
def test_build_results_progress_and_the_error_line_are_escaped(name, capsys):
    value = HOSTILE[name]
    failed = ImageResult("app", Decision.BUILD, "r/app:f", "why", error=f"COPY {value}: not found")
    assert inert(format_results([failed])) and not forged(format_results([failed]))
    line = error_line(failed.failure)
    assert line.startswith("error: ") and inert(line) and "\n" not in line
    lines: list[str] = []
    board = Progress(say=lines.append)
    board.say(f"[app] #5 COPY {value}")
    assert lines and all(inert(x) and "\n" not in x for x in lines)
    from io import StringIO
    out = StringIO()
    live = Progress(out, live=True)
    live.begin(f"app{value}")
    live.detail(f"app{value}", f"step {value}")
    live.say("note")
    assert all(ch.isprintable() or ch in "\n\r" or ch == "\x1b" for ch in out.getvalue())
    assert value not in out.getvalue()


@pytest.mark.parametrize("name", HOSTILE)
def test_the_markdown_and_text_reports_escape_what_a_run_recorded(name):
    value = HOSTILE[name]
    image = ImageRecord(name="app", decision="build", reason=f"src/{value}.py changed", ref="r/app:f", error=f"failed on {value}",
                        ok=False, tags=("f", f"edge{value}"))
    report = BuildReport(started="2026-11-21T07:00:00Z", seconds=1.0, commit="a" * 40, event=f"branch {value}", kind="code change",
                         builder=f"b{value}", registry="127.0.0.1:5000/test", images=(image,), since=f"abc ({value})")
    for text in (to_markdown(report), to_text(report, (), ())):
        assert inert(text) and not forged(text)
    assert "<script>" not in to_markdown(BuildReport(started="2026-11-21T07:00:00Z", seconds=1.0, commit="a" * 40, event="<script>",
                                                     kind="code change", builder="b", registry="r", images=(image,)))
