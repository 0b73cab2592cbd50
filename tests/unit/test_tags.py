"""The tag policy, pure: which tags each image gets for an event and why, and the verdicts that let them move.

A push to the default branch, another branch, a pull request (pushed or
not), a version tag (releases, pre-releases, older-line patches), the
family gate (all or nothing), and the forward-only verdicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from imagegraph.core.tags import (
    DEFAULT_POLICY,
    FAMILY_RULE,
    FORWARD_ONLY,
    Event,
    FamilyImage,
    Move,
    Outcome,
    PlannedTag,
    Relation,
    TagError,
    TagPolicy,
    TagRequest,
    Version,
    Witness,
    decide_branch_tag,
    describe_event,
    oci_labels,
    order_moves,
    planned_tags,
    publication,
    release_version,
    rollback_plan,
    tag_rule,
    version_tags,
)

FP = "0123456789abcdef"
SHA = "1234567deadbeef" + "0" * 25
REGISTRY = ["2.1.0", "2.1", "2.0.5", "2.0", "1.4.2", "1.4", "latest", "edge", "sha-aaaaaaa", "pr-3", "3.0.0-rc.1", FP]


def _kinds(tags: tuple[PlannedTag, ...]) -> list[tuple[str, str, bool]]:
    return [(t.tag, t.kind, t.moves) for t in tags]


# --- which tags an event gives -------------------------------------------------------------------------------------------


def test_a_push_to_main_moves_edge_and_sha_forward_only_with_the_family():
    tags = planned_tags(Event("branch", SHA, "main"), FP)
    assert _kinds(tags) == [(FP, "fingerprint", True), ("edge", "branch", True), ("sha-1234567", "commit", True)]
    assert [t.forward_only for t in tags] == [False, True, True]
    assert tags[1].rule == f"{FAMILY_RULE}; forward only: stays when it names a newer commit than 1234567"
    assert tags[2].rule == FAMILY_RULE and "all or nothing" in FAMILY_RULE


def test_the_edge_tag_is_configurable_and_follows_the_events_default_branch():
    assert _kinds(planned_tags(Event("branch", SHA, "trunk", "trunk"), FP, TagPolicy(edge="latest-dev")))[1] == ("latest-dev", "branch", True)
    # a branch called main is not the default branch when the platform says trunk is
    assert ("edge", "branch", False) in _kinds(planned_tags(Event("branch", SHA, "main", "trunk"), FP))


def test_another_branch_moves_sha_only_and_says_why_edge_stays():
    tags = planned_tags(Event("branch", SHA, "feature/x"), FP, TagPolicy(edge="latest-dev"))
    assert _kinds(tags) == [(FP, "fingerprint", True), ("sha-1234567", "commit", True), ("latest-dev", "branch", False)]
    assert tags[-1].rule == "moves only on main; this is branch feature/x"


def test_a_pull_request_gets_pr_n_pushed_only_when_asked():
    event = Event("pull_request", SHA, pr_number=7)
    held = planned_tags(event, FP)
    assert _kinds(held) == [(FP, "fingerprint", True), ("pr-7", "pull_request", False)]
    assert held[1].rule == "built and tested, not pushed (push it with --push-pr)"
    pushed = planned_tags(event, FP, TagPolicy(push_pull_requests=True))
    assert _kinds(pushed)[1] == ("pr-7", "pull_request", True) and pushed[1].forward_only and pushed[1].rule == FAMILY_RULE


def test_a_pull_request_without_a_number_is_one_line_naming_both_platforms():
    with pytest.raises(TagError, match=r"without a number; GitHub sets GITHUB_REF=refs/pull/<N>/merge, GitLab CI_MERGE_REQUEST_IID"):
        planned_tags(Event("pull_request", SHA), FP)


def test_a_version_tag_moves_nothing_in_a_build_and_names_what_release_gives():
    release = planned_tags(Event("tag", SHA, "v1.4.0"), FP)
    assert _kinds(release)[1:] == [("1.4.0", "version", False), ("1.4", "version", False), ("latest", "version", False)]
    assert all("invoke release" in t.rule for t in release[1:])
    assert _kinds(planned_tags(Event("tag", SHA, "v2.0.0-rc.1"), FP))[1:] == [("2.0.0-rc.1", "version", False)]
    assert _kinds(planned_tags(Event("tag", SHA, "1.0.0"), FP)) == [(FP, "fingerprint", True)]  # no release tag: only its own


def test_a_local_checkout_and_an_unpushed_image_get_only_the_fingerprint_tag():
    assert _kinds(planned_tags(Event("local", SHA), FP)) == [(FP, "fingerprint", True)]
    assert _kinds(planned_tags(Event("branch", SHA, "main"), FP, push=False)) == [(FP, "fingerprint", False)]


def test_every_tag_a_build_moves_beyond_the_fingerprint_is_forward_only():
    events = [Event("branch", SHA, "main"), Event("branch", SHA, "feature"), Event("pull_request", SHA, pr_number=3),
              Event("tag", SHA, "v1.0.0"), Event("local", SHA)]
    for event in events:
        for tag in planned_tags(event, "fp", TagPolicy(edge="latest-dev", push_pull_requests=True)):
            if tag.moves and tag.kind != "fingerprint":
                assert tag.kind in FORWARD_ONLY and tag.forward_only, (event, tag)


# --- a release's version tags --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "registry", "expected"), [
    # a new highest release moves its line and latest
    ("v2.2.0", REGISTRY, ("2.2.0", "2.2", "latest")),
    # a patch on the newest line
    ("v2.1.1", REGISTRY, ("2.1.1", "2.1", "latest")),
    # a patch to an older line: its own line moves, latest does not
    ("v1.4.3", REGISTRY, ("1.4.3", "1.4")),
    # an older patch of an older line than one already released: neither moves
    ("v2.0.4", REGISTRY, ("2.0.4",)),
    # pre-releases get only their own tag, even above every stable version
    ("v3.0.0-rc.2", REGISTRY, ("3.0.0-rc.2",)),
    # the release after a pre-release is stable and highest
    ("v3.0.0", REGISTRY, ("3.0.0", "3.0", "latest")),
    # the very first release, into an empty registry
    ("v0.1.0", [], ("0.1.0", "0.1", "latest")),
    # re-running the same release is stable
    ("v2.1.0", REGISTRY, ("2.1.0", "2.1", "latest")),
    # a "v" tag in the registry is no version of its images
    ("v1.0.0", ["v9.0.0"], ("1.0.0", "1.0", "latest")),
])
def test_version_tag_table(version, registry, expected):
    tags = version_tags(release_version(Event("tag", SHA, version)), registry)
    assert tuple(t.tag for t in tags if t.moves) == expected
    assert {t.kind for t in tags} == {"version"} and not any(t.forward_only for t in tags)


def test_a_held_version_tag_says_where_it_stays_and_why():
    tags = version_tags(Version.parse("1.4.3"), REGISTRY)
    assert [(t.tag, t.moves, t.rule) for t in tags[1:]] == [
        ("1.4", True, "the newest patch of its line"),
        ("latest", False, "latest stays at 2.1.0: 1.4.3 is not the highest stable version")]
    older = version_tags(Version.parse("2.0.4"), REGISTRY)
    assert older[1].rule == "2.0 stays at 2.0.5: 2.0.4 is not the newest patch of its line"


@pytest.mark.parametrize("bad", ["v1.2", "v1.2.3.4", "v01.2.3", "release-7", "v1.2.3+build..5"])
def test_a_version_tag_that_is_not_semver_is_one_clear_line(bad):
    with pytest.raises(TagError, match=r"is not semver: a release tag is vMAJOR\.MINOR\.PATCH"):
        release_version(Event("tag", SHA, bad))


@pytest.mark.parametrize(("tag", "rule", "fix"), [
    ("v1.4.0+build.5", "build metadata (+build.5) is not allowed in a tag name", "v1.4.0"),
    ("1.0.0", "a leading v is required", "v1.0.0"),
    ("V1.0.0", "the leading v must be lowercase", "v1.0.0"),
    ("2.0.0-rc.1+sha.abc", "a leading v is required and build metadata (+sha.abc) is not allowed", "v2.0.0-rc.1"),
])
def test_a_semver_tag_that_breaks_a_project_rule_names_the_rule(tag, rule, fix):
    assert rule in tag_rule(tag) and "is semver, but" in tag_rule(tag)
    with pytest.raises(TagError, match=re.escape(f"tag the release {fix}")):
        release_version(Event("tag", SHA, tag))


@pytest.mark.parametrize("good", ["v1.0.0", "v0.1.0-rc.1", "v10.20.30-alpha.beta.1"])
def test_release_tags_break_no_rule(good):
    assert tag_rule(good) is None


def test_semver_precedence():
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0"]
    versions = [Version.parse(v) for v in ordered]
    assert sorted(reversed(versions)) == versions
    assert [str(v) for v in versions] == ordered


# --- the family gate: all or nothing -------------------------------------------------------------------------------------


MAIN = Event("branch", "abcdef1" + "0" * 33, "main")


def family(event: Event = MAIN, policy: TagPolicy = DEFAULT_POLICY, **changed) -> tuple[FamilyImage, ...]:
    """base and app pushed, tools local only: each with the tags the plan gives it."""
    images = (FamilyImage("base", "ns/base", "fp-base", True, planned_tags(event, "fp-base", policy)),
              FamilyImage("app", "ns/app", "fp-app", True, planned_tags(event, "fp-app", policy)),
              FamilyImage("tools", "ns/tools", "fp-tools", False, planned_tags(event, "fp-tools", policy, push=False)))
    return tuple(changed.get(image.name, image) for image in images)


@dataclass(frozen=True)
class Result:
    name: str
    digest: str | None = None
    ok: bool = True


def results(**overrides) -> tuple[Result, ...]:
    return tuple(overrides.get(name, Result(name, digest=f"sha256:{name}")) for name in ("base", "app", "tools"))


def test_the_default_branch_requests_edge_and_sha_for_pushed_images_each_forward_only():
    decided = publication(MAIN, family(), results(), dirty=())
    assert decided.settled is None and decided.notes == ()
    assert [(r.image, r.repository, r.source, r.names, r.digest) for r in decided.requests] == [
        ("base", "ns/base", "fp-base", ("edge", "sha-abcdef1"), "sha256:base"),
        ("app", "ns/app", "fp-app", ("edge", "sha-abcdef1"), "sha256:app")]
    assert all(tag.forward_only for request in decided.requests for tag in request.moving)


def test_a_version_tag_event_is_settled_before_failures_are_looked_at():
    event = Event("tag", SHA, "v1.0.0")
    decided = publication(event, family(event), results(app=Result("app", ok=False)), dirty=("x",))
    assert decided.requests == () and decided.settled is not None
    assert decided.settled.line == "tags: fingerprint tags only (version tags come from `invoke release`)"
    assert decided.notes == ("v1.0.0: version tags are given by `invoke release` (promotion of these digests), not by the build",)


def test_failures_are_named_in_the_order_of_the_results():
    decided = publication(MAIN, family(), results(base=Result("base", ok=False), tools=Result("tools", ok=False)), dirty=("src/a.py",))
    assert decided.settled is not None and decided.settled.outcome is Outcome.UNCHANGED
    assert decided.settled.line == "tags: none moved: base, tools failed"


def test_many_dirty_inputs_are_shown_three_and_counted():
    decided = publication(MAIN, family(), results(), dirty=("e", "d", "c", "b", "a"))
    assert decided.settled is not None
    assert decided.settled.line == "tags: none moved: uncommitted changes to image inputs (a, b, c and 2 more); the images are not abcdef1's, commit first"


def test_the_plans_tags_are_the_ones_requested_kind_and_all():
    planned = (PlannedTag("fp-app", "fingerprint", True, "own"), PlannedTag("only-this", "version", True, "the plan says so"))
    decided = publication(MAIN, family(app=FamilyImage("app", "ns/app", "fp-app", True, planned)), results(), dirty=())
    assert {r.image: r.names for r in decided.requests} == {"base": ("edge", "sha-abcdef1"), "app": ("only-this",)}
    assert not decided.requests[1].moving[0].forward_only  # the plan's kind is carried, never guessed from the name


def test_a_skipped_image_gets_nothing_and_a_held_tag_is_said():
    pr = Event("pull_request", SHA, pr_number=3)
    skipped = FamilyImage("app", "ns/app", "fp-app", True, planned_tags(pr, "fp-app"), selected=False)
    decided = publication(pr, family(pr, app=skipped), results(), dirty=())
    assert decided.notes == ("[base] pr-3 not moved: built and tested, not pushed (push it with --push-pr)",)
    assert decided.settled is not None and decided.settled.line == "tags: fingerprint tags only"
    asked = TagPolicy(push_pull_requests=True)
    skipped = FamilyImage("app", "ns/app", "fp-app", True, planned_tags(pr, "fp-app", asked), selected=False)
    pushed = publication(pr, family(pr, asked, app=skipped), results(), dirty=())
    assert [(r.image, r.names) for r in pushed.requests] == [("base", ("pr-3",))]


# --- forward only, all or nothing: the verdicts ----------------------------------------------------------------------------


def test_a_branch_tag_moves_when_every_image_has_a_same_older_or_unrelated_witness():
    older = {"app": [Witness("app:edge's image was built at", "c2", Relation.OLDER)],
             "base": [Witness("base:edge's image was built at", "x9", Relation.UNRELATED)],
             "ci": [Witness("ci:edge's image was built at", "c3", Relation.SAME)]}
    assert decide_branch_tag("edge", "c3", older) is None


def test_a_newer_witness_on_any_image_holds_the_tag_for_the_whole_family():
    witnesses = {"app": [Witness("app:edge's image was built at", "c2", Relation.OLDER)],
                 "ci": [Witness("ci:edge's image was built at", "c1", Relation.OLDER),
                        Witness("ci:edge's image carries ci:sha-c4, tagged for", "c4", Relation.NEWER)]}
    assert decide_branch_tag("edge", "c3", witnesses) == \
        "edge stays: a newer run moved it (ci:edge's image carries ci:sha-c4, tagged for c4, a descendant of this build's c3)"


def test_an_image_with_no_known_witness_holds_the_tag_and_says_how_to_fix_it():
    none = {"app": [Witness("app:edge's image was built at", "c2", Relation.OLDER)], "ci": []}
    assert decide_branch_tag("edge", "c3", none) == ("edge stays: nothing shows that moving ci:edge is forward (no revision label, "
                                                     "no sha tag), a commit this clone does not have; fetch the branch's history "
                                                     "(git fetch origin) and rerun")
    unknown = {"app": [Witness("app:edge's image was built at", "f00ba47", Relation.UNKNOWN)]}
    assert decide_branch_tag("edge", "c3", unknown).startswith(
        "edge stays: nothing shows that moving app:edge is forward (app:edge's image was built at f00ba47)")


def test_existing_tags_move_first_and_only_what_still_names_our_write_is_put_back():
    new = Move("app", "app", "sha-c3", "d-new", None)
    existing = Move("app", "app", "edge", "d-new", "d-old")
    assert order_moves([new, existing]) == (existing, new)
    now = {("app", "edge"): "d-new", ("app", "sha-c3"): "d-new"}
    assert rollback_plan([existing, new], now) == ((existing,), (new,))
    assert rollback_plan([existing, new], {("app", "edge"): "d-other"}) == ((), ())


def test_a_request_moves_only_its_moving_tags_beyond_the_fingerprint():
    tags = planned_tags(Event("branch", SHA, "feature"), FP)
    request = TagRequest("app", "ns/app", FP, tags)
    assert request.names == ("sha-1234567",)  # not the fingerprint tag, not the held edge


# --- the event in words, the labels ----------------------------------------------------------------------------------------


def test_the_event_in_words():
    assert [describe_event(e) for e in (MAIN, Event("tag", SHA, "v1.2.0"), Event("pull_request", SHA, pr_number=4),
                                        Event("pull_request", SHA), Event("local", SHA), Event("local", SHA, "detached"))] == [
        "branch main", "tag v1.2.0", "pull request #4", "pull request", "local", "local detached"]


def test_oci_labels():
    labels = oci_labels(revision=SHA, source="https://github.com/acme/mono", version="1.2.3", created="2026-11-21T06:00:00Z")
    assert labels == {
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.created": "2026-11-21T06:00:00Z",
        "org.opencontainers.image.source": "https://github.com/acme/mono",
        "org.opencontainers.image.version": "1.2.3",
    }
    assert "org.opencontainers.image.version" not in oci_labels(revision=SHA, source=None, version=None, created="x")
