"""Family tag moves on the real registry: a 500 in the middle puts back what moved, and edge never moves backwards.

The 500 comes from the fault proxy (tests/integration/faultproxy.py) in front
of the real registry, failing every PUT of one chosen tag (the registry behind
it is real; only those answers are made up).
"""

from __future__ import annotations

import json
import re

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.core.options import BuildOptions
from imagegraph.release import release
from imagegraph.workspace import Workspace
from tests.conftest import split_ref
from tests.integration.conftest import commit_all, git, run_invoke
from tests.integration.faultproxy import Answer
from tests.integration.oci_seed import Seeder
from tests.integration.test_build import build, publish, repo  # noqa: F401 (the small family fixture)

pytestmark = pytest.mark.integration

FAMILY = ("base", "app", "tools")
def pushed(client: Registry, results) -> dict[str, str | None]:
    """The digest each image's fingerprint tag names (a reused image's result carries none)."""
    return {name: client.manifest_digest(*split_ref(results[name].ref)[1:]) for name in FAMILY}


def edges(client: Registry, namespace: str, tag: str = "edge") -> dict[str, str | None]:
    return {name: client.manifest_digest(f"{namespace}/{name}", tag) for name in FAMILY}


def test_a_500_on_the_third_tag_copy_rolls_back_and_says_so_in_one_line(repo, registry, namespace, fault_proxy, monkeypatch):  # noqa: F811
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    first, workspace = build(repo)
    assert publish(workspace, tuple(first.values()), say=lambda _: None).ok
    client = Registry(registry)
    before = edges(client, namespace)
    assert before == {name: first[name].digest for name in FAMILY}

    # a new base: the whole family is new, so every edge tag moves (and sha-<7> tags are created after them)
    (repo / "docker/Dockerfile.base").write_text((repo / "docker/Dockerfile.base").read_text() + "RUN echo two > /two.txt\n")
    commit_all(repo, "a new base")
    second, _ = build(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    # every try at the third tag (the client retries a 500 a few times: it stays down)
    fault_proxy.inject(Answer(500), "PUT", rf"^/v2/{re.escape(namespace)}/tools/manifests/edge$", times=None)
    # the same commit through the proxy: every image is found and reused, then its tags move
    result = run_invoke(repo, "build", "--registry", fault_proxy.address, "--progress", "plain")
    assert result.returncode == 1, result.stdout + result.stderr
    puts = [(seen.path, seen.status) for seen in fault_proxy.seen("PUT", r"/manifests/(?!imagegraph-lease-)")]  # the lease aside
    assert puts[:2] == [(f"/v2/{namespace}/base/manifests/edge", 201), (f"/v2/{namespace}/app/manifests/edge", 201)]
    assert puts[2] == (f"/v2/{namespace}/tools/manifests/edge", 500)
    # the table and the report are there, and one line says in which state the tags are
    assert "reuse" in result.stdout and "report: .imagegraph/reports/" in result.stdout
    state = [line for line in (result.stdout + result.stderr).splitlines() if "tags:" in line]
    assert len(state) == 1, state
    assert state[0].startswith(f"error: tags: rolled back (registry {fault_proxy.address} answered 500 "), state
    assert state[0].endswith("): base:edge, app:edge name their previous digest again; rerun `invoke build` to move them"), state
    assert "Traceback" not in result.stderr and "tagged edge" not in result.stdout
    assert edges(client, namespace) == before  # the family's edge is whole: the first family's
    assert edges(client, namespace, f"sha-{head[:7]}") == dict.fromkeys(FAMILY)  # the new tags were never created
    reports = sorted((repo / ".imagegraph/reports").glob("*.json"))
    assert json.loads(reports[-1].read_text())["images"][0]["tags"] == [second["base"].ref.rsplit(":", 1)[1]]

    # the registry is well again: the same command moves the whole family
    again = run_invoke(repo, "build", "--progress", "plain")
    assert again.returncode == 0, again.stderr
    assert f"tags: moved edge, sha-{head[:7]} on base, app, tools" in again.stdout
    assert edges(client, namespace) == {name: second[name].digest for name in FAMILY}


def test_edge_does_not_move_backwards_when_the_older_run_finishes_last(repo, registry, namespace, tmp_path, monkeypatch):  # noqa: F811
    """Run A (commit A) and run B (commit B, on top of A) build at the same time; B finishes first, A last."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    clone_a = tmp_path / "clone-a"  # run A's runner cloned before B was pushed
    git(repo, "clone", "-q", str(repo), str(clone_a))
    results_a, workspace_a = build(clone_a)
    commit_a = git(clone_a, "rev-parse", "HEAD").strip()

    (repo / "src/svc/__init__.py").write_text("print('version B')\n")
    commit_all(repo, "B")
    commit_b = git(repo, "rev-parse", "HEAD").strip()
    results_b, workspace_b = build(repo)
    client = Registry(registry)
    family_a, family_b = pushed(client, results_a), pushed(client, results_b)
    assert family_a["app"] != family_b["app"] and family_a["base"] == family_b["base"]  # B built app only

    b_moves = publish(workspace_b, tuple(results_b.values()), say=lambda _: None)
    assert b_moves.ok and b_moves.tagged == dict.fromkeys(FAMILY, ("edge", f"sha-{commit_b[:7]}"))
    notes: list[str] = []
    a_moves = publish(workspace_a, tuple(results_a.values()), say=notes.append)

    assert edges(client, namespace) == family_b  # B's family, whole
    # clone A learnt of B by fetching: B built app, so app:edge's revision descends from A
    assert notes == [f"edge stays: a newer run moved it (app:edge's image was built at {commit_b[:7]}, "
                     f"a descendant of this build's {commit_a[:7]})"]
    assert a_moves.ok and a_moves.line == f"tags: moved sha-{commit_a[:7]} on base, app, tools; edge stays where it is (see above)"
    assert all("edge" not in tags for tags in a_moves.tagged.values())  # the table does not say A tagged edge
    assert edges(client, namespace, f"sha-{commit_a[:7]}") == family_a

    # in the usual order A's run moves edge first and B's moves it on
    (repo / "src/svc/__init__.py").write_text("print('version C')\n")
    commit_all(repo, "C")
    results_c, workspace_c = build(repo)
    assert publish(workspace_c, tuple(results_c.values()), say=lambda _: None).tagged["app"][0] == "edge"
    assert edges(client, namespace) == pushed(client, results_c)


def test_a_release_whose_tag_moves_under_it_fails_loudly(repo, registry, namespace):  # noqa: F811
    build(repo)
    app = f"{namespace}/app"
    other = Seeder(registry).image(app, "other", text="another writer's image", created="2026-03-01T12:00:00Z")
    client = Registry(registry)
    real_copy = client.copy_tag

    def copy_then_another_writer(name: str, source: str, target: str) -> str:
        digest = real_copy(name, source, target)
        if (name, target) == (app, "latest"):
            real_copy(app, "other", "latest")  # e.g. a second release, right after this one wrote app:latest
        return digest

    client.copy_tag = copy_then_another_writer  # type: ignore[method-assign]
    workspace = Workspace(repo, BuildOptions())
    workspace.registry = client  # type: ignore[misc]
    _, moves = release(workspace, version="v3.0.0", say=lambda _: None)
    assert not moves.ok
    ours = Registry(registry).manifest_digest(app, "3.0.0")
    assert ours and ours != other
    assert moves.line == (f"tags: release 3.0.0 is not whole: app:latest names {other[:19]}… now, not {ours[:19]}… "
                          "(another run or a cleanup changed it meanwhile); rerun `invoke release --version v3.0.0`")
