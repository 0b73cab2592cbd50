"""What a cleanup of 100 versions costs on each registry it deletes through: requests and time, side by side in one run.

    python bench/cleanup_registries.py [--rounds 2] [--builds 20]

For each registry kind (a distribution registry, and the stand-ins of ghcr.io,
Docker Hub and GitLab's registry in tests/standins/, each in front of a real
docker-registry of its own), a fresh registry is seeded with the same
history: ``--builds`` multi-arch builds of one image, each an index of two
platform manifests and two attestation manifests (5 versions a build: 100
for 20 builds), pushed as buildx pushes them. Then ``invoke cleanup --keep 2
--yes --grace 0`` runs as a user runs it, and the benchmark counts what
reached the registry (the registry API, the service's own API) and times the
run. The kinds take turns, round after round, so the machine's noise falls
on all of them alike; the table shows medians and each kind's time against
the distribution registry's.

Needs docker-registry (`invoke engine.up` installs it); no engine, no network.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.integration.oci_seed import INDEX, MANIFEST, Seeder  # noqa: E402
from tests.integration.registries import PrivateRegistry, start_registry  # noqa: E402
from tests.standins import StandIn  # noqa: E402
from tests.standins.dockerhub import DockerHubStandIn  # noqa: E402
from tests.standins.github import GitHubStandIn  # noqa: E402
from tests.standins.github import Token as GitHubToken  # noqa: E402
from tests.standins.gitlab import GitLabStandIn  # noqa: E402
from tests.standins.gitlab import Token as GitLabToken  # noqa: E402

IMAGES_YAML = """registry: {registry}
namespace: {namespace}
retention:
  keep: 2
{api}images:
  app:
    dockerfile: Dockerfile
"""
TASKS = "from imagegraph.tasks import namespace  # noqa: F401\n"


def multi_arch(seed: Seeder, name: str, tag: str, n: int) -> None:
    """One build as buildx pushes it: an index of two platform manifests and their two attestation manifests."""
    created = f"2026-03-{1 + n // 24:02d}T{n % 24:02d}:00:00Z"
    entries = []
    for arch in ("amd64", "arm64"):
        digest = seed.image(name, None, text=f"build {n} {arch}", created=created, arch=arch)
        entries.append({"mediaType": MANIFEST, "digest": digest, "size": len(seed.raw(name, digest)),
                        "platform": {"os": "linux", "architecture": arch}})
    for entry in list(entries):
        digest = seed.image(name, None, text=f"build {n} provenance {entry['digest']}", created=created, arch="unknown")
        entries.append({"mediaType": MANIFEST, "digest": digest, "size": len(seed.raw(name, digest)),
                        "platform": {"os": "unknown", "architecture": "unknown"},
                        "annotations": {"vnd.docker.reference.digest": entry["digest"], "vnd.docker.reference.type": "attestation-manifest"}})
    seed.put_manifest(name, tag, {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}, INDEX)


class Kind:
    """One registry kind: how to stand it up in front of a registry, where imagegraph finds it, and its credentials."""

    def __init__(self, name: str, namespace: str, api: str, start: Callable[[PrivateRegistry], StandIn | None],
                 env: Callable[[StandIn | None], dict[str, str]]) -> None:
        self.name, self.namespace, self.api, self.start, self.env = name, namespace, api, start, env


KINDS = (
    Kind("distribution", "acme/mono", "", lambda registry: None, lambda standin: {}),
    Kind("ghcr.io", "acme/mono", "github",
         lambda registry: GitHubStandIn(registry.address, registry.data, tokens={"classic": GitHubToken("octo")}, users=("octo",),
                                       per_page=100),
         lambda standin: {"GITHUB_API_URL": standin.api_url, "GITHUB_TOKEN": "classic"}),
    Kind("Docker Hub", "acme", "dockerhub",
         lambda registry: DockerHubStandIn(registry.address, registry.data, {"acme": {"dckr_pat_delete": "delete"}}, page_size=100),
         lambda standin: {"IMAGEGRAPH_DOCKERHUB_API": standin.hub_url, "IMAGEGRAPH_DOCKERHUB_USER": "acme",
                          "IMAGEGRAPH_DOCKERHUB_TOKEN": "dckr_pat_delete", "IMAGEGRAPH_REGISTRY_USER": "acme",
                          "IMAGEGRAPH_REGISTRY_PASSWORD": "dckr_pat_delete"}),
    Kind("GitLab", "group/project", "gitlab",
         lambda registry: GitLabStandIn(registry.address, registry.data, {"group/project": 7}, {"tok-api": GitLabToken(("api",))},
                                        per_page=100),
         lambda standin: {"CI_API_V4_URL": standin.api, "IMAGEGRAPH_GITLAB_TOKEN": "tok-api"}),
)


@contextlib.contextmanager
def stood_up(kind: Kind, folder: Path) -> Iterator[tuple[str, str, StandIn | None]]:
    """(the address imagegraph talks to, the registry's own address, the stand-in or None)."""
    registry = start_registry(folder / "registry")
    try:
        standin = kind.start(registry)
        if standin is None:
            yield registry.address, registry.address, None
            return
        with standin:
            yield standin.address, registry.address, standin
    finally:
        registry.stop()


def one_run(kind: Kind, builds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-cleanup-") as tmp, stood_up(kind, Path(tmp)) as (address, backing, standin):
        seed = Seeder(backing)  # seeded behind the stand-in: what a service holds is in its registry's storage
        for n in range(builds):
            multi_arch(seed, f"{kind.namespace}/app", f"sha-{n:07x}", n)
        project = Path(tmp) / "project"
        project.mkdir()
        api = f"  api: {kind.api}\n" if kind.api else ""
        (project / "images.yaml").write_text(IMAGES_YAML.format(registry=address, namespace=kind.namespace, api=api))
        (project / "Dockerfile").write_text("FROM python:3.11-slim\n")
        (project / "tasks.py").write_text(TASKS)
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        before = len(standin.seen) if standin is not None else 0
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **kind.env(standin)}
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "invoke", "cleanup", "--yes", "--grace", "0"], cwd=project, env=env,
                                capture_output=True, text=True, timeout=900)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f"{kind.name}: cleanup failed: {result.stderr.strip().splitlines()[-1:]}")
        line = next((ln for ln in result.stdout.splitlines() if ln.startswith("deleted ")), "")
        deleted = int(re.match(r"deleted (\d+)", line).group(1)) if line else 0
        left = re.search(r"^left (\d+) untagged", result.stdout, re.M)  # GitLab deletes tags; its registry collects the rest
        deleted += int(left.group(1)) if left else 0
        counts = dict((api, int(n)) for n, api in re.findall(r"(\d+) to ([^,)]+)", line))
        own = sum(n for api, n in counts.items() if api != "the registry API")
        seen = len(standin.seen) - before if standin is not None else 0
        return {"seconds": seconds, "deleted": deleted, "registry": counts.get("the registry API", 0), "own": own, "seen": seen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--builds", type=int, default=20, help="multi-arch builds seeded (5 versions each)")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {kind.name: [] for kind in KINDS}
    for round_ in range(args.rounds):
        for kind in KINDS if round_ % 2 == 0 else reversed(KINDS):
            runs[kind.name].append(one_run(kind, args.builds))
            print(f"round {round_ + 1}: {kind.name}: {runs[kind.name][-1]}", file=sys.stderr)
    base = statistics.median(r["seconds"] for r in runs["distribution"])
    print(f"invoke cleanup --keep 2 --yes of {args.builds * 5} versions ({args.builds} multi-arch builds), median of {args.rounds}")
    print(f"{'registry':<14}{'deleted':>8}{'registry API':>14}{'own API':>9}{'at stand-in':>13}{'seconds':>9}{'x dist.':>9}")
    for kind in KINDS:
        rows = runs[kind.name]
        med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        print(f"{kind.name:<14}{med['deleted']:>8.0f}{med['registry']:>14.0f}{med['own']:>9.0f}{med['seen']:>13.0f}"
              f"{med['seconds']:>9.1f}{med['seconds'] / base:>9.2f}")


if __name__ == "__main__":
    main()
