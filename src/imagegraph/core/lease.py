"""Leases kept in the registry: who may change a repository's tags now. Pure: claims, their times and their encoding.

A registry has no lock and no conditional write, only tags that the last
writer wins. A lease is a tag (``imagegraph-lease-<name>``) naming a small
OCI artifact, the *claim*: who holds it (a random holder id), for what
(``invoke cleanup --yes``), a random nonce (so every claim is a manifest of
its own, with a digest of its own) and until when, in the registry's time.
:mod:`imagegraph.adapters.lease` takes one as Fischer's timed mutual
exclusion does: read it free, write a claim, wait longer than any
contender's read-to-write can take, read it back; the claim that is still
there holds it. This module decides what a claim says and when it counts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import ImagegraphError
from .media_types import LEASE, OCI_EMPTY, OCI_MANIFEST

__all__ = [
    "BUILD_TIMES",
    "LEASE_TAG_PREFIX",
    "LEASE_TYPE",
    "Claim",
    "LeaseBusy",
    "LeaseError",
    "LeaseLost",
    "LeaseTimes",
    "build_lease_name",
    "claim_manifest",
    "is_lease_tag",
    "lease_tag",
    "read_claim",
]

#: Every lease tag starts so; retention never lists, keeps or deletes them (they are no images).
LEASE_TAG_PREFIX = "imagegraph-lease-"
#: The artifact type of a claim.
LEASE_TYPE = LEASE
EMPTY_TYPE = OCI_EMPTY
#: The empty JSON object, the config and only layer of a claim (the OCI image spec's empty descriptor).
EMPTY = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,90}$")
_KEY = "imagegraph.lease."
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


class LeaseError(ImagegraphError):
    """A lease could not be taken or kept."""


class LeaseBusy(LeaseError):
    """Another holder kept the lease for longer than this run would wait."""


class LeaseLost(LeaseError):
    """This run's lease was taken over, or it could not be renewed in time: the work under it stops."""


def lease_tag(name: str) -> str:
    """The tag of the lease ``name`` (``tags``, ``build-<fingerprint>``): a tag as the distribution spec allows one."""
    if not _NAME.match(name):
        raise LeaseError(f"lease name {name!r} must be lowercase letters, digits, '.', '_' or '-', at most 91 characters")
    return LEASE_TAG_PREFIX + name


def build_lease_name(fingerprint_tag: str) -> str:
    """The lease one fingerprint is built under, kept in its image's repository beside the tag it builds."""
    return f"build-{fingerprint_tag}"


def is_lease_tag(tag: str) -> bool:
    return tag.startswith(LEASE_TAG_PREFIX)


@dataclass(frozen=True)
class LeaseTimes:
    """How long a claim lasts, how long a contender waits before it trusts its own, and how often the holder renews.

    Safety rests on ``late < settle``: a contender that read the lease free
    writes its claim within ``late`` seconds (measured from sending the read
    to the answer of its write; one that takes longer withdraws its claim and
    tries again), and reads it back ``settle`` seconds after, so a claim that
    survives the wait was not overwritten by anyone who had read the lease free
    before it was written.

    The holder renews every ``renew`` seconds and stops acting ``margin``
    seconds before the registry would count its claim expired (longer than one
    request with all its retries lasts), so that work started under the lease
    ends under it. A holder that died blocks others for ``ttl`` at most.
    """

    ttl: float = 120.0
    settle: float = 1.0
    late: float = 0.5
    renew: float = 20.0
    margin: float = 40.0
    #: How long to wait for another holder before giving up.
    wait: float = 900.0
    #: Seconds between looks while another holder has it.
    poll: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.late < self.settle:
            raise ValueError(f"{self}: a claim is trusted only when late < settle")
        if not 0 < self.renew < self.ttl - self.margin:
            raise ValueError(f"{self}: the holder must renew before it stops acting (renew < ttl - margin)")


#: A fingerprint's build lease: a run waits for another's build as long as that build lives (a CI job's longest, six hours),
#: since building it too would only push the same fingerprint twice; a holder that died lets go within ``ttl``. Its settle is
#: what every build run pays once, so it is kept just above ``late``, which is all safety asks: a contender that read the
#: lease free before our write landed had its own write answered within ``late`` of that read, before our read-back.
BUILD_TIMES = LeaseTimes(settle=0.6, wait=6 * 3600.0)


@dataclass(frozen=True)
class Claim:
    """What a lease tag names: its holder, what for, a nonce, and when it was taken and expires (the registry's time, UTC)."""

    holder: str
    purpose: str
    nonce: str
    acquired: datetime
    expires: datetime

    def expired(self, now: datetime) -> bool:
        """Whether the registry's ``now`` is past the claim (a holder that died, or one that stopped renewing)."""
        return now >= self.expires

    def describe(self) -> str:
        return f"{self.purpose} (holder {self.holder}) until {self.expires.strftime('%H:%M:%S')} UTC"

    def renewed(self, now: datetime, ttl: float, nonce: str) -> Claim:
        return Claim(self.holder, self.purpose, nonce, self.acquired, now + timedelta(seconds=ttl))


def claim_manifest(claim: Claim) -> bytes:
    """The claim as an OCI artifact manifest: the empty config and layer, the claim in its annotations."""
    empty = {"mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": len(EMPTY)}
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": LEASE_TYPE, "config": empty, "layers": [empty],
        "annotations": {
            f"{_KEY}holder": claim.holder, f"{_KEY}purpose": claim.purpose, f"{_KEY}nonce": claim.nonce,
            f"{_KEY}acquired": _stamp(claim.acquired), f"{_KEY}expires": _stamp(claim.expires),
        },
    }
    return json.dumps(manifest, sort_keys=True).encode()


def read_claim(body: object) -> Claim | None:
    """The claim a lease manifest carries; None when it is none (a garbled claim counts as expired: it blocks nobody)."""
    annotations = body.get("annotations") if isinstance(body, dict) else None
    if not isinstance(annotations, dict) or body.get("artifactType") != LEASE_TYPE:
        return None
    fields = {key: annotations.get(_KEY + key) for key in ("holder", "purpose", "nonce", "acquired", "expires")}
    if not all(isinstance(value, str) for value in fields.values()):
        return None
    acquired, expires = _when(fields["acquired"]), _when(fields["expires"])
    if acquired is None or expires is None:
        return None
    return Claim(str(fields["holder"]), str(fields["purpose"]), str(fields["nonce"]), acquired, expires)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_STAMP)


def _when(text: object) -> datetime | None:
    try:
        return datetime.strptime(str(text), _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
