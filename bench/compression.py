"""The cold family with each layer compression, against `docker buildx bake` with its defaults, side by side on one engine.

    IMAGEGRAPH_PLATFORMS=linux/amd64 python bench/compression.py [--rounds 1] [--zstd-level 3] [--variants default,zstd]

Works in a clone of this repository, with registry namespaces of its own
(new ones every round, so nothing is reused and no registry cache answers).
In each round, each from an engine without build cache or the benchmark's
images (other images stay: a shared engine's other users may need them, and
they answer no build step), the whole family is built by:

- default: `invoke build` as images.yaml says today (no `compression:`: imagegraph's default, gzip level 1).
- gzip 6: `invoke build` with `compression: {type: gzip, level: 6}` (BuildKit's own gzip level).
- zstd: `invoke build` with `compression: {type: zstd, level: N}`.
- bake: `docker buildx bake -f FILE` of the same four images, the file written by
  `invoke plan --force ... --bake FILE` from images.yaml as it is, its compression options
  taken out (bake's defaults: BuildKit's gzip).

Who goes first turns round between rounds. Prints each timing, then the
medians, the ratios against bake, and the pushed size of the base image
(linux/amd64, its layers) with each compression: the trade-off beside the time.
It prunes the engine's build cache: run it where that is fine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_compare import FAMILY, REGISTRY, ROOT, git, run, timed

sys.path.insert(0, str(ROOT / "src"))
from imagegraph.adapters.registry import Registry
from imagegraph.core.config import load_config
from imagegraph.core.defaults import CONFIG_NAME
from imagegraph.core.values import parse_registry


def forget(client: docker.DockerClient) -> None:
    """What a cold build starts from: no build cache (every step runs) and none of the benchmark's images.

    Unlike engine_compare's emptying, images of other namespaces stay (they answer no build step; a shared engine's other
    users may be running them), and the prune leaves the records of builds in flight alone.
    """
    for image in client.images.list():
        if any("/bench-" in tag for tag in image.tags):
            client.images.remove(image.id, force=True)
    client.api.prune_builds(all=True)


def variants(zstd_level: int) -> dict[str, str]:
    """Each imagegraph variant's top-level `compression:` line ("" : none, the default: gzip level 1)."""
    return {"default": "", "gzip 6": "compression: {type: gzip, level: 6}\n",
            "zstd": f"compression: {{type: zstd, level: {zstd_level}}}\n"}


#: The exporter options imagegraph writes into a bake file for its compression; bake's defaults have none of them.
_COMPRESSION_OPTIONS = ("compression=", "compression-level=", "force-compression=", "oci-mediatypes=")


def with_bake_defaults(bake_file: Path) -> None:
    """The bake file as bake's defaults would build it: the registry exporter and cache exports without compression options."""
    definition = json.loads(bake_file.read_text())
    for target in definition["target"].values():
        for key in ("output", "cache-to"):
            if key in target:
                target[key] = [",".join(part for part in value.split(",") if not part.startswith(_COMPRESSION_OPTIONS))
                               for value in target[key]]
    bake_file.write_text(json.dumps(definition, indent=2))


class Family:
    """One clone of the repository; each build pushes to a namespace of its own."""

    def __init__(self, repo: Path, run_id: str) -> None:
        self.repo = repo
        self.run_id = run_id
        self.original = (repo / CONFIG_NAME).read_text()
        self.namespaces: dict[str, str] = {}

    def configure(self, line: str, label: str) -> None:
        """images.yaml with ``line`` at the top level, committed (the build's labels name a commit, as in CI)."""
        (self.repo / CONFIG_NAME).write_text(line + self.original)
        git(self.repo, "commit", "-q", "--allow-empty", "-am", f"bench: compression {label or 'default'}")

    def namespace(self, tool: str, round_: int) -> str:
        name = f"bench-{self.run_id}-{round_}/{tool.replace(' ', '-')}"
        self.namespaces[tool] = name
        return name

    def imagegraph(self, tool: str, line: str, round_: int) -> Callable[[], None]:
        namespace = self.namespace(tool, round_)
        self.configure(line, tool)

        def build() -> None:
            run([sys.executable, "-m", "invoke", "build", "--progress", "plain", "--no-tags"], self.repo,
                IMAGEGRAPH_REGISTRY=f"{REGISTRY}/{namespace}")
        return build

    def bake(self, round_: int) -> Callable[[], None]:
        namespace = self.namespace("bake", round_)
        self.configure("", "bake")
        bake_file = self.repo / ".imagegraph" / f"bench-compression-{round_}.json"
        forced = [arg for name in FAMILY for arg in ("--force", name)]
        # writing the file (and fetching the wheels it binds) is imagegraph's work, not bake's: before the clock starts
        run([sys.executable, "-m", "invoke", "plan", *forced, "--bake", str(bake_file)], self.repo,
            IMAGEGRAPH_REGISTRY=f"{REGISTRY}/{namespace}")
        with_bake_defaults(bake_file)
        return lambda: run(["docker", "buildx", "bake", "--progress", "plain", "-f", str(bake_file)], self.repo)

    def base_size(self, tool: str) -> tuple[int, str]:
        """(bytes of the pushed base image's linux/amd64 layers, their media types) in ``tool``'s namespace."""
        registry = Registry(REGISTRY)
        config = load_config(self.repo, registry=parse_registry(f"{REGISTRY}/{self.namespaces[tool]}", "bench"))
        repository = config.repository_path("base")
        tag = next(t for t in registry.tags(repository) if not t.startswith("buildcache"))
        _, body = registry.manifest(repository, tag)
        if "manifests" in body:
            chosen = next(m for m in body["manifests"] if m.get("platform", {}).get("architecture") == "amd64")
            _, body = registry.manifest(repository, chosen["digest"])
        kinds = sorted({layer["mediaType"].rsplit(".", 1)[-1].rsplit("+", 1)[-1] for layer in body["layers"]})
        return sum(layer["size"] for layer in body["layers"]), ",".join(kinds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds (median reported)")
    parser.add_argument("--zstd-level", type=int, default=3, help="the zstd variant's level (0-22)")
    parser.add_argument("--variants", default="default,gzip 6,zstd", help="the imagegraph variants to time, a comma list")
    args = parser.parse_args()
    if not os.environ.get("IMAGEGRAPH_PLATFORMS"):
        raise SystemExit("set IMAGEGRAPH_PLATFORMS (linux/amd64 where PyTorch's arm64 CPU wheel cannot be had)")
    client = docker.from_env()
    lines = {name: line for name, line in variants(args.zstd_level).items() if name in args.variants.split(",")}
    tools = (*lines, "bake")
    measured: dict[str, list[float]] = {tool: [] for tool in tools}
    sizes: dict[str, tuple[int, str]] = {}
    with tempfile.TemporaryDirectory(prefix="imagegraph-bench-") as tmp:
        repo = Path(tmp) / "repo"
        run(["git", "clone", "-q", str(ROOT), str(repo)], ROOT)
        family = Family(repo, uuid.uuid4().hex[:8])
        for round_ in range(args.rounds):
            print(f"-- round {round_ + 1}", flush=True)
            for tool in tools[:: 1 if round_ % 2 == 0 else -1]:
                # the images.yaml edit and the bake file come first: only the build is timed, from no build cache
                action = family.bake(round_) if tool == "bake" else family.imagegraph(tool, lines[tool], round_)
                forget(client)
                seconds = timed(action)
                measured[tool].append(seconds)
                sizes[tool] = family.base_size(tool)
                print(f"cold  {tool:<8} {seconds:7.1f}s  base {sizes[tool][0] / 1e6:7.1f} MB ({sizes[tool][1]})", flush=True)
    bake = statistics.median(measured["bake"])
    print()
    print(f"{'tool':<8} {'median':>8} {'vs bake':>8} {'base (amd64) pushed':>20}")
    for tool in tools:
        median = statistics.median(measured[tool])
        print(f"{tool:<8} {median:7.1f}s {median / bake:7.2f}x {sizes[tool][0] / 1e6:12.1f} MB {sizes[tool][1]}")


if __name__ == "__main__":
    main()
