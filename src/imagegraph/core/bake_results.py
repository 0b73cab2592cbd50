"""A parent and the children built on it in one `docker buildx bake`: which images go together, and each one's result.

Built one after the other, a child waits for its parent's export: the
layers compressed, unpacked into the engine and pushed. For the torch base
that is most of a minute of one core compressing while the other waits.
Handed to BuildKit together, with each child's ``BASE_IMAGE`` mapped to the
parent's target by a named context, the children start on the parent's
result the moment its last step ends. Every image still gets its own
fingerprint tag, log, step count and result.

The results come from bake's own records, never from matching Dockerfile
text against a shared log:

- ``--metadata-file``: what each target exported (its digest, its build
  reference), written when the whole bake succeeded (buildx 0.13 writes none
  for a bake that failed);
- ``--progress rawjson``: BuildKit's status of every vertex, sent by each
  target's own solve, named after that target. A target's solve reports every
  vertex of its graph, its parent's steps included, so a vertex belongs to
  the targets that reported it less those whose ancestor (in this bake) also
  did: a parent's step is the parent's, a child's own step (a COPY of a file
  only its context lacks) is the child's alone, even while the parent's steps
  still run, and a step two siblings share is both of theirs. BuildKit runs a
  shared step once, though, and the parent's solve may never report the one
  that failed. So a failure is a child's for sure only when its step stands
  on something no parent can hold: the child's own build context (a COPY of
  a file only it has). Any other failure is no one's here: the executor then
  builds those images alone, where each build's output is its own.

This module needs no engine: :func:`bake_groups` says which images go
together, :class:`BakeProgress` takes the rawjson stream apart into each
image's own plain-progress lines and failures, and :func:`read_metadata`
reads the metadata file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .buildkit import is_layer_fetch
from .plan import Decision, ImagePlan

__all__ = ["BakeProgress", "BakeTarget", "bake_groups", "read_metadata"]


def bake_groups(entries: Sequence[ImagePlan], parents: Mapping[str, str | None]) -> tuple[tuple[str, ...], ...]:
    """The sets of images to build as one bake: a built image with every built descendant reachable through built parents.

    ``entries`` are in plan order (parents first). Only images that are built
    and pushed take part (bake's result must reach the registry to be
    checked); a set of one is no set: it is built on its own as before.
    """
    building = {entry.name for entry in entries if entry.decision is Decision.BUILD and entry.push and not entry.push_existing}
    root_of: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for entry in entries:
        if entry.name not in building:
            continue
        parent = parents.get(entry.name)
        root = root_of.get(parent or "", entry.name)
        root_of[entry.name] = root
        groups.setdefault(root, []).append(entry.name)
    return tuple(tuple(members) for members in groups.values() if len(members) > 1)


@dataclass(frozen=True)
class BakeTarget:
    """What bake's metadata file says one target exported."""

    #: ``containerimage.digest``: the image (an index for several platforms) pushed to the target's tags.
    digest: str | None
    #: ``buildx.build.ref``: the build's record on its builder (``builder/node/ref``).
    build_ref: str | None


def read_metadata(text: str, targets: Sequence[str]) -> dict[str, BakeTarget]:
    """The targets of ``targets`` that bake's metadata file (``--metadata-file``) names, with what they exported.

    Anything but a JSON object of objects reads as no target: the results then
    come from the registry, as for a bake that failed.
    """
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    results = {}
    for target in targets:
        entry = found.get(target)
        if isinstance(entry, dict):
            digest, ref = entry.get("containerimage.digest"), entry.get("buildx.build.ref")
            results[target] = BakeTarget(digest if isinstance(digest, str) else None, ref if isinstance(ref, str) else None)
    return results


def _seconds(stamp: object) -> float | None:
    """An RFC 3339 time as BuildKit writes it (nanoseconds, ``Z``), as seconds since the epoch; None when it is not one."""
    if not isinstance(stamp, str) or not stamp:
        return None
    head, _, fraction = stamp.removesuffix("Z").partition(".")
    zone = ""
    for sign in ("+", "-"):
        if sign in fraction:
            fraction, _, rest = fraction.partition(sign)
            zone = sign + rest
    try:
        moment = datetime.fromisoformat(f"{head}{zone or '+00:00'}")
    except ValueError:
        return None
    return moment.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


#: Vertices whose error fails nothing: BuildKit builds on without a registry cache it cannot read, and a cache export
#: is written with ignore-error=true (:mod:`imagegraph.core.cache`).
_CACHE_VERTICES = ("importing cache manifest", "exporting cache")


def _canceled(error: str) -> bool:
    """Whether a vertex ended because its solve was stopped (another target failed), not by a failure of its own."""
    return "context canceled" in error or error.strip().lower() == "canceled"


@dataclass
class _Vertex:
    number: int
    started: float | None = None


class BakeProgress:
    """Bake's ``--progress rawjson`` stream, taken apart into each target's own plain-progress lines and failures.

    Feed it the command's output line by line (:meth:`feed`); each call
    returns the plain lines it made, each with the images it is about (none
    for bake's own text, its closing error say), as ``--progress plain`` of a
    build of that image alone would print them: ``#7 [2/2] RUN ...``,
    ``#7 0.412 output``, ``#7 DONE 1.2s``, ``#7 CACHED``, ``#7 ERROR: ...``.
    Which images a vertex belongs to is known for sure only once the bake has
    ended (a parent's solve may report a vertex after a child's did), so the
    lines returned while it runs are for live progress, and
    :meth:`output_of` and :meth:`failures` answer afterwards.
    """

    def __init__(self, targets: Sequence[str], parents: Mapping[str, str | None]) -> None:
        self._targets = tuple(targets)
        self._ancestors: dict[str, frozenset[str]] = {}
        for target in self._targets:
            found: list[str] = []
            node = parents.get(target)
            while node is not None and node in self._targets and node not in found:
                found.append(node)
                node = parents.get(node)
            self._ancestors[target] = frozenset(found)
        self._pending: list[str] = []
        self._vertices: dict[str, _Vertex] = {}
        #: The targets whose solve reported each vertex.
        self._reporters: dict[str, set[str]] = {}
        #: What each target's solve said of a vertex so far: started, ended.
        self._said: set[tuple[str, str, str]] = set()
        #: (the target whose solve sent it or None for a log or status, the vertex or None for bake's text, the line).
        self._lines: list[tuple[str | None, str | None, str]] = []
        #: (target, vertex, the step as printed, its error): every error a target's solve reported.
        self._errors: list[tuple[str, str, str, str]] = []
        #: Each vertex's inputs (the LLB graph), as the solves reported them.
        self._inputs: dict[str, tuple[str, ...]] = {}
        #: Each target's own build context (``[app internal] load build context``): what only its steps can stand on.
        self._contexts: dict[str, set[str]] = {}
        #: The vertices that ran in this bake, in whichever target's solve, and how long they took: another solve that reached
        #: one after it ran (or while it ran) is told it was cached, which says nothing of the image's step.
        self._ran: dict[str, float] = {}
        #: The vertices that fetched a layer before they ended: answered from the registry cache, not run.
        self._fetched: set[str] = set()

    def feed(self, line: str) -> list[tuple[frozenset[str], str]]:
        """The plain lines ``line`` completes, each with the images it is about as far as is known now."""
        whole = line.strip()
        if not self._pending and whole.startswith("{") and whole.endswith("}"):
            try:
                status = json.loads(whole)
            except ValueError:
                return self._keep([(None, None, line)])
            return self._keep(self._status(status) if isinstance(status, dict) else [])
        if self._pending or line.rstrip() == "{":
            self._pending.append(line)
            if line.rstrip() != "}":
                return []
            text, self._pending = "\n".join(self._pending), []
            try:
                status = json.loads(text)
            except ValueError:
                return self._keep([(None, None, part) for part in text.splitlines()])
            return self._keep(self._status(status) if isinstance(status, dict) else [])
        return self._keep([(None, None, line)])

    def _keep(self, made: list[tuple[str | None, str | None, str]]) -> list[tuple[frozenset[str], str]]:
        self._lines.extend(made)
        return [(self._audience(sender, vertex), text) for sender, vertex, text in made]

    def _audience(self, sender: str | None, vertex: str | None) -> frozenset[str]:
        if vertex is None:
            return frozenset()
        owners = self.owners(vertex)
        return owners & {sender} if sender is not None else owners

    def _number(self, digest: str) -> _Vertex:
        if digest not in self._vertices:
            self._vertices[digest] = _Vertex(len(self._vertices) + 1)
        return self._vertices[digest]

    def _target_of(self, name: str) -> tuple[str | None, str]:
        """The target a vertex's name starts with (``[app 1/2] COPY ...``), and the name as a build of it alone prints it."""
        if name.startswith("["):
            inside, sep, rest = name[1:].partition("]")
            head, _, tail = inside.partition(" ")
            if sep and head in self._ancestors:
                return head, f"[{tail}]{rest}" if tail else rest.lstrip()
        return None, name

    def _status(self, status: Mapping[str, object]) -> list[tuple[str | None, str | None, str]]:
        made: list[tuple[str | None, str | None, str]] = []
        for vertex in _records(status.get("vertexes")):
            digest, name = vertex.get("digest"), vertex.get("name")
            if not isinstance(digest, str) or not isinstance(name, str):
                continue
            target, shown = self._target_of(name)
            if target is None:
                continue  # bake's own vertices (reading the bake file) belong to no image
            self._reporters.setdefault(digest, set()).add(target)
            inputs = vertex.get("inputs")
            if isinstance(inputs, list) and digest not in self._inputs:
                self._inputs[digest] = tuple(item for item in inputs if isinstance(item, str))
            if shown == "[internal] load build context":
                self._contexts.setdefault(target, set()).add(digest)
            known = self._number(digest)
            started = _seconds(vertex.get("started"))
            if started is not None and (known.started is None or started < known.started):
                known.started = started
            if (target, digest, "start") not in self._said and (started is not None or vertex.get("completed")):
                self._said.add((target, digest, "start"))
                made.append((target, digest, f"#{known.number} {shown}"))
            completed = _seconds(vertex.get("completed"))
            if completed is None or (target, digest, "end") in self._said:
                continue
            self._said.add((target, digest, "end"))
            error = vertex.get("error")
            if isinstance(error, str) and error:
                if _canceled(error):
                    made.append((target, digest, f"#{known.number} CANCELED"))
                else:
                    if not shown.startswith(_CACHE_VERTICES):
                        self._errors.append((target, digest, shown, error))
                    made.append((target, digest, f"#{known.number} ERROR: {error}"))
            elif vertex.get("cached"):
                made.append((target, digest, f"#{known.number} CACHED"))
            else:
                took = max(0.0, completed - (started or completed))
                if digest not in self._fetched:
                    self._ran.setdefault(digest, took)
                made.append((target, digest, f"#{known.number} DONE {took:.1f}s"))
        for item in _records(status.get("statuses")):
            digest, ident = item.get("vertex"), item.get("id")
            if not isinstance(digest, str) or not isinstance(ident, str) or not item.get("completed"):
                continue
            if is_layer_fetch(ident):
                self._fetched.add(digest)
            total, current = item.get("total"), item.get("current")
            amount = f" {current} / {total}" if isinstance(total, int) and total else ""
            began, ended = _seconds(item.get("started")), _seconds(item.get("completed"))
            took = f" {max(0.0, ended - began):.1f}s" if began is not None and ended is not None else ""
            made.append((None, digest, f"#{self._number(digest).number} {ident}{amount}{took} done"))
        for log in _records(status.get("logs")):
            digest, data = log.get("vertex"), log.get("data")
            if not isinstance(digest, str) or not isinstance(data, str):
                continue
            known = self._number(digest)
            at = _seconds(log.get("timestamp"))
            offset = at - known.started if at is not None and known.started is not None else 0.0
            text = base64.b64decode(data.encode(), validate=False).decode("utf-8", "replace")
            made.extend((None, digest, f"#{known.number} {max(0.0, offset):.3f} {part}") for part in text.splitlines())
        return made

    def owners(self, vertex: str) -> frozenset[str]:
        """The images a vertex belongs to: the targets that reported it, less those whose ancestor in this bake did too."""
        reporters = self._reporters.get(vertex, set())
        return frozenset(t for t in reporters if not self._ancestors[t] & reporters)

    def output_of(self, image: str) -> str:
        """``image``'s own lines (as its solve reported its own vertices), and bake's lines about no vertex (its closing error).

        A step that ran in this bake, in whichever target's solve, reads as run: a solve told ``CACHED`` because another
        ran the shared step first says nothing of whether the image's step ran on this engine.
        """
        return "\n".join(self._as_run(vertex, text) for sender, vertex, text in self._lines
                         if vertex is None or (image in self.owners(vertex) and sender in (None, image)))

    def _as_run(self, vertex: str | None, text: str) -> str:
        if vertex is not None and vertex in self._ran and text == f"#{self._vertices[vertex].number} CACHED":
            return f"#{self._vertices[vertex].number} DONE {self._ran[vertex]:.1f}s"
        return text

    def failures(self) -> dict[str, str]:
        """Each image whose own vertex failed, for sure, with that step and its error (``[2/3] COPY missing.txt /m.txt: ...``).

        For sure: the image has no parent in the bake, or the failed step stands on the image's own build context. A
        parent's step that only a child's solve reported (BuildKit ran it once, for both) is no child's failure.
        """
        failed: dict[str, str] = {}
        for target, digest, shown, error in self._errors:
            if target in self.owners(digest) and (not self._ancestors[target] or self._stands_on_own_context(target, digest)):
                failed.setdefault(target, f"{shown}: {error}")
        return failed

    def _stands_on_own_context(self, target: str, vertex: str) -> bool:
        """Whether ``vertex`` depends, through the LLB graph, on ``target``'s own build context (one no other target reported)."""
        own = {digest for digest in self._contexts.get(target, ()) if self._reporters.get(digest) == {target}}
        seen: set[str] = set()
        todo = [vertex]
        while todo:
            digest = todo.pop()
            if digest in own:
                return True
            if digest not in seen:
                seen.add(digest)
                todo.extend(self._inputs.get(digest, ()))
        return False


def _records(value: object) -> list[Mapping[str, object]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
