"""Lease claims (pure) and the lease's rules through a registry in memory: what a claim says, when it counts, when the holder stops."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from imagegraph.adapters.lease import Lease
from imagegraph.core.errors import RegistryError
from imagegraph.core.lease import (
    EMPTY,
    EMPTY_DIGEST,
    Claim,
    LeaseBusy,
    LeaseError,
    LeaseLost,
    LeaseTimes,
    claim_manifest,
    lease_tag,
    read_claim,
)
from imagegraph.core.media_types import OCI_MANIFEST

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
TIMES = LeaseTimes(ttl=120.0, settle=1.0, late=0.5, renew=20.0, margin=40.0, wait=5.0, poll=1.0)


def test_a_claim_reads_back_as_written():
    claim = Claim("runner-3 pid 12 0a1b2c3d", "invoke cleanup --yes", "ab" * 16, NOW, NOW + timedelta(seconds=120))
    assert read_claim(json.loads(claim_manifest(claim))) == claim
    assert not claim.expired(NOW + timedelta(seconds=119)) and claim.expired(NOW + timedelta(seconds=120))


@pytest.mark.parametrize("body", [{}, [], {"artifactType": "application/vnd.other", "annotations": {}},
                                  {"artifactType": "application/vnd.imagegraph.lease.v1", "annotations": {"imagegraph.lease.holder": "x"}}])
def test_anything_else_under_a_lease_tag_is_no_claim(body):
    assert read_claim(body) is None


def test_lease_names_are_tags_and_the_times_keep_their_safety_rule():
    assert lease_tag("build-0123abcd") == "imagegraph-lease-build-0123abcd"
    for bad in ("Tags", "-x", "a b", "x" * 92):
        with pytest.raises(LeaseError):
            lease_tag(bad)
    with pytest.raises(ValueError, match="late < settle"):
        LeaseTimes(settle=1.0, late=1.0)
    with pytest.raises(ValueError, match="renew < ttl - margin"):
        LeaseTimes(ttl=60.0, margin=40.0, renew=20.0)


class Memory:
    """A registry's manifests and tags in memory; its clock is the test's; deletes may be refused (405) as some registries do."""

    def __init__(self, clock: Clock, *, deletes: bool = True) -> None:
        self.clock = clock
        self.deletes = deletes
        self.tags: dict[tuple[str, str], str] = {}
        self.bodies: dict[str, dict] = {}
        self.writes: list[str] = []
        self.listed = 0

    def manifest_digest_at(self, name: str, tag: str):
        return self.tags.get((name, tag)), NOW + timedelta(seconds=self.clock.now)

    def inspect(self, name: str, reference: str):
        return "application/vnd.oci.image.manifest.v1+json", reference, self.bodies[reference]

    def push_blob(self, name: str, data: bytes) -> str:
        assert data == EMPTY
        return EMPTY_DIGEST

    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.bodies[digest] = json.loads(data)
        self.tags[name, reference] = digest
        self.writes.append(self.bodies[digest]["annotations"]["imagegraph.lease.purpose"])
        return digest

    def delete_manifest(self, name: str, digest: str) -> bool:
        if not self.deletes:
            raise RegistryError("registry test does not allow deletes")
        for key in [key for key, named in self.tags.items() if named == digest]:
            del self.tags[key]
        return self.bodies.pop(digest, None) is not None

    def lists_tag(self, name: str, tag: str) -> bool:
        self.listed += 1
        return (name, tag) in self.tags

    def claim(self, name: str, tag: str) -> Claim | None:
        digest = self.tags.get((name, tag))
        return read_claim(self.bodies[digest]) if digest else None


class Clock:
    """Monotonic seconds that move only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def lease(registry: Memory, clock: Clock, purpose: str, **kw) -> Lease:
    return Lease(registry, ["test/app", "test/base"], "tags", purpose, times=TIMES, clock=clock, sleep=clock.sleep,
                 holder=f"holder of {purpose}", **kw)


def test_a_lease_is_taken_after_the_settle_and_let_go_by_deleting_its_own_claims():
    clock = Clock()
    registry = Memory(clock)
    held = lease(registry, clock, "first").acquire()
    assert clock.now == TIMES.settle
    assert registry.claim("test/app", "imagegraph-lease-tags").expires == NOW + timedelta(seconds=TIMES.ttl)
    held.check()
    held.release()
    assert registry.tags == {}


def test_a_holder_that_could_not_renew_stops_before_its_claim_expires():
    clock = Clock()
    registry = Memory(clock)
    held = lease(registry, clock, "cleanup").acquire()
    clock.now += TIMES.ttl - TIMES.margin + 0.1  # no renewal got through: the claim still stands, but too close to its end
    with pytest.raises(LeaseLost, match=r"lost the registry lease imagegraph-lease-tags \(it could not be renewed in time\); "
                                        r"cleanup stopped before its next change: run it again"):
        held.check()
    held.release()


def test_a_live_claim_is_waited_for_and_an_expired_one_is_taken_over():
    clock = Clock()
    registry = Memory(clock)
    lease(registry, clock, "a holder that died").acquire()  # never released, never renewed
    notes: list[str] = []
    with pytest.raises(LeaseBusy, match=r"test/app's lease imagegraph-lease-tags is held by a holder that died \(holder holder of a "
                                        r"holder that died\) until 05:08:07 UTC; waited 5s"):
        lease(registry, clock, "impatient", say=notes.append).acquire()
    assert notes == ["waiting for the registry lease imagegraph-lease-tags: test/app's is held by a holder that died "
                     "(holder holder of a holder that died) until 05:08:07 UTC"]
    clock.now = TIMES.ttl + 1  # the registry's clock is past the dead holder's claim
    lease(registry, clock, "next").acquire()
    assert registry.claim("test/base", "imagegraph-lease-tags").purpose == "next"


def test_where_deletes_are_refused_a_lease_is_let_go_by_an_expired_claim():
    clock = Clock()
    registry = Memory(clock, deletes=False)
    lease(registry, clock, "release").acquire().release()
    claim = registry.claim("test/app", "imagegraph-lease-tags")
    assert claim is not None and claim.expired(NOW + timedelta(seconds=clock.now))
    started = clock.now
    lease(registry, clock, "cleanup").acquire()  # no wait: the let-go claim blocks no one
    assert clock.now - started == TIMES.settle


def test_a_signal_while_taking_the_lease_leaves_no_claim_behind():
    clock = Clock()
    registry = Memory(clock)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt  # Ctrl-C during the settle, after both claims were written

    taking = Lease(registry, ["test/app", "test/base"], "tags", "release", times=TIMES, clock=clock, sleep=interrupted)
    with pytest.raises(KeyboardInterrupt):
        taking.acquire()
    assert registry.writes == ["release", "release"] and registry.tags == {}


class HalfDeleting(Memory):
    """A distribution registry whose DELETE of a tagged manifest meets another write to the repository: the manifest goes, its
    tag stays listed naming nothing (HEAD answers 404), ``halfway`` times; ``slow`` seconds pass on the test's clock per HEAD."""

    def __init__(self, clock: Clock, halfway: int = 1, slow: float = 0.0) -> None:
        super().__init__(clock)
        self.halfway = halfway
        self.slow = slow

    def manifest_digest_at(self, name: str, tag: str):
        self.clock.now += self.slow
        digest, now = super().manifest_digest_at(name, tag)
        return (digest if digest in self.bodies else None), now

    def delete_manifest(self, name: str, digest: str) -> bool:
        if self.halfway and digest in self.tags.values():
            self.halfway -= 1
            return self.bodies.pop(digest, None) is not None
        return super().delete_manifest(name, digest)


@pytest.mark.parametrize("halfway", [1, 2])
def test_a_lease_tag_a_registry_left_listed_naming_nothing_is_swept_when_let_go(halfway):
    clock = Clock()
    registry = HalfDeleting(clock, halfway=halfway)
    lease(registry, clock, "cleanup").acquire().release()
    assert registry.tags == {}  # no lease tag left in either repository's list
    assert registry.bodies == {} and registry.writes.count("cleanup") == 2 + halfway  # a claim each, an ended one per sweep
    started = clock.now
    lease(registry, clock, "next").acquire()
    assert clock.now - started == TIMES.settle


def test_a_sweep_leaves_another_holders_claim_and_writes_nothing_after_a_slow_look():
    clock = Clock()
    registry = HalfDeleting(clock, halfway=1)
    first = lease(registry, clock, "first").acquire()
    registry.put_manifest("test/base", "imagegraph-lease-tags", claim_manifest(  # another holder took test/base's meanwhile
        Claim("second", "second", "cd" * 16, NOW, NOW + timedelta(seconds=TIMES.ttl))), OCI_MANIFEST)
    first.release()
    assert ("test/app", "imagegraph-lease-tags") not in registry.tags
    assert registry.claim("test/base", "imagegraph-lease-tags").holder == "second"
    slow = HalfDeleting(clock, halfway=1)
    held = lease(slow, clock, "cleanup").acquire()
    slow.slow = TIMES.late + 0.1  # each look now takes longer than a prompt write may follow it
    held.release()
    assert ("test/app", "imagegraph-lease-tags") in slow.tags and slow.writes == ["cleanup", "cleanup"]
