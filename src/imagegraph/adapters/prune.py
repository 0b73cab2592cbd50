"""Apply a retention plan to a live registry without deleting what was tagged after cleanup looked.

Others write to the registry while cleanup runs: a build tags its images, a
release tags a digest cleanup found doomed. The registry has no conditional
delete, so four guards stand around each DELETE:

- *A grace period.* A digest is deleted only when an earlier cleanup run
  already found it doomed at least ``grace`` ago; the first run that dooms it
  only records it. Whatever is still at work on a digest (a pipeline between
  its build and its release) has that long to tag it, and a tagged digest is
  no longer doomed, which takes it off the record.
- *A second look right before the deletes.* The tags are read again (one
  list per repository, one HEAD per tag; manifests and configs are cached by
  digest, which never changes), and again before a delete whenever the last
  look is :data:`SECOND_LOOK_AGE` old (a look per delete would cost a read of
  every tag per delete: 1,500 reads for 90 deletes of a 100-version
  repository), and the plan is made again, with every digest
  that gained a tag since the first look kept, with what it needs (the
  platform manifests of an index, the base an image was built on). A digest
  that the new plan keeps is spared and said.
- *A check after.* Every tag kept at the look, and every one the last look
  saw tagged afresh, must still resolve, and so must the platform manifests
  of kept indexes; otherwise cleanup fails, naming the first one.
- *A read-back of what went.* Every tag of every repository it deleted from
  is read again; a tag that names a deleted digest (written while the DELETE
  ran: the registry removes the tags a digest has when it gets to them) fails
  cleanup, naming the tag.

Those narrow the window; the lease closes it for whoever keeps to it:
the caller holds the registry lease ``tags`` (:mod:`imagegraph.adapters.lease`)
around the whole run, as releases and a build's tag moves do, and ``guard``
checks it right before each DELETE.

The doomed record lives in the registry itself, one small OCI artifact per
repository under the tag :data:`~imagegraph.core.retention.RETENTION_TAG`
(protected from retention): CI runners share no disk, but every run that may
clean up reaches the registry, and the record travels with the images it is
about. It also keeps the tags of what cleanup deleted, and when, so that a
release that finds its image gone can say who took it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ..core.errors import RegistryError
from ..core.expiry import Expiry
from ..core.lease import is_lease_tag
from ..core.media_types import OCI_EMPTY, OCI_MANIFEST, RETENTION
from ..core.registry_api import ApiChoice
from ..core.retention import RETENTION_TAG, Manifest, RetentionPolicy, Verdict, deletion_order, note_doomed, plan_retention, ripe
from ..core.values import image_name_of
from .inventory import read_inventory
from .registry_apis import DeletionApi, DistributionApi

__all__ = ["RETENTION_TYPE", "Deletion", "Pruning", "prune", "read_deleted", "read_doomed", "write_doomed"]

#: The media type of the doomed record (a JSON object: {"doomed": {digest: first time found doomed},
#: "deleted": {tag: {"digest": ..., "at": ...}}}).
RETENTION_TYPE = RETENTION
_EMPTY = b"{}"
#: How many deleted tags the record remembers per repository (the newest).
DELETED_KEPT = 1000
#: How old the second look may be before a delete (seconds): a tag written since then is caught by the read-back afterwards.
SECOND_LOOK_AGE = 1.0


@dataclass(frozen=True)
class Deletion:
    """A tag that went with the digest cleanup deleted, and when (UTC, ISO 8601)."""

    digest: str
    at: str


class PruneRegistry(Protocol):
    """What cleanup asks of a registry (:class:`imagegraph.adapters.registry.Registry` is one)."""

    def tags(self, name: str) -> tuple[str, ...]: ...
    def manifest_digest(self, name: str, tag: str) -> str | None: ...
    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]: ...
    def blob(self, name: str, digest: str) -> bytes: ...
    def delete_manifest(self, name: str, digest: str) -> bool: ...
    def push_blob(self, name: str, data: bytes) -> str: ...
    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str: ...


@dataclass(frozen=True)
class Pruning:
    """What a cleanup found and did."""

    #: The plan made at the first look.
    verdicts: tuple[Verdict, ...]
    deleted: tuple[Manifest, ...] = ()
    #: Doomed at the first look, kept at the second (tagged meanwhile): with why.
    spared: tuple[tuple[Manifest, str], ...] = ()
    #: Doomed, but first found doomed less than the grace period ago: with when it was first found.
    waiting: tuple[tuple[Manifest, str], ...] = ()
    #: Kept tags (``app:1.2.0``) or platform manifests that no longer resolve after the deletions.
    broken: tuple[str, ...] = ()
    #: Tags that name a digest this run deleted, read back after the deletions: ``app:1.2.0 (sha256:1234…)``.
    appeared: tuple[str, ...] = ()
    #: Doomed untagged manifests left to a registry that deletes them itself once nothing names them (GitLab).
    collected: tuple[Manifest, ...] = ()
    #: Repositories whose record of doomed digests could not be written (a dry run with read-only credentials), with why.
    unrecorded: tuple[tuple[str, str], ...] = ()
    #: Requests sent, per API (the registry API's reads and writes, a registry's own API's lists and deletes).
    requests: tuple[tuple[str, int], ...] = ()
    #: The API it deleted (or would delete) through, and why: what `invoke cleanup` says first.
    api: ApiChoice | None = None


def read_doomed(registry: PruneRegistry, repository: str) -> dict[str, str]:
    """digest -> when a cleanup first found it doomed, from the repository's record ({} when it has none)."""
    return _read_record(registry, repository)[0]


def read_deleted(registry: PruneRegistry, repository: str) -> dict[str, Deletion]:
    """tag -> the digest a cleanup deleted with it, and when, from the repository's record ({} when it has none)."""
    return _read_record(registry, repository)[1]


def _read_record(registry: PruneRegistry, repository: str) -> tuple[dict[str, str], dict[str, Deletion]]:
    if registry.manifest_digest(repository, RETENTION_TAG) is None:
        return {}, {}
    _, _, body = registry.inspect(repository, RETENTION_TAG)
    layers = [layer for layer in body.get("layers", ()) if layer.get("mediaType") == RETENTION_TYPE]
    if not layers:
        return {}, {}
    try:
        record = json.loads(registry.blob(repository, layers[0]["digest"]))
    except ValueError:
        return {}, {}  # garbled: the times start again, which only delays deletions
    if not isinstance(record, dict):
        return {}, {}
    doomed, deleted = record.get("doomed"), record.get("deleted")
    gone = {str(tag): Deletion(str(entry.get("digest", "")), str(entry.get("at", "")))
            for tag, entry in (deleted.items() if isinstance(deleted, dict) else ()) if isinstance(entry, dict)}
    return ({str(k): str(v) for k, v in doomed.items()} if isinstance(doomed, dict) else {}), gone


def write_doomed(registry: PruneRegistry, repository: str, doomed: dict[str, str], deleted: Mapping[str, Deletion] | None = None) -> None:
    """Replace the repository's record (an OCI artifact: empty config, one JSON layer); ``deleted`` keeps its newest entries."""
    newest = sorted((deleted or {}).items(), key=lambda item: (item[1].at, item[0]))[-DELETED_KEPT:]
    record = {"doomed": dict(sorted(doomed.items())),
              "deleted": {tag: {"digest": d.digest, "at": d.at} for tag, d in sorted(newest)}}
    data = json.dumps(record, indent=1).encode()
    layer = registry.push_blob(repository, data)
    config = registry.push_blob(repository, _EMPTY)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": RETENTION_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": config, "size": len(_EMPTY)},
        "layers": [{"mediaType": RETENTION_TYPE, "digest": layer, "size": len(data)}],
    }
    registry.put_manifest(repository, RETENTION_TAG, json.dumps(manifest).encode(), OCI_MANIFEST)


def prune(registry: PruneRegistry, repositories: Sequence[str], policy: RetentionPolicy, *, apply: bool, grace: timedelta,
          now: Callable[[], datetime], say: Callable[[str], None] = lambda line: None, guard: Callable[[], None] = lambda: None,
          api: DeletionApi | None = None, expire: Callable[[Sequence[Manifest]], Expiry] | None = None) -> Pruning:
    """The retention plan of ``repositories``; with ``apply``, the deletions it allows now (see the module's guards).

    ``api`` deletes (:mod:`imagegraph.adapters.registry_apis`; the
    distribution API's DELETE when None) and names the untagged manifests the
    registry holds beyond what its tags and indexes show. ``guard`` runs
    right before each delete and raises to stop the run (the lease it holds
    is lost).

    A dry run records the doomed digests too (the record is all it writes):
    the scheduled dry run starts the grace period, so the deletion started
    by hand later deletes what was doomed then and still is. A dry run whose
    credentials cannot write (a read-only token) records nothing, goes on,
    and says so once (:attr:`Pruning.unrecorded`).
    """
    deleter = api if api is not None else DistributionApi(registry)
    cache: dict = {}
    records = {repository: _read_record(registry, repository) for repository in repositories}
    # untagged manifests the registry's API lists, and those an earlier run found doomed: a run stopped between an index's
    # delete and its platform manifests' leaves them named by nothing else (a registry that lists tags only cannot show them)
    untagged = {repository: (*listed, *(d for d in records[repository][0] if d not in listed))
                for repository, listed in _untagged(deleter, repositories, apply, say).items()}
    looked = read_inventory(registry, repositories, cache=cache, untagged=untagged.__getitem__)
    expiry = expire(looked) if expire is not None else Expiry()  # images of closed pull requests, deleted branches
    verdicts = plan_retention(looked, policy, expired=expiry.expired, held=expiry.held)
    doomed = deletion_order(verdicts)
    # a registry that collects untagged manifests itself is left to it: cleanup deletes tags there
    collected = tuple(m for m in doomed if deleter.collects_untagged and not m.tags)
    doomed = tuple(m for m in doomed if m not in collected)
    # earlier retention records (a registry that keeps each pushed manifest, GitHub's, lists them): cleanup's own, which
    # nothing can need; they go without a grace period and stay off the record, or each record written would doom the last
    replaced = tuple(m for m in doomed if m.record)
    doomed = tuple(m for m in doomed if not m.record)
    first_seen: dict[str, dict[str, str]] = {}
    gone_before: dict[str, dict[str, Deletion]] = {}
    unrecorded: list[tuple[str, str]] = []
    for repository in repositories:
        before, gone_before[repository] = records[repository]
        first_seen[repository] = note_doomed(before, [m.digest for m in doomed if m.repository == repository], now())
        if first_seen[repository] == before:
            continue
        try:
            write_doomed(registry, repository, first_seen[repository], gone_before[repository])
        except RegistryError as err:
            if apply:
                raise
            unrecorded.append((repository, str(err)))  # a dry run may have read-only credentials: it starts no grace period then
    if not apply:
        _note_once(say, "the record of doomed digests was not written in", unrecorded,
                   "this dry run starts no grace period, the next run whose credentials may push does")
        return Pruning(verdicts, waiting=tuple((m, first_seen[m.repository][m.digest]) for m in doomed), collected=collected,
                       unrecorded=tuple(unrecorded))
    due = {(repository, digest) for repository, seen in first_seen.items() for digest in ripe(seen, now(), grace)}
    if replaced or any((m.repository, m.digest) in due for m in doomed):
        deleter.check_rights(repositories)  # a token that cannot delete is named before anything is deleted
    tags_at_look = {(m.repository, m.digest): frozenset(m.tags) for m in looked}
    deleted: list[Manifest] = []
    spared: list[tuple[Manifest, str]] = []
    waiting = [(m, first_seen[m.repository][m.digest]) for m in doomed if (m.repository, m.digest) not in due]
    fresh_tags: dict[tuple[str, str], frozenset[str]] = {}
    again: dict[tuple[str, str], Verdict] = {}
    looked_at: float | None = None
    for manifest in (m for m in doomed if (m.repository, m.digest) in due):
        key = (manifest.repository, manifest.digest)
        if looked_at is None or time.monotonic() - looked_at >= SECOND_LOOK_AGE:
            fresh = read_inventory(registry, repositories, cache=cache, untagged=untagged.__getitem__)
            looked_at = time.monotonic()
            fresh_tags = {(m.repository, m.digest): frozenset(m.tags) for m in fresh}
            pinned = {k: f"tagged after cleanup looked: {', '.join(sorted(tags - tags_at_look.get(k, frozenset())))}"
                      for k, tags in fresh_tags.items() if tags - tags_at_look.get(k, frozenset())}
            again = {(v.manifest.repository, v.manifest.digest): v
                     for v in plan_retention(fresh, policy, pinned, expired=expiry.expired, held=expiry.held)}
        if key in again and again[key].keep:
            spared.append((manifest, again[key].reason))
            say(f"spared {manifest.label()}: {again[key].reason}")
            continue
        guard()
        if deleter.delete(manifest.repository, manifest.digest, tuple(sorted(fresh_tags.get(key, frozenset(manifest.tags))))):
            deleted.append(manifest)
            stamp = now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for tag in fresh_tags.get(key, frozenset(manifest.tags)):
                gone_before[manifest.repository][tag] = Deletion(manifest.digest, stamp)
    for manifest in replaced:
        guard()
        if deleter.delete(manifest.repository, manifest.digest, ()):
            deleted.append(manifest)
    gone = {(m.repository, m.digest) for m in deleted} | {(m.repository, m.digest) for m, _ in spared}
    for repository, seen in first_seen.items():
        left = {digest: first for digest, first in seen.items() if (repository, digest) not in gone}
        if left != seen or any(m.repository == repository and m.tags for m in deleted):
            write_doomed(registry, repository, left, gone_before[repository])
    fresh_new = {(repository, tag) for (repository, digest), tags in fresh_tags.items()
                 for tag in tags - tags_at_look.get((repository, digest), frozenset())}
    return Pruning(verdicts, tuple(deleted), tuple(spared), tuple(waiting), _broken(registry, verdicts, fresh_new),
                   _appeared(registry, deleted), collected)


def _untagged(deleter: DeletionApi, repositories: Sequence[str], apply: bool, say: Callable[[str], None]) -> dict[str, tuple[str, ...]]:
    """The untagged manifests the registry's own API lists, per repository; a dry run whose credentials cannot list them
    goes on without, and says so once."""
    found: dict[str, tuple[str, ...]] = {}
    unlisted: list[tuple[str, str]] = []
    for repository in repositories:
        try:
            found[repository] = tuple(deleter.untagged(repository))
        except RegistryError as err:
            if apply:
                raise
            found[repository] = ()
            unlisted.append((repository, str(err)))
    _note_once(say, f"{deleter.name} did not list the untagged manifests of", unlisted,
               "this dry run shows only what the registry's tags and lists name")
    return found


def _note_once(say: Callable[[str], None], what: str, failures: Sequence[tuple[str, str]], consequence: str) -> None:
    """One note for what a dry run could not do in many repositories: the first with its reason, the others counted."""
    if not failures:
        return
    repository, why = failures[0]
    more = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
    say(f"note: {what} {repository}{more} ({why}); {consequence}")


def _appeared(registry: PruneRegistry, deleted: Sequence[Manifest]) -> tuple[str, ...]:
    """Tags that name a digest this run deleted, read back afterwards: every tag of every repository it deleted from.

    The registry removes a digest's tags one by one after the manifest: a tag
    written onto that digest meanwhile (a release, a build reusing the image)
    can outlive it, naming a manifest whose platform manifests or blobs may be
    gone next. Lease tags are skipped: they name no image.
    """
    found: list[str] = []
    for repository in sorted({m.repository for m in deleted}):
        digests = {m.digest for m in deleted if m.repository == repository}
        tags = [tag for tag in registry.tags(repository) if not is_lease_tag(tag)]
        with ThreadPoolExecutor(max_workers=min(8, len(tags) or 1), thread_name_prefix="read-back") as pool:
            now = dict(zip(tags, pool.map(registry.manifest_digest, [repository] * len(tags), tags), strict=True))
        name = image_name_of(repository)
        found.extend(f"{name}:{tag} ({digest[:19]}…)" for tag, digest in sorted(now.items()) if digest in digests)
    return tuple(found)


def _broken(registry: PruneRegistry, verdicts: Sequence[Verdict], fresh: set[tuple[str, str]]) -> tuple[str, ...]:
    """Kept tags and the platform manifests of kept indexes that no longer resolve, read from the registry after the deletions."""
    tags = {(v.manifest.repository, tag) for v in verdicts if v.keep for tag in v.manifest.tags} | fresh
    broken = [f"{image_name_of(repository)}:{tag}" for repository, tag in sorted(tags) if not _resolves(registry, repository, tag)]
    for verdict in verdicts:
        if verdict.keep:
            manifest = verdict.manifest
            broken.extend(f"{manifest.label()}'s platform manifest {child[:19]}" for child in manifest.children
                          if not _resolves(registry, manifest.repository, child))
    return tuple(broken)


def _resolves(registry: PruneRegistry, repository: str, reference: str) -> bool:
    return registry.manifest_digest(repository, reference) is not None
