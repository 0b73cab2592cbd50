"""Registry leases on the real registry: one holder at a time, a dead holder's lease expires, a slow or overwritten claim steps back."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from imagegraph.adapters.lease import Lease
from imagegraph.adapters.registry import Registry
from imagegraph.core.lease import Claim, LeaseLost, LeaseTimes, claim_manifest
from tests.integration.faultproxy import Stall

pytestmark = pytest.mark.integration

#: Short enough for a test, with the same proportions as the defaults (renew well before the holder stops acting).
QUICK = LeaseTimes(ttl=6.0, renew=1.0, margin=3.0, settle=1.0, late=0.5, poll=0.2, wait=60.0)


@pytest.fixture
def repository(registry) -> str:
    return f"imagegraph-test/lease-{uuid.uuid4().hex[:8]}"


def test_two_holders_at_once_one_waits_for_the_other(registry, repository):
    spans: dict[str, tuple[float, float]] = {}
    notes: dict[str, list[str]] = {"first": [], "second": []}

    def work(who: str, start_after: float) -> None:
        time.sleep(start_after)
        lease = Lease(Registry(registry), [repository], "tags", f"test {who}", times=QUICK, say=notes[who].append).acquire()
        began = time.monotonic()
        time.sleep(2.0)
        lease.check()  # still ours at the end of the work
        spans[who] = (began, time.monotonic())
        lease.release()

    threads = [threading.Thread(target=work, args=("first", 0.0)), threading.Thread(target=work, args=("second", 0.3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert set(spans) == {"first", "second"}
    earlier, later = sorted(spans.values())
    assert earlier[1] <= later[0], "both held the lease at once"
    assert any(line.startswith(f"waiting for the registry lease imagegraph-lease-tags: {repository}'s is held by test ")
               for line in notes["first"] + notes["second"]), notes
    assert Registry(registry).manifest_digest(repository, "imagegraph-lease-tags") is None  # released: no tag left behind


class Gate(Registry):
    """The registry, with every lease claim's PUT held until both contenders reach it: both read the lease free first."""

    def __init__(self, address: str, barrier: threading.Barrier) -> None:
        super().__init__(address)
        self.barrier = barrier
        self.gated = False

    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str:
        if not self.gated:
            self.gated = True
            self.barrier.wait(20)
        return super().put_manifest(name, reference, data, media_type)


def test_two_claims_written_at_once_the_last_writer_holds_and_the_other_backs_off(registry, repository):
    barrier = threading.Barrier(2)
    held: dict[str, tuple[float, float]] = {}

    def contend(who: str) -> None:
        lease = Lease(Gate(registry, barrier), [repository], "tags", f"contender {who}", times=QUICK).acquire()
        began = time.monotonic()
        time.sleep(1.5)
        lease.check()
        held[who] = (began, time.monotonic())
        lease.release()

    threads = [threading.Thread(target=contend, args=(who,)) for who in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert set(held) == {"a", "b"}
    earlier, later = sorted(held.values())
    assert earlier[1] <= later[0], "both trusted their claim"


def test_the_lease_of_a_holder_that_died_expires(registry, repository):
    script = (
        "import os, signal\n"
        "from imagegraph.adapters.lease import Lease\n"
        "from imagegraph.adapters.registry import Registry\n"
        "from imagegraph.core.lease import LeaseTimes\n"
        f"Lease(Registry({registry!r}), [{repository!r}], 'tags', 'a holder that dies',\n"
        "      times=LeaseTimes(ttl=6.0, renew=1.0, margin=3.0)).acquire()\n"
        "print('held', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    dead = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert dead.returncode == -9 and dead.stdout == "held\n", dead.stderr
    died = time.monotonic()
    notes: list[str] = []
    lease = Lease(Registry(registry), [repository], "tags", "the next one", times=QUICK, say=notes.append).acquire()
    waited = time.monotonic() - died
    try:
        assert notes[0].startswith(f"waiting for the registry lease imagegraph-lease-tags: {repository}'s is held by a holder that dies "
                                   f"(holder "), notes
        assert notes[-1].startswith("took the registry lease imagegraph-lease-tags after ")
        # it waited for the claim to expire (6 s from when it was taken, by the registry's clock, to the second), no longer than needed
        assert 2.0 < waited < 6.0 + 1.0 + 2 * QUICK.settle + 2.0, waited
        lease.check()
    finally:
        lease.release()


def test_a_claim_written_too_slowly_is_withdrawn_and_tried_again(registry, repository):
    from tests.integration.faultproxy import start_fault_proxy

    with start_fault_proxy(registry) as proxy:
        proxy.inject(Stall(QUICK.late + 0.5), "PUT", r"/manifests/imagegraph-lease-tags$", times=1)
        lease = Lease(Registry(proxy.address), [repository], "tags", "slow writer", times=QUICK).acquire()
        try:
            puts = proxy.seen("PUT", r"/manifests/imagegraph-lease-tags$")
            withdrawn = proxy.seen("DELETE", rf"/{repository}/manifests/sha256:")
            assert len(puts) == 2 and puts[0].status == 201, puts
            # the slow claim was deleted by its digest (so only while the tag still named it), before the second try
            assert len(withdrawn) == 1 and puts[0].at < withdrawn[0].at < puts[1].at
            lease.check()
        finally:
            lease.release()


def test_a_holder_whose_claim_was_overwritten_stops_at_its_next_check(registry, repository):
    lease = Lease(Registry(registry), [repository], "tags", "invoke cleanup --yes", times=QUICK).acquire()
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        other = Claim("elsewhere pid 1 0000", "invoke release v9.9.9", "f" * 32, now, now.replace(year=now.year + 1))
        Registry(registry).put_manifest(repository, lease.tag, claim_manifest(other), "application/vnd.oci.image.manifest.v1+json")
        with pytest.raises(LeaseLost) as lost:
            lease.check()
        assert str(lost.value) == (f"lost the registry lease imagegraph-lease-tags ({repository}'s is held by invoke release v9.9.9 "
                                   f"(holder elsewhere pid 1 0000) until {other.expires.strftime('%H:%M:%S')} UTC now); "
                                   f"invoke cleanup --yes stopped before its next change: run it again")
    finally:
        lease.release()
    # releasing deleted only its own claim: the other holder's is still there
    assert Registry(registry).manifest_digest(repository, lease.tag) is not None
