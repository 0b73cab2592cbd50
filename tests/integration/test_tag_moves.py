"""Family tag moves on the real registry: a 500 in the middle puts back what moved, and edge never moves backwards.

The 500 comes from a small proxy in front of the real registry that fails
one chosen manifest PUT (the registry behind it is real; only that answer is
made up).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from imagegraph.registry import Registry, split_ref
from imagegraph.workspace import BuildOptions, Workspace
from tests.integration.conftest import commit_all, git, run_invoke
from tests.integration.oci_seed import Seeder
from tests.integration.test_build import build, repo  # noqa: F401 (the small family fixture)

pytestmark = pytest.mark.integration

FAMILY = ("base", "app", "tools")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class FaultyProxy:
    """Forwards to ``upstream``; the n-th PUT of a manifest for which ``fail`` is true answers 500 without reaching it."""

    def __init__(self, upstream: str, fail: Callable[[int, str], bool]) -> None:
        self.upstream, self.fail = upstream, fail
        self.puts: list[tuple[str, int]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT" and "/manifests/" in self.path:
                    number = len(proxy.puts) + 1
                    if proxy.fail(number, self.path):
                        proxy.puts.append((self.path, 500))
                        self.send_response(500)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, f"http://{proxy.upstream}{self.path}", headers=headers, data=body,
                                          allow_redirects=False, timeout=30)
                if self.command == "PUT" and "/manifests/" in self.path:
                    proxy.puts.append((self.path, answer.status_code))
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pushed(client: Registry, results) -> dict[str, str | None]:
    """The digest each image's fingerprint tag names (a reused image's result carries none)."""
    return {name: client.manifest_digest(*split_ref(results[name].ref)[1:]) for name in FAMILY}


def edges(client: Registry, namespace: str, tag: str = "edge") -> dict[str, str | None]:
    return {name: client.manifest_digest(f"{namespace}/{name}", tag) for name in FAMILY}


def test_a_500_on_the_third_tag_copy_rolls_back_and_says_so_in_one_line(repo, registry, namespace, monkeypatch):  # noqa: F811
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    first, workspace = build(repo)
    assert workspace.publish_tags(tuple(first.values()), say=lambda _: None).ok
    client = Registry(registry)
    before = edges(client, namespace)
    assert before == {name: first[name].digest for name in FAMILY}

    # a new base: the whole family is new, so every edge tag moves (and sha-<7> tags are created after them)
    (repo / "docker/Dockerfile.base").write_text((repo / "docker/Dockerfile.base").read_text() + "RUN echo two > /two.txt\n")
    commit_all(repo, "a new base")
    second, _ = build(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    proxy = FaultyProxy(registry, lambda number, path: number == 3)
    try:
        # the same commit through the proxy: every image is found and reused, then its tags move
        result = run_invoke(repo, "build", "--registry", proxy.address, "--progress", "plain")
    finally:
        proxy.close()
    assert result.returncode == 1, result.stdout + result.stderr
    failed_path, status = proxy.puts[2]
    assert status == 500 and failed_path == f"/v2/{namespace}/tools/manifests/edge"
    # the table and the report are there, and one line says in which state the tags are
    assert "reuse" in result.stdout and "report: .imagegraph/reports/" in result.stdout
    state = [line for line in (result.stdout + result.stderr).splitlines() if "tags:" in line]
    assert state == [f"error: tags: rolled back (registry {proxy.address} answered 500 for tagging {namespace}/tools:edge): "
                     "base:edge, app:edge name their previous digest again; rerun `invoke build` to move them"]
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

    b_moves = workspace_b.publish_tags(tuple(results_b.values()), say=lambda _: None)
    assert b_moves.ok and b_moves.tagged == dict.fromkeys(FAMILY, ("edge", f"sha-{commit_b[:7]}"))
    notes: list[str] = []
    a_moves = workspace_a.publish_tags(tuple(results_a.values()), say=notes.append)

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
    assert workspace_c.publish_tags(tuple(results_c.values()), say=lambda _: None).tagged["app"][0] == "edge"
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
    _, moves = workspace.release(version="v3.0.0", say=lambda _: None)
    assert not moves.ok
    ours = Registry(registry).manifest_digest(app, "3.0.0")
    assert ours and ours != other
    assert moves.line == (f"tags: release 3.0.0 is not whole: app:latest names {other[:19]}… now, not {ours[:19]}… "
                          "(another run or a cleanup changed it meanwhile); rerun `invoke release --version v3.0.0`")
