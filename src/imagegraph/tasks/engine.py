"""Tasks that make the container engine usable: `invoke engine.up`, `engine.status`, `engine.down`.

Wiring only: the work is in :mod:`imagegraph.engine.setup`.
"""

from __future__ import annotations

from invoke import Collection, task

from ..engine.seed import DEFAULT_SEED_PLATFORMS
from ..engine.setup import DEFAULT_REGISTRY, engine_down, engine_status, engine_up
from ._common import user_errors

__all__ = ["down", "ns", "status", "up"]

_REGISTRY_HELP = f"the local registry, HOST:PORT (default {DEFAULT_REGISTRY})"
_STATE_HELP = "where pids, logs and the registry's data live (default /var/lib/imagegraph as root, else ~/.local/state/imagegraph)"


def _platforms(values: list[str] | None) -> tuple[str, ...]:
    # Repeated flags and comma lists alike: --platforms linux/amd64 --platforms linux/arm64 == --platforms linux/amd64,linux/arm64
    items = tuple(item.strip() for value in values or () for item in value.split(",") if item.strip())
    return items or DEFAULT_SEED_PLATFORMS


@task(
    iterable=["platforms"],
    help={
        "seed": "build and push the offline python:3.11-slim into the registry when it lacks it (--no-seed to skip)",
        "registry": _REGISTRY_HELP,
        "platforms": f"platforms to seed python:3.11-slim for (repeatable, or comma list; default {','.join(DEFAULT_SEED_PLATFORMS)})",
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
    status = engine_up(registry=registry, seed=seed, platforms=_platforms(platforms), state_dir=state_dir, cache_dir=cache_dir,
                       image_store=image_store or None)
    print()
    print("\n".join(status.lines()))


@task(help={"registry": _REGISTRY_HELP, "state-dir": _STATE_HELP})
@user_errors
def status(c, registry=DEFAULT_REGISTRY, state_dir=None):
    """Show the engine, registry and emulation; change nothing.

    Also the registry mirror, the seeded base image, the docker clients and
    which builder `build` would use.
    """
    print("\n".join(engine_status(registry=registry, state_dir=state_dir).lines()))


@task(help={"state-dir": _STATE_HELP})
@user_errors
def down(c, state_dir=None):
    """Stop what `engine.up` started (never what it reused)."""
    engine_down(state_dir=state_dir)


ns = Collection("engine", up, status, down)
