"""A docker-container buildx builder, made only when asked (`invoke engine.builder`).

Builds never create a builder (:mod:`imagegraph.adapters.engine.builder_choice`
uses the one named, or the current one): a docker-container builder runs the
image ``moby/buildkit``, which an offline machine cannot pull. Making one is
setting the machine up, so it lives here, beside `engine.up`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from imagegraph.adapters.engine.builder_choice import BuilderFacts, BuilderInfo, choose_builder, docker_clients, parse_inspect
from imagegraph.adapters.runner import Command, Runner
from imagegraph.core.errors import EngineError
from imagegraph.core.values import is_loopback

#: The name `invoke engine.builder` gives the docker-container builder it creates (only when asked to).
CONTAINER_BUILDER = "imagegraph"

__all__ = ["CONTAINER_BUILDER", "builder_image_missing", "buildkitd_config", "container_builder_commands", "create_container_builder"]


def create_container_builder(runner: Runner, name: str, *, registry: str | None, config_dir: Path,
                             say: Callable[[str], None]) -> BuilderInfo:
    """Make the docker-container builder ``name`` (only ever when asked: `invoke engine.builder`), started and ready.

    An existing builder of that name is left as it is. If it cannot start
    (its image ``moby/buildkit`` cannot be pulled here), the half-made
    builder is removed again and the error says what to do.
    """
    client = next((c for c in docker_clients() if runner.run(Command.of(c, "buildx", "version"), check=False).returncode == 0), None)
    if client is None:
        choose_builder(BuilderFacts(None))  # raises the one line that names the fix
        raise AssertionError("unreachable")
    existing = runner.run(Command.of(client, "buildx", "inspect", name), check=False)
    info = parse_inspect(existing.output) if existing.returncode == 0 else None
    if info is not None:
        say(f"builder {name} exists ({info.driver} driver, {info.status or 'status unknown'}); left as it is")
        return info
    config = buildkitd_config(registry)
    config_path = None
    if config:
        config_dir.mkdir(parents=True, exist_ok=True)
        config_path = config_dir / f"buildkitd-{name}.toml"
        config_path.write_text(config)
    create, bootstrap = container_builder_commands(client, name, config_path)
    runner.run(create)
    say(f"builder {name} created (docker-container driver, host network); starting it")
    started = runner.run(bootstrap, check=False)
    if started.returncode != 0:
        runner.run(Command.of(client, "buildx", "rm", name), check=False)
        image = builder_image_missing(started.output) or "moby/buildkit"
        raise EngineError(
            f"the docker-container builder {name} needs the image {image}, which cannot be pulled here; "
            f"load it into the engine (`docker load`) and run `invoke engine.builder` again, or build on the current builder "
            f"(drop --builder / $BUILDX_BUILDER); the half-made builder was removed"
        )
    info = parse_inspect(started.output) or BuilderInfo(name, "docker-container")
    say(f"builder {name} runs; build on it with `invoke build --builder {name}` (or BUILDX_BUILDER={name})")
    return info


def container_builder_commands(client: str, name: str, config_path: Path | None) -> tuple[Command, ...]:
    """Create (asked for explicitly: `invoke engine.builder`) a docker-container builder and start it.

    Host networking, so that it reaches a registry on 127.0.0.1; ``config_path``
    is a buildkitd.toml (see :func:`buildkitd_config`) for a plain-HTTP one.
    """
    argv = [client, "buildx", "create", "--name", name, "--driver", "docker-container", "--driver-opt", "network=host"]
    if config_path is not None:
        argv += ["--buildkitd-config", str(config_path)]
    hint = f"buildx could not create the builder {name}"
    bootstrap_hint = (
        f"the builder {name} could not start; a docker-container builder runs the image moby/buildkit, which must be "
        f"pullable or loaded (`docker load`); remove it with `docker buildx rm {name}` and build on the current builder instead"
    )
    return (Command.of(*argv, hint=hint), Command.of(client, "buildx", "inspect", "--bootstrap", name, hint=bootstrap_hint))


#: How BuildKit says that it could not get the image a container-based builder runs.
_BUILDER_IMAGE = re.compile(r"moby/buildkit[:@]\S*")


def builder_image_missing(reason: str) -> str | None:
    """The builder image a failure could not pull (``moby/buildkit:buildx-stable-1``), if that is why it failed."""
    if "failed to resolve" not in reason and "pull" not in reason and "not found" not in reason:
        return None
    match = _BUILDER_IMAGE.search(reason)
    return match.group(0).rstrip("\"',:") if match else None


def buildkitd_config(registry: str | None) -> str:
    """buildkitd.toml for a container builder: plain HTTP for a loopback registry (as dockerd assumes for 127.0.0.0/8)."""
    if registry and is_loopback(registry):
        return f'[registry."{registry}"]\n  http = true\n  insecure = true\n'
    return ""
