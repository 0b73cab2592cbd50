"""Whether a tag names the whole image a build planned: read from the manifest's body."""

import pytest

from imagegraph.core.manifests import is_index, missing_platforms, platform_of
from imagegraph.core.media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST


def _entry(os: str, arch: str, variant: str | None = None, media_type: str = OCI_MANIFEST) -> dict:
    platform = {"os": os, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return {"mediaType": media_type, "digest": f"sha256:{os}{arch}{variant or ''}", "size": 1, "platform": platform}


# what BuildKit pushes for linux/amd64 + linux/arm64 with provenance: two images and their two attestations
BOTH = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
    _entry("linux", "amd64"), _entry("linux", "arm64"), _entry("unknown", "unknown"), _entry("unknown", "unknown")]}
# one platform's image manifest: what buildx's second push leaves on the tag when it is cut short
ONE = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
       "layers": []}


@pytest.mark.parametrize(("media_type", "body", "planned", "missing"), [
    (OCI_INDEX, BOTH, ("linux/amd64", "linux/arm64"), ()),
    (OCI_INDEX, BOTH, ("linux/amd64",), ()),
    (OCI_INDEX, BOTH, ("linux/amd64", "linux/arm64", "linux/s390x"), ("linux/s390x",)),
    # the attestations are no platform: an index of one image and its attestation lacks the other platform
    (OCI_INDEX, {"manifests": [_entry("linux", "amd64"), _entry("unknown", "unknown")]}, ("linux/amd64", "linux/arm64"),
     ("linux/arm64",)),
    # a tag left naming one platform's manifest is not the whole of a two-platform image
    (OCI_MANIFEST, ONE, ("linux/amd64", "linux/arm64"), ("linux/amd64", "linux/arm64")),
    (DOCKER_MANIFEST, ONE, ("linux/amd64", "linux/arm64"), ("linux/amd64", "linux/arm64")),
    # a build of one platform pushes one image manifest (the classic store, or no attestation)
    (OCI_MANIFEST, ONE, ("linux/amd64",), ()),
    ("", ONE, ("linux/amd64",), ()),
    # Docker's manifest list, and a registry that names no type: judged by the body
    (DOCKER_MANIFEST_LIST, {"manifests": [_entry("linux", "amd64", media_type=DOCKER_MANIFEST),
                                          _entry("linux", "arm64", media_type=DOCKER_MANIFEST)]}, ("linux/amd64", "linux/arm64"), ()),
    ("", BOTH, ("linux/arm64",), ()),
    # variants: arm64's v8 written or not; arm/v7 is not arm/v6, and a plan with no variant takes any
    (OCI_INDEX, {"manifests": [_entry("linux", "arm64", "v8")]}, ("linux/arm64",), ()),
    (OCI_INDEX, {"manifests": [_entry("linux", "arm64")]}, ("linux/arm64/v8",), ()),
    (OCI_INDEX, {"manifests": [_entry("linux", "arm", "v6")]}, ("linux/arm/v7",), ("linux/arm/v7",)),
    (OCI_INDEX, {"manifests": [_entry("linux", "arm", "v7")]}, ("linux/arm",), ()),
    # not an image at all (a build cache's index lists layers, no manifests), or an empty index
    ("application/vnd.oci.image.index.v1+json", {"manifests": []}, ("linux/amd64",), ("linux/amd64",)),
    ("application/vnd.example.other", {"something": 1}, ("linux/amd64",), ("linux/amd64",)),
    # entries that are no manifest, or carry a platform that is not a mapping, count for nothing
    (OCI_INDEX, {"manifests": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "platform": {"os": "linux",
                                                                                                  "architecture": "amd64"}},
                               {"mediaType": OCI_MANIFEST, "platform": "linux/amd64"}, "junk"]}, ("linux/amd64",), ("linux/amd64",)),
])
def test_missing_platforms(media_type, body, planned, missing):
    assert missing_platforms(media_type, body, planned) == missing


def test_platform_of_and_is_index():
    assert platform_of(_entry("linux", "arm", "v7")) == "linux/arm/v7"
    assert platform_of({"digest": "sha256:x"}) == ""
    assert is_index(OCI_INDEX, {}) and is_index("", {"manifests": []})
    assert not is_index(OCI_MANIFEST, {"manifests": []}) and not is_index("", ONE)
