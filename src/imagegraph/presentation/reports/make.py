"""A run's build report, made from its plan and results, and the kind of run it was (code change, dependency change, ...)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from ...core.config import Config
from ...core.defaults import CONFIG_NAME
from ...core.plan import Plan
from ...core.result import ImageResult
from .record import BASE_REBUILD, CODE_CHANGE, DEPENDENCY_CHANGE, NO_CHANGE, REBUILD, BuildReport, ImageRecord

__all__ = ["classify", "make_report", "recipe_of"]


def recipe_of(config: Config, name: str, files: Sequence[tuple[str, str]], parent_ref: str | None) -> str:
    """A short digest of what ``name`` is built from short of its code (see :attr:`ImageRecord.recipe`)."""
    spec = config.image(name)
    recipe = _recipe_files(config, name)
    parts = [f"{path} {oid}" for path, oid in files if path in recipe]
    parts += [f"parent {parent_ref or '-'}", f"target {spec.target or '-'}", f"platforms {','.join(spec.platforms)}",
              *(f"arg {k}={v}" for k, v in sorted(dict(spec.build_args).items()))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def make_report(config: Config, plan: Plan, results: Sequence[ImageResult], *, tagged: Mapping[str, Sequence[str]], started: str,
                seconds: float, commit: str | None, event: str, builder: str | None,
                known: Mapping[str, tuple[str | None, int | None, int | None]] | None = None,
                recipes: Mapping[str, str] | None = None, earlier: Sequence[BuildReport] = ()) -> BuildReport:
    """The report of one run. ``known`` fills in, for images the run did not build, (digest, size, layers) looked up elsewhere;
    ``recipes`` are the images' :func:`recipe_of`; ``earlier`` reports tell a code change from a dependency change."""
    known = known or {}
    recipes = recipes or {}
    records = []
    for result in results:
        entry = plan.image(result.name)
        digest, size, layers = result.digest, result.size, result.layers
        if result.name in known and not result.seconds:
            digest, size, layers = known[result.name]
        fingerprint_tag = entry.fingerprint
        records.append(ImageRecord(
            name=result.name, decision=result.decision.value, reason=result.reason, ok=result.ok, error=result.error,
            seconds=round(result.seconds, 2), phases=result.phases, size=size, layers=layers,
            cached_steps=result.steps.cached, total_steps=result.steps.total, digest=digest,
            tags=(fingerprint_tag, *tagged.get(result.name, ())), ref=entry.ref,
            parent=config.image(result.name).parent, platforms=entry.platforms, changed=entry.changed,
            recipe=recipes.get(result.name, ""), stopped=result.stopped,
        ))
    explanation = plan.explanation
    since = "" if explanation is None or explanation.base is None else f"{explanation.base.short} ({explanation.base.how})"
    return BuildReport(started=started, seconds=round(seconds, 2), commit=commit, event=event, kind=classify(config, records, earlier),
                       builder=builder, registry=config.repository("").rstrip("/"), images=tuple(records), since=since)


# -- what kind of run -----------------------------------------------------------


def classify(config: Config, images: Sequence[ImageRecord], earlier: Sequence[BuildReport] = ()) -> str:
    """The kind of run, by what it built and why: a code change is what the layered family makes cheap.

    - base rebuild: an image without a parent was built (the heavy layer);
    - dependency change: a built image's recipe (parent, Dockerfile, .dockerignore, requirements, images.yaml) differs from
      its last recorded build, or, with no record of it, git says one of those files changed;
    - code change: every built image has the recipe of its last record (or git shows only code changed);
    - rebuild: built with nothing to tell why (forced, or missing from the registry, and no record);
    - no change: nothing was built.
    """
    built = [image for image in images if image.built]
    if not built:
        return NO_CHANGE
    if any(config.image(image.name).parent is None for image in built):
        return BASE_REBUILD
    kinds = {_image_kind(config, image, earlier) for image in built}
    for kind in (DEPENDENCY_CHANGE, REBUILD):
        if kind in kinds:
            return kind
    return CODE_CHANGE


def _image_kind(config: Config, image: ImageRecord, earlier: Sequence[BuildReport]) -> str:
    last = next((i for report in reversed(earlier) for i in report.images if i.name == image.name and i.recipe), None)
    if last is not None and image.recipe:
        return CODE_CHANGE if last.recipe == image.recipe else DEPENDENCY_CHANGE
    if not image.changed:
        return REBUILD
    return DEPENDENCY_CHANGE if set(image.changed) & _recipe_files(config, image.name) else CODE_CHANGE


def _recipe_files(config: Config, name: str) -> set[str]:
    """The files that say what an image is built from, short of its code."""
    spec = config.image(name)
    return {CONFIG_NAME, spec.dockerfile, spec.dockerignore, *spec.wheels}
