"""Release planning, pure: promotions only from built digests, and never destructive."""

from __future__ import annotations

import pytest

from imagegraph.core.ci import event_from_git
from imagegraph.core.tags import Event, ReleaseError, TagError, check_release_event, plan_release

SHA = "a" * 40
OURS = {"base": "sha256:" + "b" * 64, "ci": "sha256:" + "c" * 64, "app": "sha256:" + "d" * 64, "devcontainer": "sha256:" + "e" * 64}
OTHER = "sha256:" + "0" * 64


def release(world, version="v1.3.0", **kw):
    config, fingerprints, _ = world
    return plan_release(config, fingerprints, Event("tag", SHA, version), OURS, {}, **kw)


def test_a_new_version_gets_its_tags(world):
    promotions = release(world)
    assert {p.image: p.names for p in promotions} == dict.fromkeys(OURS, ("1.3.0", "1.3", "latest"))
    assert {p.image: p.digest for p in promotions} == OURS and not any(p.notes for p in promotions)


def test_a_version_already_on_another_digest_is_refused(world):
    with pytest.raises(ReleaseError, match=r"1\.3\.0 is already released on other digests \(app:1\.3\.0 is sha256:000000000000…\); "
                                           r"a published version never moves: release a new version, or pass --force"):
        release(world, version_digests={"app": OTHER, "base": OURS["base"]})


def test_force_replaces_it_and_says_what_it_replaced(world):
    promotions = {p.image: p for p in release(world, version_digests={"app": OTHER, "base": OURS["base"]}, force=True)}
    assert f"--force: 1.3.0 replaced: it was {OTHER}, now {OURS['app']}" in promotions["app"].notes
    assert "1.3.0 already names this digest: re-released, nothing changes for it" in promotions["base"].notes
    assert promotions["app"].names == ("1.3.0", "1.3", "latest")


def test_a_pre_release_gets_its_own_tag_and_says_why_no_more(world):
    promotions = release(world, version="v2.0.0-rc.1")
    assert {p.image: p.names for p in promotions} == dict.fromkeys(OURS, ("2.0.0-rc.1",))
    assert all(p.notes == ("2.0.0-rc.1 is a pre-release: no 2.0 or latest",) for p in promotions)


def test_a_patch_to_an_older_line_moves_its_line_not_latest_and_says_so(world):
    config, fingerprints, _ = world
    promotions = plan_release(config, fingerprints, Event("tag", SHA, "v1.2.4"), OURS, dict.fromkeys(OURS, ("1.3.0", "1.3", "latest")))
    assert {p.image: p.names for p in promotions} == dict.fromkeys(OURS, ("1.2.4", "1.2"))
    assert all(p.notes == ("latest stays at 1.3.0: 1.2.4 is not the highest stable version",) for p in promotions)


def test_re_releasing_the_same_digests_is_no_conflict(world):
    promotions = release(world, version_digests=dict(OURS))
    assert all("already names this digest" in " ".join(p.notes) for p in promotions)


def test_an_unbuilt_image_stops_the_whole_release(world):
    config, fingerprints, _ = world
    with pytest.raises(ReleaseError) as refused:
        plan_release(config, fingerprints, Event("tag", SHA, "v1.3.0"), {**OURS, "app": None}, {})
    # nothing says it was built, and nothing says it was not: the line claims neither
    assert str(refused.value) == (f"app:{fingerprints['app'].tag} not in the registry: this commit was not built, or its images were "
                                  f"deleted since; rebuild them with `invoke build` on this commit (it pushes the same fingerprints "
                                  f"again), then run `invoke release --version v1.3.0`")


def test_an_image_a_cleanup_deleted_is_said_so_with_when(world):
    config, fingerprints, _ = world
    with pytest.raises(ReleaseError) as refused:
        plan_release(config, fingerprints, Event("tag", SHA, "v1.3.0"), {**OURS, "app": None, "ci": None}, {},
                     deleted={"app": "2026-03-04T05:06:07Z"})
    assert str(refused.value) == (f"ci:{fingerprints['ci'].tag}, app:{fingerprints['app'].tag} (deleted by `invoke cleanup` at "
                                  f"2026-03-04T05:06:07Z): this commit's images were deleted from the registry; rebuild them with "
                                  f"`invoke build` on this commit (it pushes the same fingerprints again), then run "
                                  f"`invoke release --version v1.3.0`")


def test_a_tag_without_the_v_is_refused_with_its_rule_not_as_no_tag():
    event = event_from_git(SHA, ["1.0.0"], "main", "main")
    refusal = r"nothing to release: tag 1\.0\.0 at HEAD is not a release tag: .*a leading v is required; tag the release v1\.0\.0"
    with pytest.raises(ReleaseError, match=refusal):
        check_release_event(event)
    with pytest.raises(ReleaseError, match=r"HEAD has no version tag"):
        check_release_event(event_from_git(SHA, ["nightly"], "main", "main"))
    with pytest.raises(TagError, match=r"build metadata \(\+build\.5\) is not allowed in a tag name"):
        check_release_event(Event("tag", SHA, "v1.4.0+build.5"))
