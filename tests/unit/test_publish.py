"""Which tags a build moves, decided purely: the event, the family's tags and the results go in, the move comes out."""

from __future__ import annotations

from dataclasses import dataclass

from imagegraph.core.plan import Decision
from imagegraph.core.publish import FamilyImage, Outcome, TagRequest, publication
from imagegraph.core.tags import FORWARD_ONLY, Event, PlannedTag, TagPolicy, describe_event, planned_tags

SHA = "abcdef1" + "0" * 33
MAIN = Event("branch", SHA, "main")
FAMILY = (FamilyImage("base", "ns/base", "fp-base", push=True), FamilyImage("app", "ns/app", "fp-app", push=True),
          FamilyImage("tools", "ns/tools", "fp-tools", push=False))


@dataclass(frozen=True)
class Result:
    name: str
    decision: Decision = Decision.BUILD
    digest: str | None = None
    ok: bool = True


def results(**overrides) -> tuple[Result, ...]:
    return tuple(overrides.get(image.name, Result(image.name, digest=f"sha256:{image.name}")) for image in FAMILY)


def test_the_default_branch_requests_edge_and_sha_for_pushed_images_each_forward_only():
    decided = publication(MAIN, FAMILY, results(), dirty=())
    assert decided.settled is None and decided.notes == ()
    assert decided.requests == (TagRequest("base", "ns/base", "fp-base", ("edge", "sha-abcdef1"), expected="sha256:base"),
                                TagRequest("app", "ns/app", "fp-app", ("edge", "sha-abcdef1"), expected="sha256:app"))
    assert decided.forward_only == {"edge", "sha-abcdef1"}


def test_a_version_tag_event_is_settled_before_failures_are_looked_at():
    decided = publication(Event("tag", SHA, "v1.0.0"), FAMILY, results(app=Result("app", ok=False)), dirty=("x",))
    assert decided.requests == () and decided.settled is not None
    assert decided.settled.line == "tags: fingerprint tags only (version tags come from `invoke release`)"
    assert decided.notes == ("v1.0.0: version tags are given by `invoke release` (promotion of these digests), not by the build",)


def test_failures_are_named_in_the_order_of_the_results():
    decided = publication(MAIN, FAMILY, results(base=Result("base", ok=False), tools=Result("tools", ok=False)), dirty=("src/a.py",))
    assert decided.settled is not None and decided.settled.outcome is Outcome.UNCHANGED
    assert decided.settled.line == "tags: none moved: base, tools failed"


def test_many_dirty_inputs_are_shown_three_and_counted():
    decided = publication(MAIN, FAMILY, results(), dirty=("e", "d", "c", "b", "a"))
    assert decided.settled is not None
    assert decided.settled.line == "tags: none moved: uncommitted changes to image inputs (a, b, c and 2 more); the images are not abcdef1's, commit first"


def test_the_plans_tags_are_used_when_given_and_decided_the_same_way_when_not():
    planned = (PlannedTag("fp-app", "fingerprint", True, "own"), PlannedTag("only-this", "branch", True, "the plan says so"))
    family = (FAMILY[0], FamilyImage("app", "ns/app", "fp-app", push=True, tags=planned), FAMILY[2])
    requested = {r.image: r.tags for r in publication(MAIN, family, results(), dirty=()).requests}
    assert requested == {"base": ("edge", "sha-abcdef1"), "app": ("only-this",)}


def test_a_skipped_image_gets_nothing_and_a_held_tag_is_said():
    pr = Event("pull_request", SHA, pr_number=3)
    decided = publication(pr, FAMILY, results(app=Result("app", Decision.SKIP)), dirty=())
    assert decided.notes == ("[base] pr-3 not moved: built and tested, not pushed (push it with --push-pr)",)
    assert decided.settled is not None and decided.settled.line == "tags: fingerprint tags only"
    pushed = publication(pr, FAMILY, results(app=Result("app", Decision.SKIP)), dirty=(), policy=TagPolicy(push_pull_requests=True))
    assert [r.image for r in pushed.requests] == ["base"] and pushed.forward_only == {"pr-3"}


def test_every_tag_a_build_moves_beyond_the_fingerprint_is_forward_only():
    events = [MAIN, Event("branch", SHA, "feature"), Event("pull_request", SHA, pr_number=3), Event("tag", SHA, "v1.0.0"), Event("local", SHA)]
    for event in events:
        for tag in planned_tags(event, "fp", TagPolicy(edge="latest-dev", push_pull_requests=True)):
            if tag.moves and tag.kind != "fingerprint":
                assert tag.kind in FORWARD_ONLY, (event, tag)


def test_the_event_in_words():
    assert [describe_event(e) for e in (MAIN, Event("tag", SHA, "v1.2.0"), Event("pull_request", SHA, pr_number=4),
                                        Event("pull_request", SHA), Event("local", SHA), Event("local", SHA, "detached"))] == [
        "branch main", "tag v1.2.0", "pull request #4", "pull request", "local", "local detached"]
