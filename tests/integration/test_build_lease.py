"""One build per fingerprint across runners, and one family per edge, on the real engine and registry.

Two clones of one small family stand for two runners: built at once, one
builds each fingerprint and the other waits and reuses its push; a holder
killed mid-build lets go when its lease expires; two runs moving edge at
once leave it naming one run's whole family.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.core.lease import LeaseTimes
from imagegraph.core.options import BuildOptions
from imagegraph.core.plan import Decision
from imagegraph.workspace import Workspace
from tests.integration.conftest import commit_all, git
from tests.integration.test_build import build, publish, repo  # noqa: F401 (the small family fixture)

pytestmark = pytest.mark.integration

FAMILY = ("base", "app", "tools")
#: Short enough for a test, in the defaults' proportions; the wait is a build's.
QUICK = LeaseTimes(ttl=8.0, renew=1.0, margin=4.0, settle=1.0, late=0.5, poll=0.3, wait=600.0)


def workspace(clone, **options) -> Workspace:
    made = Workspace(clone, BuildOptions(**options))
    made.lease_times = QUICK
    return made


def run(made: Workspace, said: list[str]) -> dict:
    results = made.executor(say=said.append).run(made.plan())
    return {r.name: r for r in results}


def slow_base(root, seconds: int) -> None:
    """A base whose build lasts ``seconds`` more: long enough for a second runner to start while it builds."""
    path = root / "docker/Dockerfile.base"
    path.write_text(path.read_text() + f"RUN sleep {seconds}\n")
    commit_all(root, "a slow base")


def test_two_runners_building_one_fingerprint_at_once_build_it_once(repo, registry, namespace, fault_proxy, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    slow_base(repo, 8)
    clones = [tmp_path / "runner-1", tmp_path / "runner-2"]
    for clone in clones:
        git(repo, "clone", "-q", str(repo), str(clone))
    runners = [workspace(clone, registry=fault_proxy.address) for clone in clones]
    said: list[list[str]] = [[], []]
    results: list[dict] = [{}, {}]

    said_at: list[list[tuple[float, str]]] = [[], []]

    def go(index: int) -> None:
        def say(line: str) -> None:
            said[index].append(line)
            said_at[index].append((time.monotonic(), line))
        results[index] = {r.name: r for r in runners[index].executor(say=say).run(runners[index].plan())}

    first = threading.Thread(target=go, args=(0,))
    first.start()
    base_lease = rf"^/v2/{re.escape(namespace)}/base/manifests/imagegraph-lease-build-"
    deadline = time.monotonic() + 120
    while not fault_proxy.seen("PUT", base_lease) and time.monotonic() < deadline:
        time.sleep(0.1)
    second = threading.Thread(target=go, args=(1,))
    second.start()
    for thread in (first, second):
        thread.join(600)
    assert all(r.ok for family in results for r in family.values()), [r.error for family in results for r in family.values()]
    # each fingerprint is built by one run and reused by the other. Which one is not the test's to say: the first run usually
    # builds all three, but a claim whose write came late (a loaded machine) is withdrawn, and the second run may take that lease.
    builders = {name: 0 if results[0][name].decision is Decision.BUILD else 1 for name in FAMILY}
    for name, builder in builders.items():
        waiter = 1 - builder
        assert (results[builder][name].decision, results[waiter][name].decision) == (Decision.BUILD, Decision.REUSE), (name, said)
        assert results[waiter][name].digest == results[builder][name].digest
    waiter = 1 - builders["base"]
    assert any(line.startswith("[base] waiting: run ") and line.endswith(" UTC)") and "builds this fingerprint (lease until " in line
               for line in said[waiter]), said[waiter]
    assert any(line.startswith("[base] reusing ") for line in said[waiter]), said[waiter]
    # every fingerprint tag was pushed by one run: the waiter ran no build, and every push to the tag came before its reuse
    for name, builder in builders.items():
        waiter = 1 - builder
        assert "buildx" not in (clones[waiter] / f".imagegraph/logs/{name}.log").read_text()
        tag = results[builder][name].ref.rsplit(":", 1)[1]
        puts = fault_proxy.seen("PUT", rf"^/v2/{re.escape(namespace)}/{name}/manifests/{tag}$")
        reused = next(at for at, line in said_at[waiter] if line.startswith(f"[{name}] reusing "))
        assert puts and all(put.at < reused for put in puts), (name, puts, reused)
    # every lease was let go: no lease tag is listed in any repository, not even one naming nothing (the registry's DELETE of a
    # holder's claim met the waiter's claim written into it halfway: the waiter's withdrawal, or the holder's, sweeps it)
    client = Registry(registry)
    left = {(name, tag): client.manifest_digest_at(f"{namespace}/{name}", tag)[0] for name in FAMILY
            for tag in client.tags(f"{namespace}/{name}") if tag.startswith("imagegraph-lease-")}
    asked = [(round(s.at, 3), s.method, s.path.rsplit("/", 3)[-3:], s.status) for s in fault_proxy.seen(path="/manifests/")]
    assert not left, (left, asked, said)

def test_a_runner_killed_mid_build_lets_go_when_its_lease_expires_and_the_next_builds(repo, registry, namespace, monkeypatch):  # noqa: F811
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    made = workspace(repo)
    base = made.plan().image("base")
    repository, tag = base.image.repository, base.image.reference
    script = (
        "import os, signal\n"
        "from imagegraph.adapters.lease import Lease\n"
        "from imagegraph.adapters.registry import Registry\n"
        "from imagegraph.core.lease import LeaseTimes\n"
        f"Lease(Registry({registry!r}), [{repository!r}], 'build-{tag}', 'invoke build {repository}', holder='runner-0 pid 1 dead',\n"
        "      times=LeaseTimes(ttl=8.0, renew=1.0, margin=4.0)).acquire()\n"
        "print('held', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"  # a runner killed mid-build: its claim is never renewed, never let go
    )
    dead = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert dead.returncode == -9 and dead.stdout == "held\n", dead.stderr
    died = time.monotonic()
    said: list[str] = []
    results = run(made, said)
    assert all(r.ok for r in results.values()), [r.error for r in results.values()]
    assert results["base"].decision is Decision.BUILD and results["base"].digest is not None
    assert said[0].startswith("[base] waiting: run runner-0 pid 1 dead builds this fingerprint (lease until "), said
    assert "[base] building it here: run runner-0 pid 1 dead let go of its lease without pushing it" in said, said
    waited = dict(results["base"].phases)["lease"]
    assert 2.0 < waited < 8.0 + 2 * QUICK.settle + 2.0, waited
    assert time.monotonic() - died > waited
    assert Registry(registry).manifest_digest(repository, f"imagegraph-lease-build-{tag}") is None


class SlowMover(Registry):
    """The registry, with a pause after this run's first tag copy: another run's whole move fits in it unless a lease keeps it out."""

    def __init__(self, address: str, pause: float) -> None:
        super().__init__(address)
        self.pause = pause
        self.copied = threading.Event()

    def copy_tag(self, name: str, source: str, target: str) -> str:
        digest = super().copy_tag(name, source, target)
        if not self.copied.is_set():
            self.copied.set()
            time.sleep(self.pause)
        return digest


def test_two_runs_moving_edge_at_once_leave_it_naming_one_whole_family(repo, registry, namespace, tmp_path, monkeypatch):  # noqa: F811
    """Run A (commit A) and run B (commit B on top of A, a new base: every image differs) move edge at the same moment."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    clone_a = tmp_path / "clone-a"
    git(repo, "clone", "-q", str(repo), str(clone_a))
    results_a, workspace_a = build(clone_a)
    (repo / "docker/Dockerfile.base").write_text((repo / "docker/Dockerfile.base").read_text() + "RUN echo B > /b.txt\n")
    commit_all(repo, "B")
    results_b, workspace_b = build(repo)
    client = Registry(registry)
    family_a = {name: results_a[name].digest for name in FAMILY}
    family_b = {name: results_b[name].digest for name in FAMILY}
    assert all(family_a[name] != family_b[name] for name in FAMILY)
    for made in (workspace_a, workspace_b):
        made.lease_times = QUICK
    slow = SlowMover(registry, 3.0)
    workspace_a.registry = slow  # A writes its first tag, then pauses: without the lease, B's whole move lands in the pause
    moves: dict[str, object] = {}
    notes: dict[str, list[str]] = {"a": [], "b": []}

    def move(who: str, made: Workspace, results: dict) -> None:
        moves[who] = publish(made, tuple(results.values()), say=notes[who].append)

    runs = [threading.Thread(target=move, args=("a", workspace_a, results_a))]
    runs[0].start()
    assert slow.copied.wait(60) or not runs[0].is_alive()
    runs.append(threading.Thread(target=move, args=("b", workspace_b, results_b)))
    runs[1].start()
    for thread in runs:
        thread.join(120)
    assert moves["a"].ok and moves["b"].ok, (moves, notes)
    # B's lease waited for A's whole move, then moved edge forward over all of it: B's family, whole
    edges = {name: client.manifest_digest(f"{namespace}/{name}", "edge") for name in FAMILY}
    assert edges == family_b, {name: "a" if d == family_a[name] else "b" if d == family_b[name] else d for name, d in edges.items()}
    assert any(line.startswith("waiting for the registry lease imagegraph-lease-tags: ") for line in notes["b"]), notes["b"]
