"""A hostile value from any source never reaches git as an option: the real CLI on a clone with a remote.

Each source (the flag, GitHub's variables and event file, GitLab's variables)
gets a value git would run as a command (``--upload-pack=touch <marker> #``,
which `git fetch` executes), or one full of terminal escapes. The run must exit 1
with one ``error:`` line naming the source, print no raw control character,
and run nothing: the marker file is never created. A CI run must not fall
back to "fingerprints alone" and exit 0.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from imagegraph.core.gitnames import ZERO_SHA, is_ref_name
from tests.integration.conftest import init_repo, one_error_line, run_invoke
from tests.integration.test_changes import family_files

pytestmark = pytest.mark.integration

SHA = "b" * 40


@pytest.fixture(autouse=True)
def outside_ci(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "CI_")) or name in ("GITLAB_CI", "IMAGEGRAPH_REGISTRY", "IMAGEGRAPH_PLATFORMS"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A shallow clone of the family with an `origin` to fetch from: where a base that is missing gets fetched."""
    root = tmp_path_factory.mktemp("hostile")
    origin = init_repo(root / "origin", family_files())
    clone = root / "clone"
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{origin}", str(clone)], check=True)
    return clone


def github(name: str, payload: dict, tmp_path: Path, **env: str) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    return {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": name, "GITHUB_EVENT_PATH": str(event), **env}


def gitlab(**env: str) -> dict[str, str]:
    return {"GITLAB_CI": "true", "CI_DEFAULT_BRANCH": "main", **env}


def pull(base: dict) -> dict:
    return {"number": 1, "pull_request": {"number": 1, "base": {"ref": "main", "sha": SHA, **base}}}


#: origin named in the refusal -> (extra CLI args, environment) for the hostile value v, in the test's temp dir t.
SOURCES = {
    "--since": lambda v, t: (("--since", v), {}),
    "GITHUB_BASE_REF": lambda v, t: ((), github("pull_request", {}, t, GITHUB_BASE_REF=v)),
    "GITHUB_HEAD_REF": lambda v, t: ((), github("pull_request", pull({}), t, GITHUB_HEAD_REF=v)),
    "GITHUB_REF": lambda v, t: ((), github("push", {"before": ZERO_SHA}, t, GITHUB_REF=v)),
    "$GITHUB_EVENT_PATH pull_request.base.sha": lambda v, t: ((), github("pull_request", pull({"sha": v}), t)),
    "$GITHUB_EVENT_PATH pull_request.base.ref": lambda v, t: ((), github("pull_request", pull({"sha": "", "ref": v}), t)),
    "$GITHUB_EVENT_PATH before": lambda v, t: ((), github("push", {"before": v}, t, GITHUB_REF="refs/heads/main")),
    "$GITHUB_EVENT_PATH after": lambda v, t: ((), github("push", {"before": SHA, "after": v}, t, GITHUB_REF="refs/heads/main")),
    "$GITHUB_EVENT_PATH merge_group.base_sha": lambda v, t: ((), github("merge_group", {"merge_group": {"base_sha": v}}, t)),
    "$GITHUB_EVENT_PATH merge_group.base_ref": lambda v, t: ((), github("merge_group", {"merge_group": {"base_ref": v}}, t)),
    "$GITHUB_EVENT_PATH repository.default_branch": lambda v, t: ((), github(
        "push", {"before": ZERO_SHA, "repository": {"default_branch": v}}, t, GITHUB_REF="refs/heads/topic")),
    "$GITHUB_EVENT_PATH workflow_run.head_branch": lambda v, t: ((), github(
        "workflow_run", {"workflow_run": {"head_branch": v}, "repository": {"default_branch": "main"}}, t, GITHUB_REF="refs/heads/main")),
    "CI_MERGE_REQUEST_DIFF_BASE_SHA": lambda v, t: ((), gitlab(CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="1",
                                                               CI_MERGE_REQUEST_DIFF_BASE_SHA=v)),
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": lambda v, t: ((), gitlab(CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="1",
                                                                    CI_MERGE_REQUEST_TARGET_BRANCH_NAME=v)),
    "CI_MERGE_REQUEST_TARGET_BRANCH_SHA": lambda v, t: ((), gitlab(CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="1",
                                                                   CI_MERGE_REQUEST_EVENT_TYPE="merged_result", CI_MERGE_REQUEST_TARGET_BRANCH_SHA=v)),
    "CI_COMMIT_BEFORE_SHA": lambda v, t: ((), gitlab(CI_PIPELINE_SOURCE="push", CI_COMMIT_BEFORE_SHA=v, CI_COMMIT_BRANCH="main")),
    "CI_DEFAULT_BRANCH": lambda v, t: ((), gitlab(CI_PIPELINE_SOURCE="push", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH="topic",
                                                  CI_DEFAULT_BRANCH=v)),
    "CI_COMMIT_BRANCH": lambda v, t: ((), gitlab(CI_PIPELINE_SOURCE="schedule", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH=v)),
    "CI_COMMIT_TAG": lambda v, t: ((), gitlab(CI_PIPELINE_SOURCE="push", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_TAG=v)),
    "CI_COMMIT_REF_NAME": lambda v, t: ((), gitlab(CI_PIPELINE_SOURCE="web", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_REF_NAME=v)),
}


def hostile(marker: Path) -> tuple[str, ...]:
    return (f"--upload-pack=touch {marker} #", f"-oProxyCommand=touch {marker}", f"--output={marker}",
            "main\x1b[2J\x1b]0;owned\x07\nerror: all good")


@pytest.mark.parametrize("origin", SOURCES)
def test_a_hostile_value_from_any_source_runs_nothing_and_fails_in_one_line(checkout, tmp_path, origin):
    marker = tmp_path / "pwned"
    # Every source gets the value git would run; a rotating second one covers the other forms across sources.
    values = hostile(marker)
    for value in (values[0], values[1 + list(SOURCES).index(origin) % 3]):
        args, env = SOURCES[origin](value, tmp_path)
        result = run_invoke(checkout, "affected", *args, **env)
        line = one_error_line(result)
        # the source named first ("--since" is refused by the command line itself, before any task runs)
        assert line.startswith((f"error: {origin}: ", f"error: {origin} needs ")), line
        assert repr(value)[:40] in line, line  # shown escaped
        assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
        assert not marker.exists(), f"{origin}: git ran the hostile command"


def test_a_well_formed_ci_sha_that_is_missing_still_falls_back_and_says_so(checkout, tmp_path):
    """A malformed value fails the run; a valid commit id the clone cannot find is no attack: fingerprints alone, as before."""
    result = run_invoke(checkout, "affected", **gitlab(CI_PIPELINE_SOURCE="push", CI_COMMIT_BEFORE_SHA="f" * 40, CI_COMMIT_BRANCH="main"))
    assert result.returncode == 0, result.stderr
    assert "deciding by fingerprints alone" in result.stdout + result.stderr


NAMES = ("main", "feature/x", "a..b", "a.lock", "-x", "a b", "a@{1}", "@", ".hidden", "a/.b", "a//b", "a/", "x.", "v1.2.0", "a~1",
         "a^", "a:b", "a?", "a*", "a[b", "a\\b", "naïve", "user@host", "a\x7fb", "HEAD", "+x", "a.b/c.d", "refs/heads/main")


def test_the_ref_name_rules_never_accept_what_git_refuses(tmp_path):
    for name in NAMES:
        accepted = subprocess.run(["git", "check-ref-format", "--allow-onelevel", name], capture_output=True).returncode == 0
        if is_ref_name(name):
            assert accepted, f"{name!r} passes here but git refuses it"
        if accepted and not name.startswith("-"):
            assert is_ref_name(name), f"{name!r}: git accepts it, so should imagegraph"


def test_the_git_adapter_never_reads_a_value_as_an_option(checkout, tmp_path):
    """The adapter's own guard, below the checks of the core: each call that takes a value, given a hostile one."""
    from imagegraph.adapters.repo import Repository
    from imagegraph.core.errors import ImagegraphError

    marker = tmp_path / "pwned"
    repo = Repository(checkout)
    head = repo.head()
    for value in hostile(marker):
        assert repo.resolve(value) is None
        assert repo.merge_base(value, head) is None
        with pytest.raises(ImagegraphError, match="merge-base --is-ancestor"):
            repo.is_ancestor(value, head)  # git says it names no commit: never an option
        with pytest.raises(ImagegraphError, match="refusing to fetch"):
            repo.fetch("origin", value)
        with pytest.raises(ImagegraphError, match="refusing to fetch"):
            repo.fetch(value)
        with pytest.raises(ImagegraphError, match="commit ids expected"):
            repo.committed_changes(value, head)
        with pytest.raises(ImagegraphError, match="ls-tree"):
            repo.commit_tree(value)
        with pytest.raises(ImagegraphError):
            repo.commit_time(value)
    assert not marker.exists()
    assert repo.fetch("origin", "main") is None  # a plain branch still fetches
