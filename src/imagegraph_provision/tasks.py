"""Tasks that make the container engine usable: `invoke engine.up`, `engine.status`, `engine.down`, `engine.builder`.

Wiring only: the work is in :mod:`imagegraph_provision.setup` (and :mod:`imagegraph_provision.builder`).
"""

from __future__ import annotations

import os
from pathlib import Path

from invoke import Collection, task

from imagegraph.core.config import load_config
from imagegraph.core.defaults import CONFIG_NAME, DEFAULT_REGISTRY
from imagegraph.core.errors import ImagegraphError, InputError
from imagegraph.core.options import platforms_from_env
from imagegraph.core.values import Platform, escaped, parse_builder_name, parse_platforms, parse_registry, shown, split_list
from imagegraph.tasks._common import user_errors

from .builder import CONTAINER_BUILDER

__all__ = ["builder", "down", "ns", "status", "up"]

_REGISTRY_HELP = f"the local registry, HOST:PORT (default {DEFAULT_REGISTRY})"
_STATE_HELP = "where pids, logs and the registry's data live (default /var/lib/imagegraph as root, else ~/.local/state/imagegraph)"


def _platforms(values: list[str] | None, seed: bool) -> tuple[Platform | str, ...]:
    """What to seed for, parsed once here: the flags, else $IMAGEGRAPH_PLATFORMS, else images.yaml, else this machine."""
    # Repeated flags and comma lists alike: --platforms linux/amd64 --platforms linux/arm64 == --platforms linux/amd64,linux/arm64
    items = tuple(item for value in values or () for item in split_list(value, "--platforms", "--platforms linux/amd64,linux/arm64"))
    if items:
        return parse_platforms(items, "--platforms")
    if not seed:
        return ()
    from .seed import native_platform, seed_platforms

    wanted, source = seed_platforms(platforms_from_env(os.environ), _family_platforms(), native_platform())
    print(f"engine: seeding for {', '.join(wanted)} (from {source}; `invoke engine.up --platforms P` adds more)")
    return wanted


def _family_platforms() -> tuple[str, ...] | None:
    """Every platform images.yaml (in this folder) declares; None without one. A broken file is `invoke plan`'s to report."""
    if not Path(CONFIG_NAME).is_file():
        return None
    try:
        config = load_config(Path.cwd())
    except ImagegraphError as err:
        print(f"engine: {CONFIG_NAME} is not readable ({escaped(str(err))}); seeding for this machine's platform only")
        return None
    return tuple(platform for spec in config.images for platform in spec.platforms)


def _registry(text: str) -> str:
    """The local registry is HOST:PORT: engine.up serves it, so it has no path."""
    address = parse_registry(text, "--registry")
    if address.path or address.port is None:
        raise InputError("--registry", f"{shown(text)} is not HOST:PORT; the local registry is served at a port, e.g. {DEFAULT_REGISTRY}")
    return str(address)


def _folder(text: str | None, flag: str) -> str | None:
    if text is not None and not text.strip():
        raise InputError(flag, "is empty; name a directory, or leave the flag out for the default")
    return text


@task(
    iterable=["platforms"],
    help={
        "seed": "build and push the offline python:3.11-slim into the registry when it lacks it (--no-seed to skip)",
        "registry": _REGISTRY_HELP,
        "platforms": ("platforms to seed python:3.11-slim for (repeatable, or comma list; default: $IMAGEGRAPH_PLATFORMS, "
                      "else every platform images.yaml declares, else this machine's)"),
        "state-dir": _STATE_HELP,
        "cache-dir": "where seed root filesystems are cached (default ~/.cache/imagegraph/seed)",
        "image-store": "containerd or classic: the image store of the dockerd it starts (default containerd); restarts its own dockerd to switch",
    },
)
@user_errors
def up(c, seed=True, registry=DEFAULT_REGISTRY, platforms=None, state_dir=None, cache_dir=None, image_store=None):
    """Start (or reuse) the engine, registry and emulation.

    Installs what is missing (as root on Debian/Ubuntu), starts dockerd, a
    local registry on 127.0.0.1 and QEMU emulation, and seeds
    python:3.11-slim offline. A running engine or registry is reused as is.
    """
    from .setup import engine_up

    status = engine_up(registry=_registry(registry), seed=seed, platforms=_platforms(platforms, seed), state_dir=_folder(state_dir, "--state-dir"),
                       cache_dir=_folder(cache_dir, "--cache-dir"), image_store=image_store or None)
    print()
    print("\n".join(map(escaped, status.lines())))


@task(help={"registry": _REGISTRY_HELP, "state-dir": _STATE_HELP})
@user_errors
def status(c, registry=DEFAULT_REGISTRY, state_dir=None):
    """Show the engine, registry and emulation; change nothing.

    Also the registry mirror, the seeded base image, the docker clients and
    which builder `build` would use.
    """
    from .setup import engine_status

    print("\n".join(map(escaped, engine_status(registry=_registry(registry), state_dir=_folder(state_dir, "--state-dir")).lines())))


@task(help={"state-dir": _STATE_HELP})
@user_errors
def down(c, state_dir=None):
    """Stop what `engine.up` started (never what it reused)."""
    from .setup import engine_down

    engine_down(state_dir=_folder(state_dir, "--state-dir"))


@task(help={
    "name": f"the builder's name (default {CONTAINER_BUILDER})",
    "registry": _REGISTRY_HELP + "; a loopback one is reached over plain HTTP",
    "state-dir": _STATE_HELP,
})
@user_errors
def builder(c, name=CONTAINER_BUILDER, registry=DEFAULT_REGISTRY, state_dir=None):
    """Create a docker-container buildx builder (only when asked).

    It runs the image moby/buildkit, which must be pullable or loaded; if
    it cannot start, it is removed again and the error says what to do.
    Build on it with `invoke build --builder NAME`.
    """
    from imagegraph.adapters.runner import Runner

    from .builder import create_container_builder
    from .state import default_state_dir

    create_container_builder(Runner(), parse_builder_name(name, "--name"), registry=str(_registry(registry)),
                             config_dir=Path(_folder(state_dir, "--state-dir") or default_state_dir()), say=print)


ns = Collection("engine", up, status, down, builder)
