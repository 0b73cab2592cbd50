"""Git-aware expiry: images of closed pull requests and of deleted branches, and when each may go. Pure.

With ``retention: {pull_requests: <age>}`` in images.yaml, retention asks git
and the forge about the images a branch or a request made, besides counting
them. An image (a tagged digest; a platform manifest follows its index) is
judged by its tags less its fingerprint tags, which every image has:

- **only** ``pr-<N>``: the images of pull or merge requests. One of them
  open: kept, whatever the keep count. All closed or merged: kept until
  ``age`` after the last one closed, then expired. A request the forge was
  not asked about, or did not answer (no token, no API, not found), counts
  from when the image was made instead: expired ``age`` after that.
- **only** ``sha-<7>``: a branch's images (a branch other than the default
  one gets ``sha-<7>`` only; see :mod:`imagegraph.core.tags`). A remote branch
  still contains one of the commits: nothing changes here, the keep count
  rules. None does (the branch was deleted, e.g. after a squash merge):
  expired ``age`` after the image was made, since no remote says when a branch
  went. A commit git could not place (the clone lacks it, the remote could
  not be listed) counts the same way.
- anything else (a version, ``edge``, a ``pr-<N>`` beside a ``sha-<7>``): no
  rule here.

An expired image still stays when a kept image needs it (the base a kept
child was built on): :func:`imagegraph.core.retention.plan_retention` keeps
what kept images need, and the grace period applies to an expired digest
as to every doomed one. What this module decides goes into that plan as
``expired`` and ``held`` (kept outside the keep count); without the setting
nothing is asked and nothing changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .fingerprint import TAG_LENGTH
from .retention import Manifest

__all__ = [
    "Expiry",
    "ExpiryFacts",
    "PullRequestState",
    "commit_abbreviations",
    "judge_expiry",
    "moment",
    "pull_request_numbers",
    "span",
]

_FINGERPRINT = re.compile(rf"[0-9a-f]{{{TAG_LENGTH}}}")
_PULL_REQUEST = re.compile(r"pr-([1-9][0-9]{0,9})")
_COMMIT = re.compile(r"sha-([0-9a-f]{7})")


@dataclass(frozen=True)
class PullRequestState:
    """What the forge says of one pull or merge request."""

    open: bool
    #: When it was closed or merged; None while open, or when the forge did not say.
    closed_at: datetime | None = None
    merged: bool = False


@dataclass(frozen=True)
class ExpiryFacts:
    """What git and the forge said, for :func:`judge_expiry`."""

    #: retention: pull_requests: how long after the close (or, failing that, the image's creation) an image expires.
    age: timedelta
    #: request number -> its state, for each the forge answered; a number missing here counts from the image's creation.
    pull_requests: Mapping[int, PullRequestState] = field(default_factory=dict)
    #: sha-<7> abbreviation -> whether a remote branch contains its commit (True) or none does (False); missing: unknown.
    commits: Mapping[str, bool] = field(default_factory=dict)
    #: One line for each thing that could not be asked (said by whoever asked).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expiry:
    """(repository, digest) -> why, for the retention plan."""

    #: Images that go whatever the keep count says (unless a kept image needs them).
    expired: Mapping[tuple[str, str], str] = field(default_factory=dict)
    #: Images kept outside the keep count: an open request's, a closed one's until its age has passed.
    held: Mapping[tuple[str, str], str] = field(default_factory=dict)


def pull_request_numbers(manifests: Iterable[Manifest]) -> frozenset[int]:
    """The requests worth asking the forge about: those of images tagged only ``pr-<N>``."""
    return frozenset(n for m in _images(manifests) if (kind := _kind(m.tags)) and kind[0] == "pr" for n in kind[1])


def commit_abbreviations(manifests: Iterable[Manifest]) -> frozenset[str]:
    """The ``sha-<7>`` abbreviations worth asking git about: those of images tagged only ``sha-<7>``."""
    return frozenset(a for m in _images(manifests) if (kind := _kind(m.tags)) and kind[0] == "sha" for a in kind[1])


def judge_expiry(manifests: Iterable[Manifest], facts: ExpiryFacts, now: datetime) -> Expiry:
    """Which images expire, and which are held, by the module's rules."""
    expired: dict[tuple[str, str], str] = {}
    held: dict[tuple[str, str], str] = {}
    age = span(facts.age)
    for manifest in _images(manifests):
        kind = _kind(manifest.tags)
        if kind is None:
            continue
        key = (manifest.repository, manifest.digest)
        made = moment(manifest.created)
        if kind[0] == "pr":
            states = {n: facts.pull_requests.get(n) for n in sorted(kind[1])}
            still_open = [n for n, state in states.items() if state is not None and state.open]
            if still_open:
                held[key] = f"pull request {_numbers(still_open)} {'is' if len(still_open) == 1 else 'are'} open"
                continue
            ends = [_request_end(n, state, made, facts.age) for n, state in states.items()]
            known_ends = [found for found in ends if found is not None]
            if len(known_ends) < len(ends):
                continue  # neither a close time nor a creation time to count from: the keep count rules
            end, what = max(known_ends)
        else:
            abbreviations = sorted(kind[1])
            placed = [facts.commits.get(a) for a in abbreviations]
            if any(on_branch is True for on_branch in placed) or made is None:
                continue  # a remote branch still has it (or nothing to count from): the keep count rules
            commits = ", ".join(abbreviations)
            if all(on_branch is False for on_branch in placed):
                whose = f"no remote branch contains commit {commits} any more (branch deleted)"
            else:
                whose = f"commit {commits} not placed on a remote branch by this clone (counted by age)"
            end, what = made + facts.age, f"{whose}; image made {_day(made)} (no deletion time known)"
        if now >= end:
            expired[key] = f"{what}, {age} or more ago (retention: pull_requests)"
        else:
            held[key] = f"{what}; expires {_day(end)} (retention: pull_requests {age})"
    return Expiry(expired, held)


def _request_end(number: int, state: PullRequestState | None, made: datetime | None, age: timedelta) -> tuple[datetime, str] | None:
    """When an image of a closed request (or one the forge said nothing of) expires, and why in words."""
    if state is not None and state.closed_at is not None:
        closed = state.closed_at if state.closed_at.tzinfo else state.closed_at.replace(tzinfo=UTC)
        return closed + age, f"pull request #{number} {'merged' if state.merged else 'closed'} {_day(closed)}"
    if made is None:
        return None
    said = "closed, no close time given" if state is not None else "not asked (counted by age)"
    return made + age, f"pull request #{number} {said}; image made {_day(made)}"


def _images(manifests: Iterable[Manifest]) -> list[Manifest]:
    """The tagged images, less the platform manifests an index of theirs lists (those follow their index)."""
    everything = list(manifests)
    listed = {(m.repository, child) for m in everything for child in m.children}
    return [m for m in everything if m.tags and (m.repository, m.digest) not in listed]


def _kind(tags: Iterable[str]) -> tuple[str, frozenset] | None:
    """("pr", {numbers}) or ("sha", {abbreviations}) when the tags other than fingerprints are all of one kind; else None."""
    rest = [tag for tag in tags if not _FINGERPRINT.fullmatch(tag)]
    if not rest:
        return None
    requests = [_PULL_REQUEST.fullmatch(tag) for tag in rest]
    if all(requests):
        return "pr", frozenset(int(match.group(1)) for match in requests if match)
    commits = [_COMMIT.fullmatch(tag) for tag in rest]
    if all(commits):
        return "sha", frozenset(match.group(1) for match in commits if match)
    return None


def moment(text: str) -> datetime | None:
    """An ISO 8601 time (an image's creation, a forge's ``closed_at``) in UTC; None when it is none."""
    try:
        when = datetime.fromisoformat(text.strip()) if text else None
    except ValueError:
        return None
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def span(delta: timedelta) -> str:
    """``7d``, ``36h``, ``90m``, ``45s``: a duration as images.yaml writes it."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _day(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _numbers(numbers: Iterable[int]) -> str:
    return ", ".join(f"#{n}" for n in numbers)
