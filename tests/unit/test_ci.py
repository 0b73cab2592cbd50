"""What each CI source says (GitHub events, GitLab pipeline sources): the event the tags follow, the base it gets,
and hostile CI values refused before git sees them.

The variables and payload fields are the ones the platforms document: GitLab's
predefined CI/CD variables (CI_PIPELINE_SOURCE, CI_COMMIT_BEFORE_SHA, CI_MERGE_REQUEST_*),
GitHub's webhook payloads (push: before/after/created, pull_request.base, merge_group.base_sha,
workflow_run.head_branch/pull_requests) and GITHUB_* variables.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest

from imagegraph.core.changes import EMPTY_TREE, PREVIOUS_COMMIT, BaseRequest, locate_base
from imagegraph.core.ci import choose_base, event_from_env, event_from_git, read_event, source_url
from imagegraph.core.errors import InputError
from imagegraph.core.gitnames import ZERO_SHA, is_commit_id, is_ref_name, revision
from imagegraph.core.tags import Event, planned_tags

BEFORE, BASE, TARGET, DIFF, PARENT = "c" * 40, "b" * 40, "e" * 40, "d" * 40, "f" * 40
GH = {"GITHUB_ACTIONS": "true"}
GL = {"GITLAB_CI": "true", "CI_DEFAULT_BRANCH": "main"}
REPO = {"repository": {"default_branch": "main"}}


@dataclass(frozen=True)
class Case:
    env: dict[str, str]
    event: dict = field(default_factory=dict)
    #: (rev, merge_base, trusted, fetch)
    expected: tuple = ()
    how: str = ""
    since: str | None = None
    default_branch: str | None = "origin/main"


def gh(name: str, ref: str | None = None, **env: str) -> dict[str, str]:
    return {**GH, "GITHUB_EVENT_NAME": name, **({"GITHUB_REF": ref} if ref else {}), **env}


def gl(source: str | None, **env: str) -> dict[str, str]:
    return {**GL, **({"CI_PIPELINE_SOURCE": source} if source else {}), **env}


NO_PUSH_SOURCES = ("schedule", "web", "api", "trigger", "pipeline", "parent_pipeline", "chat", "external", "webide")

CASES = {
    # -- the flag and no CI --------------------------------------------------------------
    "--since": Case({}, expected=("v1.2.0", True, True, "v1.2.0"), how="--since v1.2.0", since="v1.2.0"),
    "--since wins over CI": Case(gh("push", "refs/heads/main"), {"before": BEFORE}, ("HEAD~3", True, True, "HEAD~3"), "--since HEAD~3", "HEAD~3"),
    "local": Case({}, expected=("origin/main", True, False, None), how="merge base with origin/main"),
    "local, no default branch": Case({}, expected=("origin/HEAD", True, False, "HEAD"), default_branch=None),
    # -- GitHub Actions ------------------------------------------------------------------------
    "github push": Case(gh("push", "refs/heads/main"), {"before": BEFORE, "after": PARENT, **REPO},
                        (BEFORE, False, True, BEFORE), f"previous push {BEFORE[:7]}"),
    "github force push": Case(gh("push", "refs/heads/topic"), {"before": BEFORE, "forced": True, **REPO}, (BEFORE, False, True, BEFORE)),
    "github new branch": Case(gh("push", "refs/heads/topic"), {"before": ZERO_SHA, "created": True, **REPO},
                              ("origin/main", True, True, "main"), "new branch topic: merge base with main"),
    "github new tag": Case(gh("push", "refs/tags/v1.2.0"), {"before": ZERO_SHA, "created": True, **REPO},
                           ("origin/main", True, True, "main"), "new tag v1.2.0: merge base with main"),
    "github first push": Case(gh("push", "refs/heads/main"), {"before": ZERO_SHA, "created": True, **REPO},
                              (EMPTY_TREE, False, False, None), "first push of main: everything is new"),
    "github pull_request": Case(gh("pull_request", "refs/pull/12/merge", GITHUB_BASE_REF="main", GITHUB_HEAD_REF="topic"),
                                {"number": 12, "pull_request": {"number": 12, "base": {"ref": "main", "sha": BASE}}, **REPO},
                                (BASE, True, True, BASE), "pull request #12 from topic: merge base with main"),
    "github pull_request_target": Case(gh("pull_request_target", "refs/heads/main", GITHUB_BASE_REF="main", GITHUB_HEAD_REF="fork-topic"),
                                       {"number": 3, "pull_request": {"number": 3, "base": {"ref": "main", "sha": BASE}}},
                                       (BASE, True, True, BASE), "pull request #3 from fork-topic: merge base with main"),
    "github pull_request, no payload": Case(gh("pull_request", GITHUB_BASE_REF="release"), {}, ("origin/release", True, True, "release"),
                                            "pull request: merge base with release"),
    "github merge_group": Case(gh("merge_group", "refs/heads/gh-readonly-queue/main/pr-12-" + BASE),
                               {"merge_group": {"base_sha": PARENT, "base_ref": "refs/heads/main", "head_sha": BASE,
                                                "head_ref": "refs/heads/gh-readonly-queue/main/pr-12-" + BASE}, **REPO},
                               (PARENT, True, True, PARENT), f"merge queue into main: merge base with the group's parent {PARENT[:7]}"),
    "github schedule on main": Case(gh("schedule", "refs/heads/main"), {"schedule": "0 3 * * *", **REPO},
                                    (PREVIOUS_COMMIT, False, True, None), "schedule on main: the previous commit, HEAD^1"),
    "github schedule, payload without repository": Case(gh("schedule", "refs/heads/main"), {"schedule": "0 3 * * *"},
                                                        (PREVIOUS_COMMIT, False, True, None)),
    "github workflow_dispatch on main": Case(gh("workflow_dispatch", "refs/heads/main"), {"inputs": {}, **REPO},
                                             (PREVIOUS_COMMIT, False, True, None), "workflow_dispatch on main: the previous commit, HEAD^1"),
    "github workflow_dispatch on a branch": Case(gh("workflow_dispatch", "refs/heads/topic"), {"inputs": {}, **REPO},
                                                 ("origin/main", True, True, "main"), "workflow_dispatch on topic: merge base with main"),
    "github workflow_dispatch on a tag": Case(gh("workflow_dispatch", "refs/tags/v1.0.0"), REPO, ("origin/main", True, True, "main"),
                                              "workflow_dispatch on v1.0.0: merge base with main"),
    "github repository_dispatch": Case(gh("repository_dispatch", "refs/heads/main"), {"action": "deploy", **REPO},
                                       (PREVIOUS_COMMIT, False, True, None)),
    "github workflow_run after a push to main": Case(
        gh("workflow_run", "refs/heads/main"),
        {"workflow_run": {"event": "push", "head_branch": "main", "head_sha": BASE, "pull_requests": []}, **REPO},
        (PREVIOUS_COMMIT, False, True, None), "workflow_run on main: the previous commit, HEAD^1"),
    "github workflow_run after a branch push": Case(
        gh("workflow_run", "refs/heads/main"),
        {"workflow_run": {"event": "push", "head_branch": "topic", "head_sha": BASE, "pull_requests": []}, **REPO},
        ("origin/main", True, True, "main"), "workflow_run on topic: merge base with main"),
    "github workflow_run after a pull request": Case(
        gh("workflow_run", "refs/heads/main"),
        {"workflow_run": {"event": "pull_request", "head_branch": "topic", "head_sha": BASE,
                          "pull_requests": [{"number": 5, "base": {"ref": "main", "sha": PARENT}, "head": {"ref": "topic", "sha": BASE}}]},
         **REPO},
        (PARENT, True, True, PARENT), "workflow_run of a pull request: merge base with main"),
    "github unknown event without a ref": Case(gh("workflow_dispatch"), {}, ("main", True, False, None), default_branch="main"),
    # -- GitLab CI -------------------------------------------------------------------------
    "gitlab push": Case(gl("push", CI_COMMIT_BEFORE_SHA=BEFORE, CI_COMMIT_BRANCH="topic"), expected=(BEFORE, False, True, BEFORE),
                        how=f"previous push {BEFORE[:7]}"),
    "gitlab push, new branch": Case(gl("push", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH="topic"),
                                    expected=("origin/main", True, True, "main"), how="new branch topic: merge base with main"),
    "gitlab push, first of the default branch": Case(gl("push", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH="main"),
                                                     expected=(EMPTY_TREE, False, False, None), how="first push of main: everything is new"),
    "gitlab push, new tag": Case(gl("push", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_TAG="v1.0.0", CI_COMMIT_REF_NAME="v1.0.0"),
                                 expected=("origin/main", True, True, "main"), how="new tag v1.0.0: merge base with main"),
    "gitlab without a pipeline source (old GitLab)": Case(gl(None, CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH="main"),
                                                          expected=(EMPTY_TREE, False, False, None)),
    "gitlab merge request (detached)": Case(
        gl("merge_request_event", CI_MERGE_REQUEST_IID="9", CI_MERGE_REQUEST_EVENT_TYPE="detached", CI_MERGE_REQUEST_DIFF_BASE_SHA=DIFF,
           CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main", CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="topic", CI_COMMIT_BEFORE_SHA=ZERO_SHA),
        expected=(DIFF, True, True, DIFF), how="merge request !9: merge base with main"),
    "gitlab merge request, target branch only": Case(gl(None, CI_MERGE_REQUEST_TARGET_BRANCH_NAME="release"),
                                                     expected=("origin/release", True, True, "release")),
    "gitlab merged results": Case(
        gl("merge_request_event", CI_MERGE_REQUEST_IID="9", CI_MERGE_REQUEST_EVENT_TYPE="merged_result", CI_MERGE_REQUEST_DIFF_BASE_SHA=DIFF,
           CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main", CI_MERGE_REQUEST_TARGET_BRANCH_SHA=TARGET, CI_MERGE_REQUEST_SOURCE_BRANCH_SHA=BASE,
           CI_COMMIT_BEFORE_SHA=ZERO_SHA),
        expected=(TARGET, True, True, TARGET), how=f"merge request !9, merged results: main at {TARGET[:7]}, the commit it was merged onto"),
    "gitlab merged results without the target sha": Case(
        gl("merge_request_event", CI_MERGE_REQUEST_IID="9", CI_MERGE_REQUEST_EVENT_TYPE="merged_result", CI_MERGE_REQUEST_DIFF_BASE_SHA=DIFF,
           CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main"),
        expected=(PREVIOUS_COMMIT, False, True, None), how="merge request !9, merged results: the commit it was merged onto (HEAD^1)"),
    "gitlab merge train": Case(
        gl("merge_request_event", CI_MERGE_REQUEST_IID="9", CI_MERGE_REQUEST_EVENT_TYPE="merge_train", CI_MERGE_REQUEST_DIFF_BASE_SHA=DIFF,
           CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main", CI_MERGE_REQUEST_TARGET_BRANCH_SHA=TARGET),
        expected=(TARGET, True, False, TARGET), how=f"merge request !9, merge train: {TARGET[:7]}, the commit it was merged onto"),
    "gitlab schedule on the default branch": Case(gl("schedule", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH="main"),
                                                  expected=(PREVIOUS_COMMIT, False, True, None),
                                                  how="scheduled pipeline on main: the previous commit, HEAD^1"),
    "gitlab schedule on a branch": Case(gl("schedule", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH="nightly"),
                                        expected=("origin/main", True, True, "main"), how="scheduled pipeline on nightly: merge base with main"),
    "gitlab web run of a tag": Case(gl("web", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_TAG="v1.0.0"),
                                    expected=("origin/main", True, True, "main"), how="pipeline run from the web v1.0.0: merge base with main"),
    "gitlab external pull request": Case(
        gl("external_pull_request_event", CI_EXTERNAL_PULL_REQUEST_IID="4", CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_NAME="main",
           CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_SHA=BASE, CI_COMMIT_BRANCH="topic"),
        expected=(BASE, True, True, BASE), how="external pull request #4: merge base with main"),
    **{f"gitlab {source} pipeline on the default branch": Case(gl(source, CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH="main"),
                                                               expected=(PREVIOUS_COMMIT, False, True, None))
       for source in NO_PUSH_SOURCES},
    "gitlab parent pipeline that knows the push": Case(gl("parent_pipeline", CI_COMMIT_BEFORE_SHA=BEFORE, CI_COMMIT_BRANCH="main"),
                                                       expected=(BEFORE, False, True, BEFORE)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_ci_source_gets_the_base_a_careful_user_expects(case):
    request = choose_base(case.since, case.env, case.event, default_branch=case.default_branch)
    assert (request.rev, request.merge_base, request.trusted, request.fetch) == case.expected
    if case.how:
        assert request.how == case.how


# -- hostile values: refused with one line naming the source, before git runs ------------------

HOSTILE = ("--upload-pack=touch /tmp/pwned #", "-oProxyCommand=touch /tmp/pwned", "--output=/tmp/x", "main\x1b]0;title\x07\nerror: forged")


def _pr_event(**base):
    return {"pull_request": {"number": 1, "base": {"ref": "main", "sha": BASE, **base}}, **REPO}


#: origin named in the refusal -> a function of the hostile value giving (since, env, event).
SOURCES = {
    "--since": lambda v: (v, {}, {}),
    "GITHUB_BASE_REF": lambda v: (None, gh("pull_request", GITHUB_BASE_REF=v), {}),
    "GITHUB_HEAD_REF": lambda v: (None, gh("pull_request", GITHUB_BASE_REF="main", GITHUB_HEAD_REF=v), _pr_event()),
    "GITHUB_REF": lambda v: (None, gh("push", v), {"before": BEFORE}),
    "$GITHUB_EVENT_PATH pull_request.base.sha": lambda v: (None, gh("pull_request"), _pr_event(sha=v)),
    "$GITHUB_EVENT_PATH pull_request.base.ref": lambda v: (None, gh("pull_request"), _pr_event(ref=v)),
    "$GITHUB_EVENT_PATH pull_request.number": lambda v: (None, gh("pull_request"), {"pull_request": {"number": v, "base": {"sha": BASE}}}),
    "$GITHUB_EVENT_PATH before": lambda v: (None, gh("push", "refs/heads/main"), {"before": v, **REPO}),
    "$GITHUB_EVENT_PATH after": lambda v: (None, gh("push", "refs/heads/main"), {"before": BEFORE, "after": v, **REPO}),
    "$GITHUB_EVENT_PATH merge_group.base_sha": lambda v: (None, gh("merge_group"), {"merge_group": {"base_sha": v}}),
    "$GITHUB_EVENT_PATH merge_group.base_ref": lambda v: (None, gh("merge_group"), {"merge_group": {"base_sha": BASE, "base_ref": v}}),
    "$GITHUB_EVENT_PATH repository.default_branch": lambda v: (None, gh("push", "refs/heads/topic"),
                                                                {"before": ZERO_SHA, "repository": {"default_branch": v}}),
    "$GITHUB_EVENT_PATH workflow_run.head_branch": lambda v: (None, gh("workflow_run", "refs/heads/main"), {"workflow_run": {"head_branch": v}}),
    "$GITHUB_EVENT_PATH workflow_run.pull_requests[0].base.sha": lambda v: (
        None, gh("workflow_run", "refs/heads/main"), {"workflow_run": {"head_branch": "x", "pull_requests": [{"base": {"sha": v}}]}}),
    "CI_MERGE_REQUEST_DIFF_BASE_SHA": lambda v: (None, gl("merge_request_event", CI_MERGE_REQUEST_IID="1", CI_MERGE_REQUEST_DIFF_BASE_SHA=v), {}),
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": lambda v: (None, gl("merge_request_event", CI_MERGE_REQUEST_IID="1",
                                                               CI_MERGE_REQUEST_TARGET_BRANCH_NAME=v), {}),
    "CI_MERGE_REQUEST_TARGET_BRANCH_SHA": lambda v: (None, gl("merge_request_event", CI_MERGE_REQUEST_IID="1",
                                                              CI_MERGE_REQUEST_EVENT_TYPE="merged_result", CI_MERGE_REQUEST_TARGET_BRANCH_SHA=v), {}),
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": lambda v: (None, gl("merge_request_event", CI_MERGE_REQUEST_IID="1",
                                                               CI_MERGE_REQUEST_SOURCE_BRANCH_NAME=v), {}),
    "CI_MERGE_REQUEST_IID": lambda v: (None, gl("merge_request_event", CI_MERGE_REQUEST_IID=v), {}),
    "CI_COMMIT_BEFORE_SHA": lambda v: (None, gl("push", CI_COMMIT_BEFORE_SHA=v, CI_COMMIT_BRANCH="main"), {}),
    "CI_DEFAULT_BRANCH": lambda v: (None, gl("push", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH="topic", CI_DEFAULT_BRANCH=v), {}),
    "CI_COMMIT_BRANCH": lambda v: (None, gl("schedule", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH=v), {}),
    "CI_COMMIT_TAG": lambda v: (None, gl("push", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_TAG=v), {}),
    "CI_COMMIT_REF_NAME": lambda v: (None, gl("web", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_REF_NAME=v), {}),
    "GITHUB_EVENT_NAME": lambda v: (None, gh(v, "refs/heads/main"), {}),
    "CI_PIPELINE_SOURCE": lambda v: (None, gl(v, CI_COMMIT_BRANCH="main"), {}),
    "CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_SHA": lambda v: (None, gl("external_pull_request_event",
                                                                      CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_SHA=v), {}),
}


@pytest.mark.parametrize("value", HOSTILE, ids=["upload-pack", "ssh-option", "output", "control-characters"])
@pytest.mark.parametrize("origin", SOURCES)
def test_a_hostile_value_from_any_source_is_refused_in_one_line_naming_it(origin, value):
    since, env, event = SOURCES[origin](value)
    with pytest.raises(InputError) as refused:
        choose_base(since, env, event, default_branch="origin/main")
    message = str(refused.value)
    assert message.startswith(f"{origin}: "), message
    assert message.isprintable(), message  # no escape, bell or newline reaches the terminal
    assert repr(value) in message or repr(value)[:60] in message
    assert "--upload-pack" not in message or "'--upload-pack" in message  # quoted, never bare


def test_a_full_ref_whose_branch_starts_with_a_dash_is_refused():
    for env, event, origin in ((gh("push", "refs/heads/-x"), {"before": BEFORE}, "GITHUB_REF"),
                               (gh("merge_group"), {"merge_group": {"base_ref": "refs/heads/--upload-pack=x"}}, "$GITHUB_EVENT_PATH merge_group.base_ref")):
        with pytest.raises(InputError, match=f"^{re.escape(origin)}: .* starts with '-'"):
            choose_base(None, env, event, default_branch="origin/main")


def test_git_ref_rules():
    for good in ("main", "feature/x", "release-1.x", "refs/heads/main", "v1.2.0", "HEAD", "user@host", "naïve"):
        assert is_ref_name(good), good
    for bad in ("-x", "--upload-pack=x", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "a@{1}", "@", ".a", "a/.b",
                "a.lock", "a/b.lock/c", "a/", "/a", "a//b", "a.", "", "a\x1b", "a\x7f", "a\u202eb"):
        assert not is_ref_name(bad), bad
    assert is_commit_id("A" * 40) and is_commit_id("0" * 64) and not is_commit_id("a" * 39) and not is_commit_id("a" * 41)
    assert revision("HEAD~3", "--since") == "HEAD~3"
    for bad in ("", "-x", " main", "main\n"):
        with pytest.raises(InputError, match=r"^--since: "):
            revision(bad, "--since")


def test_an_event_file_that_cannot_be_read_fails_the_run(tmp_path):
    with pytest.raises(InputError, match=r"^GITHUB_EVENT_PATH: cannot read the event file"):
        read_event({**GH, "GITHUB_EVENT_PATH": str(tmp_path / "missing.json")})
    broken = tmp_path / "event.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match=r"^GITHUB_EVENT_PATH: the event file .* is not JSON"):
        read_event({**GH, "GITHUB_EVENT_PATH": str(broken)})
    broken.write_text("[1]")
    with pytest.raises(InputError, match="holds no JSON object"):
        read_event({**GH, "GITHUB_EVENT_PATH": str(broken)})
    broken.write_text(json.dumps({"before": BEFORE}))
    assert read_event({**GH, "GITHUB_EVENT_PATH": str(broken)}) == {"before": BEFORE}
    assert read_event({"GITHUB_EVENT_PATH": str(tmp_path / "missing.json")}) == {}  # not in GitHub Actions: not read


# -- the previous commit (HEAD^1) in the repository -----------------------------------------


class ShallowLine:
    """A line of commits of which a shallow clone has the last ``have``; deepening brings more."""

    def __init__(self, length: int, have: int, *, remote: bool = True):
        self.length, self.have, self.remote = length, have, remote
        self.fetches: list[tuple[str, ...]] = []

    def head(self):
        return f"{self.length - 1:040x}"

    def resolve(self, rev):
        assert rev == PREVIOUS_COMMIT, rev
        return f"{self.length - 2:040x}" if self.length >= 2 and self.have >= 2 else None

    def merge_base(self, a, b):
        raise AssertionError("the previous commit is compared with as it is")

    def is_shallow(self):
        return self.have < self.length

    def has_remote(self, remote="origin"):
        return self.remote

    def fetch(self, remote, *refs, options=()):
        assert not refs, "HEAD^1 is no name a remote knows"
        self.fetches.append(tuple(options))
        self.have = self.length if "--unshallow" in options else min(self.length, self.have + int(options[0].split("=")[1]))
        return None


def previous_commit() -> BaseRequest:
    return choose_base(None, gl("schedule", CI_COMMIT_BEFORE_SHA=ZERO_SHA, CI_COMMIT_BRANCH="main"), {}, default_branch=None)


def test_the_previous_commit_in_a_depth_1_clone_is_reached_by_deepening_never_by_fetching_its_name():
    history = ShallowLine(length=10, have=1)
    base, note = locate_base(history, previous_commit())
    assert (base.commit, base.trusted, note) == (f"{8:040x}", True, "")
    assert history.fetches == [("--deepen=50",)]


def test_the_previous_commit_of_the_first_commit_is_the_empty_tree():
    history = ShallowLine(length=1, have=1, remote=False)
    base, _ = locate_base(history, previous_commit())
    assert base.commit == EMPTY_TREE and base.how.endswith("(HEAD is the first commit: everything is new)")
    assert not base.trusted


@pytest.mark.parametrize("value", HOSTILE, ids=["upload-pack", "ssh-option", "output", "control-characters"])
@pytest.mark.parametrize("name", ["GITHUB_SHA", "GITHUB_REF"])
def test_the_event_that_chooses_tags_refuses_the_same_values(name, value):
    """GITHUB_SHA reaches git (tag moves ask whether a newer run's commit descends from it); GITHUB_REF names tags and is printed."""
    env = {**GH, "GITHUB_SHA": BASE, "GITHUB_REF": "refs/heads/main", name: value}
    with pytest.raises(InputError) as refused:
        event_from_env(env, {})
    assert str(refused.value).startswith(f"{name}: ") and str(refused.value).isprintable()


# --- the event the tags follow -------------------------------------------------------------------------------------------


def test_events_from_github_actions():
    repo = {"repository": {"default_branch": "trunk"}}
    gh = {**GH, "GITHUB_SHA": BASE}
    assert event_from_env({**gh, "GITHUB_REF": "refs/tags/v1.2.3"}, repo) == Event("tag", BASE, "v1.2.3", "trunk")
    assert event_from_env({**gh, "GITHUB_REF": "refs/heads/trunk"}, repo) == Event("branch", BASE, "trunk", "trunk")
    assert event_from_env({**gh, "GITHUB_REF": "refs/pull/42/merge", "GITHUB_EVENT_NAME": "pull_request"}, repo) == \
        Event("pull_request", BASE, "", "trunk", 42)
    # a pull_request_target run is on the base branch's ref: the number comes from the payload
    assert event_from_env({**gh, "GITHUB_REF": "refs/heads/trunk", "GITHUB_EVENT_NAME": "pull_request_target"},
                          {**repo, "pull_request": {"number": 8}}) == Event("pull_request", BASE, "", "trunk", 8)
    assert event_from_env({"GITHUB_REF": "refs/heads/main"}, {}) is None


#: The variables GitLab sets in each kind of pipeline (predefined CI/CD variables): CI_COMMIT_BRANCH only in branch pipelines,
#: CI_COMMIT_TAG only in tag pipelines, CI_MERGE_REQUEST_IID only in merge request pipelines.
GITLAB = {
    "push to the default branch": ({"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main"},
                                   Event("branch", BASE, "main", "main")),
    "push to another branch": ({"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "topic", "CI_COMMIT_REF_NAME": "topic"},
                               Event("branch", BASE, "topic", "main")),
    "schedule on the default branch": ({"CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main"}, Event("branch", BASE, "main", "main")),
    "tag pipeline": ({"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_TAG": "v1.2.3", "CI_COMMIT_REF_NAME": "v1.2.3"},
                     Event("tag", BASE, "v1.2.3", "main")),
    "tag pipeline run from the web": ({"CI_PIPELINE_SOURCE": "web", "CI_COMMIT_TAG": "v2.0.0-rc.1"}, Event("tag", BASE, "v2.0.0-rc.1", "main")),
    "merge request": ({"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "17", "CI_MERGE_REQUEST_EVENT_TYPE": "detached",
                       "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "topic", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
                       "CI_COMMIT_REF_NAME": "topic"},
                      Event("pull_request", BASE, "", "main", 17)),
    "merged results": ({"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "17",
                        "CI_MERGE_REQUEST_EVENT_TYPE": "merged_result"}, Event("pull_request", BASE, "", "main", 17)),
    "external pull request": ({"CI_PIPELINE_SOURCE": "external_pull_request_event", "CI_EXTERNAL_PULL_REQUEST_IID": "4",
                               "CI_COMMIT_BRANCH": "topic"}, Event("pull_request", BASE, "", "main", 4)),
    "another default branch": ({"CI_DEFAULT_BRANCH": "trunk", "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "trunk"},
                               Event("branch", BASE, "trunk", "trunk")),
    "no branch, tag or request": ({"CI_PIPELINE_SOURCE": "api"}, Event("local", BASE, "", "main")),
}


@pytest.mark.parametrize(("variables", "expected"), GITLAB.values(), ids=GITLAB.keys())
def test_gitlab_pipelines_give_the_event_kinds_github_runs_give(variables, expected):
    assert event_from_env({**GL, "CI_COMMIT_SHA": BASE, **variables}, {}) == expected


def test_a_gitlab_pipeline_moves_the_tags_a_github_run_of_the_same_event_moves():
    """The same tags for the same event, whichever platform ran it: edge and sha- on main, pr-N held, version tags left to release."""
    pairs = [({"GITHUB_REF": "refs/heads/main"}, {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main"}),
             ({"GITHUB_REF": "refs/pull/17/merge", "GITHUB_EVENT_NAME": "pull_request"},
              {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "17"}),
             ({"GITHUB_REF": "refs/tags/v1.2.3"}, {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_TAG": "v1.2.3"})]
    for github, gitlab in pairs:
        on_github = event_from_env({**GH, "GITHUB_SHA": BASE, **github}, REPO)
        on_gitlab = event_from_env({**GL, "CI_COMMIT_SHA": BASE, **gitlab}, {})
        assert planned_tags(on_github, "fp") == planned_tags(on_gitlab, "fp"), (github, gitlab)
    main = planned_tags(event_from_env({**GL, "CI_COMMIT_SHA": BASE, "CI_COMMIT_BRANCH": "main"}, {}), "fp")
    assert [(t.tag, t.moves) for t in main] == [("fp", True), ("edge", True), (f"sha-{BASE[:7]}", True)]


@pytest.mark.parametrize("value", HOSTILE, ids=["upload-pack", "ssh-option", "output", "control-characters"])
@pytest.mark.parametrize("name", ["CI_COMMIT_SHA", "CI_COMMIT_TAG", "CI_COMMIT_BRANCH", "CI_DEFAULT_BRANCH", "CI_MERGE_REQUEST_IID"])
def test_the_gitlab_event_refuses_hostile_values_naming_the_variable(name, value):
    env = {**GL, "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_SHA": BASE, name: value}
    with pytest.raises(InputError) as refused:
        event_from_env(env, {})
    assert str(refused.value).startswith(f"{name}: ") and str(refused.value).isprintable()


def test_the_highest_version_tag_at_head_wins_and_the_others_are_named():
    event = event_from_git(BASE, ["v1.10.0", "v1.9.0", "v1.10.0-rc.1", "nightly"], "main", "main")
    assert (event.kind, event.ref) == ("tag", "v1.10.0")  # semver precedence, not alphabetical
    assert event.notes == ("several version tags at HEAD: v1.10.0 is the highest, so v1.10.0-rc.1, v1.9.0 are not released",)


def test_a_version_like_tag_that_breaks_a_rule_is_never_ignored_silently():
    event = event_from_git(BASE, ["1.0.0"], "main", "main")
    assert (event.kind, event.ref) == ("branch", "main")
    assert event.refused == ("tag 1.0.0 at HEAD is not a release tag: '1.0.0' is semver, but a leading v is required; tag the release v1.0.0",)
    assert event.notes == event.refused
    beside = event_from_git(BASE, ["v1.0.0", "V1.0.0"], "main", "main")
    assert beside.ref == "v1.0.0" and any("V1.0.0" in note and "lowercase" in note for note in beside.notes)


def test_events_from_git():
    assert event_from_git(BASE, ["nightly", "v1.2.0"], "main", "main") == Event("tag", BASE, "v1.2.0", "main")
    assert event_from_git(BASE, [], "main", "main") == Event("branch", BASE, "main", "main")
    assert event_from_git(BASE, [], None, "main") == Event("local", BASE, "", "main")


@pytest.mark.parametrize(("remote", "env", "expected"), [
    ("git@github.com:acme/mono.git", {}, "https://github.com/acme/mono"),
    ("https://x-access-token:ghs_SECRET@github.com/acme/mono.git", {}, "https://github.com/acme/mono"),
    ("https://user@gitlab.example.com/group/sub/mono", {}, "https://gitlab.example.com/group/sub/mono"),
    ("ssh://git@git.example.com:2222/acme/mono.git", {}, "https://git.example.com/acme/mono"),
    ("/srv/git/mono.git", {}, None),
    (None, {}, None),
    ("git@github.com:acme/fork.git", {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/mono"}, "https://github.com/acme/mono"),
    ("https://gitlab-ci-token:SECRET@gitlab.example.com/group/mono.git",
     {"GITLAB_CI": "true", "CI_PROJECT_URL": "https://gitlab.example.com/group/mono"}, "https://gitlab.example.com/group/mono"),
    (None, {"GITLAB_CI": "true", "CI_PROJECT_URL": "https://user:SECRET@gitlab.example.com/group/sub/mono?private_token=SECRET"},
     "https://gitlab.example.com/group/sub/mono"),
    ("git@github.com:acme/mono.git", {"CI_PROJECT_URL": "https://gitlab.example.com/other"}, "https://github.com/acme/mono"),  # not in GitLab CI
])
def test_source_url_never_carries_credentials(remote, env, expected):
    url = source_url(remote, env)
    assert url == expected
    assert url is None or ("SECRET" not in url and "@" not in url)
