"""Choosing the base ref, finding it in (shallow) history, and mapping changes onto images."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imagegraph.core.changes import EMPTY_TREE, BaseRequest, Change, UnknownRef, direct_causes, locate_base
from imagegraph.core.ci import choose_base
from imagegraph.core.config import load_config
from imagegraph.core.gitnames import ZERO_SHA
from imagegraph.core.values import RegistryAddress

GH = {"GITHUB_ACTIONS": "true"}


def test_since_wins_everywhere_and_is_trusted():
    request = choose_base("v1.2.0", {**GH, "GITHUB_EVENT_NAME": "push"}, {"before": "a" * 40}, default_branch="origin/main")
    assert (request.rev, request.merge_base, request.trusted, request.explicit) == ("v1.2.0", True, True, True)


def test_pull_request_uses_the_base_sha_and_its_merge_base():
    event = {"number": 12, "pull_request": {"number": 12, "base": {"ref": "main", "sha": "b" * 40}}}
    request = choose_base(None, {**GH, "GITHUB_EVENT_NAME": "pull_request"}, event, default_branch=None)
    assert (request.rev, request.merge_base, request.trusted, request.fetch) == ("b" * 40, True, True, "b" * 40)
    assert request.how == "pull request #12: merge base with main"


def test_pull_request_without_a_payload_falls_back_to_the_base_branch():
    request = choose_base(None, {**GH, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_BASE_REF": "release"}, {}, default_branch=None)
    assert (request.rev, request.fetch) == ("origin/release", "release")


def test_push_compares_with_the_previous_push_itself_not_a_merge_base():
    request = choose_base(None, {**GH, "GITHUB_EVENT_NAME": "push"}, {"before": "c" * 40, "forced": True}, default_branch="origin/main")
    assert (request.rev, request.merge_base, request.trusted) == ("c" * 40, False, True)


def test_first_push_of_the_default_branch_is_all_new():
    env = {**GH, "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"}
    request = choose_base(None, env, {"before": ZERO_SHA, "repository": {"default_branch": "main"}}, default_branch=None)
    assert (request.rev, request.trusted) == (EMPTY_TREE, False)


def test_new_branch_push_uses_the_merge_base_with_the_default_branch():
    env = {**GH, "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/feature"}
    request = choose_base(None, env, {"before": ZERO_SHA, "repository": {"default_branch": "main"}}, default_branch=None)
    assert (request.rev, request.merge_base, request.fetch) == ("origin/main", True, "main")


def test_merge_queue_uses_its_base_sha():
    request = choose_base(None, {**GH, "GITHUB_EVENT_NAME": "merge_group"}, {"merge_group": {"base_sha": "d" * 40}}, default_branch=None)
    assert request.rev == "d" * 40 and request.trusted


def test_locally_the_merge_base_with_the_default_branch_is_not_trusted():
    request = choose_base(None, {}, {}, default_branch="origin/main")
    assert (request.rev, request.merge_base, request.trusted) == ("origin/main", True, False)
    other_event = choose_base(None, {**GH, "GITHUB_EVENT_NAME": "workflow_dispatch"}, {}, default_branch="main")
    assert (other_event.rev, other_event.trusted) == ("main", False)
    assert (choose_base(None, {}, {}, default_branch=None).rev, choose_base(None, {}, {}, default_branch=None).fetch) == ("origin/HEAD", "HEAD")


class History:
    """A scripted repository: which revs resolve, and how fetching changes that."""

    def __init__(self, *, known=(), merge_base=None, shallow=False, remote=True, reachable_after=None, fail_fetch=None):
        self.known = set(known)
        self.base = merge_base
        self.shallow = shallow
        self.remote = remote
        #: How many fetches until the merge base becomes reachable (a shallow clone being deepened).
        self.reachable_after = reachable_after
        self.fail_fetch = fail_fetch
        self.fetches: list[tuple[str, ...]] = []

    def head(self):
        return "h" * 40

    def resolve(self, rev):
        return rev if rev in self.known or (rev == "FETCH_HEAD" and self.fetches) else None

    def merge_base(self, a, b):
        if self.reachable_after is not None and len(self.fetches) < self.reachable_after:
            return None
        return self.base

    def is_shallow(self):
        return self.shallow

    def has_remote(self, remote="origin"):
        return self.remote

    def fetch(self, remote, *refs, options=()):
        args = (*options, *refs)
        self.fetches.append(args)
        if self.fail_fetch:
            return self.fail_fetch
        if "--unshallow" in args:
            self.shallow = False
        self.known.add(args[-1])
        return None


def request(rev="main", **kw):
    return BaseRequest(rev=rev, how=f"merge base with {rev}", **kw)


def test_complete_history_gives_the_merge_base():
    base, note = locate_base(History(known={"main"}, merge_base="m" * 40), request(trusted=True))
    assert (base.commit, base.trusted, note) == ("m" * 40, True, "")


def test_unrelated_histories_make_everything_new():
    base, _ = locate_base(History(known={"main"}, merge_base=None), request())
    assert base.commit == EMPTY_TREE and "no common history" in base.how


def test_shallow_clone_is_deepened_step_by_step_until_the_merge_base_appears():
    history = History(known={"main"}, merge_base="m" * 40, shallow=True, reachable_after=3)
    base, note = locate_base(history, request())
    assert base.commit == "m" * 40 and note == ""
    assert history.fetches == [("--deepen=50",), ("--deepen=200",), ("--deepen=1000",)]


def test_shallow_clone_fetches_a_missing_base_then_unshallows_as_a_last_resort():
    history = History(known=set(), merge_base="m" * 40, shallow=True, reachable_after=5)
    base, _ = locate_base(history, request("b" * 40, fetch="b" * 40))
    assert base.commit == "m" * 40
    assert history.fetches[0] == ("--depth=50", "b" * 40) and history.fetches[-1] == ("--unshallow",)


def test_shallow_clone_that_cannot_fetch_falls_back_to_fingerprints_and_says_why():
    history = History(known={"main"}, merge_base="m" * 40, shallow=True, reachable_after=1, fail_fetch="could not read from remote repository")
    base, note = locate_base(history, request())
    assert base is None
    assert "deciding by fingerprints alone" in note and "could not read from remote repository" in note


def test_an_unknown_since_ref_is_the_users_mistake():
    with pytest.raises(UnknownRef, match=r"--since nope: unknown revision .*git log --oneline"):
        locate_base(History(remote=False), request("nope", explicit=True))


def test_empty_tree_needs_no_lookup():
    history = History()
    base, _ = locate_base(history, BaseRequest(rev=EMPTY_TREE, how="first push", merge_base=False))
    assert base.commit == EMPTY_TREE and history.fetches == []


def test_renames_count_on_both_sides_and_deleted_inputs_count(family):
    config = load_config(family)
    moved_out = [Change("lib/app.py", "renamed", old_path="src/svc/app.py")]
    assert direct_causes(config, moved_out, config, config_changed=False) == {"app": ("src/svc/app.py",)}
    moved_in = [Change("src/svc/new.py", "renamed", old_path="scratch/new.py")]
    assert direct_causes(config, moved_in, config, config_changed=False) == {"app": ("src/svc/new.py",)}
    gone = [Change("src/svc/old.py", "deleted"), Change("README.md", "modified")]
    assert direct_causes(config, gone, config, config_changed=False) == {"app": ("src/svc/old.py",)}


def test_shared_inputs_touch_every_image_that_declares_them(family):
    config = load_config(family)
    causes = direct_causes(config, [Change("requirements/requirements.txt", "modified")], config, config_changed=False)
    assert set(causes) == {"ci", "app"}


def test_images_yaml_counts_only_for_images_whose_settings_changed(family):
    config = load_config(family)
    before = replace(config, images=tuple(replace(s, build_args=(("X", "1"),)) if s.name == "ci" else s for s in config.images))
    change = [Change("images.yaml", "modified")]
    assert direct_causes(config, change, before, config_changed=True) == {"ci": ("images.yaml",)}
    assert set(direct_causes(config, change, None, config_changed=True)) == {"base", "ci", "app", "devcontainer"}
    moved = replace(before, registry_address=RegistryAddress("other", 5000))
    assert set(direct_causes(config, change, moved, config_changed=True)) == {"base", "ci", "app", "devcontainer"}


class ShallowPullRequestClone:
    """`git clone --depth 1 --branch pr`: main is not here; every fetch rewrites FETCH_HEAD, as git does."""

    HEAD = "p" * 40
    MAIN = "m" * 40
    FORK = "f" * 40

    def __init__(self):
        self.fetch_head = None
        self.deepened = 0
        self.fetches: list[tuple[str, ...]] = []

    def head(self):
        return self.HEAD

    def resolve(self, rev):
        return {"FETCH_HEAD": self.fetch_head, self.MAIN: self.MAIN if self.fetch_head else None}.get(rev)

    def merge_base(self, a, b):
        if a == b:
            return a
        return self.FORK if {a, b} == {self.MAIN, self.HEAD} and self.deepened else None

    def is_shallow(self):
        return True

    def has_remote(self, remote="origin"):
        return True

    def fetch(self, remote, *refs, options=()):
        args = (*options, *refs)
        self.fetches.append(args)
        if args[-1] == "main":
            self.fetch_head = self.MAIN
        else:  # deepening fetches the clone's own branch again
            self.deepened += 1
            self.fetch_head = self.HEAD
        return None


@pytest.mark.parametrize("rev", ["main", "origin/main"])
def test_a_base_fetched_by_name_is_pinned_before_deepening_rewrites_fetch_head(rev):
    history = ShallowPullRequestClone()
    base, note = locate_base(history, BaseRequest(rev=rev, how=f"--since {rev}", fetch=rev, explicit=True))
    assert (base.commit, note) == (ShallowPullRequestClone.FORK, "")
    assert history.fetches == [("--depth=50", "main"), ("--deepen=50",)]


def test_since_a_branch_only_the_remote_has_uses_the_remote_tracking_branch():
    history = History(known={"origin/main"}, merge_base="m" * 40)
    base, _ = locate_base(history, request("main", explicit=True))
    assert base.commit == "m" * 40 and base.how.endswith("(as origin/main)") and history.fetches == []


GL = {"GITLAB_CI": "true", "CI_DEFAULT_BRANCH": "main"}


def test_gitlab_merge_request_uses_its_diff_base_sha():
    env = {**GL, "CI_MERGE_REQUEST_IID": "9", "CI_MERGE_REQUEST_DIFF_BASE_SHA": "b" * 40, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
           "CI_COMMIT_BEFORE_SHA": ZERO_SHA}
    request = choose_base(None, env, {}, default_branch=None)
    assert (request.rev, request.merge_base, request.trusted, request.fetch) == ("b" * 40, True, True, "b" * 40)
    assert request.how == "merge request !9: merge base with main"


def test_gitlab_merge_request_without_a_diff_base_uses_its_target_branch():
    request = choose_base(None, {**GL, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "release"}, {}, default_branch=None)
    assert (request.rev, request.fetch, request.trusted) == ("origin/release", "release", True)


def test_gitlab_push_compares_with_the_commit_before_it_itself():
    request = choose_base(None, {**GL, "CI_COMMIT_BEFORE_SHA": "c" * 40, "CI_COMMIT_BRANCH": "topic"}, {}, default_branch=None)
    assert (request.rev, request.merge_base, request.trusted, request.fetch) == ("c" * 40, False, True, "c" * 40)


def test_gitlab_new_branch_uses_the_merge_base_with_the_default_branch_and_the_default_branch_is_all_new():
    new_branch = choose_base(None, {**GL, "CI_COMMIT_BEFORE_SHA": ZERO_SHA, "CI_COMMIT_BRANCH": "topic"}, {}, default_branch=None)
    assert (new_branch.rev, new_branch.fetch, new_branch.trusted) == ("origin/main", "main", True)
    first = choose_base(None, {**GL, "CI_COMMIT_BEFORE_SHA": ZERO_SHA, "CI_COMMIT_BRANCH": "main"}, {}, default_branch=None)
    assert (first.rev, first.trusted) == (EMPTY_TREE, False)


def test_the_root_dockerignore_is_a_cause_only_for_images_that_read_it(family):
    config = load_config(family)
    present = {"docker/Dockerfile.base.dockerignore", "docker/Dockerfile.ci.dockerignore", "docker/Dockerfile.dockerignore", ".dockerignore"}
    change = [Change(".dockerignore", "modified")]
    assert direct_causes(config, change, config, config_changed=False, present=present) == {"devcontainer": (".dockerignore",)}
    # its own ignore file deleted in the same change: the root one is what the builder reads now
    gone = [*change, Change("docker/Dockerfile.dockerignore", "deleted")]
    causes = direct_causes(config, gone, config, config_changed=False, present=present - {"docker/Dockerfile.dockerignore"})
    assert causes == {"app": (".dockerignore", "docker/Dockerfile.dockerignore"), "devcontainer": (".dockerignore",)}


def test_the_python_setting_is_a_cause_for_images_with_wheels(family):
    config = load_config(family)
    before = replace(config, python="3.12")
    causes = direct_causes(config, [Change("images.yaml", "modified")], before, config_changed=True)
    assert set(causes) == {"base", "ci", "app", "devcontainer"}
