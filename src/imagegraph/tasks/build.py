"""Tasks that plan and build the image family."""

from __future__ import annotations

import time

from invoke import Exit, task

from ..report import format_plan, format_results
from ..workspace import Workspace
from ._common import build_options, user_errors

_SELECT_HELP = {
    "target": "build only this image and the images it stands on (repeatable, or comma list)",
    "force": "rebuild this image and its dependents even if their fingerprint tags exist (repeatable)",
    "platform": "build for this platform instead of each image's declared ones, e.g. linux/amd64 (repeatable)",
    "registry": "push to / look up in this registry instead of images.yaml's (also $IMAGEGRAPH_REGISTRY)",
}


@task(
    iterable=["force", "target", "platform"],
    help={
        **_SELECT_HELP,
        "no-cache": "build without the builder's layer cache",
        "dry-run": "print the plan and stop; build and push nothing",
        "jobs": "how many images may build at the same time (default 2)",
        "builder": "buildx or engine (default: buildx when installed, else the engine's BuildKit)",
    },
)
@user_errors
def build(c, force=None, target=None, platform=None, no_cache=False, dry_run=False, jobs=2, registry=None, builder=None):
    """Build the images whose fingerprints are new, parents first, and push them."""
    started = time.monotonic()
    workspace = Workspace(options=build_options(registry=registry, platform=platform, force=force, target=target,
                                                no_cache=no_cache, jobs=jobs, builder=builder))
    plan = workspace.plan()
    print(f"registry: {workspace.config.registry}")
    if dry_run:
        print(format_plan(plan))
        return
    if plan.to_build():
        print(f"builder: {workspace.builder.describe()}")
    results = workspace.executor().run(plan)
    print()
    print(format_results(results))
    print(f"\n{sum(1 for r in results if r.seconds)} image(s) built or pushed in {time.monotonic() - started:.1f}s")
    failed = [r for r in results if not r.ok]
    if failed:
        first = failed[0]
        raise Exit(f"error: {first.name}: {first.error}" + (f" (log: {first.log})" if first.log else ""), code=1)


@task(iterable=["force", "target", "platform"], help=_SELECT_HELP)
@user_errors
def plan(c, force=None, target=None, platform=None, registry=None):
    """Show what `invoke build` would do for each image, and why."""
    workspace = Workspace(options=build_options(registry=registry, platform=platform, force=force, target=target))
    print(format_plan(workspace.plan()))


@task(help={"image": "the image whose fingerprint reference to print", "platform": _SELECT_HELP["platform"],
            "registry": _SELECT_HELP["registry"]}, iterable=["platform"])
@user_errors
def ref(c, image, platform=None, registry=None):
    """Print the exact reference (registry/namespace/image:fingerprint) of an image for this checkout."""
    workspace = Workspace(options=build_options(registry=registry, platform=platform))
    print(workspace.ref(workspace.config.image(image).name))
