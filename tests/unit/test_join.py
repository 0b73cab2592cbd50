"""The join's decisions: each image's index from its platform tags, already joined, or refused in one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imagegraph.core.join import JoinImage, JoinState, Manifest, decide_join, part_tag, run_for
from imagegraph.core.media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from imagegraph.core.request import BuildRequest

BOTH = ("linux/amd64", "linux/arm64")
FP = "3f2c9a0b1d4e5f60"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def image_manifest(name: str, *, media_type: str = OCI_MANIFEST, config_platform: str = "") -> Manifest:
    return Manifest(media_type, _digest(name), 400 + len(name), {"schemaVersion": 2, "mediaType": media_type, "layers": []},
                    config_platform=config_platform)


def entry(digest: str, os_: str, arch: str, variant: str = "", media_type: str = OCI_MANIFEST, **annotations: str) -> dict:
    platform = {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}
    found = {"mediaType": media_type, "digest": digest, "size": 500, "platform": platform}
    return {**found, "annotations": annotations} if annotations else found


def attested(platform: str) -> Manifest:
    """One platform's image and its provenance, as BuildKit pushes a build of one platform with attestations."""
    os_, arch, *variant = platform.split("/")
    image = _digest(f"image {platform}")
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        entry(image, os_, arch, *variant),
        entry(_digest(f"attestation {platform}"), "unknown", "unknown", **{"vnd.docker.reference.digest": image,
                                                                           "vnd.docker.reference.type": "attestation-manifest"}),
    ]}
    return Manifest(OCI_INDEX, _digest(f"index {platform}"), 700, body)


def whole(*platforms: str) -> Manifest:
    manifests = [entry(_digest(p), *p.split("/")) for p in platforms]
    manifests += [entry(_digest(f"att {p}"), "unknown", "unknown") for p in platforms]
    return Manifest(OCI_INDEX, _digest("whole " + ",".join(platforms)), 900, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


def planned(name: str = "base", *, current: Manifest | None = None, parts: dict | None = None, platforms=BOTH) -> JoinImage:
    return JoinImage(name, f"imagegraph/{name}", FP, tuple(platforms), current, parts or {})


def test_two_attested_platforms_join_into_one_index_that_keeps_both_attestations():
    decided = decide_join([planned(parts={p: attested(p) for p in BOTH})])
    assert decided.refusal is None
    (step,) = decided.to_write
    assert step.state is JoinState.JOIN and step.media_type == OCI_INDEX and step.attestations == 2
    body = json.loads(step.index)
    assert body["mediaType"] == OCI_INDEX and body["schemaVersion"] == 2
    listed = [(m["platform"]["os"], m["platform"]["architecture"], m["digest"]) for m in body["manifests"]]
    # the images first, in the planned order, then their attestations: every descriptor as the platform's index had it
    assert listed == [("linux", "amd64", _digest("image linux/amd64")), ("linux", "arm64", _digest("image linux/arm64")),
                      ("unknown", "unknown", _digest("attestation linux/amd64")), ("unknown", "unknown", _digest("attestation linux/arm64"))]
    assert body["manifests"][2]["annotations"]["vnd.docker.reference.digest"] == _digest("image linux/amd64")
    assert step.digest == "sha256:" + hashlib.sha256(step.index).hexdigest()


def test_the_same_parts_give_the_same_bytes_so_two_joins_write_one_digest():
    parts = {p: attested(p) for p in BOTH}
    first, second = decide_join([planned(parts=parts)]), decide_join([planned(parts=dict(reversed(parts.items())))])
    assert first.to_write[0].index == second.to_write[0].index


def test_plain_docker_manifests_join_into_a_manifest_list_with_the_platform_their_configs_name():
    parts = {"linux/amd64": image_manifest("a", media_type=DOCKER_MANIFEST, config_platform="linux/amd64"),
             "linux/arm64": image_manifest("b", media_type=DOCKER_MANIFEST, config_platform="linux/arm64/v8")}
    (step,) = decide_join([planned(parts=parts)]).to_write
    body = json.loads(step.index)
    assert step.media_type == DOCKER_MANIFEST_LIST == body["mediaType"] and step.attestations == 0
    assert [m["platform"] for m in body["manifests"]] == [{"os": "linux", "architecture": "amd64"},
                                                          {"os": "linux", "architecture": "arm64", "variant": "v8"}]
    assert [(m["digest"], m["size"], m["mediaType"]) for m in body["manifests"]] == [
        (parts[p].digest, parts[p].size, DOCKER_MANIFEST) for p in BOTH]


def test_an_index_of_every_platform_at_the_fingerprint_tag_is_already_joined_and_nothing_is_written():
    current = whole(*BOTH)
    decided = decide_join([planned(current=current, parts={p: attested(p) for p in BOTH})])
    assert decided.refusal is None and decided.to_write == ()
    assert [(s.state, s.digest) for s in decided.steps] == [(JoinState.JOINED, current.digest)]


def test_a_fingerprint_tag_left_on_one_platforms_manifest_is_joined_over():
    # a push cut short leaves one platform's manifest on the fingerprint tag: not the whole image
    decided = decide_join([planned(current=image_manifest("cut"), parts={p: attested(p) for p in BOTH})])
    assert [s.state for s in decided.steps] == [JoinState.JOIN]


def test_a_missing_platform_refuses_the_whole_join_in_one_line_naming_it_and_the_run_that_pushes_it():
    images = [planned("base", parts={p: attested(p) for p in BOTH}),  # whole: joinable, but nothing may be written
              planned("app", parts={"linux/amd64": attested("linux/amd64")}),
              planned("ci", parts={"linux/amd64": attested("linux/amd64")})]
    decided = decide_join(images)
    assert decided.steps == () and decided.to_write == ()
    assert decided.refusal == (f"cannot join: linux/arm64 is not pushed for app, ci (no imagegraph/app:{FP}-arm64); "
                               f"{run_for('linux/arm64')} must push it first, then join again; nothing was written")
    assert "\n" not in decided.refusal


def test_two_missing_platforms_name_both_runs():
    decided = decide_join([planned("app", parts={"linux/amd64": attested("linux/amd64")}), planned("ci", parts={})],
                          run=lambda platform: f"runner {platform}")
    assert decided.refusal == (f"cannot join: linux/arm64 is not pushed for app, ci (no imagegraph/app:{FP}-arm64); linux/amd64 is "
                               f"not pushed for ci (no imagegraph/ci:{FP}-amd64); runner linux/arm64 and runner linux/amd64 must "
                               f"push them first, then join again; nothing was written")


def test_a_platform_tag_naming_a_whole_multi_platform_index_is_refused():
    parts = {"linux/amd64": attested("linux/amd64"), "linux/arm64": whole(*BOTH)}
    decided = decide_join([planned("app", parts=parts)])
    assert decided.steps == ()
    assert decided.refusal == (f"cannot join app: imagegraph/app:{FP}-arm64 names an index of the whole image linux/amd64, linux/arm64, "
                               f"not linux/arm64's image alone (a multi-platform push to a platform tag); {run_for('linux/arm64')} "
                               f"pushes linux/arm64 alone there; nothing was written")


@pytest.mark.parametrize(("part", "says"), [
    (image_manifest("x", config_platform="linux/amd64"), "holds a linux/amd64 image, not linux/arm64"),
    (attested("linux/amd64"), "names an index of linux/amd64, not linux/arm64"),
    (Manifest("application/vnd.imagegraph.lease.v1", _digest("lease"), 10, {"schemaVersion": 2}), "is application/vnd.imagegraph.lease.v1, not an image"),
    (Manifest(OCI_INDEX, _digest("only att"), 10, {"manifests": [entry(_digest("a"), "unknown", "unknown")]}), "without an image"),
    (Manifest(OCI_INDEX, _digest("nested"), 10, {"manifests": [entry(_digest("n"), "linux", "arm64", media_type=OCI_INDEX)]}),
     "entry is application/vnd.oci.image.index.v1+json, not an image manifest"),
])
def test_a_platform_tag_naming_anything_but_that_platforms_image_is_refused(part, says):
    decided = decide_join([planned("app", parts={"linux/amd64": attested("linux/amd64"), "linux/arm64": part})])
    assert decided.steps == () and decided.refusal is not None
    assert decided.refusal.startswith(f"cannot join app: imagegraph/app:{FP}-arm64 ") and says in decided.refusal
    assert decided.refusal.endswith("; nothing was written")


def test_an_image_of_one_platform_is_its_own_part():
    assert decide_join([planned("app", platforms=("linux/amd64",), current=image_manifest("a"))]).steps[0].state is JoinState.JOINED
    assert decide_join([planned("app", platforms=("linux/amd64",), current=attested("linux/amd64"))]).steps[0].state is JoinState.JOINED
    refused = decide_join([planned("app", platforms=("linux/amd64",))]).refusal
    assert refused is not None and f"linux/amd64 is not pushed for app (no imagegraph/app:{FP})" in refused
    wrong = decide_join([planned("app", platforms=("linux/arm64",), current=attested("linux/amd64"))]).refusal
    assert wrong is not None and "names no linux/arm64 image" in wrong


def test_a_part_tag_is_the_one_a_per_platform_build_pushes_to():
    for platforms in (BOTH, ("linux/amd64",), ("linux/amd64", "linux/arm64/v8", "linux/arm/v7")):
        request = BuildRequest(image="base", dockerfile=Path("D"), context=Path("."), ref=f"r:5000/ns/base:{FP}", platforms=platforms)
        for platform in platforms:
            assert request.platform_tag(platform) == f"r:5000/ns/base:{part_tag(FP, platforms, platform)}"
