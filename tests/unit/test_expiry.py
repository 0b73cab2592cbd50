"""Git-aware expiry, pure: images of closed pull requests and deleted branches go after their age, and not before."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from imagegraph.core.expiry import (
    ExpiryFacts,
    PullRequestState,
    commit_abbreviations,
    judge_expiry,
    pull_request_numbers,
    span,
)
from imagegraph.core.retention import Manifest, RetentionPolicy, check_kept_closure, plan_retention

APP, BASE = "ns/app", "ns/base"
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def fp(key: str) -> str:
    """A fingerprint tag (16 hex digits), as every pushed image has."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def m(repo: str, key: str, *tags: str, made: datetime = NOW - timedelta(days=30), children: tuple[str, ...] = (),
      parent: str = "") -> Manifest:
    return Manifest(repo, digest(f"{repo}/{key}"), (fp(key), *tags), made.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    tuple(digest(f"{repo}/{c}") for c in children), (parent,) if parent else ())


def key(repo: str, name: str) -> tuple[str, str]:
    return (repo, digest(f"{repo}/{name}"))


def verdicts(manifests, facts: ExpiryFacts, keep: int = 10) -> dict[tuple[str, str], tuple[bool, str]]:
    expiry = judge_expiry(manifests, facts, NOW)
    plan = plan_retention(manifests, RetentionPolicy(keep=keep), expired=expiry.expired, held=expiry.held)
    check_kept_closure(plan)
    return {(v.manifest.repository, v.manifest.digest): (v.keep, v.reason) for v in plan}


def closed(days_ago: float, merged: bool = True) -> PullRequestState:
    return PullRequestState(False, NOW - timedelta(days=days_ago), merged)


def test_an_open_pull_requests_image_is_kept_whatever_the_keep_count():
    images = [m(APP, "main", "edge", made=NOW - timedelta(days=1)), m(APP, "pr", "pr-7", made=NOW - timedelta(days=90))]
    found = verdicts(images, ExpiryFacts(WEEK, {7: PullRequestState(True)}), keep=1)
    assert found[key(APP, "pr")] == (True, "pull request #7 is open")
    assert found[key(APP, "main")][0]


def test_a_closed_or_merged_pull_requests_image_expires_after_the_age_and_not_before():
    images = [m(APP, "merged", "pr-1"), m(APP, "closed", "pr-2"), m(APP, "fresh", "pr-3")]
    facts = ExpiryFacts(WEEK, {1: closed(8), 2: closed(7, merged=False), 3: closed(6)})
    found = verdicts(images, facts)
    assert found[key(APP, "merged")][0] is False and found[key(APP, "merged")][1].startswith("pull request #1 merged 2026-03-12")
    assert "7d or more ago" in found[key(APP, "merged")][1]
    assert found[key(APP, "closed")][0] is False and "pull request #2 closed" in found[key(APP, "closed")][1]
    # closed 6 days ago: held, though keep 10 would have kept it anyway; with keep 1 it is still kept
    assert found[key(APP, "fresh")] == (True, "pull request #3 merged 2026-03-14 12:00 UTC; expires 2026-03-21 12:00 UTC "
                                              "(retention: pull_requests 7d)")
    assert verdicts(images, facts, keep=1)[key(APP, "fresh")][0]


def test_an_expired_image_takes_no_place_among_the_most_recent():
    images = [m(APP, "pr", "pr-1", made=NOW - timedelta(days=1)), m(APP, "old", "sha-aaaaaaa", made=NOW - timedelta(days=2))]
    found = verdicts(images, ExpiryFacts(WEEK, {1: closed(30)}, {"aaaaaaa": True}), keep=1)
    assert found[key(APP, "old")] == (True, "build, 1st most recent (keep 1)")


def test_a_request_the_forge_did_not_answer_counts_from_the_images_creation():
    old = m(APP, "old", "pr-4", made=NOW - timedelta(days=8))
    young = m(APP, "young", "pr-5", made=NOW - timedelta(days=2))
    found = verdicts([old, young], ExpiryFacts(WEEK, {}))
    assert found[key(APP, "old")][0] is False and "#4 not asked (counted by age)" in found[key(APP, "old")][1]
    assert found[key(APP, "young")][0] and "expires 2026-03-25" in found[key(APP, "young")][1]


def test_a_closed_request_without_a_close_time_counts_from_the_image():
    found = verdicts([m(APP, "a", "pr-6", made=NOW - timedelta(days=9))], ExpiryFacts(WEEK, {6: PullRequestState(False)}))
    assert found[key(APP, "a")][0] is False and "no close time given" in found[key(APP, "a")][1]


def test_an_image_of_several_requests_goes_when_the_last_one_has_aged_and_stays_while_one_is_open():
    two = m(APP, "two", "pr-1", "pr-2")
    assert verdicts([two], ExpiryFacts(WEEK, {1: closed(30), 2: closed(3)}))[key(APP, "two")][0]
    assert verdicts([two], ExpiryFacts(WEEK, {1: closed(30), 2: PullRequestState(True)}))[key(APP, "two")] == \
        (True, "pull request #2 is open")
    assert not verdicts([two], ExpiryFacts(WEEK, {1: closed(30), 2: closed(8)}))[key(APP, "two")][0]


def test_a_pr_tag_beside_another_tag_is_not_only_a_pull_requests_image():
    images = [m(APP, "released", "pr-1", "1.0.0"), m(APP, "branch", "pr-1", "sha-abcdef1"), m(APP, "named", "pr-1", "pr-x")]
    facts = ExpiryFacts(WEEK, {1: closed(30)}, {"abcdef1": False})
    assert pull_request_numbers(images) == frozenset()
    assert commit_abbreviations(images) == frozenset()
    expiry = judge_expiry(images, facts, NOW)
    assert expiry.expired == {} and expiry.held == {}
    assert all(keep for keep, _ in verdicts(images, facts).values())


def test_a_deleted_branchs_image_expires_by_its_age_and_a_live_branchs_does_not():
    gone = m(APP, "gone", "sha-1111111", made=NOW - timedelta(days=8))
    young = m(APP, "young", "sha-2222222", made=NOW - timedelta(days=1))
    live = m(APP, "live", "sha-3333333", made=NOW - timedelta(days=300))
    unknown = m(APP, "unknown", "sha-4444444", made=NOW - timedelta(days=8))
    facts = ExpiryFacts(WEEK, {}, {"1111111": False, "2222222": False, "3333333": True})
    found = verdicts([gone, young, live, unknown], facts)
    assert found[key(APP, "gone")][0] is False
    assert found[key(APP, "gone")][1] == ("no remote branch contains commit 1111111 any more (branch deleted); image made "
                                          "2026-03-12 12:00 UTC (no deletion time known), 7d or more ago (retention: pull_requests)")
    assert found[key(APP, "young")][0] and "expires 2026-03-26" in found[key(APP, "young")][1]
    assert found[key(APP, "live")] == (True, "build, 1st most recent (keep 10)")  # the others take no place
    assert found[key(APP, "unknown")][0] is False and "not placed on a remote branch by this clone" in found[key(APP, "unknown")][1]
    # one commit of the image still on a branch: it stays under the keep count
    both = m(APP, "both", "sha-1111111", "sha-3333333")
    assert judge_expiry([both], facts, NOW).expired == {}


def test_an_expired_base_that_a_kept_child_was_built_on_stays():
    base = m(BASE, "b", "pr-9")
    child = m(APP, "a", "1.0.0", parent=f"127.0.0.1:5000/{BASE}:{fp('b')}")
    found = verdicts([base, child], ExpiryFacts(WEEK, {9: closed(30)}))
    assert found[key(BASE, "b")] == (True, "base of kept app:1.0.0")


def test_an_expired_index_takes_its_platform_manifests_and_a_kept_one_keeps_them():
    index = m(APP, "idx", "pr-2", children=("amd64", "arm64"))
    plain = [Manifest(APP, digest(f"{APP}/{p}"), (), index.created) for p in ("amd64", "arm64")]
    found = verdicts([index, *plain], ExpiryFacts(WEEK, {2: closed(30)}))
    assert [found[key(APP, p)][0] for p in ("idx", "amd64", "arm64")] == [False, False, False]
    found = verdicts([index, *plain], ExpiryFacts(WEEK, {2: PullRequestState(True)}))
    assert [found[key(APP, p)][0] for p in ("idx", "amd64", "arm64")] == [True, True, True]


def test_a_protected_tag_wins_over_expiry():
    image = m(APP, "x", "pr-3")
    facts = ExpiryFacts(WEEK, {3: closed(30)})
    expiry = judge_expiry([image], facts, NOW)
    plan = plan_retention([image], RetentionPolicy(protect=("pr-*",)), expired=expiry.expired, held=expiry.held)
    assert plan[0].keep and plan[0].reason == "protected tag pr-3"


def test_without_expiry_the_plan_is_todays():
    images = [m(APP, "a", "pr-1", made=NOW - timedelta(days=3)), m(APP, "b", "sha-abcdef1", made=NOW - timedelta(days=2)),
              m(APP, "c", "edge", made=NOW - timedelta(days=1))]
    policy = RetentionPolicy(keep=2)
    assert plan_retention(images, policy) == plan_retention(images, policy, expired={}, held={})


def test_span_writes_durations_as_images_yaml_does():
    assert [span(timedelta(days=7)), span(timedelta(hours=36)), span(timedelta(minutes=90)), span(timedelta(0))] == \
        ["7d", "36h", "90m", "0s"]
