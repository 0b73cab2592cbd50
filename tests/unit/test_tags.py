"""The tag policy over a table of events: releases, pre-releases, older-line patches, branches, pull requests."""

from __future__ import annotations

import re

import pytest

from imagegraph.core.tags import Event, PlannedTag, TagError, TagPolicy, Version, event_from_env, event_from_git, oci_labels, planned_tags, tag_rule, tags_for

FP = "0123456789abcdef"
SHA = "1234567deadbeef" + "0" * 25
REGISTRY = ["2.1.0", "2.1", "2.0.5", "2.0", "1.4.2", "1.4", "latest", "edge", "sha-aaaaaaa", "pr-3", "3.0.0-rc.1", FP]


@pytest.mark.parametrize(("event", "registry", "expected"), [
    # a new highest release moves its line and latest
    (Event("tag", SHA, "v2.2.0"), REGISTRY, (FP, "2.2.0", "2.2", "latest")),
    # a patch on the newest line
    (Event("tag", SHA, "v2.1.1"), REGISTRY, (FP, "2.1.1", "2.1", "latest")),
    # a patch to an older line: its own line moves, latest does not
    (Event("tag", SHA, "v1.4.3"), REGISTRY, (FP, "1.4.3", "1.4")),
    # an older patch of an older line than one already released: neither moves
    (Event("tag", SHA, "v2.0.4"), REGISTRY, (FP, "2.0.4")),
    # pre-releases get only their own tag, even above every stable version
    (Event("tag", SHA, "v3.0.0-rc.2"), REGISTRY, (FP, "3.0.0-rc.2")),
    # the release after a pre-release is stable and highest
    (Event("tag", SHA, "v3.0.0"), REGISTRY, (FP, "3.0.0", "3.0", "latest")),
    # the very first release, into an empty registry
    (Event("tag", SHA, "v0.1.0"), [], (FP, "0.1.0", "0.1", "latest")),
    # re-running the same release is stable
    (Event("tag", SHA, "v2.1.0"), REGISTRY, (FP, "2.1.0", "2.1", "latest")),
    # default branch and others
    (Event("branch", SHA, "main"), REGISTRY, (FP, "edge", "sha-1234567")),
    (Event("branch", SHA, "feature/x"), REGISTRY, (FP, "sha-1234567")),
    (Event("pull_request", SHA, pr_number=12), REGISTRY, (FP, "pr-12")),
    (Event("local", SHA), REGISTRY, (FP,)),
])
def test_tag_table(event, registry, expected):
    assert tags_for(event, FP, registry).tags == expected


def test_notes_say_why_latest_did_not_move():
    result = tags_for(Event("tag", SHA, "v1.4.3"), FP, REGISTRY)
    assert result.notes == ("latest stays at 2.1.0: 1.4.3 is not the highest stable version",)
    assert result.version == "1.4.3"


def test_pull_requests_are_pushed_only_on_request():
    event = Event("pull_request", SHA, pr_number=7)
    assert tags_for(event, FP, []).push is False
    assert tags_for(event, FP, [], TagPolicy(push_pull_requests=True)).push is True


def test_the_edge_tag_is_configurable():
    assert tags_for(Event("branch", SHA, "main"), FP, [], TagPolicy(edge="latest-dev")).tags == (FP, "latest-dev", "sha-1234567")


@pytest.mark.parametrize("bad", ["v1.2", "v1.2.3.4", "v01.2.3", "release-7", "v1.2.3+build..5"])
def test_a_version_tag_that_is_not_semver_is_one_clear_line(bad):
    with pytest.raises(TagError, match=r"is not semver: a release tag is vMAJOR\.MINOR\.PATCH"):
        tags_for(Event("tag", SHA, bad), FP, [])


@pytest.mark.parametrize(("tag", "rule", "fix"), [
    ("v1.4.0+build.5", "build metadata (+build.5) is not allowed in a tag name", "v1.4.0"),
    ("1.0.0", "a leading v is required", "v1.0.0"),
    ("V1.0.0", "the leading v must be lowercase", "v1.0.0"),
    ("2.0.0-rc.1+sha.abc", "a leading v is required and build metadata (+sha.abc) is not allowed", "v2.0.0-rc.1"),
])
def test_a_semver_tag_that_breaks_a_project_rule_names_the_rule(tag, rule, fix):
    assert rule in tag_rule(tag) and "is semver, but" in tag_rule(tag)
    with pytest.raises(TagError, match=re.escape(f"tag the release {fix}")):
        tags_for(Event("tag", SHA, tag), FP, [])


@pytest.mark.parametrize("good", ["v1.0.0", "v0.1.0-rc.1", "v10.20.30-alpha.beta.1"])
def test_release_tags_break_no_rule(good):
    assert tag_rule(good) is None


def test_semver_precedence():
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0"]
    versions = [Version.parse(v) for v in ordered]
    assert sorted(reversed(versions)) == versions
    assert [str(v) for v in versions] == ordered


def test_events_from_github_actions():
    repo = {"repository": {"default_branch": "trunk"}}
    gh = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": SHA}
    assert event_from_env({**gh, "GITHUB_REF": "refs/tags/v1.2.3"}, repo) == Event("tag", SHA, "v1.2.3", "trunk")
    assert event_from_env({**gh, "GITHUB_REF": "refs/heads/trunk"}, repo) == Event("branch", SHA, "trunk", "trunk")
    assert event_from_env({**gh, "GITHUB_REF": "refs/pull/42/merge", "GITHUB_EVENT_NAME": "pull_request"}, repo) == Event("pull_request", SHA, "", "trunk", 42)
    assert event_from_env({"GITHUB_REF": "refs/heads/main"}, {}) is None


def test_the_highest_version_tag_at_head_wins_and_the_others_are_named():
    event = event_from_git(SHA, ["v1.10.0", "v1.9.0", "v1.10.0-rc.1", "nightly"], "main", "main")
    assert (event.kind, event.ref) == ("tag", "v1.10.0")  # semver precedence, not alphabetical
    assert event.notes == ("several version tags at HEAD: v1.10.0 is the highest, so v1.10.0-rc.1, v1.9.0 are not released",)


def test_a_version_like_tag_that_breaks_a_rule_is_never_ignored_silently():
    event = event_from_git(SHA, ["1.0.0"], "main", "main")
    assert (event.kind, event.ref) == ("branch", "main")
    assert event.refused == ("tag 1.0.0 at HEAD is not a release tag: '1.0.0' is semver, but a leading v is required; tag the release v1.0.0",)
    assert event.notes == event.refused
    beside = event_from_git(SHA, ["v1.0.0", "V1.0.0"], "main", "main")
    assert beside.ref == "v1.0.0" and any("V1.0.0" in note and "lowercase" in note for note in beside.notes)


def test_events_from_git():
    assert event_from_git(SHA, ["nightly", "v1.2.0"], "main", "main") == Event("tag", SHA, "v1.2.0", "main")
    assert event_from_git(SHA, [], "main", "main") == Event("branch", SHA, "main", "main")
    assert event_from_git(SHA, [], None, "main") == Event("local", SHA, "", "main")


def test_oci_labels():
    labels = oci_labels(revision=SHA, source="https://github.com/acme/mono", version="1.2.3", created="2026-11-21T06:00:00Z")
    assert labels == {
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.created": "2026-11-21T06:00:00Z",
        "org.opencontainers.image.source": "https://github.com/acme/mono",
        "org.opencontainers.image.version": "1.2.3",
    }
    assert "org.opencontainers.image.version" not in oci_labels(revision=SHA, source=None, version=None, created="x")


@pytest.mark.parametrize(("remote", "env", "expected"), [
    ("git@github.com:acme/mono.git", {}, "https://github.com/acme/mono"),
    ("https://x-access-token:ghs_SECRET@github.com/acme/mono.git", {}, "https://github.com/acme/mono"),
    ("https://user@gitlab.example.com/group/sub/mono", {}, "https://gitlab.example.com/group/sub/mono"),
    ("ssh://git@git.example.com:2222/acme/mono.git", {}, "https://git.example.com/acme/mono"),
    ("/srv/git/mono.git", {}, None),
    (None, {}, None),
    ("git@github.com:acme/fork.git", {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/mono"}, "https://github.com/acme/mono"),
])
def test_source_url_never_carries_credentials(remote, env, expected):
    from imagegraph.core.tags import source_url

    url = source_url(remote, env)
    assert url == expected
    assert url is None or ("SECRET" not in url and "@" not in url)


# --- the tags a plan carries -----------------------------------------------------------------------------------------


def _kinds(tags: tuple[PlannedTag, ...]) -> list[tuple[str, str, bool]]:
    return [(t.tag, t.kind, t.moves) for t in tags]


def test_planned_tags_on_the_default_branch_move_edge_forward_only_and_sha_with_the_family():
    tags = planned_tags(Event("branch", sha="abcdef1234", ref="main"), "f" * 16)
    assert _kinds(tags) == [("f" * 16, "fingerprint", True), ("edge", "branch", True), ("sha-abcdef1", "commit", True)]
    assert "forward only" in tags[1].rule and "all or nothing" in tags[2].rule


def test_planned_tags_elsewhere_say_what_does_not_move_and_why():
    feature = planned_tags(Event("branch", sha="abcdef1234", ref="feature"), "f" * 16, TagPolicy(edge="latest-dev"))
    assert _kinds(feature)[-1] == ("latest-dev", "branch", False) and "moves only on main" in feature[-1].rule
    pr = planned_tags(Event("pull_request", sha="abcdef1234", pr_number=7), "f" * 16)
    assert _kinds(pr) == [("f" * 16, "fingerprint", True), ("pr-7", "pull_request", False)] and "--push-pr" in pr[1].rule
    pushed = planned_tags(Event("pull_request", sha="abc", pr_number=7), "f" * 16,
                          TagPolicy(push_pull_requests=True))
    assert _kinds(pushed)[1] == ("pr-7", "pull_request", True)
    release = planned_tags(Event("tag", sha="abc", ref="v1.4.0"), "f" * 16)
    assert _kinds(release)[1:] == [("1.4.0", "version", False), ("1.4", "version", False), ("latest", "version", False)]
    assert all("invoke release" in t.rule for t in release[1:])
    assert _kinds(planned_tags(Event("tag", sha="abc", ref="v2.0.0-rc.1"), "f" * 16))[1:] == [("2.0.0-rc.1", "version", False)]
    assert _kinds(planned_tags(Event("branch", sha="abc", ref="main"), "f" * 16, push=False)) == [("f" * 16, "fingerprint", False)]
