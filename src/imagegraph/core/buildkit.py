"""BuildKit's plain progress output (``--progress plain``), read in one place.

Live progress (:mod:`imagegraph.presentation.progress`) and the step counts of a result
(:func:`count_steps`) read the same lines (a bake's JSON progress is made into
them per image by :mod:`imagegraph.core.bake_results`); each asks :func:`parse`
what a line is rather than matching it again:

    #7 [runtime 2/4] RUN pip install ...      a Dockerfile step starts (step)
    #3 [internal] load build definition       a vertex that is no step (vertex)
    #7 0.412 Collecting torch                 what a step prints (log)
    #7 CACHED / #7 DONE 12.3s / #7 ERROR: ... how a vertex ends (cached, done, error)
    #9 pushing manifest for REF@sha256:... 0.1s done   the image is in the registry (pushed)
    #9 exporting to image                     anything else a vertex says (other)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Line", "StepCount", "count_steps", "is_layer_fetch", "parse"]

Kind = Literal["step", "vertex", "log", "cached", "done", "error", "pushed", "other", "none"]

_VERTEX = re.compile(r"^#(\d+) (.*)$")
_BRACKET = re.compile(r"^\[([^\]]*)\] ?(.*)$")
_NUMBER = re.compile(r"^(.*?) ?(\d+)/(\d+)$")
_DONE = re.compile(r"^DONE ([\d.]+)s\s*$")
_LOG = re.compile(r"^(\d+\.\d+) (.*)$")
#: A layer's id: what BuildKit names the fetch of a cached layer by (a step answered from the registry cache fetches one).
_LAYER = r"sha256:[0-9a-f]{64}"
#: A layer being fetched for a step (a registry cache hit): ``sha256:<digest> 160B / 160B 0.0s done``.
_LAYER_FETCH = re.compile(rf"^{_LAYER} ")


def is_layer_fetch(status_id: str) -> bool:
    """Whether a progress status (its id) is a layer being fetched: a step that does one before it ends came from a cache."""
    return re.fullmatch(_LAYER, status_id) is not None
_PUSHED = re.compile(r"^pushing manifest for ([^@\s]+)(?:@sha256:[0-9a-f]+)? [\d.]+s done\s*$")


@dataclass(frozen=True)
class Line:
    """One line of plain progress, taken apart."""

    kind: Kind
    #: The vertex number (``#7``), as text; None for lines outside any vertex (a build's closing error, say).
    vertex: str | None = None
    #: What the brackets hold, whole: ``runtime 2/4``, ``linux/arm64 internal``, ``base linux/amd64 2/2`` (bake).
    bracket: str = ""
    #: For a step: what its brackets hold before the numbers (stage, platform; a bake's target first), and the numbers.
    label: str = ""
    number: int = 0
    total: int = 0
    #: The instruction (step), the vertex's name, the printed text (log), the message (error), the rest (other).
    text: str = ""
    seconds: float | None = None
    #: The reference a ``pushed`` line names.
    ref: str = ""

    @property
    def instruction(self) -> str:
        """A step's Dockerfile keyword, upper case (``RUN``, ``COPY``, ``FROM``)."""
        return self.text.split(maxsplit=1)[0].upper() if self.kind == "step" and self.text else ""


def parse(line: str) -> Line:
    match = _VERTEX.match(line.rstrip("\r\n"))
    if match is None:
        return Line("none", text=line)
    vertex, rest = match.groups()
    if rest.strip() == "CACHED":
        return Line("cached", vertex)
    if rest.startswith("ERROR"):
        return Line("error", vertex, text=rest.removeprefix("ERROR").lstrip(": "))
    done = _DONE.match(rest)
    if done:
        return Line("done", vertex, seconds=float(done.group(1)))
    log = _LOG.match(rest)
    if log:
        return Line("log", vertex, seconds=float(log.group(1)), text=log.group(2))
    pushed = _PUSHED.match(rest)
    if pushed:
        return Line("pushed", vertex, ref=pushed.group(1))
    bracket = _BRACKET.match(rest)
    if bracket:
        inside, text = bracket.groups()
        numbered = _NUMBER.match(inside)
        if numbered:
            label, number, total = numbered.groups()
            return Line("step", vertex, inside, label.strip(), int(number), int(total), text)
        return Line("vertex", vertex, inside, text=text)
    return Line("other", vertex, text=rest)


@dataclass(frozen=True)
class StepCount:
    """Dockerfile steps a build ran, and how many of them came from a cache (local or registry)."""

    cached: int = 0
    total: int = 0

    def __add__(self, other: StepCount) -> StepCount:
        return StepCount(self.cached + other.cached, self.total + other.total)


def count_steps(output: str) -> StepCount:
    """The Dockerfile steps in plain progress output, and those answered from a cache.

    FROM lines are not steps (they resolve an image, they never run). A
    vertex can end more than once, and its first end says what happened:
    ``CACHED`` first, it was answered from a cache (a ``DONE`` after it is
    the cached layer being fetched when a later step needs it); ``ERROR``
    first, it ran here; ``DONE`` first, it ran here unless it fetched a layer
    before it (``sha256:<digest> 160B / 160B``): a step answered from the
    registry cache while its layer is being fetched is never told
    ``CACHED``, and a step that runs fetches no layer of its own. In a bake
    each target's solve reports the vertices it shares with another, and one
    that reaches a step after another target ran it is told ``CACHED`` too,
    later: whether that comes before or after the run depends on timing, so
    it must not count.
    """
    steps: set[str] = set()
    first_end: dict[str, str] = {}
    fetched: set[str] = set()
    for text in output.splitlines():
        line = parse(text)
        if line.vertex is None:
            continue
        if line.kind == "step" and line.instruction != "FROM":
            steps.add(line.vertex)
        elif line.kind in ("cached", "done", "error"):
            first_end.setdefault(line.vertex, line.kind)
        elif line.kind == "other" and line.vertex not in first_end and _LAYER_FETCH.match(line.text):
            fetched.add(line.vertex)
    cached = {vertex for vertex, kind in first_end.items() if kind == "cached" or (kind == "done" and vertex in fetched)}
    return StepCount(len(cached & steps), len(steps))
