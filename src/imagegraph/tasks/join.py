"""The join task: the images each platform's run pushed apart become one image per fingerprint, then the branch tags move."""

from __future__ import annotations

import time

from invoke import task

from ..core.join import JoinState
from ..core.tags import Outcome, TagMoves
from ..core.values import escaped
from ..presentation.tables import table
from ..workspace import Workspace
from ._common import build_options, say, user_errors
from .build import _SELECT_HELP, _tag_state


@task(
    iterable=["target", "platform", "force"],
    help={
        "target": "join only this image and the images it stands on (repeatable, or comma list)",
        "force": "join this image and its dependents afresh from their parts even where the fingerprint tag names every "
                 "platform: after `invoke build --only-platform P --force IMAGE` rebuilt the parts (repeatable)",
        "platform": "the --platform the platform runs were given, if any: it is part of every fingerprint",
        "registry": _SELECT_HELP["registry"],
        "since": _SELECT_HELP["since"],
        "dry-run": "print what each image's join would be; write nothing, move no tags",
        "no-tags": "write the joined images but move no branch tags (edge, sha-, pr-)",
    },
)
@user_errors
def join(c, target=None, platform=None, registry=None, since=None, dry_run=False, no_tags=False, force=None):
    """Join each image's platforms, pushed apart, into one image.

    The runs of each platform push every image's part under its platform
    tag (<fingerprint>-arm64, ...). The join writes each image's index of
    them (their attestations kept) to the fingerprint tag, reads it back,
    then moves the branch tags as `invoke build` does. An image already
    joined is left as it is; a platform not pushed yet refuses the whole
    join, naming the run that pushes it, and nothing is written.
    """
    from ..joining import join as join_images
    from ..publishing import publish_tags

    started = time.monotonic()
    workspace = Workspace(options=build_options(registry=registry, platform=platform, target=target, since=since, force=force))
    joined = join_images(workspace, dry_run=dry_run, clock=time.monotonic, say=say)
    if dry_run or no_tags:
        moves = TagMoves(Outcome.UNCHANGED, f"tags: none moved ({'dry run' if dry_run else '--no-tags'})")
    else:
        moves = publish_tags(workspace, joined.results, joined.plan, say=say, command="invoke join")
    steps = {step.name: step for step in joined.decided.steps}
    rows = []
    for result in joined.results:
        step = steps[result.name]
        done = ("would join" if dry_run else "joined") if step.state is JoinState.JOIN else "already joined"
        rows.append((result.name, ", ".join(step.platforms), str(step.attestations), (result.digest or "")[:19] + "...", done))
    print(table(("image", "platforms", "attestations", "digest", "join"), rows))
    for image, tags in moves.tagged.items():
        if tags:
            print(escaped(f"{image}: tagged {', '.join(tags)}"))
    written = len(joined.decided.to_write)
    if dry_run:
        print(f"\ndry run: {written} index(es) would be written; nothing written")
    elif written:
        print(f"\njoined {written} image(s) in {joined.seconds:.2f}s ({time.monotonic() - started:.2f}s in all); "
              f"each fingerprint tag read back names the index written")
    else:
        print(f"\nnothing to join: every image's fingerprint tag already names all its platforms ({time.monotonic() - started:.2f}s)")
    _tag_state(moves.line, moves.ok)
