"""README command 1 on a machine made fresh again: how long a new user waits, phase by phase.

    python bench/readme_setup.py --disposable [--platforms linux/amd64]

A new machine has no engine, no registry, no seeded base image, no wheels
and no build cache. This takes everything `invoke engine.up` installs and
starts away again (it stops imagegraph's dockerd and registry, purges their
packages, apt's download cache, their data and imagegraph's caches), then
runs the README's first command in a fresh clone of this checkout, one
phase after the other, and prints each phase's time:

- pip: `python3 -m pip install -e '.[dev]'` (pip's own cache stays: a new
  machine has the packages closer than PyPI, so this phase is the least
  faithful);
- engine.up: packages, dockerd, registry, emulation, the seed;
- build: the image family, built and pushed.

It destroys the engine's images, volumes and the registry's content: run it
only on a machine that holds nothing else (hence `--disposable`). Root only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("docker.io", "docker-cli", "containerd", "docker-buildx", "docker-registry", "qemu-user-static", "binfmt-support", "debootstrap")
#: What engine.up and builds leave behind, besides the packages.
LEFT_BEHIND = (
    "/var/lib/docker", "/var/lib/containerd", "/var/lib/imagegraph", "/etc/docker", "/run/docker", "/var/run/docker.sock",
    "/etc/apt/sources.list.d/trixie.list", "/etc/apt/preferences.d/trixie", str(Path.home() / ".cache" / "imagegraph"),
)


def run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True) -> float:
    started = time.monotonic()
    subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, check=check)
    return time.monotonic() - started


def make_fresh(checkout: Path) -> None:
    """Stop and remove what engine.up installed and started, and what builds cached."""
    run([sys.executable, "-m", "invoke", "engine.down"], cwd=checkout, check=False)
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "purge", "-y", "-qq", *PACKAGES], env=env, check=False)
    run(["apt-get", "autoremove", "-y", "-qq"], env=env, check=False)
    run(["apt-get", "clean"], check=False)
    for path in LEFT_BEHIND:
        target = Path(path)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink()
    run(["apt-get", "update", "-qq"], env=env, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--disposable", action="store_true", help="this machine holds nothing else: its engine may be destroyed")
    parser.add_argument("--platforms", default="linux/amd64", help="IMAGEGRAPH_PLATFORMS for the run (default linux/amd64, as in the README)")
    args = parser.parse_args()
    if not args.disposable or os.geteuid() != 0:
        raise SystemExit("this destroys the engine's images and the registry's content: run it as root with --disposable, "
                         "on a machine that holds nothing else")
    make_fresh(ROOT)
    with tempfile.TemporaryDirectory(prefix="readme-setup-") as folder:
        clone = Path(folder) / "checkout"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {"IMAGEGRAPH_PLATFORMS": args.platforms}
        phases = {
            "pip": run([sys.executable, "-m", "pip", "install", "-q", "-e", ".[dev]"], cwd=clone),
            "engine.up": run([sys.executable, "-m", "invoke", "engine.up"], cwd=clone, env=env),
            "build": run([sys.executable, "-m", "invoke", "build"], cwd=clone, env=env),
        }
        # the clone's editable install must not outlive the clone
        run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)], check=False)
    for phase, seconds in phases.items():
        print(f"{phase:10} {seconds:7.1f} s")
    print(f"{'total':10} {sum(phases.values()):7.1f} s  (README command 1, IMAGEGRAPH_PLATFORMS={args.platforms})")


if __name__ == "__main__":
    main()
