"""Leases in the registry: one holder at a time for a named resource of some repositories, across runners that share nothing else.

Cleanup, a release and a build's tag moves each hold the lease ``tags`` of
the family's repositories while they change tags or delete manifests, so a
DELETE never meets a tag write to the same digest. The same lease, by
another name (``build-<fingerprint>``), can keep two runners from building
one fingerprint.

The distribution API has no conditional write: a tag is whatever was PUT
last. So a lease is taken as in Fischer's timed mutual exclusion:

1. *look*: read the lease tag (HEAD) and, if it names a claim, the claim
   (:mod:`imagegraph.core.lease`). A claim not yet expired by the
   registry's clock (its ``Date`` header, the one clock every runner reads
   alike) is waited for.
2. *claim*: PUT our claim (a fresh nonce, so a manifest and digest of its
   own) at once. If more than ``late`` seconds passed between sending the
   look and the answer to the PUT, the claim is withdrawn and the round
   tried again: only a prompt write is safe.
3. *settle*: wait ``settle`` seconds (longer than ``late``), then read the
   tag back. It names our digest: the lease is ours; anyone who read it
   free before our PUT has written by now, and the last writer wins.
   Otherwise we lost: our claim is withdrawn and we back off.

Withdrawing and releasing are a DELETE of our own claim's digest: the
registry removes a tag with the manifest it names, so that DELETE removes
the lease tag only while it still names our claim, never someone else's.
That DELETE is not one step on a distribution registry: it removes the
manifest first (the tag then reads absent, so a waiter may write its claim
at once) and the tag's directory after, and a write to the repository in
between can make it fail halfway, or leave the tag listed while naming
nothing. Such a tag blocks no one, but would stay for good: after letting
go, a lease tag still listed and naming nothing is swept (an ended claim
written over it promptly, as a claim is, then deleted).

The holder renews its claim in the background (a new claim, the old one
deleted) and checks, before each change it makes under the lease, that the
tag still names its claim and that the claim is well within its time; a
holder that died lets go when its claim expires.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ..core.errors import ImagegraphError, RegistryError, RegistryUnanswered
from ..core.lease import BUILD_TIMES, EMPTY, Claim, LeaseBusy, LeaseLost, LeaseTimes, build_lease_name, claim_manifest, lease_tag, read_claim
from ..core.media_types import OCI_MANIFEST
from ..core.values import ImageRef

__all__ = ["BuildLeases", "Lease", "LeaseRegistry", "hold_lease", "holder_id"]

#: The times a lease keeps unless told otherwise.
DEFAULT_TIMES = LeaseTimes()


class LeaseRegistry(Protocol):
    """What a lease asks of a registry (:class:`imagegraph.adapters.registry.Registry` is one)."""

    def manifest_digest_at(self, name: str, tag: str) -> tuple[str | None, datetime | None]: ...
    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]: ...
    def push_blob(self, name: str, data: bytes) -> str: ...
    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str: ...
    def delete_manifest(self, name: str, digest: str) -> bool: ...
    def lists_tag(self, name: str, tag: str) -> bool: ...


def holder_id() -> str:
    """Who holds a lease, in words a person can find (host and pid) and with a random part no other run shares."""
    host = "".join(c if c.isalnum() or c in ".-_" else "_" for c in socket.gethostname())[:64] or "host"
    return f"{host} pid {os.getpid()} {secrets.token_hex(4)}"


@dataclass(frozen=True)
class _Look:
    repository: str
    digest: str | None
    claim: Claim | None
    #: The registry's time of the answer.
    now: datetime
    #: When the look was sent (this process's monotonic clock).
    sent: float

    def busy(self, holder: str) -> bool:
        """Held by someone else: a claim of our own (one a registry refused to let us withdraw) blocks nobody."""
        return self.claim is not None and not self.claim.expired(self.now) and self.claim.holder != holder


class Lease:
    """The lease ``name`` over ``repositories``, taken by :meth:`acquire`, renewed until :meth:`release`; :meth:`check` before each change."""

    def __init__(self, registry: LeaseRegistry, repositories: Iterable[str], name: str, purpose: str, *,
                 times: LeaseTimes = DEFAULT_TIMES, say: Callable[[str], None] = lambda line: None, holder: str | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 wallclock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.registry = registry
        self.repositories = tuple(sorted(set(repositories)))  # one order for every run: no two wait on each other crosswise
        self.tag = lease_tag(name)
        self.purpose = purpose
        self.times = times
        self.holder = holder or holder_id()
        self._say, self._clock, self._sleep, self._wallclock = say, clock, sleep, wallclock
        self._lock = threading.Lock()
        self._mine: dict[str, tuple[str, Claim]] = {}
        self._valid_until = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._claims: dict[tuple[str, str], Claim | None] = {}
        self._empty: set[str] = set()

    # -- taking it ---------------------------------------------------------------------------------------------------

    def acquire(self) -> Lease:
        """Take the lease, waiting while another holder has it (up to ``times.wait`` seconds); raises :class:`LeaseBusy`."""
        taken = self.acquire_unless(None)
        assert taken is not None
        return taken

    def acquire_unless(self, unless: Callable[[Claim | None], bool] | None) -> Lease | None:
        """:meth:`acquire`, but each time another holder was found to have it, ``unless(its claim)``, asked after the wait before
        the next look, may end the wait: None, not taken.

        A fingerprint's build lease ends its wait so when the holder's push
        is there to reuse; given ``unless``, this lease says nothing itself.
        """
        started = self._clock()
        said = False
        while True:
            busy = self._round()
            if busy is None:
                if said and unless is None:
                    self._say(f"took the registry lease {self.tag} after {self._clock() - started:.1f}s")
                self._renewer = threading.Thread(target=self._renew_loop, name=f"lease {self.tag}", daemon=True)
                self._renewer.start()
                return self
            if self._clock() - started >= self.times.wait:
                raise LeaseBusy(f"{busy.repository}'s lease {self.tag} is held by {self._holding(busy)}; waited {self.times.wait:.0f}s "
                                f"for it: run again once that is done (a holder that died lets go when its claim expires)")
            if not said and busy.claim is not None and unless is None:
                self._say(f"waiting for the registry lease {self.tag}: {busy.repository}'s is held by {self._holding(busy)}")
                said = True
            self._sleep(self.times.poll * (0.5 + random.random()))
            # asked after the wait, right before the next look: a holder that finished meanwhile is seen done, not taken over
            if unless is not None and unless(busy.claim):
                return None

    def free(self) -> bool:
        """Whether no one else holds the lease now (no claim, or an expired one): one look at each repository's lease tag."""
        return not any(self._look(repository).busy(self.holder) for repository in self.repositories)

    def _holding(self, look: _Look) -> str:
        return look.claim.describe() if look.claim is not None else "another run"

    def _round(self) -> _Look | None:
        """One try at every repository's lease: None when all are ours now; else the look that stopped it (busy, or lost)."""
        written: dict[str, tuple[str, Claim]] = {}
        try:
            return self._try(written)
        except BaseException:
            self._withdraw(written)  # a signal or an error mid-round: no claim of ours is left to block others
            raise

    def _try(self, written: dict[str, tuple[str, Claim]]) -> _Look | None:
        late = False
        first_sent: float | None = None
        for repository in self.repositories:
            self._ensure_empty(repository)
            look = self._look(repository)
            first_sent = look.sent if first_sent is None else first_sent
            if look.busy(self.holder):
                self._withdraw(written)
                written.clear()
                return look
            claim = Claim(self.holder, self.purpose, secrets.token_hex(16), look.now, look.now + timedelta(seconds=self.times.ttl))
            digest = self.registry.put_manifest(repository, self.tag, claim_manifest(claim), OCI_MANIFEST)
            written[repository] = (digest, claim)
            late = late or self._clock() - look.sent > self.times.late
        self._sleep(self.times.settle)
        back = {repository: self.registry.manifest_digest_at(repository, self.tag)[0] for repository in self.repositories}
        lost = next((r for r in self.repositories if back[r] != written[r][0]), None)
        if late or lost is not None:
            # Ours is not safe (a slow write may have overwritten a claim someone already trusts) or not ours: step back.
            self._withdraw(written)
            written.clear()
            self._sleep(self.times.settle * (0.5 + random.random()))
            return self._look(lost) if lost is not None else _Look(self.repositories[0], None, None, self._now(None), self._clock())
        with self._lock:
            self._mine = written
            self._valid_until = (first_sent or self._clock()) + self.times.ttl - self.times.margin
        return None

    def _look(self, repository: str) -> _Look:
        sent = self._clock()
        digest, when = self.registry.manifest_digest_at(repository, self.tag)
        claim = None
        if digest is not None:
            if (repository, digest) not in self._claims:
                try:
                    self._claims[repository, digest] = read_claim(self.registry.inspect(repository, digest)[2])
                except RegistryError:
                    if self.registry.manifest_digest_at(repository, self.tag)[0] == digest:
                        raise
                    return self._look(repository)  # released between the two reads: look again
            claim = self._claims[repository, digest]
        return _Look(repository, digest, claim, self._now(when), sent)

    def _now(self, when: datetime | None) -> datetime:
        return when if when is not None else self._wallclock()  # a registry that sends no Date: this machine's clock

    def _ensure_empty(self, repository: str) -> None:
        if repository not in self._empty:
            self.registry.push_blob(repository, EMPTY)
            self._empty.add(repository)

    def _withdraw(self, written: dict[str, tuple[str, Claim]]) -> None:
        """Delete our claims by digest: each takes the lease tag with it only where the tag still names it.

        A registry that allows no deletes keeps them: where the tag still names
        ours, an expired claim is written over it instead (no one else writes
        while ours is valid), so that others need not wait for it to expire.
        """
        for repository, (digest, claim) in written.items():
            try:
                self.registry.delete_manifest(repository, digest)
            except RegistryError:
                with suppress(RegistryError):
                    now, when = self.registry.manifest_digest_at(repository, self.tag)
                    if now == digest:
                        ended = Claim(claim.holder, claim.purpose, secrets.token_hex(16), claim.acquired, self._now(when))
                        self.registry.put_manifest(repository, self.tag, claim_manifest(ended), OCI_MANIFEST)
                continue
            with suppress(RegistryError):
                self._sweep(repository)

    def _sweep(self, repository: str, tries: int = 3) -> None:
        """Remove the lease tag where the registry still lists it but it names nothing (a DELETE that met another write).

        The ended claim put there blocks no one; it is written only promptly
        after the look that found the tag naming nothing (within ``late``, as
        a claim is), so it never overwrites a claim someone already trusts:
        a contender that wrote meanwhile reads ours back and tries again.
        """
        for _ in range(tries):
            if not self.registry.lists_tag(repository, self.tag):
                return
            sent = self._clock()
            digest, when = self.registry.manifest_digest_at(repository, self.tag)
            if digest is not None or self._clock() - sent > self.times.late:
                return  # a claim stands there (another run's now): it is its holder's to let go; or too slow to write safely
            now = self._now(when)
            ended = self.registry.put_manifest(repository, self.tag, claim_manifest(
                Claim(self.holder, self.purpose, secrets.token_hex(16), now, now)), OCI_MANIFEST)
            self.registry.delete_manifest(repository, ended)

    # -- keeping it --------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless every lease tag still names our claim and the claims are well within their time."""
        with self._lock:
            if self._lost is None and self._clock() > self._valid_until:
                self._lost = "it could not be renewed in time"
            if self._lost is None:
                for repository, (digest, _) in self._mine.items():
                    now, _ = self.registry.manifest_digest_at(repository, self.tag)
                    if now != digest:
                        self._lost = self._taken(repository, now)
                        break
            if self._lost is not None:
                raise LeaseLost(f"lost the registry lease {self.tag} ({self._lost}); {self.purpose} stopped before its next change: run it again")

    def _taken(self, repository: str, digest: str | None) -> str:
        if digest is None:
            return f"{repository}'s lease tag is gone"
        look = self._look(repository)
        return f"{repository}'s is held by {self._holding(look)} now"

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.times.renew):
            try:
                self._renew()
            except RegistryError:
                continue  # tried again at the next turn; check() stops the work once the claim runs short
            if self._lost is not None:
                return

    def _renew(self) -> None:
        with self._lock:
            if self._lost is not None or self._stop.is_set():
                return
            first_sent: float | None = None
            for repository, (digest, claim) in list(self._mine.items()):
                sent = self._clock()
                first_sent = sent if first_sent is None else first_sent
                now, when = self.registry.manifest_digest_at(repository, self.tag)
                if now != digest:
                    self._lost = self._taken(repository, now)
                    return
                fresh = claim.renewed(self._now(when), self.times.ttl, secrets.token_hex(16))
                self._mine[repository] = (self.registry.put_manifest(repository, self.tag, claim_manifest(fresh), OCI_MANIFEST), fresh)
                with suppress(RegistryError):
                    self.registry.delete_manifest(repository, digest)  # no longer tagged: only clutter
            if first_sent is not None:
                self._valid_until = first_sent + self.times.ttl - self.times.margin

    def expires(self) -> datetime | None:
        """When the registry will count our claims expired (the earliest)."""
        with self._lock:
            return min((claim.expires for _, claim in self._mine.values()), default=None)

    # -- letting go --------------------------------------------------------------------------------------------------

    def release(self, *, expire: bool = False) -> None:
        """Stop renewing; delete our claims, or with ``expire`` leave them to expire (work of ours may still be under way in the registry)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self.times.ttl)
        with self._lock:
            mine, self._mine = self._mine, {}
        if expire:
            until = min((claim.expires for _, claim in mine.values()), default=None)
            if until is not None:
                self._say(f"the registry lease {self.tag} is left to expire at {until.strftime('%H:%M:%S')} UTC "
                          f"(a request of this run may still be under way in the registry)")
            return
        self._withdraw(mine)


@contextmanager
def hold_lease(registry: LeaseRegistry, repositories: Iterable[str], name: str, purpose: str, *, times: LeaseTimes = DEFAULT_TIMES,
               say: Callable[[str], None] = lambda line: None, expire_on_error: bool = False) -> Iterator[Lease]:
    """``with hold_lease(...) as lease:`` the lease is held (and renewed) in the block; ``lease.check()`` before each change.

    With ``expire_on_error``, a block that ends without an answer to a
    request (a timeout, a dropped connection) or by a signal leaves the
    claims to expire instead of deleting them: a DELETE the client gave up on
    may still be running in the registry, and no one else may start before
    it ends.
    """
    lease = Lease(registry, repositories, name, purpose, times=times, say=say).acquire()
    try:
        yield lease
    except BaseException as err:
        # An error the registry answered ended every request; no answer, or a signal, may have left one under way.
        unsure = isinstance(err, RegistryUnanswered) or not isinstance(err, ImagegraphError)
        lease.release(expire=expire_on_error and unsure)
        raise
    lease.release()


class BuildLeaseRegistry(LeaseRegistry, Protocol):
    def has(self, ref: ImageRef | str, platforms: Sequence[str] = ()) -> bool: ...


class BuildLeases:
    """One build per fingerprint across runners: a run builds an image it pushes only under the lease ``build-<fingerprint tag>``
    in the image's repository; another run that would build it too waits, then reuses what the holder pushed.

    Every lease of one run has one holder id, so the line a waiter prints
    names the run that builds. Nobody else building costs one claim written
    (and the settle's second), and a look before and after it whether the
    image came meanwhile; a reused image's plan takes no lease at all.
    """

    def __init__(self, registry: BuildLeaseRegistry, *, times: LeaseTimes = BUILD_TIMES, holder: str | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 wallclock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.registry = registry
        self.times = times
        self.holder = holder or holder_id()
        self._clock, self._sleep, self._wallclock = clock, sleep, wallclock
        #: The repositories that hold the claims' empty blob: pushed once a run, not once a lease.
        self._empty: set[str] = set()

    def take(self, image: ImageRef, platforms: Sequence[str], *, force: bool = False, wait: bool = True,
             say: Callable[[str], None] = lambda line: None, sleep: Callable[[float], None] | None = None) -> Lease | None:
        """The lease to build ``image`` (its fingerprint reference), renewed until released; None when there is nothing to build:
        another run pushed it whole meanwhile (reuse it), or, without ``wait``, another run holds it now.

        ``force`` (a rebuild that ignores what exists) still takes the lease, so that two forced builds never push one tag at
        once, but builds whatever it finds. ``sleep`` waits between looks (a run's stop ends it by raising).
        """
        lease = Lease(self.registry, [image.repository], build_lease_name(image.reference), f"invoke build {image.repository}",
                      times=self.times if wait else replace(self.times, wait=0.0), holder=self.holder, clock=self._clock,
                      sleep=sleep or self._sleep, wallclock=self._wallclock)
        lease._empty = self._empty

        def pushed() -> bool:
            # The holder lets go only once its pushes ended: on the docker driver buildx pushes the image a second time after
            # BuildKit did, writing each platform's manifest to the tag before the index, so a whole image is no sign alone.
            return not force and self.registry.has(image, platforms) and lease.free()

        if pushed():
            return None  # another run pushed it since this run's plan (while this run built its parent, say)
        seen: set[str] = set()

        def waiting(claim: Claim | None) -> bool:
            if pushed():
                return True
            if claim is not None and claim.holder not in seen:
                seen.add(claim.holder)
                say(f"waiting: run {claim.holder} builds this fingerprint (lease until {claim.expires.strftime('%H:%M:%S')} UTC)")
            return False

        try:
            if lease.acquire_unless(waiting) is None:
                return None
        except LeaseBusy:
            if wait:
                raise
            return None
        # Another run may have pushed it and let go between the look above and this lease: what it pushed is reused.
        try:
            if not force and self.registry.has(image, platforms):
                lease.release()
                return None
        except BaseException:
            lease.release()
            raise
        if seen:
            say(f"building it here: run {', '.join(sorted(seen))} let go of its lease without pushing it")
        return lease
