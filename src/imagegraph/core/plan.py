"""The plan: for each image, what to do and why. Pure: no I/O happens here.

``make_plan`` takes what the world looks like (fingerprints, what git says
changed since the base commit, the event and the commit being built, which
fingerprint tags already exist locally or in the registry, what the user
asked for) and decides, in one pass, everything a run does: build / reuse /
skip with the reason, each built image's build request, every image's tags.
The executor then carries the plan out without deciding anything, and
without finding anything missing: an image to build is a :class:`BuiltImage`,
which always has its request. ``lookups_needed`` says which images the
registry must be asked about at all: an image whose inputs did not change
since a base commit whose images were published needs no question.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import ClassVar

from .changes import Explanation
from .config import Config
from .fingerprint import Fingerprint
from .graph import build_order, children, with_ancestors
from .join import part_tag
from .request import BuildRequest, BuildSettings, ContextLayout, Revision, build_request, context_layout, image_labels
from .tags import DEFAULT_POLICY, Event, PlannedTag, TagPolicy, planned_tags
from .values import ImageRef

__all__ = [
    "Availability",
    "BuiltImage",
    "Decision",
    "ImagePlan",
    "Plan",
    "ReusedImage",
    "ReusedLocalImage",
    "SkippedImage",
    "affected",
    "availability_of",
    "fingerprint_ref",
    "lookups_needed",
    "make_plan",
    "part_ref",
    "trust_broken",
]


class Decision(enum.Enum):
    BUILD = "build"
    REUSE = "reuse"
    SKIP = "skip"


@dataclass(frozen=True)
class Availability:
    """Where an image with a given fingerprint tag already exists."""

    local: bool = False
    registry: bool = False


def availability_of(ref: str, *, push: bool, in_registry: Callable[[str], bool], in_engine: Callable[[str], bool]) -> Availability:
    """Where ``ref`` exists: the registry is asked only for a pushed image, the local engine only when the registry lacks it."""
    registry = push and in_registry(ref)
    return Availability(local=not registry and in_engine(ref), registry=registry)


@dataclass(frozen=True)
class ImagePlan:
    """One image's entry in the plan. An entry is one of :class:`BuiltImage`, :class:`ReusedImage` (or
    :class:`ReusedLocalImage`) and :class:`SkippedImage`: the kind says what the executor does, and carries what that takes."""

    #: What the entry's kind decides (a class's, not an entry's: the kind is the decision).
    decision: ClassVar[Decision]
    #: The image exists only in the local engine and is pushed now (:class:`ReusedLocalImage`).
    push_existing: ClassVar[bool] = False

    name: str
    reason: str
    fingerprint: str
    #: The fingerprint reference, e.g. 127.0.0.1:5000/imagegraph/base:3f2c..., as a value (its text is :attr:`ref`).
    image: ImageRef
    #: The parent's exact fingerprint reference the child is built FROM.
    parent_image: ImageRef | None
    platforms: tuple[str, ...]
    push: bool
    #: The changed paths (since the base commit) that are this image's own inputs.
    changed: tuple[str, ...] = ()
    #: (path, content id) of every file the fingerprint covers: exactly what the build context holds
    #: (imagegraph.adapters.context.assemble_context); not in to_dict, the fingerprint stands for it there.
    files: tuple[tuple[str, str], ...] = ()
    #: The parent image's name (None for a root): the executor waits for it.
    parent: str | None = None
    #: The requirements files whose wheels the build bind-mounts (fetched before it).
    wheels: tuple[str, ...] = ()
    #: Every tag this image gets, and the rule each moves by (imagegraph.core.tags.planned_tags).
    tags: tuple[PlannedTag, ...] = ()

    def __post_init__(self) -> None:
        if type(self) is ImagePlan:
            raise TypeError("a plan entry is a BuiltImage, ReusedImage, ReusedLocalImage or SkippedImage: its kind is its decision")

    @property
    def ref(self) -> str:
        """The fingerprint reference as text: what builds are tagged with and what `plan --json` shows."""
        return str(self.image)

    @property
    def parent_ref(self) -> str | None:
        return None if self.parent_image is None else str(self.parent_image)

    @property
    def no_cache(self) -> bool:
        """Built without the builder's cache (--no-cache): only an image that is built."""
        return False

    @property
    def has_work(self) -> bool:
        """Whether the executor does anything for it: a build, or a push of the local image."""
        return self.push_existing

    def _build_dict(self) -> dict[str, object] | None:
        return None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "decision": self.decision.value,
            "reason": self.reason,
            "fingerprint": self.fingerprint,
            "ref": self.ref,
            "parent_ref": self.parent_ref,
            "platforms": list(self.platforms),
            "push": self.push,
            "push_existing": self.push_existing,
            "no_cache": self.no_cache,
            "changed": list(self.changed),
            "parent": self.parent,
            "wheels": list(self.wheels),
            "build": self._build_dict(),
            "tags": [tag.to_dict() for tag in self.tags],
        }


@dataclass(frozen=True)
class BuiltImage(ImagePlan):
    """An image the run builds: what its context holds, and what the builder is asked (made with the plan, never later)."""

    decision: ClassVar[Decision] = Decision.BUILD

    #: What the build context holds, as paths.
    layout: ContextLayout = field(kw_only=True)
    #: What the builder is asked: the same for `invoke build`, `invoke plan --json` and a bake file.
    request: BuildRequest = field(kw_only=True)
    #: Built whatever the registry holds (--force, or below a forced image): never swapped for another run's push.
    forced: bool = field(default=False, kw_only=True)

    @property
    def no_cache(self) -> bool:
        return self.request.no_cache

    @property
    def has_work(self) -> bool:
        return True

    def _build_dict(self) -> dict[str, object] | None:
        return self.request.to_dict()


@dataclass(frozen=True)
class ReusedImage(ImagePlan):
    """An image whose fingerprint tag exists: nothing is built."""

    decision: ClassVar[Decision] = Decision.REUSE


@dataclass(frozen=True)
class ReusedLocalImage(ReusedImage):
    """An image whose fingerprint tag exists only in the local engine: nothing is built, the image is pushed."""

    push_existing: ClassVar[bool] = True


@dataclass(frozen=True)
class SkippedImage(ImagePlan):
    """An image the run leaves alone (not selected)."""

    decision: ClassVar[Decision] = Decision.SKIP


@dataclass(frozen=True)
class Plan:
    images: tuple[ImagePlan, ...]
    registry: str
    options: Mapping[str, str] = field(default_factory=dict)
    explanation: Explanation | None = None
    #: Things worth a look that change no decision (e.g. a file a Dockerfile copies but images.yaml does not declare).
    warnings: tuple[str, ...] = ()

    def image(self, name: str) -> ImagePlan:
        return self._by_name[name]

    @cached_property
    def _by_name(self) -> dict[str, ImagePlan]:
        """Every entry by name (the first of a name): a report asks for each image's, and a scan per image would cost n²."""
        found: dict[str, ImagePlan] = {}
        for entry in self.images:
            found.setdefault(entry.name, entry)
        return found

    def to_build(self) -> tuple[BuiltImage, ...]:
        return tuple(e for e in self.images if isinstance(e, BuiltImage))

    def to_dict(self) -> dict[str, object]:
        return {
            "registry": self.registry,
            "options": dict(self.options),
            "git": None if self.explanation is None else self.explanation.to_dict(),
            "images": [entry.to_dict() for entry in self.images],
            "warnings": list(self.warnings),
        }


def _forced(config: Config, force: Collection[str]) -> dict[str, str]:
    """Each forced image and each image below one, with the reason: the --force name given first among itself and its ancestors."""
    first: dict[str, int] = {}
    for index, name in enumerate(force):
        config.image(name)  # unknown names fail with "did you mean"
        first.setdefault(name, index)
    if not first:
        return {}
    by: dict[str, str] = {}  # image -> the name it is forced by, decided parents first in one pass
    for name in build_order(config):
        parent = config.image(name).parent
        inherited = by.get(parent) if parent is not None else None
        if name in first and (inherited is None or first[name] < first[inherited]):
            by[name] = name
        elif inherited is not None:
            by[name] = inherited
    return {name: f"forced (--force {name})" if cause == name else f"parent {cause} is forced" for name, cause in by.items()}


def _trusted_same(explanation: Explanation | None) -> frozenset[str]:
    """Images unchanged since a base whose images were published: they need no registry lookup."""
    if explanation is None or explanation.base is None or not explanation.base.trusted:
        return frozenset()
    return explanation.same_as_base


def lookups_needed(config: Config, explanation: Explanation | None, *, selected: Collection[str] = (), force: Collection[str] = (),
                   trust: bool = True) -> frozenset[str]:
    """The images whose fingerprint tags the registry (or local engine) must be asked about.

    Every wanted image that is neither forced nor known unchanged since a
    trusted base; and the ancestors of those, because an image that may be
    built needs its parent to exist. A docs-only change asks nothing.
    ``trust=False`` asks about every image that is not forced (see
    :func:`trust_broken`).
    """
    wanted = with_ancestors(config, selected) if selected else frozenset(config.names)
    forced = _forced(config, force)
    trusted = _trusted_same(explanation) if trust else frozenset()
    maybe_built = {name for name in wanted if name not in trusted}
    need = {name for name in maybe_built if name not in forced}
    walked: set[str] = set()  # a walk up stops where an earlier one went: a chain n deep costs n, not n²
    for name in maybe_built:
        parent = config.image(name).parent
        while parent is not None and parent not in walked:
            walked.add(parent)
            if parent not in forced:
                need.add(parent)
            parent = config.image(parent).parent
    return frozenset(need)


def trust_broken(config: Config, fingerprints: Mapping[str, Fingerprint], explanation: Explanation | None,
                 availability: Mapping[str, Availability]) -> bool:
    """Whether a lookup found an image missing that the trusted base should have published.

    Then the base's images were not all published after all (its CI run
    failed, or imagegraph's fingerprint scheme changed since), and every
    image must be looked up rather than assumed.
    """
    for name in _trusted_same(explanation):
        found = availability.get(str(fingerprint_ref(config, fingerprints, name)))
        if found is not None and not (found.registry or found.local):
            return True
    return False


#: The event of a plan made without one (a test's, or `invoke affected`'s): a local checkout, whose images get only their fingerprint tags.
_NO_EVENT = Event("local", "")
_SETTINGS = BuildSettings()


def fingerprint_ref(config: Config, fingerprints: Mapping[str, Fingerprint], name: str) -> ImageRef:
    """An image's fingerprint reference (``<registry>/<namespace>/<name>:<fingerprint tag>``), made from its parts."""
    return config.image_ref(name, fingerprints[name].tag)


def part_ref(config: Config, fingerprints: Mapping[str, Fingerprint], name: str, platform: str) -> ImageRef:
    """Where a run that builds only ``platform`` pushes ``name``'s image of it: ``<fingerprint>-<platform suffix>``, or the
    fingerprint tag itself for an image of that one platform (:func:`imagegraph.core.join.part_tag`)."""
    return config.image_ref(name, part_tag(fingerprints[name].tag, config.image(name).platforms, platform))


def make_plan(
    config: Config,
    fingerprints: Mapping[str, Fingerprint],
    availability: Mapping[str, Availability],
    *,
    explanation: Explanation | None = None,
    selected: Collection[str] = (),
    force: Collection[str] = (),
    no_cache: bool = False,
    platforms: tuple[str, ...] = (),
    warnings: Sequence[str] = (),
    event: Event | None = None,
    policy: TagPolicy = DEFAULT_POLICY,
    revision: Revision | Callable[[], Revision | None] | None = None,
    settings: BuildSettings | Callable[[], BuildSettings] = _SETTINGS,
    only_platform: str | None = None,
) -> Plan:
    """Decide build / reuse / skip for every image, with the reason in words, and all that carrying it out takes.

    ``availability`` maps fingerprint refs to where they exist; a ref it does
    not mention was not looked up (see :func:`lookups_needed`). ``selected``
    limits the work to those images and what they stand on (all images when
    empty); ``force`` rebuilds those images and their dependents even when
    their fingerprint tags exist. ``platforms`` is the override already folded
    into the fingerprints, echoed in the plan. ``event`` decides every image's
    tags (:func:`imagegraph.core.tags.planned_tags`) and, with ``revision``
    (the commit built; None before a first commit), the OCI labels each build
    request carries; ``settings`` are what every build request shares (the
    builder's kind among them). These two only a build needs: each may be a
    function, asked once and only when something is built, so a plan that
    builds nothing asks neither git nor the engine.

    ``only_platform``: the run builds that one platform of each image, one
    runner per platform, for `invoke join` to make the images of
    (:mod:`imagegraph.core.join`). Fingerprints stay those of the declared
    platforms; each image declared for it is built and pushed under its part
    tag (:func:`part_ref`) unless that part, or the whole image, is in the
    registry already; a child is built on its parent's part (on the whole
    image when only that exists); images not declared for it are skipped;
    no tag moves (the join moves them).
    """
    event = event or _NO_EVENT
    found = _found(config, fingerprints, availability, only_platform)
    decided = _decide(config, fingerprints, found, explanation, selected, force, only_platform)
    forced = _forced(config, force)
    labels: dict[str, str] = {}
    shared = _SETTINGS  # what every build request shares, asked below only when something is built
    if any(decision is Decision.BUILD for decision, _, _ in decided.values()):
        labels = image_labels(revision() if callable(revision) else revision, event)
        shared = settings() if callable(settings) else settings
    causes = dict(explanation.causes) if explanation is not None else {}
    entries: list[ImagePlan] = []
    for name in build_order(config):
        spec = config.image(name)
        decision, reason, local_only = decided[name]
        fingerprint = fingerprints[name]
        image, parent_image = _refs(config, fingerprints, name, decided, found, only_platform)
        ref, parent_ref = str(image), None if parent_image is None else str(parent_image)
        part = only_platform if only_platform in spec.platforms else None
        common = {"name": name, "reason": reason, "fingerprint": fingerprint.tag, "image": image, "parent_image": parent_image,
                  "platforms": (part,) if part else spec.platforms, "push": spec.push, "changed": causes.get(name, ()),
                  "files": fingerprint.files, "parent": spec.parent, "wheels": spec.wheels,
                  "tags": () if only_platform else planned_tags(event, fingerprint.tag, policy, push=spec.push)}
        if decision is Decision.BUILD:
            layout = context_layout(spec, fingerprint.files)
            request = build_request(config, name, layout, shared, fingerprint=fingerprint.tag, ref=ref, parent_ref=parent_ref,
                                    labels=labels, no_cache=no_cache, only_platform=part)
            entries.append(BuiltImage(**common, layout=layout, request=request, forced=name in forced))
        elif decision is Decision.REUSE:
            entries.append(ReusedLocalImage(**common) if local_only and spec.push else ReusedImage(**common))
        else:
            entries.append(SkippedImage(**common))
    options = {"platforms": ",".join(platforms)} if platforms else {}
    if only_platform:
        options["only_platform"] = only_platform
    return Plan(images=tuple(entries), registry=config.registry, options=options, explanation=explanation, warnings=tuple(warnings))


@dataclass(frozen=True)
class _Found:
    """Where an image the run needs was found, and under which reference."""

    availability: Availability
    #: The whole image's fingerprint tag (not the part's) is what was found: a run of one platform found it joined already.
    whole: bool = False


def _found(config: Config, fingerprints: Mapping[str, Fingerprint], availability: Mapping[str, Availability],
           only_platform: str | None) -> dict[str, _Found]:
    """Each looked-up image's finding: its fingerprint tag's; in a run of one platform, its part's, else the whole image in the
    registry (which holds that platform too). An image not looked up has none."""
    found: dict[str, _Found] = {}
    for name in config.names:
        whole = availability.get(str(fingerprint_ref(config, fingerprints, name)))
        if only_platform is None or only_platform not in config.image(name).platforms:
            if whole is not None:
                found[name] = _Found(whole)
            continue
        part = availability.get(str(part_ref(config, fingerprints, name, only_platform)))
        if part is not None and (part.registry or part.local):
            found[name] = _Found(part)
        elif whole is not None and whole.registry:
            found[name] = _Found(whole, whole=True)
        elif part is not None or whole is not None:
            found[name] = _Found(Availability())
    return found


def _refs(config: Config, fingerprints: Mapping[str, Fingerprint], name: str, decided: Mapping[str, tuple[Decision, str, bool]],
          found: Mapping[str, _Found], only_platform: str | None) -> tuple[ImageRef, ImageRef | None]:
    """The reference the run builds or reuses ``name`` as, and its parent's (what the child is built FROM).

    In a run of one platform: the part's (:func:`part_ref`) when the run builds it or found it; else the whole image's (found
    joined, or reused unasked as unchanged since a base whose images were published, which the join made whole), as for an
    image not declared for that platform.
    """
    def ref(image: str) -> ImageRef:
        if only_platform is not None and only_platform in config.image(image).platforms and (
                decided[image][0] is Decision.BUILD or (image in found and not found[image].whole)):
            return part_ref(config, fingerprints, image, only_platform)
        return fingerprint_ref(config, fingerprints, image)

    parent = config.image(name).parent
    return ref(name), None if parent is None else ref(parent)


def _decide(config: Config, fingerprints: Mapping[str, Fingerprint], found_at: Mapping[str, _Found], explanation: Explanation | None,
            selected: Collection[str], force: Collection[str], only_platform: str | None) -> dict[str, tuple[Decision, str, bool]]:
    """Every image's decision and reason, and whether its fingerprint tag (its part's) is only in the local engine."""
    wanted = with_ancestors(config, selected) if selected else frozenset(config.names)
    forced = _forced(config, force)
    trusted = _trusted_same(explanation)
    causes = dict(explanation.causes) if explanation is not None else {}
    same = explanation.same_as_base if explanation is not None else frozenset()
    since = _since(explanation)
    decided: dict[str, tuple[Decision, str, bool]] = {}
    for name in build_order(config):
        spec = config.image(name)
        finding = found_at.get(name)
        found = None if finding is None else finding.availability
        if name not in wanted:
            decided[name] = (Decision.SKIP, "not selected", False)
        elif only_platform is not None and only_platform not in spec.platforms:
            decided[name] = (Decision.SKIP, f"not declared for {only_platform} (its platforms: {', '.join(spec.platforms)})", False)
        elif name in forced:
            decided[name] = (Decision.BUILD, forced[name], False)
        elif found is None and name in trusted:
            decided[name] = (Decision.REUSE, _unchanged(causes.get(name, ()), since), False)
        elif found is not None and found.registry:
            reason = _in_registry(name, causes.get(name, ()), same, since)
            if finding is not None and finding.whole:
                reason = reason.replace("fingerprint tag", "fingerprint tag (every platform, joined)")
            elif only_platform is not None:
                reason = reason.replace("fingerprint tag", f"{only_platform} part")
            decided[name] = (Decision.REUSE, reason, False)
        elif found is not None and found.local:
            decided[name] = (Decision.REUSE, "fingerprint tag already in the local engine (pushed now)" if spec.push
                             else "fingerprint tag already in the local engine", True)
        else:
            decided[name] = (Decision.BUILD, "", False)
    reasons = _build_reasons(config, decided, causes, same, since)
    return {name: (decision, reasons.get(name, reason), local) for name, (decision, reason, local) in decided.items()}


def _since(explanation: Explanation | None) -> str:
    if explanation is None or explanation.base is None:
        return ""
    return f"{explanation.base.short} ({explanation.base.how})"


def _paths(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:3])
    return shown if len(paths) <= 3 else f"{shown} and {len(paths) - 3} more"


def _unchanged(causes: Sequence[str], since: str) -> str:
    if causes:
        return f"{_paths(causes)} changed, but not in substance: same fingerprint as {since}"
    return f"unchanged since {since}"


def _in_registry(name: str, causes: Sequence[str], same: Collection[str], since: str) -> str:
    if name in same:
        return _unchanged(causes, since) + "; fingerprint tag in the registry"
    if causes:
        return f"{_paths(causes)} changed, to content already built: fingerprint tag in the registry"
    return "fingerprint tag already in the registry"


#: A reason names the first images of a chain from its cause and the last two; a deep chain's middle is counted, not
#: listed, so every reason stays a line long (listed in full, a chain n deep would print n² names in all).
_CHAIN_HEAD = 3
_CHAIN_TAIL = 2


@dataclass(frozen=True)
class _Chain:
    """How a change reaches an image: "<paths> changed → base → ci → … (5 more) → x → y"."""

    cause: str
    head: tuple[str, ...]
    skipped: int = 0
    tail: tuple[str, ...] = ()

    def then(self, name: str) -> _Chain:
        if len(self.head) < _CHAIN_HEAD:
            return _Chain(self.cause, (*self.head, name))
        tail = (*self.tail, name)
        if len(tail) > _CHAIN_TAIL:
            return _Chain(self.cause, self.head, self.skipped + 1, tail[1:])
        return _Chain(self.cause, self.head, self.skipped, tail)

    def __str__(self) -> str:
        middle = (f"… ({self.skipped} more)",) if self.skipped else ()
        return " → ".join((f"{self.cause} changed", *self.head, *middle, *self.tail))


def _build_reasons(config: Config, decided: Mapping[str, tuple[Decision, str, bool]], causes: Mapping[str, Sequence[str]],
                   same: Collection[str], since: str) -> dict[str, str]:
    """Why each image builds: the chain from cause to image, e.g. "requirements/requirements-torch.txt changed → base → ci"."""
    chains: dict[str, _Chain] = {}  # for images rebuilt because of a change
    reasons: dict[str, str] = {}
    for name in build_order(config):
        decision, reason, _ = decided[name]
        if decision is not Decision.BUILD:
            continue
        if reason:  # forced
            reasons[name] = reason
            continue
        parent = config.image(name).parent
        parent_built = parent is not None and decided[parent][0] is Decision.BUILD
        if name in causes:
            chains[name] = _Chain(_paths(causes[name]), (name,))
            built_children = [c for c in children(config, name) if decided[c][0] is Decision.BUILD]
            reasons[name] = str(chains[name]) + (f" → {', '.join(built_children)}" if built_children else "")
            reasons[name] += f" (and parent {parent} is rebuilt)" if parent_built else ""
        elif parent_built and parent in chains:
            chains[name] = chains[parent].then(name)
            reasons[name] = str(chains[name])
        elif parent_built:
            reasons[name] = f"parent {parent} is rebuilt"
        elif name in same:
            reasons[name] = f"unchanged since {since}, but its fingerprint tag is not in the registry"
        else:
            reasons[name] = "no image with this fingerprint yet"
    return reasons


def affected(config: Config, fingerprints: Mapping[str, Fingerprint], explanation: Explanation, *,
             selected: Collection[str] = (), force: Collection[str] = ()) -> tuple[ImagePlan, ...]:
    """The images whose fingerprints differ from the base commit's (plus forced ones): what CI must build.

    Decided from git and fingerprints alone, as if every image of the base
    commit were published; nothing is looked up. Without a base (a shallow
    clone that could not be deepened) every selected image counts.
    """
    if explanation.base is not None:
        explanation = replace(explanation, base=replace(explanation.base, trusted=True))
    plan = make_plan(config, fingerprints, {}, explanation=explanation, selected=selected, force=force)
    return plan.to_build()
