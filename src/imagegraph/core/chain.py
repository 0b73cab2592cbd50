"""A parent and the children built on it in one BuildKit session (`docker buildx bake`).

Built one after the other, a child waits for its parent's export: the
layers compressed, unpacked into the engine and pushed. For the torch base
that is most of a minute of one core compressing while the other waits.
Handed to BuildKit together, with each child's ``BASE_IMAGE`` mapped to the
parent's target by a named context, the children start on the parent's
result the moment its last step ends, and their steps run while the
parent's layers are still being compressed. Every image still gets its own
fingerprint tag, log, step count and result.

This module is the part that needs no engine: which images go together
(:func:`bake_groups`) and how bake's interleaved output is taken apart per
image (:class:`BakeOutput`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .buildkit import parse
from .plan import Decision, ImagePlan

__all__ = ["BakeOutput", "bake_groups"]


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




def _step_pattern(instruction: str) -> re.Pattern[str]:
    """An instruction as BuildKit prints it in a step's name: whitespace runs as one, ``$VAR`` and ``${VAR}`` expanded."""
    words = re.split(r"(\$\{[^}]*\}|\$\w+)", " ".join(instruction.split()))
    return re.compile("".join(".*?" if index % 2 else re.escape(word) for index, word in enumerate(words)))


class BakeOutput:
    """Bake's plain progress, taken apart per target, each line as a build of that image alone would print it.

    BuildKit solves a vertex that targets share once, and names it after the
    target that reached it first. A parent's step often carries a child's
    name (the child's graph holds its parent's steps), and two children of
    one parent share the steps their Dockerfiles have in common. So a
    Dockerfile step belongs to the nearest-the-root ancestor of the target it
    is named after whose Dockerfile has that instruction; failing that, to the
    target and every sibling (same parent) whose Dockerfile has it. A vertex
    that is no Dockerfile step (loading, exporting, pushing) belongs to the
    target it is named after.
    """

    def __init__(self, targets: Sequence[str], instructions: Mapping[str, Sequence[str]] | None = None,
                 parents: Mapping[str, str | None] | None = None) -> None:
        self._targets = tuple(targets)
        self._parents = {target: (parents or {}).get(target) for target in targets}
        self._steps = {target: tuple(_step_pattern(text) for text in (instructions or {}).get(target, ())) for target in targets}
        self._owners: dict[str, frozenset[str]] = {}
        self._lines: list[tuple[str | None, str]] = []
        self._errors: set[str] = set()
        self._ancestry: dict[str, tuple[str, ...]] = {}
        self._ancestor_sets: dict[str, frozenset[str]] = {}

    def feed(self, line: str) -> tuple[frozenset[str], str]:
        """(the images ``line`` is about, none for bake's own lines; the line without the target in its name)."""
        parsed = parse(line)
        vertex = parsed.vertex
        target, _, rest = parsed.bracket.partition(" ")
        if parsed.kind in ("step", "vertex") and vertex is not None and target in self._parents:
            is_step = parsed.kind == "step" and bool(rest)
            owners = self._step_owners(target, " ".join(parsed.text.split())) if is_step else frozenset({target})
            known = self._owners.get(vertex, frozenset())
            if known and all(any(self._is_ancestor(owner, other) for owner in owners) for other in known):
                self._owners[vertex] = owners  # named by a parent after a child: the parent's
            elif not any(self._is_ancestor(other, owner) for other in known for owner in owners):
                self._owners[vertex] = known | owners
            line = f"#{vertex} [{rest}] {parsed.text}" if rest else f"#{vertex} {parsed.text}"
        elif parsed.kind == "error" and vertex is not None:
            self._errors.add(vertex)
        self._lines.append((vertex, line))
        return (self._owners.get(vertex, frozenset()) if vertex is not None else frozenset()), line

    def _ancestors(self, target: str) -> tuple[str, ...]:
        """``target``'s ancestors in this bake, the root first (worked out once per target: every line asks)."""
        # Up to the first target worked out before (or the root), then down again, each one from its parent's.
        path: list[str] = []
        node: str | None = target
        while node is not None and node not in self._ancestry:
            path.append(node)
            parent = self._parents.get(node)
            node = parent if parent in self._parents else None
        for name in reversed(path):
            parent = self._parents.get(name)
            known = (*self._ancestry[parent], parent) if parent is not None and parent in self._parents else ()
            self._ancestry[name] = known
            self._ancestor_sets[name] = frozenset(known)
        return self._ancestry[target]

    def _is_ancestor(self, candidate: str, target: str) -> bool:
        self._ancestors(target)
        return candidate in self._ancestor_sets[target]

    def _has(self, target: str, text: str) -> bool:
        return any(pattern.fullmatch(text) for pattern in self._steps[target])

    def _step_owners(self, named: str, text: str) -> frozenset[str]:
        for ancestor in self._ancestors(named):
            if self._has(ancestor, text):
                return frozenset({ancestor})
        parent = self._parents.get(named)
        return frozenset({named, *(t for t in self._targets if t != named and self._parents.get(t) == parent and self._has(t, text))})

    def output_of(self, image: str) -> str:
        """The lines of ``image``'s own vertices, and bake's lines about no vertex (its closing error, say)."""
        return "\n".join(line for vertex, line in self._lines if vertex is None or image in self._owners.get(vertex, ()))

    def failed(self) -> frozenset[str]:
        """The images a failed vertex belongs to."""
        return frozenset(owner for vertex in self._errors for owner in self._owners.get(vertex, ()))
