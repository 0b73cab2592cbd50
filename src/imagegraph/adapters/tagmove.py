"""Move a family's tags in the registry: the reads, the writes, the undo and the read-back of the tag policy's moves.

What moves, and why, is decided in :mod:`imagegraph.core.tags`; this carries
it out. A distribution registry has no transaction and no conditional write:
a tag is a PUT of a manifest, one repository at a time. So a family's tag
move is made safe by order and by undo:

1. *Look*: every source (the fingerprint tag each image's new tags copy) must
   exist, and every target's current digest is read. A failure here moves
   nothing.
2. *Decide*: a tag of a forward-only kind (``edge``, ``sha-<7>``, ``pr-<N>``)
   moves only forward, for the whole family at once: the witnesses (revision
   labels, sha tags) are read here and judged by
   :func:`imagegraph.core.tags.decide_branch_tag`.
3. *Move*: tags that exist are re-pointed first, tags that are new are
   created last (:func:`imagegraph.core.tags.order_moves`).
4. *Undo* on any failure: every tag that now names what this run wrote gets
   its previous digest back (the failed write too: a registry may answer 500
   after it wrote). A tag that someone else moved in the meantime is left to
   them (:func:`imagegraph.core.tags.rollback_plan`).

Whatever happens, the outcome is one line (:attr:`TagMoves.line`) saying in
which state the tags are and what to run next; :func:`verify_tags` reads the
tags back. The registry is a seam (:class:`TagRegistry`), and so is git
(:class:`History`): the logic runs in tests against fakes of both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from ..core.errors import ImagegraphError, RegistryError
from ..core.tags import Move, Outcome, Relation, TagMoves, TagRequest, Witness, decide_branch_tag, order_moves, rollback_plan
from .inventory import image_labels

__all__ = ["History", "TagRegistry", "move_family_tags", "relation", "verify_tags"]

REVISION_LABEL = "org.opencontainers.image.revision"


class TagRegistry(Protocol):
    """What tag moves ask of a registry (:class:`imagegraph.adapters.registry.Registry` is one)."""

    def manifest_digest(self, name: str, tag: str) -> str | None: ...
    def copy_tag(self, name: str, source: str, target: str) -> str: ...
    def tags(self, name: str) -> tuple[str, ...]: ...
    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]: ...
    def blob(self, name: str, digest: str) -> bytes: ...


class History(Protocol):
    """What tag moves ask of git (:class:`imagegraph.adapters.repo.Repository` is one)."""

    def resolve(self, rev: str) -> str | None: ...
    def is_ancestor(self, ancestor: str, descendant: str) -> bool: ...
    def commits(self) -> frozenset[str]: ...
    def fetch(self, remote: str, *refs: str, options: Sequence[str] = ()) -> str | None: ...


def relation(history: History, theirs: str, ours: str) -> Relation:
    """Where ``theirs`` stands against ``ours``, as this clone's history says."""
    if theirs == ours:
        return Relation.SAME
    if history.resolve(theirs) is None:
        return Relation.UNKNOWN
    if history.is_ancestor(theirs, ours):
        return Relation.OLDER
    if history.is_ancestor(ours, theirs):
        return Relation.NEWER
    return Relation.UNRELATED


def move_family_tags(registry: TagRegistry, requests: Sequence[TagRequest], *, rerun: str, commit: str | None = None,
                     history: History | None = None, say: Callable[[str], None] = lambda line: None,
                     guard: Callable[[], None] = lambda: None) -> TagMoves:
    """Give every image of ``requests`` its moving tags, all or nothing; ``rerun`` is the command that tries again.

    A tag of a forward-only kind moves only forward from ``commit`` (the
    commit this build is of), as ``history`` orders commits. ``guard``
    runs before each write and raises to stop the move (the registry lease
    it runs under is lost): what moved is put back.
    """
    try:
        sources, previous = _look(registry, requests)
    except ImagegraphError as err:
        return TagMoves(Outcome.NONE_MOVED, f"tags: none moved ({err}); the family's tags are as they were; rerun {rerun}")
    notes = [f"{r.image}:{r.source} names {sources[r.image][:19]}… now, not the {r.digest[:19]}… this run pushed "
             f"(another build of the same inputs pushed after it): the fingerprint tag is left as it is, the other tags follow it"
             for r in requests if r.digest and sources[r.image] != r.digest]
    wanted = [Move(r.image, r.repository, tag.tag, sources[r.image], previous[r.repository, tag.tag], tag.forward_only)
              for r in requests for tag in r.moving]
    held: dict[str, str] = {}
    if commit and history is not None:
        try:
            held = _held_branch_tags(registry, history, commit, [m for m in wanted if m.forward_only])
        except ImagegraphError as err:
            return TagMoves(Outcome.NONE_MOVED, f"tags: none moved ({err}); the family's tags are as they were; rerun {rerun}")
    notes.extend(held.values())
    for note in notes:
        say(note)
    standing = [m for m in wanted if m.tag not in held and m.previous == m.digest]
    moves = order_moves(m for m in wanted if m.tag not in held and m.previous != m.digest)
    stays = f"; {', '.join(sorted(held))} {'stays' if len(held) == 1 else 'stay'} where {'it is' if len(held) == 1 else 'they are'} (see above)" \
        if held else ""
    if not moves:
        line = f"tags: none moved{stays}" if held else "tags: nothing to move: every tag already names this family's images"
        return TagMoves(Outcome.UNCHANGED, line, tuple(standing), tuple(notes))
    written: list[Move] = []
    for move in moves:
        written.append(move)
        try:
            guard()
            registry.copy_tag(move.repository, move.digest, move.tag)
        except ImagegraphError as err:
            return _undo(registry, written, err, rerun, tuple(notes))
    return TagMoves(Outcome.MOVED, f"tags: moved {_describe(moves)}{stays}", (*standing, *moves), tuple(notes))


def _look(registry: TagRegistry, requests: Sequence[TagRequest]) -> tuple[dict[str, str], dict[tuple[str, str], str | None]]:
    """Every source's digest and every target tag's current one, read side by side (one round trip each, nothing written)."""
    wanted = [(r.repository, r.source) for r in requests] + [(r.repository, tag) for r in requests for tag in r.names]
    with ThreadPoolExecutor(max_workers=min(8, len(wanted) or 1), thread_name_prefix="tag-look") as pool:
        found = dict(zip(wanted, pool.map(lambda pair: registry.manifest_digest(*pair), wanted), strict=True))
    sources: dict[str, str] = {}
    for request in requests:
        digest = found[request.repository, request.source]
        if not digest:
            raise RegistryError(f"{request.image}:{request.source} is not in the registry (deleted since it was pushed?)")
        sources[request.image] = digest
    previous = {(r.repository, tag): found[r.repository, tag] for r in requests for tag in r.names}
    return sources, previous


def _held_branch_tags(registry: TagRegistry, history: History, commit: str, moves: Sequence[Move]) -> dict[str, str]:
    """tag -> why it stays, for the branch tags that must not move (decided for the whole family at once)."""
    changing = [m for m in moves if m.previous is not None and m.previous != m.digest]
    if not changing:
        return {}
    found = _witnesses(registry, history, commit, changing)
    if any(w.relation is Relation.UNKNOWN for ws in found.values() for w in ws) and history.fetch("origin") is None:
        found = _witnesses(registry, history, commit, changing)  # the history may now hold a newer run's commit
    held: dict[str, str] = {}
    for tag in dict.fromkeys(m.tag for m in changing):
        why = decide_branch_tag(tag, commit, {m.image: found[m] for m in changing if m.tag == tag})
        if why:
            held[tag] = why
    return held


def _witnesses(registry: TagRegistry, history: History, commit: str, changing: Sequence[Move]) -> dict[Move, list[Witness]]:
    """Per move, the commits its tag's current image was built at or tagged for (see :func:`decide_branch_tag`)."""
    known = {sha[:7]: sha for sha in history.commits()}
    sha_tags: dict[str, dict[str, str | None]] = {}
    found: dict[Move, list[Witness]] = {}
    for move in changing:
        assert move.previous is not None
        witnesses = []
        built = image_labels(registry, move.repository, move.previous).get(REVISION_LABEL, "")
        if built:
            witnesses.append(Witness(f"{move.label}'s image was built at", built, relation(history, built, commit)))
        if move.repository not in sha_tags:
            # only sha tags of commits this clone has can tell anything: those are read, no others
            names = [t for t in registry.tags(move.repository) if t.startswith("sha-") and t[4:] in known]
            sha_tags[move.repository] = {t: registry.manifest_digest(move.repository, t) for t in names}
        for tag, digest in sha_tags[move.repository].items():
            if digest == move.previous and tag != move.tag:
                witnesses.append(Witness(f"{move.label}'s image carries {move.image}:{tag}, tagged for", known[tag[4:]],
                                         relation(history, known[tag[4:]], commit)))
        found[move] = witnesses
    return found


def _undo(registry: TagRegistry, written: Sequence[Move], err: ImagegraphError, rerun: str, notes: tuple[str, ...]) -> TagMoves:
    """Put back what moved after ``err``; the line says what state the tags are in."""
    failed = written[-1]
    try:
        now = {(m.repository, m.tag): registry.manifest_digest(m.repository, m.tag) for m in written}
    except ImagegraphError as again:
        return _partial(written[:-1], failed, err, again, rerun, notes)
    restore, created = rollback_plan(written, now)
    if not restore and not created:
        return TagMoves(Outcome.NONE_MOVED, f"tags: none moved ({err}); the family's tags are as they were; rerun {rerun}", notes=notes)
    for position, move in enumerate(restore):
        try:
            registry.copy_tag(move.repository, move.previous or "", move.tag)
        except ImagegraphError as again:
            still = {*restore[position:], *created}
            return _partial([m for m in written if m in still], failed, err, again, rerun, notes)
    back = f"{', '.join(m.label for m in reversed(restore))} {'names its' if len(restore) == 1 else 'name their'} previous digest again"
    if created:
        left = ", ".join(m.label for m in reversed(created))
        kept = f"; {left} {'is' if len(created) == 1 else 'are'} new and {'stays' if len(created) == 1 else 'stay'} on this run's image " \
               f"(a registry removes a tag only with its image)"
        line = f"tags: rolled back ({err}): {back}{kept}; rerun {rerun} to move the whole family" if restore else \
               f"tags: rolled back ({err}){kept}; rerun {rerun} to move the whole family"
        return TagMoves(Outcome.ROLLED_BACK, line, tuple(created), notes)
    return TagMoves(Outcome.ROLLED_BACK, f"tags: rolled back ({err}): {back}; rerun {rerun} to move them", notes=notes)


def _partial(stuck: Sequence[Move], failed: Move, err: ImagegraphError, again: ImagegraphError, rerun: str, notes: tuple[str, ...]) -> TagMoves:
    moved = ", ".join(m.label for m in stuck)
    return TagMoves(Outcome.PARTIAL, f"tags: {moved} moved, {failed.label} not ({err}; putting them back failed too: {again}); "
                                     f"rerun {rerun} to finish the move", tuple(stuck), notes)


def _describe(moves: Sequence[Move]) -> str:
    """``edge, sha-1234567 on base, app, tools`` when every image got the same tags; each image's tags otherwise."""
    by_image = TagMoves(Outcome.MOVED, "", tuple(moves)).tagged
    tag_sets = {tuple(sorted(tags)) for tags in by_image.values()}
    if len(tag_sets) == 1:
        return f"{', '.join(next(iter(by_image.values())))} on {', '.join(by_image)}"
    return "; ".join(f"{image}: {', '.join(tags)}" for image, tags in by_image.items())


def verify_tags(registry: TagRegistry, expected: Iterable[Move]) -> str | None:
    """None when every tag names the digest it was given; else the first one that does not, in words."""
    for move in expected:
        now = registry.manifest_digest(move.repository, move.tag)
        if now != move.digest:
            where = "is gone" if now is None else f"names {now[:19]}… now"
            return f"{move.label} {where}, not {move.digest[:19]}… (another run or a cleanup changed it meanwhile)"
    return None
