"""Git explains the plan, on real repositories made in temp dirs.

The family is this repository's own (images.yaml, Dockerfiles, ignore files,
requirements, service code), copied into a fresh repository per test. Plans
that must not ask the registry point at a registry that does not exist, so a
single question would fail the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from imagegraph.adapters.context import assemble_context
from imagegraph.core.changes import UnknownRef
from imagegraph.core.options import BuildOptions
from imagegraph.core.plan import Decision
from imagegraph.workspace import Workspace
from tests.integration.conftest import commit_all, git, init_repo, one_error_line
from tests.integration.conftest import run_invoke as invoke_cli

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]
FAMILY_PATHS = ("images.yaml", ".dockerignore", "README.md", "docker", ".devcontainer/Dockerfile", ".devcontainer/Dockerfile.dockerignore",
                "requirements", "src/scorer")
ALL = ["base", "ci", "app", "devcontainer"]
#: Nothing listens here: a plan that asks it anything fails.
NO_REGISTRY = "127.0.0.1:9"
#: How a monorepo that uses imagegraph exposes its tasks.
TASKS = "from imagegraph.tasks import namespace  # noqa: F401\n"


def family_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for entry in FAMILY_PATHS:
        path = PROJECT / entry
        for file in sorted(path.rglob("*") if path.is_dir() else [path]):
            if file.is_file() and "__pycache__" not in file.parts:
                files[file.relative_to(PROJECT).as_posix()] = file.read_text(encoding="utf-8")
    files["tasks.py"] = TASKS
    return files


@pytest.fixture(autouse=True)
def outside_ci(monkeypatch):
    """These tests decide what CI looks like; the CI running them must not leak in."""
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "CI_")) or name in ("GITLAB_CI", "IMAGEGRAPH_REGISTRY", "IMAGEGRAPH_PLATFORMS"):
            monkeypatch.delenv(name)


@pytest.fixture
def repo(tmp_path) -> Path:
    return init_repo(tmp_path / "mono", family_files())


def edit(root: Path, relpath: str, text: str | None = None, *, append: str | None = None) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    if append is not None:
        text = (path.read_text() if path.exists() else "") + append
    path.write_text(text or "")


def workspace(root: Path, **options) -> Workspace:
    return Workspace(root, BuildOptions(registry=options.pop("registry", NO_REGISTRY), **options))


def affected(root: Path, **options) -> list[str]:
    _, entries = workspace(root, **options).affected()
    return [entry.name for entry in entries]


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


# -- the outcomes the plan must reach ----------------------------------------------


def test_comment_only_change_to_the_torch_requirements_builds_nothing_and_asks_nothing(repo):
    edit(repo, "requirements/requirements-torch.txt", append="# pinned with the CPU wheels in mind\n\n")
    commit_all(repo, "comment")
    assert affected(repo, since="HEAD~1") == []
    plan = workspace(repo, since="HEAD~1").plan()
    assert plan.to_build() == ()
    assert plan.image("base").changed == ("requirements/requirements-torch.txt",)
    assert "not in substance" in plan.image("base").reason


def repo_in(tmp_path: Path, namespace: str) -> Path:
    """The family in a registry namespace of the test's own (the real registry, nothing in it yet)."""
    files = family_files()
    files["images.yaml"] = files["images.yaml"].replace("namespace: imagegraph", f"namespace: {namespace}")
    return init_repo(tmp_path / "mono", files)


def test_a_new_service_package_rebuilds_ci_app_and_devcontainer(tmp_path, registry, namespace):
    repo = repo_in(tmp_path, namespace)
    edit(repo, "requirements/requirements.txt", append="orjson==3.11.0\n")
    commit_all(repo, "orjson")
    assert affected(repo, since="HEAD~1") == ["ci", "app", "devcontainer"]
    # The real registry, in a namespace of this test's own: the base is asked about (the children stand
    # on it) and is not there, so it is built too, and the plan says why.
    plan = workspace(repo, since="HEAD~1", registry=registry).plan()
    assert [e.name for e in plan.to_build()] == ALL
    assert plan.image("base").reason.endswith("but its fingerprint tag is not in the registry")
    assert plan.image("app").reason == "requirements/requirements.txt changed → app (and parent base is rebuilt)"


def test_a_since_base_that_was_never_published_is_looked_up_in_full(tmp_path, registry, namespace):
    repo = repo_in(tmp_path, namespace)
    edit(repo, "src/scorer/model.py", append="\n# tuned\n")
    commit_all(repo, "tune")
    notes: list[str] = []
    plan = workspace(repo, since="HEAD~1", registry=registry).plan(say=notes.append)
    # --since vouches for HEAD~1's images, but its base is missing from this empty namespace: nothing is assumed.
    assert notes == ["the base commit's images are not all published: looking up every image"]
    assert [e.name for e in plan.to_build()] == ALL


def test_a_service_code_change_rebuilds_only_the_image_that_copies_the_code(repo):
    edit(repo, "src/scorer/model.py", append="\n# tuned\n")
    commit_all(repo, "tune")
    assert affected(repo, since="HEAD~1") == ["app"]


def test_a_change_to_the_base_dockerfile_rebuilds_all_four(repo):
    edit(repo, "docker/Dockerfile.base", append="RUN echo more\n")
    commit_all(repo, "base")
    _, entries = workspace(repo, since="HEAD~1").affected()
    assert [e.name for e in entries] == ALL
    assert entries[0].reason == "docker/Dockerfile.base changed → base → ci, app, devcontainer"
    assert entries[1].reason == "docker/Dockerfile.base changed → base → ci"


def test_readme_only_builds_nothing_and_asks_the_registry_nothing(repo):
    edit(repo, "README.md", append="\nMore words.\n")
    edit(repo, "docs/guide.md", "# guide\n")
    commit_all(repo, "docs")
    plan = workspace(repo, since="HEAD~1").plan()  # NO_REGISTRY: one question would raise
    assert {e.decision for e in plan.images} == {Decision.REUSE}
    assert plan.explanation.ignored == ("README.md", "docs/guide.md")
    assert affected(repo, since="HEAD~1") == []


def test_renaming_a_file_inside_an_input_glob_rebuilds_its_image(repo):
    git(repo, "mv", "src/scorer/model.py", "src/scorer/network.py")
    commit_all(repo, "rename")
    explanation, entries = workspace(repo, since="HEAD~1").affected()
    assert [e.name for e in entries] == ["app"]
    assert entries[0].changed == ("src/scorer/model.py", "src/scorer/network.py")
    assert [(c.old_path, c.path, c.kind) for c in explanation.changes] == [("src/scorer/model.py", "src/scorer/network.py", "renamed")]


def test_moving_a_file_out_of_an_input_glob_counts_its_old_path(repo):
    (repo / "tools").mkdir()
    git(repo, "mv", "src/scorer/model.py", "tools/model.py")
    commit_all(repo, "move out")
    assert affected(repo, since="HEAD~1") == ["app"]


def test_deleting_an_input_rebuilds_its_image(repo):
    git(repo, "rm", "-q", "src/scorer/model.py")
    commit_all(repo, "delete")
    _, entries = workspace(repo, since="HEAD~1").affected()
    assert [e.name for e in entries] == ["app"] and entries[0].changed == ("src/scorer/model.py",)


def test_images_yaml_edit_rebuilds_only_the_image_whose_settings_changed(repo):
    text = (repo / "images.yaml").read_text().replace("    target: runtime\n", "    target: runtime\n    build_args: {MODE: fast}\n")
    edit(repo, "images.yaml", text)
    commit_all(repo, "args")
    assert affected(repo, since="HEAD~1") == ["app"]
    edit(repo, "images.yaml", text + "\n# a comment\n")
    commit_all(repo, "comment in images.yaml")
    assert affected(repo, since="HEAD~1") == []


# -- choosing the base, and the shapes git history takes ----------------------------------


def test_uncommitted_and_untracked_changes_count(repo):
    edit(repo, "requirements/requirements-dev.txt", append="pytest-timeout==2.4.0\n")  # unstaged edit
    edit(repo, "src/scorer/extra.py", "X = 1\n")  # untracked
    explanation, entries = workspace(repo).affected()  # local: merge base with main, which is HEAD here
    assert explanation.base.how == "merge base with main" and explanation.base.commit == head(repo)
    assert [e.name for e in entries] == ["ci", "app", "devcontainer"]
    assert {c.path: c.kind for c in explanation.changes} == {"requirements/requirements-dev.txt": "modified", "src/scorer/extra.py": "untracked"}


def test_ignored_files_never_count(repo):
    edit(repo, ".gitignore", "*.log\n")
    commit_all(repo, "ignore logs")
    edit(repo, "src/scorer/debug.log", "noise\n")
    assert affected(repo, since="HEAD") == []


def test_imagegraph_own_folders_never_count_even_where_git_does_not_ignore_them(repo):
    # an assembled context holds copies of inputs: `src/scorer/**` style globs would match them at any depth
    assert not (repo / ".gitignore").exists()  # the family lists no ignore file at all
    before = {name: fp.tag for name, fp in workspace(repo).fingerprints.items()}
    edit(repo, ".imagegraph/contexts/app/src/scorer/app.py", "print('a copy')\n")
    edit(repo, ".wheelhouse/requirements/x-1.0-py3-none-any.whl", "not a wheel\n")
    assert {name: fp.tag for name, fp in workspace(repo).fingerprints.items()} == before
    assert affected(repo, since="HEAD") == []


def test_locally_the_base_is_the_merge_base_with_the_default_branch(repo):
    git(repo, "checkout", "-qb", "feature")
    edit(repo, "src/scorer/model.py", append="\n# feature work\n")
    commit_all(repo, "feature")
    git(repo, "checkout", "-q", "main")
    edit(repo, "requirements/requirements-torch.txt", append="numpy==2.3.4\n")  # main moves on: not the branch's change
    commit_all(repo, "main moves")
    fork_point = git(repo, "merge-base", "main", "feature").strip()
    git(repo, "checkout", "-q", "feature")
    explanation, entries = workspace(repo).affected()
    assert explanation.base.commit == fork_point and not explanation.base.trusted
    assert [e.name for e in entries] == ["app"]


def test_detached_head_still_finds_the_merge_base(repo):
    edit(repo, "src/scorer/model.py", append="\n# detached work\n")
    commit_all(repo, "work")
    git(repo, "checkout", "-q", "--detach", "HEAD")
    git(repo, "branch", "-qf", "main", "HEAD~1")
    explanation, entries = workspace(repo).affected()
    assert explanation.base.commit == git(repo, "rev-parse", "main").strip()
    assert [e.name for e in entries] == ["app"]


def github_event(tmp_path: Path, monkeypatch, name: str, payload: dict, **env: str) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", name)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_pull_request_compares_with_its_merge_base_and_trusts_it(repo, tmp_path, monkeypatch):
    base_sha = head(repo)
    git(repo, "checkout", "-qb", "pr")
    edit(repo, "requirements/requirements.txt", append="orjson==3.11.0\n")
    commit_all(repo, "pr work")
    github_event(tmp_path, monkeypatch, "pull_request", {"number": 7, "pull_request": {"number": 7, "base": {"ref": "main", "sha": base_sha}}})
    explanation, entries = workspace(repo).affected()
    assert (explanation.base.commit, explanation.base.how, explanation.base.trusted) == (base_sha, "pull request #7: merge base with main", True)
    assert [e.name for e in entries] == ["ci", "app", "devcontainer"]


def test_push_compares_with_the_previous_push_across_a_merge_commit(repo, tmp_path, monkeypatch):
    before = head(repo)
    git(repo, "checkout", "-qb", "topic")
    edit(repo, "src/scorer/model.py", append="\n# topic\n")
    commit_all(repo, "topic")
    git(repo, "checkout", "-q", "main")
    edit(repo, "docs/notes.md", "notes\n")
    commit_all(repo, "docs on main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "merge", "-q", "--no-ff", "-m", "merge topic", "topic")
    assert len(git(repo, "rev-list", "--parents", "-n1", "HEAD").split()) == 3  # a real merge commit
    github_event(tmp_path, monkeypatch, "push", {"before": before, "repository": {"default_branch": "main"}}, GITHUB_REF="refs/heads/main")
    explanation, entries = workspace(repo).affected()
    assert explanation.base.commit == before and explanation.base.how == f"previous push {before[:7]}"
    assert [e.name for e in entries] == ["app"]
    assert explanation.ignored == ("docs/notes.md",)


def test_first_push_of_a_repository_builds_everything(repo, tmp_path, monkeypatch):
    github_event(tmp_path, monkeypatch, "push", {"before": "0" * 40, "repository": {"default_branch": "main"}}, GITHUB_REF="refs/heads/main")
    explanation, entries = workspace(repo).affected()
    assert explanation.base.how == "first push of main: everything is new"
    assert [e.name for e in entries] == ALL


def test_a_repository_without_any_commit_is_all_new(tmp_path):
    root = tmp_path / "fresh"
    from tests.conftest import write_tree

    write_tree(root, family_files())
    git(root, "init", "-q", "-b", "main")
    explanation, entries = workspace(root).affected()
    assert explanation.base.how == "no commit yet: everything is new"
    assert [e.name for e in entries] == ALL


def test_a_project_below_the_top_of_a_monorepo(tmp_path):
    files = {f"platform/images/{path}": text for path, text in family_files().items()}
    top = init_repo(tmp_path / "big", {**files, "other/service.py": "x = 1\n"})
    edit(top, "other/service.py", "x = 2\n")
    edit(top, "platform/images/src/scorer/model.py", append="\n# nested\n")
    commit_all(top, "both")
    explanation, entries = workspace(top / "platform" / "images", since="HEAD~1").affected()
    assert [e.name for e in entries] == ["app"]
    assert [c.path for c in explanation.changes] == ["src/scorer/model.py"]  # paths relative to images.yaml


def clone(origin: Path, dest: Path, *args: str) -> Path:
    subprocess.run(["git", "clone", "-q", *args, f"file://{origin}", str(dest)], check=True)
    return dest


def test_a_shallow_clone_deepens_until_it_reaches_the_base(repo, tmp_path, monkeypatch):
    base_sha = head(repo)
    for n in range(60):  # longer than the first deepening step
        edit(repo, "docs/log.md", append=f"entry {n}\n")
        commit_all(repo, f"docs {n}")
    edit(repo, "src/scorer/model.py", append="\n# late change\n")
    commit_all(repo, "code")
    shallow = clone(repo, tmp_path / "shallow", "--depth=1", "--no-single-branch")
    assert git(shallow, "rev-parse", "--is-shallow-repository").strip() == "true"
    github_event(tmp_path, monkeypatch, "push", {"before": base_sha})
    explanation, entries = workspace(shallow).affected()
    assert explanation.base.commit == base_sha and explanation.note == ""
    assert [e.name for e in entries] == ["app"]


def test_a_shallow_clone_that_cannot_deepen_falls_back_and_says_so(repo, tmp_path, monkeypatch):
    base_sha = head(repo)
    edit(repo, "src/scorer/model.py", append="\n# change\n")
    commit_all(repo, "code")
    edit(repo, "docs/a.md", "a\n")
    commit_all(repo, "docs")
    shallow = clone(repo, tmp_path / "shallow", "--depth=1")
    shutil.rmtree(repo)  # the remote is gone
    github_event(tmp_path, monkeypatch, "push", {"before": base_sha})
    explanation, entries = workspace(shallow).affected()
    assert explanation.base is None
    assert "deciding by fingerprints alone" in explanation.note and base_sha[:7] in explanation.note
    assert [e.name for e in entries] == ALL  # without history every image must be checked by fingerprint


def pull_request_branch(repo: Path, *, main_moves_on: bool = True) -> str:
    """A branch `pr` that changes the service code, main moving on after it forked; returns the fork point."""
    fork = head(repo)
    git(repo, "checkout", "-qb", "pr")
    edit(repo, "src/scorer/model.py", append="\n# pr change\n")
    commit_all(repo, "pr: code")
    for n in range(3):
        edit(repo, "docs/pr.md", append=f"pr {n}\n")
        commit_all(repo, f"pr docs {n}")
    git(repo, "checkout", "-q", "main")
    if main_moves_on:
        for n in range(3):
            edit(repo, "docs/main.md", append=f"main {n}\n")
            commit_all(repo, f"main docs {n}")
    return fork


@pytest.mark.parametrize("since", ["main", "origin/main", "fork"])
@pytest.mark.parametrize("depth", [("--depth=1",), ()], ids=["shallow", "full"])
def test_a_clone_of_a_pull_request_branch_finds_its_base_with_since(repo, tmp_path, since, depth):
    fork = pull_request_branch(repo)
    pr = clone(repo, tmp_path / "pr", *depth, "--branch", "pr")
    explanation, entries = workspace(pr, since=fork if since == "fork" else since).affected()
    # the base is the fork point, never the branch's own tip (FETCH_HEAD rewritten by deepening)
    assert explanation.base.commit == fork, explanation.to_dict()
    assert [e.name for e in entries] == ["app"]


def test_a_shallow_pull_request_clone_whose_base_cannot_be_fetched_refuses_since(repo, tmp_path):
    pull_request_branch(repo)
    pr = clone(repo, tmp_path / "pr", "--depth=1", "--branch", "pr")
    shutil.rmtree(repo)
    with pytest.raises(UnknownRef, match="--since main: unknown revision"):
        workspace(pr, since="main").affected()


def gitlab(monkeypatch, **env: str) -> None:
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("CI_DEFAULT_BRANCH", "main")
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("depth", [("--depth=1",), ()], ids=["shallow", "full"])
def test_gitlab_merge_request_compares_with_its_diff_base(repo, tmp_path, monkeypatch, depth):
    fork = pull_request_branch(repo)
    pr = clone(repo, tmp_path / "pr", *depth, "--branch", "pr")
    gitlab(monkeypatch, CI_MERGE_REQUEST_IID="4", CI_MERGE_REQUEST_DIFF_BASE_SHA=fork, CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
           CI_COMMIT_BEFORE_SHA="0" * 40)
    explanation, entries = workspace(pr).affected()
    assert (explanation.base.commit, explanation.base.how) == (fork, "merge request !4: merge base with main")
    assert [e.name for e in entries] == ["app"]


def test_gitlab_merge_request_with_only_the_target_branch_name(repo, tmp_path, monkeypatch):
    fork = pull_request_branch(repo)
    pr = clone(repo, tmp_path / "pr", "--depth=1", "--branch", "pr")
    gitlab(monkeypatch, CI_MERGE_REQUEST_IID="4", CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main")
    explanation, entries = workspace(pr).affected()
    assert explanation.base.commit == fork
    assert [e.name for e in entries] == ["app"]


def test_gitlab_push_compares_with_the_commit_before_it(repo, tmp_path, monkeypatch):
    before = head(repo)
    edit(repo, "src/scorer/model.py", append="\n# pushed\n")
    commit_all(repo, "code")
    edit(repo, "docs/a.md", "a\n")
    commit_all(repo, "docs")
    shallow = clone(repo, tmp_path / "shallow", "--depth=1")
    gitlab(monkeypatch, CI_COMMIT_BEFORE_SHA=before, CI_COMMIT_BRANCH="main")
    explanation, entries = workspace(shallow).affected()
    assert (explanation.base.commit, explanation.base.how) == (before, f"previous push {before[:7]}")
    assert [e.name for e in entries] == ["app"]


def test_gitlab_push_whose_before_sha_is_gone_checks_every_image_and_says_so(repo, tmp_path, monkeypatch):
    edit(repo, "src/scorer/model.py", append="\n# pushed\n")
    commit_all(repo, "code")
    shallow = clone(repo, tmp_path / "shallow", "--depth=1")
    gitlab(monkeypatch, CI_COMMIT_BEFORE_SHA="f" * 40, CI_COMMIT_BRANCH="main")
    explanation, entries = workspace(shallow).affected()
    assert explanation.base is None and "f" * 7 in explanation.note and "deciding by fingerprints alone" in explanation.note
    assert [e.name for e in entries] == ALL


def test_gitlab_first_pipeline_of_the_default_branch_is_all_new(repo, monkeypatch):
    gitlab(monkeypatch, CI_COMMIT_BEFORE_SHA="0" * 40, CI_COMMIT_BRANCH="main")
    explanation, entries = workspace(repo).affected()
    assert "everything is new" in explanation.base.how and [e.name for e in entries] == ALL


ZEROS = "0" * 40
SIGN = ("-c", "user.name=t", "-c", "user.email=t@example.invalid")


def merged_result(repo: Path) -> tuple[str, str]:
    """What a merged-results pipeline runs on: a merge request's branch (service code) merged onto the target's tip.

    main moved on after the request forked, with a change to the base
    image's Dockerfile: compared with the request's diff base, every image
    would count. The merge commit is on branch `mr-9-merge` (GitLab's
    refs/merge-requests/9/merge). Returns (the diff base, the target's tip).
    """
    fork = pull_request_branch(repo, main_moves_on=False)
    edit(repo, "docker/Dockerfile.base", append="RUN echo main moved on\n")
    commit_all(repo, "main: base")
    target = head(repo)
    git(repo, "checkout", "-qb", "mr-9-merge")
    git(repo, *SIGN, "merge", "-q", "--no-ff", "-m", "merge pr into main", "pr")
    git(repo, "checkout", "-q", "main")
    return fork, target


@pytest.mark.parametrize("target_sha", [True, False], ids=["target-sha", "no-target-sha"])
@pytest.mark.parametrize("depth", [("--depth=1",), ()], ids=["shallow", "full"])
def test_gitlab_merged_results_compare_with_the_commit_they_were_merged_onto(repo, tmp_path, monkeypatch, depth, target_sha):
    fork, target = merged_result(repo)
    ci = clone(repo, tmp_path / "ci", *depth, "--branch", "mr-9-merge")
    gitlab(monkeypatch, CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="9", CI_MERGE_REQUEST_EVENT_TYPE="merged_result",
           CI_MERGE_REQUEST_DIFF_BASE_SHA=fork, CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main", CI_COMMIT_BEFORE_SHA=ZEROS,
           **({"CI_MERGE_REQUEST_TARGET_BRANCH_SHA": target} if target_sha else {}))
    explanation, entries = workspace(ci).affected()
    assert explanation.base.commit == target, explanation.to_dict()
    assert "merged results" in explanation.base.how and "the commit it was merged onto" in explanation.base.how
    assert [e.name for e in entries] == ["app"]  # main's base change is not this request's


def test_a_detached_merge_request_pipeline_on_the_same_merge_would_count_the_targets_changes(repo, tmp_path, monkeypatch):
    """Why the kind matters: the diff base of a merge commit counts what the target gained since the fork."""
    fork, _ = merged_result(repo)
    ci = clone(repo, tmp_path / "ci", "--branch", "mr-9-merge")
    gitlab(monkeypatch, CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="9", CI_MERGE_REQUEST_DIFF_BASE_SHA=fork,
           CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main")
    explanation, entries = workspace(ci).affected()
    assert explanation.base.commit == fork and [e.name for e in entries] == ALL


def test_gitlab_merge_train_compares_with_the_car_ahead_and_trusts_nothing(repo, tmp_path, monkeypatch):
    _, target = merged_result(repo)
    gitlab(monkeypatch, CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="9", CI_MERGE_REQUEST_EVENT_TYPE="merge_train",
           CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main", CI_MERGE_REQUEST_TARGET_BRANCH_SHA=target)
    git(repo, "checkout", "-q", "mr-9-merge")
    explanation, entries = workspace(repo).affected()
    assert (explanation.base.commit, explanation.base.trusted) == (target, False)
    assert [e.name for e in entries] == ["app"]


@pytest.mark.parametrize("source", ["schedule", "web", "api"])
@pytest.mark.parametrize("depth", [("--depth=1",), ()], ids=["shallow", "full"])
def test_a_gitlab_pipeline_no_push_started_on_main_compares_with_the_previous_commit(repo, tmp_path, monkeypatch, depth, source):
    previous = head(repo)
    edit(repo, "src/scorer/model.py", append="\n# last change\n")
    commit_all(repo, "code")
    ci = clone(repo, tmp_path / "ci", *depth)
    gitlab(monkeypatch, CI_PIPELINE_SOURCE=source, CI_COMMIT_BEFORE_SHA=ZEROS, CI_COMMIT_BRANCH="main", CI_COMMIT_REF_NAME="main")
    explanation, entries = workspace(ci).affected()
    # Not a first push (everything new): the commit before HEAD had a pipeline of its own.
    assert explanation.base.commit == previous and explanation.base.how.endswith("on main: the previous commit, HEAD^1")
    assert [e.name for e in entries] == ["app"]


def test_a_scheduled_pipeline_on_the_first_commit_is_all_new(repo, monkeypatch):
    gitlab(monkeypatch, CI_PIPELINE_SOURCE="schedule", CI_COMMIT_BEFORE_SHA=ZEROS, CI_COMMIT_BRANCH="main")
    explanation, entries = workspace(repo).affected()
    assert explanation.base.how.endswith("(HEAD is the first commit: everything is new)") and [e.name for e in entries] == ALL


def test_a_gitlab_scheduled_pipeline_on_another_branch_compares_with_its_merge_base(repo, tmp_path, monkeypatch):
    fork = pull_request_branch(repo)
    ci = clone(repo, tmp_path / "ci", "--depth=1", "--branch", "pr")
    gitlab(monkeypatch, CI_PIPELINE_SOURCE="schedule", CI_COMMIT_BEFORE_SHA=ZEROS, CI_COMMIT_BRANCH="pr")
    explanation, entries = workspace(ci).affected()
    assert explanation.base.commit == fork and explanation.base.how == "scheduled pipeline on pr: merge base with main"
    assert [e.name for e in entries] == ["app"]


@pytest.mark.parametrize("depth", [("--depth=1",), ()], ids=["shallow", "full"])
def test_github_merge_group_compares_with_the_groups_parent(repo, tmp_path, monkeypatch, depth):
    fork = pull_request_branch(repo, main_moves_on=False)
    git(repo, "checkout", "-q", "pr")
    edit(repo, "requirements/requirements.txt", append="orjson==3.11.0\n")
    commit_all(repo, "pr: requirement")
    git(repo, "checkout", "-q", "main")
    edit(repo, "docker/Dockerfile.base", append="RUN echo main moved on\n")
    commit_all(repo, "main: base")
    parent = head(repo)
    queue = f"gh-readonly-queue/main/pr-7-{parent}"
    git(repo, "checkout", "-qb", queue)
    git(repo, *SIGN, "merge", "-q", "--no-ff", "-m", "Merge pull request #7", "pr")
    group_head = head(repo)
    git(repo, "checkout", "-q", "main")
    ci = clone(repo, tmp_path / "ci", *depth, "--branch", queue)
    github_event(tmp_path, monkeypatch, "merge_group",
                 {"action": "checks_requested", "merge_group": {"base_sha": parent, "base_ref": "refs/heads/main", "head_sha": group_head,
                                                                "head_ref": f"refs/heads/{queue}"},
                  "repository": {"default_branch": "main"}}, GITHUB_REF=f"refs/heads/{queue}", GITHUB_SHA=group_head)
    explanation, entries = workspace(ci).affected()
    assert explanation.base.commit == parent != fork
    assert explanation.base.how == f"merge queue into main: merge base with the group's parent {parent[:7]}"
    assert [e.name for e in entries] == ["ci", "app", "devcontainer"]


@pytest.mark.parametrize("depth", [("--depth=1",), ()], ids=["shallow", "full"])
def test_github_push_of_a_new_branch_compares_with_its_merge_base_with_the_default_branch(repo, tmp_path, monkeypatch, depth):
    fork = pull_request_branch(repo, main_moves_on=False)
    edit(repo, "docker/Dockerfile.base", append="RUN echo main moved on\n")
    commit_all(repo, "main: base")
    ci = clone(repo, tmp_path / "ci", *depth, "--branch", "pr")
    github_event(tmp_path, monkeypatch, "push", {"before": ZEROS, "after": git(ci, "rev-parse", "HEAD").strip(), "created": True,
                                                 "repository": {"default_branch": "main"}}, GITHUB_REF="refs/heads/pr")
    explanation, entries = workspace(ci).affected()
    assert (explanation.base.commit, explanation.base.how) == (fork, "new branch pr: merge base with main")
    assert [e.name for e in entries] == ["app"]


@pytest.mark.parametrize("event", ["schedule", "workflow_dispatch"])
def test_a_github_run_no_push_started_on_main_compares_with_the_previous_commit(repo, tmp_path, monkeypatch, event):
    previous = head(repo)
    edit(repo, "requirements/requirements.txt", append="orjson==3.11.0\n")
    commit_all(repo, "requirement")
    ci = clone(repo, tmp_path / "ci", "--depth=1")
    github_event(tmp_path, monkeypatch, event, {"repository": {"default_branch": "main"}}, GITHUB_REF="refs/heads/main")
    explanation, entries = workspace(ci).affected()
    assert (explanation.base.commit, explanation.base.how) == (previous, f"{event} on main: the previous commit, HEAD^1")
    assert [e.name for e in entries] == ["ci", "app", "devcontainer"]


def test_two_clones_in_different_places_agree_on_every_fingerprint(repo, tmp_path):
    other = clone(repo, tmp_path / "elsewhere" / "deeper" / "clone")
    here = {name: fp.digest for name, fp in workspace(repo).fingerprints.items()}
    there = {name: fp.digest for name, fp in workspace(other).fingerprints.items()}
    assert here == there and len(set(here.values())) == 4


def test_fingerprints_of_a_dirty_file_match_the_same_content_committed(repo):
    before = workspace(repo).fingerprints["app"].digest
    edit(repo, "src/scorer/model.py", append="\n# edit\n")
    dirty = workspace(repo)
    dirty_digest = dirty.fingerprints["app"].digest
    assert dirty_digest != before and dirty.sources.hashed == 1  # only the edited file was read
    commit_all(repo, "edit")
    assert workspace(repo).fingerprints["app"].digest == dirty_digest


# -- bad input: one clear line and a non-zero exit ----------------------------------------


def run_invoke(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return invoke_cli(root, *args, IMAGEGRAPH_REGISTRY=NO_REGISTRY)


def test_unknown_since_ref(repo):
    line = one_error_line(run_invoke(repo, "affected", "--since", "no-such-branch"))
    assert "--since no-such-branch: unknown revision" in line and "git log --oneline" in line
    with pytest.raises(UnknownRef):
        workspace(repo, since="v9.9.9").affected()


def test_a_path_outside_the_repository_in_images_yaml(repo):
    text = (repo / "images.yaml").read_text().replace('inputs: ["src/scorer/**"]', 'inputs: ["../secrets/**"]')
    edit(repo, "images.yaml", text)
    line = one_error_line(run_invoke(repo, "plan"))
    assert "'../secrets/**' points outside the repository" in line


def test_a_glob_that_matches_nothing(repo):
    text = (repo / "images.yaml").read_text().replace('inputs: ["src/scorer/**"]', 'inputs: ["src/scorr/**"]')
    edit(repo, "images.yaml", text)
    line = one_error_line(run_invoke(repo, "plan", "--json"))
    assert "input 'src/scorr/**' matches no file" in line


def test_a_directory_that_is_not_a_git_repository(tmp_path):
    from tests.conftest import write_tree

    root = tmp_path / "plain"
    write_tree(root, family_files())
    line = one_error_line(run_invoke(root, "affected"))
    assert "is not inside a git repository" in line and "git init" in line


def test_plan_and_affected_json_for_machines(repo):
    edit(repo, "requirements/requirements.txt", append="orjson==3.11.0\n")
    commit_all(repo, "orjson")
    result = run_invoke(repo, "affected", "--since", "HEAD~1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["images"] == ["ci", "app", "devcontainer"]
    assert [(m["image"], m["parent"], m["depth"]) for m in data["matrix"]["include"]] == [("ci", "base", 1), ("app", "base", 1), ("devcontainer", "base", 1)]
    edit(repo, "README.md", append="\nmore\n")
    commit_all(repo, "docs")
    plan = json.loads(run_invoke(repo, "plan", "--since", "HEAD~1", "--json").stdout)
    assert [i["decision"] for i in plan["images"]] == ["reuse"] * 4
    assert plan["git"]["ignored"] == ["README.md"] and plan["git"]["base"]["trusted"] is True


def test_a_file_the_dockerfile_copies_but_images_yaml_does_not_declare_is_a_warning(repo):
    edit(repo, "docker/Dockerfile", append="COPY models/scorer.onnx /app/models/\n")
    edit(repo, "docker/Dockerfile.dockerignore", append="!models/scorer.onnx\n")
    edit(repo, "models/scorer.onnx", "weights\n")
    commit_all(repo, "model file")
    warnings = workspace(repo).input_warnings()
    assert len(warnings) == 1
    assert warnings[0].startswith("image 'app': docker/Dockerfile:") and "uses models/scorer.onnx, which images.yaml does not declare" in warnings[0]
    result = run_invoke(repo, "affected", "--since", "HEAD~1")
    assert result.returncode == 0 and result.stdout.split() == ["app"]
    edit(repo, "images.yaml", (repo / "images.yaml").read_text().replace('inputs: ["src/scorer/**"]', 'inputs: ["src/scorer/**", "models/**"]'))
    assert workspace(repo).input_warnings() == ()


def test_this_repositorys_own_images_declare_every_file_their_dockerfiles_use(repo):
    assert workspace(repo).input_warnings() == ()


def test_a_merge_in_progress_is_refused_with_one_line(repo):
    git(repo, "checkout", "-qb", "other")
    edit(repo, "src/scorer/model.py", append="\n# theirs\n")
    commit_all(repo, "theirs")
    git(repo, "checkout", "-q", "main")
    edit(repo, "src/scorer/model.py", append="\n# ours\n")
    commit_all(repo, "ours")
    # an identity of its own: where git has none configured (the CI image), merge would stop before it starts
    merging = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "merge", "-q", "other"],
                             capture_output=True, text=True)
    assert merging.returncode != 0 and "CONFLICT" in merging.stdout + merging.stderr, merging.stdout + merging.stderr
    line = one_error_line(run_invoke(repo, "affected", "--since", "HEAD~1"))
    assert "a merge is in progress with unmerged paths (src/scorer/model.py)" in line and "git merge --abort" in line


# -- every setting that changes the result, and nothing else ----------------------------------------------------------


def test_a_root_dockerignore_change_rebuilds_no_image_that_has_its_own(repo):
    edit(repo, ".dockerignore", append="docs\n")
    commit_all(repo, "root ignore")
    explanation, entries = workspace(repo, since="HEAD~1").affected()
    assert entries == () and explanation.ignored == (".dockerignore",)


def test_a_root_dockerignore_change_rebuilds_the_image_that_reads_it(repo):
    git(repo, "rm", "-q", ".devcontainer/Dockerfile.dockerignore")
    commit_all(repo, "devcontainer uses the root ignore file")
    edit(repo, ".dockerignore", append="docs\n")
    commit_all(repo, "root ignore")
    assert affected(repo, since="HEAD~1") == ["devcontainer"]


def test_the_python_version_in_images_yaml_rebuilds_every_image_with_wheels(repo):
    edit(repo, "images.yaml", (repo / "images.yaml").read_text().replace('python: "3.11"', 'python: "3.12"'))
    commit_all(repo, "python 3.12")
    explanation, entries = workspace(repo, since="HEAD~1").affected()
    assert [e.name for e in entries] == ALL
    assert explanation.causes == {name: ("images.yaml",) for name in ALL}


def test_a_data_file_named_like_requirements_is_content_not_requirements(repo):
    edit(repo, "src/scorer/requirements-model.txt", "weights==3\n")
    commit_all(repo, "model data")
    edit(repo, "src/scorer/requirements-model.txt", append="# retrained on 2026-11 data\n")
    commit_all(repo, "comment in a data file")
    explanation, entries = workspace(repo, since="HEAD~1").affected()
    assert [e.name for e in entries] == ["app"] and "app" not in explanation.same_as_base


def test_spacing_in_a_wheel_requirement_rebuilds_nothing(repo):
    path = repo / "requirements/requirements.txt"
    pinned = next(line for line in path.read_text().splitlines() if "==" in line and not line.startswith("#"))
    name, version = pinned.split("==", 1)
    edit(repo, "requirements/requirements.txt", path.read_text().replace(pinned, f"{name.upper()} == {version}"))
    commit_all(repo, "spacing")
    plan = workspace(repo, since="HEAD~1").plan()
    assert plan.to_build() == () and "not in substance" in plan.image("app").reason


# -- one definition of an image's inputs: what is hashed is what the builder gets -------------------------------------


def test_a_git_ignored_file_under_an_input_glob_is_neither_hashed_nor_sent(repo, tmp_path):
    edit(repo, ".gitignore", "*.local\n")
    commit_all(repo, "ignore local files")
    before = workspace(repo).fingerprints["app"]
    edit(repo, "src/scorer/settings.local", "SECRET=1\n")  # .dockerignore lets it through; git ignores it
    ws = workspace(repo)
    app = ws.fingerprints["app"]
    assert app == before
    built = assemble_context(ws.config.image("app"), app.files, ws.root, tmp_path / "ctx")
    sent = sorted(p.relative_to(built.root).as_posix() for p in built.root.rglob("*") if p.is_file())
    assert sent == sorted(path for path, _ in app.files) and "src/scorer/settings.local" not in sent


def test_an_untracked_file_under_an_input_glob_is_hashed_and_sent(repo, tmp_path):
    edit(repo, "src/scorer/extra.py", "X = 1\n")
    ws = workspace(repo)
    app = ws.fingerprints["app"]
    assert "src/scorer/extra.py" in dict(app.files)
    built = assemble_context(ws.config.image("app"), app.files, ws.root, tmp_path / "ctx")
    assert (built.root / "src/scorer/extra.py").read_text() == "X = 1\n"
    assert not (built.root / "README.md").exists()


def test_a_single_branch_clone_without_since_compares_with_the_remotes_default_branch(repo, tmp_path):
    fork = pull_request_branch(repo)
    pr = clone(repo, tmp_path / "pr", "--depth=1", "--branch", "pr")  # no main, no origin/main here
    explanation, entries = workspace(pr).affected()
    assert (explanation.base.commit, explanation.base.how) == (fork, "merge base with the remote's default branch")
    assert [e.name for e in entries] == ["app"]


def test_no_default_branch_and_no_remote_checks_every_image_and_says_so(repo):
    git(repo, "branch", "-m", "main", "trunk")
    edit(repo, "src/scorer/model.py", append="\n# change\n")
    commit_all(repo, "code")
    explanation, entries = workspace(repo).affected()
    assert explanation.base is None and "deciding by fingerprints alone" in explanation.note
    assert [e.name for e in entries] == ALL
