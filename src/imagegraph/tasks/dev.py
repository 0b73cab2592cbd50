"""Tasks of the devcontainer: `invoke dev.image` (host), `dev.post-create` (inside it), `dev.up`, `dev.pre-commit`.

Wiring only: the decisions are in :mod:`imagegraph.adapters.devcontainer`, which each task loads
when it runs (other tasks, `invoke plan` say, do not pay for it).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from invoke import Collection, task

from ..adapters.runner import Command, CommandResult, Runner
from ..core.errors import ImagegraphError, ToolMissing
from ..core.values import escaped, parse_reference
from ..workspace import Workspace, find_root
from ._common import build_options, say, user_errors

__all__ = ["image", "ns", "post_create", "pre_commit", "up"]


@task(help={
    "tag": "the local tag to give the image (default: the \"image\" of .devcontainer/devcontainer.json)",
    "registry": "look up in / push to this registry instead of images.yaml's (also $IMAGEGRAPH_REGISTRY)",
})
@user_errors
def image(c, tag=None, registry=None):
    """Resolve the devcontainer's image: prebuilt, local or built.

    This checkout's devcontainer image from the plan: pulled when the registry
    has its fingerprint, the engine's own when only it has it, else built
    (its parent comes from the registry). Then tagged as devcontainer.json's
    "image"; devcontainer.json runs this as its initializeCommand.
    """
    from ..adapters.devcontainer import IMAGE, describe_image, image_source, read_image_tag  # loaded by this task only

    workspace = Workspace(options=build_options(registry=registry, target=(IMAGE,)))
    tag = read_image_tag(workspace.root) if tag is None else parse_reference(tag, "--tag")
    plan = workspace.plan(say=say)
    entry = plan.image(IMAGE)
    if plan.to_build():
        workspace.check_platforms(plan)
        say(f"builder: {workspace.builder.describe()}")
    with workspace.registry_login():
        for result in workspace.executor(say=say).run(plan):
            if not result.ok:
                raise ImagegraphError(result.failure)
        if not workspace.local.has(entry.ref):
            say(f"pulling {entry.ref}")
            workspace.runner.run(Command.of("docker", "pull", "--quiet", entry.ref))
    workspace.runner.run(Command.of("docker", "tag", entry.ref, tag))
    print(escaped(describe_image(image_source(entry), entry.ref, tag)))


@task(name="post-create", help={
    "host": "run outside the devcontainer too: install into this machine's Python, set this checkout's core.hooksPath",
})
@user_errors
def post_create(c, host=False):
    """Set up the devcontainer: install, git hooks, check tools.

    Runs inside the container (devcontainer.json's postCreateCommand): an
    editable install of the checkout (--no-deps: the image has them all),
    core.hooksPath = .githooks, the engine's socket for this user; then a table
    of the tools, and one error line for the first that does not work.
    Writes into the checkout are made as the checkout's owner.
    """
    from ..adapters.devcontainer import (
        format_tools,
        in_devcontainer,
        observe_container,
        post_create_steps,
        probes,
        read_probe,
        tool_problem,
    )

    if not host and not in_devcontainer():
        raise ImagegraphError("dev.post-create sets up the devcontainer (an install into its Python, this checkout's git config) "
                              "and this is not it: open the devcontainer (`invoke dev.up`), or pass --host to do the same here")
    root = find_root()
    runner = Runner()
    log = Path.home() / ".cache" / "imagegraph" / "post-create.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    container = observe_container(root, runner)
    for step in post_create_steps(container):
        print(f"- {step.what}")
        runner.run(step.command, log_path=log)
    checks = [read_probe(probe, _probe(runner, probe.command, log)) for probe in probes(container)]
    print(format_tools(checks))
    problem = tool_problem(checks)
    if problem:
        raise ImagegraphError(problem)


def _probe(runner: Runner, command: Command, log: Path) -> CommandResult:
    try:
        return runner.run(command, check=False, log_path=log)
    except ToolMissing:
        return CommandResult(127, f"{command.argv[0]}: not installed or not on PATH")


@task(help={"rebuild": "remove this checkout's devcontainer first, so it is created anew (post-create runs again)"})
@user_errors
def up(c, rebuild=False):
    """Bring the devcontainer up with the Dev Containers CLI.

    What an editor does when it opens the folder: `invoke dev.image`, the
    container, then `invoke dev.post-create` inside it.
    """
    from ..adapters.devcontainer import find_cli, up_command

    cli = find_cli()
    if cli is None:
        raise ToolMissing("the Dev Containers CLI is not installed: `npm install --global @devcontainers/cli` "
                          "(or run `nox -s devcontainer` once, which installs it into ~/.cache/imagegraph)")
    root = find_root()
    Runner().run(up_command(cli, root, rebuild=rebuild), on_line=print)
    print(f"\na shell in it: {cli} exec --workspace-folder {root} bash")


@task(name="pre-commit")
@user_errors
def pre_commit(c):
    """Lint the staged Python files with ruff (the git hook).

    What .githooks/pre-commit runs; `git commit --no-verify` skips it once.
    """
    from ..adapters.devcontainer import lint_command, staged_python
    from ..adapters.repo import Repository

    repo = Repository(find_root())
    runner = Runner()
    paths = staged_python(repo.staged())  # named from the top level, where ruff runs
    if not paths:
        return
    if importlib.util.find_spec("ruff") is None:
        raise ToolMissing(f"ruff is not installed for {sys.executable}: `python -m pip install -e '.[dev]'`")
    result = runner.run(lint_command(sys.executable, paths, repo.top), check=False)
    print("".join(f"{escaped(line)}\n" for line in result.output.splitlines()), end="")  # ruff names the files
    if result.returncode != 0:
        raise ImagegraphError(f"ruff found problems in {len(paths)} staged file(s), listed above: fix them "
                              "(`ruff check --fix` fixes some), stage them, commit again")


ns = Collection("dev", image, post_create, up, pre_commit)
