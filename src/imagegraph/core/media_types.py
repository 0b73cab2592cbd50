"""The media types imagegraph reads and writes: OCI's and Docker's for images, and its own for the records it keeps in a registry.

Each is written once, here, so what a request accepts and what a reader
recognises cannot drift apart. Docker's schema 2 types are the older names of
the OCI ones; a registry may answer with either, so readers take both.
"""

from __future__ import annotations

__all__ = [
    "ANY_MANIFEST",
    "DOCKER_CONFIG",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "GITHUB_REST",
    "IMAGE_CONFIGS",
    "IMAGE_MANIFESTS",
    "INDEXES",
    "LEASE",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "RETENTION",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
#: The empty descriptor's type (the blob ``{}``): the config of an artifact that needs none.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

#: A multi-platform image: a list of manifests.
INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
#: One platform's image.
IMAGE_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
#: An image's config blob (its labels, its creation time).
IMAGE_CONFIGS = (OCI_CONFIG, DOCKER_CONFIG)
#: What a manifest request accepts (its ``Accept`` header): whatever a tag may name.
ANY_MANIFEST = INDEXES + IMAGE_MANIFESTS

#: The artifact type of a lease claim (:mod:`imagegraph.core.lease`).
LEASE = "application/vnd.imagegraph.lease.v1"
#: The artifact type of the retention record cleanup keeps in each repository.
RETENTION = "application/vnd.imagegraph.retention.v1+json"
#: What GitHub's REST API answers in (its documented ``Accept``): the packages API of ghcr.io.
GITHUB_REST = "application/vnd.github+json"
