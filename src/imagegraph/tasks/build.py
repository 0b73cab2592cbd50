"""Tasks that plan and build the image family."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from invoke import Exit, task

from ..adapters.interrupt import Interrupted, Stop, exit_code, signal_name
from ..adapters.runlock import BuildLock
from ..adapters.runner import Runner
from ..core.defaults import STATE_DIR
from ..core.errors import ConfigError, ImagegraphError, InputError
from ..core.plan import Decision, Plan
from ..core.values import escaped, parse_duration, shown
from ..presentation.ci_matrix import affected_matrix, github_outputs
from ..presentation.tables import (
    format_explanation,
    format_plan,
    format_results,
    format_retention,
    format_tags,
    garbage_collection_hint,
    table,
)
from ..workspace import Workspace
from ._common import build_options, count_flag, error_line, say, user_errors

_SELECT_HELP = {
    "target": "build only this image and the images it stands on (repeatable, or comma list)",
    "force": "rebuild this image and its dependents even if their fingerprint tags exist (repeatable)",
    "platform": "build for this platform instead of each image's declared ones, e.g. linux/amd64 (repeatable)",
    "registry": "push to / look up in this registry instead of images.yaml's (also $IMAGEGRAPH_REGISTRY)",
    "since": "compare with this git ref (branch, tag, commit); default: the CI event's base, else the merge base with the default branch",
}
_ONLY_PLATFORM_HELP = ("build only this platform of each image (one runner per platform), pushed under <fingerprint>-<platform> "
                       "for `invoke join`, which makes the images and moves the tags; fingerprints stay the declared platforms'")


@task(
    iterable=["force", "target", "platform"],
    help={
        **_SELECT_HELP,
        "no-cache": "build without the builder's layer cache",
        "dry-run": "print the plan and stop; build and push nothing",
        "jobs": "how many images may build at the same time (default 2)",
        "builder": "the buildx builder to build on, e.g. a team's shared BuildKit (default: $BUILDX_BUILDER, images.yaml's builder:, else the current one)",
        "push-pr": "on a pull request, push its pr-<N> tags too (by default they are built and tested only)",
        "no-registry-cache": "neither read nor write the registry cache (<image>:buildcache tags); the local cache still counts",
        "progress": "auto (a live status line on a terminal, plain lines elsewhere), tty or plain",
        "no-tags": "move no branch tags (edge, sha-, pr-): for CI jobs that build one image each and leave tagging to a job that sees the whole family",
        "only-platform": _ONLY_PLATFORM_HELP,
    },
)
@user_errors
def build(c, force=None, target=None, platform=None, no_cache=False, dry_run=False, jobs=None, registry=None, builder=None, since=None,
          push_pr=False, no_registry_cache=False, progress="auto", no_tags=False, only_platform=None):
    """Build, push and tag the images whose inputs changed.

    Images whose fingerprint tag is already in the registry are reused; the
    rest build parents first, independent ones in parallel, and are pushed.
    Then the branch tags move (edge and sha-<7> on the default branch, pr-<N>
    when asked) and a report is written to .imagegraph/reports/ (and to
    $GITHUB_STEP_SUMMARY in GitHub Actions): see `invoke report`.
    """
    started = time.monotonic()
    started_at = datetime.now(UTC)
    if progress not in ("auto", "tty", "plain"):
        raise InputError("--progress", f"{shown(progress)} is not auto, tty or plain; e.g. --progress plain")
    stop = Stop()
    try:
        with stop.handling():
            workspace = Workspace(options=build_options(registry=registry, platform=platform, force=force, target=target,
                                                        no_cache=no_cache, jobs=jobs, builder=builder, since=since, push_pr=push_pr,
                                                        registry_cache=not no_registry_cache, only_platform=only_platform),
                                  runner=Runner(stop=stop))
            workspace.check_only_platform()
            with BuildLock(workspace.root / STATE_DIR, within=workspace.root, say=say):
                plan = workspace.plan(say=say)
                print(f"registry: {workspace.config.registry}")
                print(format_explanation(plan.explanation))
                for warning in plan.warnings:
                    say(f"warning: {warning}")
                if dry_run:
                    named = workspace.check_named_builder(plan)
                    if named:
                        print(f"builder: {named}")
                    print(format_plan(plan))
                    print(format_tags(plan))
                    return
                if plan.to_build():
                    workspace.check_platforms(plan)
                    print(f"builder: {workspace.builder.describe()}")
                with stop.piecewise():
                    _execute(workspace, plan, stop, progress=progress, no_tags=no_tags, started=started, started_at=started_at)
    except Interrupted as err:
        raise Exit(f"interrupted: {signal_name(err.signum)} before any image started; nothing built, no tags moved, no report",
                   code=exit_code(err.signum)) from None


def _execute(workspace: Workspace, plan: Plan, stop: Stop, *, progress: str, no_tags: bool, started: float, started_at: datetime) -> None:
    """Build, tag and report: a stop (SIGINT, SIGTERM) ends the running builds, moves no tag and still writes the report."""
    from ..core.result import INTERRUPTED  # the executor and its progress board load only when something is built
    from ..presentation.progress import Progress
    from ..publishing import publish_tags

    board = Progress(live={"auto": None, "tty": True, "plain": False}[progress])
    with workspace.registry_login():
        results = workspace.executor(progress=board).run(plan)
    if stop.requested:
        workspace.git.restart_helpers()
    part = workspace.only_platform
    no_tags = no_tags or part is not None
    untouched = f"tags: none moved (a run of {part} alone: `invoke join` moves them)" if part else "tags: none moved (--no-tags)"
    moves = None if no_tags or stop.requested else publish_tags(workspace, results, plan, say=say)
    tagged = moves.tagged if moves else {}
    print()
    print(format_results(results))
    for image, tags in tagged.items():
        if tags:
            print(escaped(f"{image}: tagged {', '.join(tags)}"))
    seconds = time.monotonic() - started
    failed = [r for r in results if not r.ok]
    done = sum(1 for r in results if r.ok and (r.decision is Decision.BUILD or r.pushed))
    print(f"\n{done} image(s) built or pushed{f', {len(failed)} failed' if failed else ''} in {seconds:.1f}s")
    report = None
    try:
        path, _ = workspace.reporting.save(workspace.reporting.report(plan, results, tagged, started=started_at, seconds=seconds))
        report = str(path.relative_to(workspace.root))
        print(f"report: {report} (and .md); `invoke report` compares it with earlier runs")
    except ImagegraphError as err:  # the images are built and pushed: a report must not fail the build
        say(f"warning: no build report written: {err}")
    except OSError as err:
        say(f"warning: no build report written ({err.filename or 'the report'}: {err.strerror}); "
              f"check that {STATE_DIR}/reports/ is writable and its disk has space")
    if stop.signum is not None:
        interrupted = [r.name for r in results if r.stopped == INTERRUPTED]
        moved = "; tags moved: " + ", ".join(tagged) if any(tagged.values()) else ", no tags moved"
        raise Exit(escaped(f"interrupted: {signal_name(stop.signum)}; stopped {', '.join(interrupted) or 'nothing'}{moved}; "
                           f"report: {report or 'not written (see the warning above)'}"), code=exit_code(stop.signum))
    if failed:
        print(escaped(moves.line) if moves else untouched)
        raise Exit(error_line(failed[0].failure), code=1)
    _tag_state(moves.line if moves else untouched, moves is None or moves.ok)


def _tag_state(line: str, ok: bool) -> None:
    """The one line that says in which state the tags are: printed, or the run's error when the move failed."""
    if not ok:
        raise Exit(error_line(line), code=1)
    print(escaped(line))


@task(iterable=["force", "target", "platform"], help={
    **_SELECT_HELP,
    "json": "print the plan as JSON (for machines)",
    "bake": "also write a `docker buildx bake` file (JSON) of the images to build, and fetch their wheels: `docker buildx bake -f FILE`",
    "no-registry-cache": "leave the registry cache (<image>:buildcache) out of the bake file",
    "only-platform": _ONLY_PLATFORM_HELP,
})
@user_errors
def plan(c, force=None, target=None, platform=None, registry=None, since=None, json_=False, bake=None, no_registry_cache=False,
         only_platform=None):
    """Show what `build` would do for each image, and why.

    Asks git what changed since the base commit and the registry which
    fingerprint tags exist; builds nothing. With --bake FILE, writes the
    images to build as a bake definition any buildx builder can run.
    """
    workspace = Workspace(options=build_options(registry=registry, platform=platform, force=force, target=target, since=since,
                                                registry_cache=not no_registry_cache, only_platform=only_platform))
    workspace.check_only_platform()
    result = workspace.plan(say=say)
    if bake:
        path = Path(bake)
        with BuildLock(workspace.root / STATE_DIR, within=workspace.root, say=say):  # it assembles contexts and fetches wheels as a build does
            definition = workspace.bake(result, path, say=say)
        names = ", ".join(definition["target"]) or "nothing"
        say(f"bake file: {path} builds {names}; run `docker buildx bake -f {path}` (images are pushed to their fingerprint tags)")
    if json_:
        print(json.dumps(result.to_dict(), indent=2))
        return
    print(format_explanation(result.explanation))
    print(format_plan(result))
    print(format_tags(result))
    for warning in result.warnings:
        say(f"warning: {warning}")


def _write_step_outputs(outputs: dict[str, str]) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        raise ConfigError("--github-output", "$GITHUB_OUTPUT is not set (GitHub Actions sets it for each step); elsewhere use --json")
    with open(path, "a", encoding="utf-8") as out:
        out.writelines(f"{name}={value}\n" for name, value in outputs.items())
    say(f"step outputs: {', '.join(outputs)}")


@task(
    iterable=["force", "target", "platform"],
    help={
        **{k: v for k, v in _SELECT_HELP.items() if k != "registry"},
        "json": 'print {"images": [...], "matrix": {"include": [...]}, "levels": [...], "join": {...}, ...} for CI job matrices',
        "github-output": "also write step outputs to $GITHUB_OUTPUT: images; per depth level-<depth> (a job per image) and "
                         "level-<depth>-platforms (a job per image and platform, with images.yaml's runners:); join",
    },
)
@user_errors
def affected(c, since=None, force=None, target=None, platform=None, json_=False, github_output=False):
    """List the images a change needs built (from git alone).

    Parents first; the registry is not asked. --json prints the CI jobs of
    each depth of the family, for workflows to fan out on: one per image, or,
    with `runners:` in images.yaml, one per image and platform on its runner
    and then the join.
    """
    workspace = Workspace(options=build_options(platform=platform, force=force, target=target, since=since))
    explanation, entries = workspace.affected(say=say)
    options = workspace.options
    matrix = affected_matrix(workspace.config, explanation, entries, platforms=[str(p) for p in options.platforms], force=options.force,
                             since=options.since)
    if github_output:
        _write_step_outputs(github_outputs(matrix))
    if json_:
        print(json.dumps(matrix, indent=2))
        return
    say(format_explanation(explanation))
    for entry in entries:
        print(escaped(entry.name))


@task(help={
    "version": "release this version (vX.Y.Z or vX.Y.Z-rc.N) instead of the version tag at HEAD / in $GITHUB_REF",
    "dry-run": "print the tags each image would get; move none",
    "force": "replace a version tag the registry already has on another digest (refused without it; the note names the old digest)",
    "registry": _SELECT_HELP["registry"],
    "platform": _SELECT_HELP["platform"],
}, iterable=["platform"])
@user_errors
def release(c, version=None, dry_run=False, force=False, registry=None, platform=None):
    """Promote this commit's images to the version's tags.

    The version comes from the tag at HEAD (or $GITHUB_REF, or --version);
    X.Y.Z, X.Y and latest are copied from the fingerprint tags inside the
    registry: nothing is rebuilt and every digest stays the same.
    """
    from ..release import release as promote

    started = time.monotonic()
    workspace = Workspace(options=build_options(registry=registry, platform=platform))
    promotions, moves = promote(workspace, version=version, dry_run=dry_run, force=force, say=say)
    tagged = moves.tagged
    rows = [(p.image, p.source, (p.digest or "")[:19] + "...", ", ".join(p.names if dry_run else tagged.get(p.image, ())) or "-")
            for p in promotions]
    print(table(("image", "from", "digest", "would get" if dry_run else "tagged"), rows))
    if not dry_run and moves.ok:
        print(f"\nreleased {len(promotions)} image(s) in {time.monotonic() - started:.2f}s: nothing rebuilt, digests unchanged")
    _tag_state(moves.line, moves.ok)


@task(help={"image": "the image whose fingerprint reference to print", "platform": _SELECT_HELP["platform"],
            "registry": _SELECT_HELP["registry"]}, iterable=["platform"])
@user_errors
def ref(c, image, platform=None, registry=None):
    """Print an image's exact reference for this checkout.

    registry/namespace/image:fingerprint, e.g. for `docker run` or a
    devcontainer; whether that image was built yet is not checked.
    """
    workspace = Workspace(options=build_options(registry=registry, platform=platform))
    print(workspace.ref(workspace.config.image(image, "invoke ref IMAGE").name))


@task(
    iterable=["protect"],
    help={
        "keep": "how many versions / builds to keep per image beyond the protected ones (default: images.yaml retention: keep, else 10)",
        "protect": "never delete tags matching this pattern, e.g. 'stable-*' (repeatable; adds to images.yaml retention: protect)",
        "yes": "delete what the table lists (without it, nothing is deleted: a dry run)",
        "grace": "delete only what an earlier `cleanup --yes` found doomed at least this long ago, e.g. 30m, 1h, 7d (default 1h; 0: now)",
        "show-kept": "list what stays too, with the reason",
        "registry": _SELECT_HELP["registry"],
    },
)
@user_errors
def cleanup(c, keep=None, protect=None, yes=False, grace=None, show_kept=False, registry=None):
    """Delete old images from the registry (dry run unless --yes).

    Keeps, per image, the N newest versions and builds, every protected tag
    (latest, the edge tag, buildcache*, --protect patterns), the newest
    release, and everything a kept image needs (its platform manifests and
    its bases). Prints what goes and why; --yes deletes it, indexes first:
    what an earlier run found doomed at least --grace ago, and nothing tagged
    since cleanup looked. Every kept tag is read back afterwards, and every
    tag of what it deleted from. It holds the registry lease that releases
    and tag moves take too, so none of them runs in between.
    """
    from ..cleanup import DEFAULT_GRACE
    from ..cleanup import cleanup as prune_registry

    started = time.monotonic()
    kept = None if keep is None else count_flag(keep, "--keep", default=10)
    patterns = tuple(_pattern(p) for p in protect or ())
    wait = DEFAULT_GRACE if grace is None else parse_duration(grace, "--grace")
    workspace = Workspace(options=build_options(registry=registry))
    pruning = prune_registry(workspace, keep=kept, protect=patterns, apply=yes, grace=wait, say=say)
    verdicts = pruning.verdicts
    if pruning.api is not None and pruning.api.kind.value != "distribution":
        print(f"through {pruning.api.name} ({pruning.api.why})")
    print(format_retention(verdicts, show_kept=show_kept))
    doomed = [v for v in verdicts if not v.keep and not v.manifest.record]
    if not doomed:
        print("\nnothing to delete")
    elif not yes:
        print(f"\ndry run: nothing deleted. Delete these {len(doomed)} manifest(s) with `invoke cleanup --yes`")
    else:
        images = [m for m in pruning.deleted if not m.record]
        sent = ", ".join(f"{count} to {api}" for api, count in pruning.requests)
        print(f"\ndeleted {len(images)} manifest(s) in {time.monotonic() - started:.1f}s (indexes first; requests: {sent})")
        if pruning.collected:
            print(f"left {len(pruning.collected)} untagged manifest(s) to the registry's own garbage collection (it deletes what no "
                  f"tag names)")
        if pruning.spared:
            print(f"spared {len(pruning.spared)}: tagged after cleanup looked")
        if pruning.waiting:
            print(f"waiting {len(pruning.waiting)}: found doomed less than {_span(wait)} ago; a `cleanup --yes` from "
                  f"{_after(min(first for _, first in pruning.waiting), wait)} on deletes what is still doomed then (--grace 0: now)")
        if pruning.appeared:
            more = f" (and {len(pruning.appeared) - 1} more)" if len(pruning.appeared) > 1 else ""
            raise Exit(f"error: {pruning.appeared[0]}{more} names a digest this cleanup deleted (tagged while the DELETE ran): "
                       f"the image may be incomplete; push it again (`invoke build` on its commit, then `invoke release` for a version)",
                       code=1)
        if pruning.broken:
            raise Exit(error_line(f"after the deletions {', '.join(pruning.broken[:3])}{' and more' if len(pruning.broken) > 3 else ''} "
                                  f"no longer {'resolves' if len(pruning.broken) == 1 else 'resolve'}; push again what is gone "
                                  f"(`invoke build` on its commit, then `invoke release` for a version)"), code=1)
        print("every kept tag still resolves (read back after the deletions)")
        if pruning.deleted:
            print(garbage_collection_hint(workspace.config.registry, pruning.api.kind.value if pruning.api else "distribution"))


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _after(first: str, grace: timedelta) -> str:
    when = datetime.strptime(first, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) + grace
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _pattern(text: str) -> str:
    if not text.strip():
        raise InputError("--protect", "is empty; give a tag pattern, e.g. --protect 'stable-*'")
    return text
