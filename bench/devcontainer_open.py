"""What the prebuilt devcontainer image saves a contributor: `invoke dev.image` (the devcontainer's initializeCommand) timed
in four situations, side by side, in interleaved rounds.

    IMAGEGRAPH_PLATFORMS=linux/amd64 python bench/devcontainer_open.py [--rounds 2]

- prebuilt, in the engine: the image of this checkout is local already (a second open);
- prebuilt, in the registry: CI pushed it, the engine lacks it (a first open): pulled, layers shared with base reused;
- built on the registry's base: the devcontainer's Dockerfile changed at its top (every step runs again), base did not;
- nothing prebuilt: a namespace of its own with no images, --no-cache: base (PyTorch) and devcontainer built and pushed,
  what opening would cost without the image family.

It prunes the engine's build cache before each first-open case. Runs in clones of this checkout under a temporary directory; the last scenario pushes to the
`bench-open` namespace of the local registry (delete it with `invoke cleanup` or leave it).
Prints the median of each, and each one's ratio to the prebuilt, in-registry case.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"`invoke {' '.join(args)}` failed in {cwd}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def clone(where: Path, name: str) -> Path:
    target = where / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    return target


def commit(repo: Path, message: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-qam", message],
                   check=True)


def ref(repo: Path, image: str = "devcontainer") -> str:
    return run(["ref", image], repo).strip().splitlines()[-1]


def forget_locally(client: docker.DockerClient, ref: str, base_ref: str) -> None:
    """Make the engine lack the devcontainer's own layers, as on a first open: every local image holding one of them goes
    (other builds of the devcontainer share them), and the build cache, which keeps them too; base's layers stay, base is
    in the engine on such a machine too."""
    own = set(client.images.get(ref).attrs["RootFS"]["Layers"]) - set(client.images.get(base_ref).attrs["RootFS"]["Layers"])
    holders = [image for image in client.images.list(all=True) if own & set(image.attrs["RootFS"].get("Layers", []))]
    for image in sorted(holders, key=lambda image: -len(image.attrs["RootFS"]["Layers"])):  # children before parents
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(image.id, force=True)
    client.api.prune_builds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not os.environ.get("IMAGEGRAPH_PLATFORMS"):
        print("note: IMAGEGRAPH_PLATFORMS is unset: the nothing-prebuilt case builds PyTorch for every declared platform")
    client = docker.from_env()
    times: dict[str, list[float]] = {}

    def timed(label: str, action) -> None:
        started = time.monotonic()
        output = action()
        times.setdefault(label, []).append(time.monotonic() - started)
        print(f"  {label}: {times[label][-1]:.1f}s  ({output.strip().splitlines()[-1][:110]})", flush=True)

    with tempfile.TemporaryDirectory(prefix="imagegraph-bench-") as tmp:
        work = Path(tmp)
        prebuilt = clone(work, "prebuilt")
        run(["build", "--target", "devcontainer", "--no-tags"], prebuilt)  # make sure this commit's image is in the registry
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}", flush=True)
            forget_locally(client, ref(prebuilt), ref(prebuilt, "base"))
            timed("prebuilt, in the registry", lambda: run(["dev.image"], prebuilt))
            timed("prebuilt, in the engine", lambda: run(["dev.image"], prebuilt))

            changed = clone(work, f"changed-{round_}")
            dockerfile = changed / ".devcontainer/Dockerfile"
            # an ENV right after FROM: every step after it runs again, as after a change to the Dockerfile's first step
            text = dockerfile.read_text().replace("FROM ${BASE_IMAGE}\n", f"FROM ${{BASE_IMAGE}}\nENV BENCH_ROUND={uuid.uuid4().hex}\n", 1)
            dockerfile.write_text(text)
            commit(changed, "devcontainer input changed")
            timed("built on the registry's base", lambda repo=changed: run(["dev.image"], repo))

            bare = clone(work, f"bare-{round_}")
            config = bare / "images.yaml"
            config.write_text(config.read_text().replace("namespace: imagegraph", f"namespace: bench-open/{uuid.uuid4().hex[:8]}"))
            commit(bare, "a namespace with nothing in it")
            timed("nothing prebuilt (base built too)",
                  lambda repo=bare: run(["build", "--target", "devcontainer", "--no-cache", "--no-registry-cache", "--no-tags"], repo))
    reference = statistics.median(times["prebuilt, in the registry"])
    print(f"\n{'scenario':36} {'median':>8} {'runs':>5} {'x prebuilt (registry)':>22}")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:36} {median:7.1f}s {len(values):5d} {median / reference:21.2f}x")


if __name__ == "__main__":
    main()
