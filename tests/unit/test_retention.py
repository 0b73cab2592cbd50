"""Retention, pure: an inventory of manifests in, a verdict for each out."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from imagegraph.core.retention import (
    Manifest,
    RetentionError,
    RetentionPolicy,
    Verdict,
    check_kept_closure,
    deletion_order,
    note_doomed,
    plan_retention,
    ripe,
)

APP, BASE = "ns/app", "ns/base"


_NAMES: dict[str, str] = {}


def digest(name: str) -> str:
    """A stable fake digest for ``repo/key``; remembered so verdicts can be looked up by key."""
    value = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    _NAMES[value] = name.rsplit("/", 1)[-1]
    return value


def m(repo: str, key: str, *tags: str, day: int = 1, children: tuple[str, ...] = (), parent: str = "", platform: str = "") -> Manifest:
    return Manifest(repo, digest(f"{repo}/{key}"), tuple(tags), f"2026-01-{day:02d}T00:00:00Z",
                    tuple(digest(f"{repo}/{c}") for c in children), (parent,) if parent else (), platform)


def base_ref(key: str) -> str:
    return f"127.0.0.1:5000/{BASE}:{key}"


def family() -> list[Manifest]:
    return [
        # base: fingerprint tags only; b3 is a multi-arch index whose platform manifests are untagged
        m(BASE, "b1", "b1", day=1),
        m(BASE, "b2", "b2", day=2),
        m(BASE, "b3", "b3", day=3, children=("b3-amd64", "b3-arm64")),
        m(BASE, "b3-amd64", day=3, platform="linux/amd64"),
        m(BASE, "b3-arm64", day=3, platform="linux/arm64"),
        m(BASE, "b4", "b4", day=4),
        m(BASE, "b5", "b5", day=5),
        m(BASE, "b6", "b6", day=6),
        m(BASE, "b7", "b7", day=7),
        # app: releases, pre-releases, a PR build, the default branch
        m(APP, "a090", "f090", "0.9.0", "0.9", day=10, parent=base_ref("b1")),
        m(APP, "a100", "f100", "1.0.0", "1.0", day=11, parent=base_ref("b2")),
        m(APP, "a110rc", "f110rc", "1.1.0-rc.1", day=12, parent=base_ref("b2")),
        m(APP, "a110", "f110", "1.1.0", "1.1", "latest", day=13, parent=base_ref("b3"), children=("a110-amd64", "a110-arm64")),
        m(APP, "a110-amd64", "f110-amd64", day=13, platform="linux/amd64", parent=base_ref("b3")),
        m(APP, "a110-arm64", "f110-arm64", day=13, platform="linux/arm64", parent=base_ref("b3")),
        m(APP, "a200rc", "f200rc", "2.0.0-rc.1", day=14, parent=base_ref("b4")),
        m(APP, "pr7", "fpr7", "pr-7", day=15, parent=base_ref("b5")),
        m(APP, "edge", "fedge", "edge", "sha-1234567", "pr-8", day=16, parent=base_ref("b4")),
        # an old index with untagged platform manifests, one of them shared with a kept index
        m(APP, "old", "fold", day=9, children=("old-amd64", "a110-arm64"), parent=base_ref("b1")),
        m(APP, "old-amd64", day=9, platform="linux/amd64", parent=base_ref("b1")),
    ]


def verdicts(manifests, **policy) -> dict[str, Verdict]:
    return {_NAMES[v.manifest.digest]: v for v in plan_retention(manifests, RetentionPolicy(**policy))}


def kept(result: dict[str, Verdict]) -> set[str]:
    return {key for key, verdict in result.items() if verdict.keep}


def test_keeps_protected_newest_and_what_kept_images_stand_on():
    result = verdicts(family(), keep=2)
    assert kept(result) == {
        # protected tags and the newest release
        "a110", "edge",
        # the 2 most recent of what is left: 2.0.0-rc.1 (not superseded) and 1.0.0, by version
        "a200rc", "a100",
        # the platform manifests of the kept index, tagged or not
        "a110-amd64", "a110-arm64",
        # bases kept images were built on, with the kept base index's platform manifests
        "b2", "b3", "b3-amd64", "b3-arm64", "b4",
        # the 2 most recent base builds
        "b7", "b6",
    }
    assert result["a110"].reason == "protected tag latest"
    assert result["a200rc"].reason == "version 2.0.0-rc.1, 1st most recent (keep 2)"
    assert result["b3"].reason == "base of kept app:1.1.0"
    assert result["b3-arm64"].reason == "platform manifest (linux/arm64) of kept base:b3"
    assert result["a110rc"].reason == "pre-release superseded by 1.1.0"
    assert result["a090"].reason == "beyond the 2 most recent"
    assert result["b5"].reason == "beyond the 2 most recent"
    assert result["old-amd64"].reason == "platform manifest (linux/amd64) of deleted app:fold"


def test_a_platform_manifest_shared_with_a_kept_index_stays():
    result = verdicts(family(), keep=2)
    assert not result["old"].keep and result["a110-arm64"].keep


def test_tags_sharing_a_kept_digest_stay_with_it():
    # pr-8 names the same manifest as edge: deleting it would delete edge
    result = verdicts(family(), keep=1)
    assert result["edge"].keep and "pr-8" in result["edge"].manifest.tags


def test_keep_one_still_keeps_the_newest_release_under_newer_pre_releases():
    manifests = [m(APP, "r1", "1.0.0", day=1), m(APP, "rc1", "2.0.0-rc.1", day=2), m(APP, "rc2", "2.0.0-rc.2", day=3)]
    result = verdicts(manifests, keep=1)
    assert kept(result) == {"r1", "rc2"}
    assert result["r1"].reason == "newest release 1.0.0"
    assert result["rc1"].reason == "beyond the 1 most recent"


def test_unversioned_builds_rank_by_creation_time_after_versions():
    manifests = [m(APP, "old-release", "0.1.0", day=1), m(APP, "new-build", "sha-aaaaaaa", day=9), m(APP, "mid-build", "pr-3", day=5)]
    result = verdicts(manifests, keep=2, protect=())
    # versions rank first, however old; then builds, newest first
    assert kept(result) == {"old-release", "new-build"}
    result = verdicts([*manifests, m(APP, "r2", "0.2.0", day=2)], keep=2, protect=())
    assert kept(result) == {"r2", "old-release"}


def test_configured_patterns_and_the_edge_name_are_protected():
    manifests = [m(APP, "a", "stable-2026", day=1), m(APP, "b", "latest-dev", day=2), m(APP, "c", "sha-ccccccc", day=3),
                 m(APP, "d", "sha-ddddddd", day=4)]
    result = verdicts(manifests, keep=1, protect=("stable-*",), edge="latest-dev")
    assert kept(result) == {"a", "b", "d"}
    assert result["a"].reason == "protected tag stable-2026"


def test_parents_resolve_across_registry_hosts_by_tag_or_digest():
    base = m(BASE, "b", "b", day=1)
    by_digest = m(APP, "x", "latest", day=2, parent=f"registry.example.com:443/{BASE}@{base.digest}")
    result = verdicts([base, m(BASE, "newer", "n", day=3), by_digest], keep=1)
    assert result["b"].keep and result["b"].reason == "base of kept app:latest"
    by_tag = m(APP, "x", "latest", day=2, parent=f"localhost/{BASE}:b")
    assert verdicts([base, m(BASE, "newer", "n", day=3), by_tag], keep=1)["b"].keep


def test_a_chain_of_parents_is_followed():
    chain = [m("ns/os", "o", "o1", day=1), m("ns/os", "o2", "o2", day=5),
             m(BASE, "b", "b1", day=1, parent="r:5000/ns/os:o1"), m(BASE, "b2", "b2", day=5),
             m(APP, "a", "latest", day=2, parent=f"r:5000/{BASE}:b1")]
    result = verdicts(chain, keep=1)
    assert result["o"].keep and result["b"].keep and result["o"].reason == "base of kept base:b1"


def test_closure_check_refuses_a_plan_that_breaks_a_kept_image():
    index = m(APP, "i", "latest", children=("c",))
    child = m(APP, "c", platform="linux/amd64")
    with pytest.raises(RetentionError, match="kept app:latest lists"):
        check_kept_closure([Verdict(index, True, "x"), Verdict(child, False, "y")])
    base = m(BASE, "b", "b1")
    app = m(APP, "a", "latest", parent=base_ref("b1"))
    with pytest.raises(RetentionError, match="was built on"):
        check_kept_closure([Verdict(app, True, "x"), Verdict(base, False, "y")])


def test_deletion_order_puts_indexes_before_what_they_list():
    order = deletion_order(plan_retention(family(), RetentionPolicy(keep=2)))
    kinds = [x.is_index for x in order]
    assert kinds == sorted(kinds, reverse=True) and kinds[0]
    assert {x.digest for x in order} == {v.manifest.digest for v in plan_retention(family(), RetentionPolicy(keep=2)) if not v.keep}


def test_keep_must_be_positive():
    with pytest.raises(RetentionError, match="at least 1"):
        RetentionPolicy(keep=0)


def test_an_untagged_manifest_no_list_names_goes_with_its_reason():
    result = verdicts([m(APP, "a", "latest", day=1), m(APP, "orphan", day=2)], keep=5)
    assert not result["orphan"].keep
    assert result["orphan"].reason == "untagged: no tag and no kept index names it"


def test_a_digest_tagged_after_cleanup_looked_is_kept_with_what_it_needs():
    manifests = family()
    looked = verdicts(manifests, keep=2)
    assert not looked["old"].keep and not looked["old-amd64"].keep and not looked["b1"].keep
    pinned = {(APP, digest(f"{APP}/old")): "tagged after cleanup looked: 1.9.0"}
    again = {_NAMES[v.manifest.digest]: v for v in plan_retention(manifests, RetentionPolicy(keep=2), pinned)}
    assert again["old"].keep and again["old"].reason == "tagged after cleanup looked: 1.9.0"
    assert again["old-amd64"].keep and again["b1"].keep  # its own platform manifest, the base it was built on


def test_doomed_digests_keep_the_time_they_were_first_found():
    first, later = datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    seen = note_doomed({}, ["d1", "d2"], first)
    assert seen == {"d1": "2026-03-01T12:00:00Z", "d2": "2026-03-01T12:00:00Z"}
    # d2 was tagged meanwhile (no longer doomed): forgotten; d3 is new; a garbled time starts again
    again = note_doomed({**seen, "d4": "yesterday"}, ["d1", "d3", "d4"], later)
    assert again == {"d1": "2026-03-01T12:00:00Z", "d3": "2026-03-01T12:30:00Z", "d4": "2026-03-01T12:30:00Z"}


def test_only_digests_doomed_for_the_grace_period_are_ripe():
    seen = {"d1": "2026-03-01T11:00:00Z", "d2": "2026-03-01T11:59:59Z", "d3": "garbled"}
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert ripe(seen, now, timedelta(hours=1)) == {"d1"}
    assert ripe(seen, now, timedelta(seconds=1)) == {"d1", "d2"}
    assert ripe(seen, now, timedelta(0)) == {"d1", "d2", "d3"}  # --grace 0: everything doomed goes now


def test_the_record_of_doomed_digests_is_never_retentions_to_delete():
    record = m(APP, "record", "imagegraph-retention", day=1)
    result = verdicts([*family(), record], keep=1, protect=())
    assert result["record"].keep
