"""The workspace's own rules, through fakes at its adapter seam: a registry and engine images in memory, a real tiny git repository.

Which tags a build moves (and when none), whom a lookup asks, when a release
is refused, what cleanup is told: each through a :class:`Workspace` as the tasks
use it (with :mod:`imagegraph.publishing`, :mod:`imagegraph.release` and
:mod:`imagegraph.cleanup`), with the registry and the engine's images replaced
by fakes that record what they were asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from imagegraph.adapters.tagmove import REVISION_LABEL
from imagegraph.cleanup import cleanup
from imagegraph.core.errors import RegistryError
from imagegraph.core.lease import EMPTY, EMPTY_DIGEST, LeaseTimes, is_lease_tag
from imagegraph.core.options import BuildOptions
from imagegraph.core.plan import Decision
from imagegraph.core.result import ImageResult
from imagegraph.core.tags import Outcome, ReleaseError
from imagegraph.publishing import publish_tags
from imagegraph.release import release
from imagegraph.workspace import Workspace
from tests.conftest import split_ref, write_tree

FAMILY = """
registry: 127.0.0.1:5000
namespace: test
{extra}
images:
  base:
    dockerfile: docker/Dockerfile.base
  app:
    dockerfile: docker/Dockerfile
    parent: base
    target: runtime
    inputs: ["src/svc/**"]
  tools:
    dockerfile: docker/Dockerfile.tools
    parent: base
    push: false
"""

FILES = {
    "docker/Dockerfile.base": "FROM python:3.11-slim\n",
    "docker/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS runtime\nCOPY src/svc /app/svc\n",
    "docker/Dockerfile.tools": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",
    "src/svc/app.py": "print('hello')\n",
    "README.md": "# a family\n",
}

PUSHED = ("base", "app")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
#: What a run starts from: no CI, no overrides (the prefixes tests/unit/cli.py clears too).
CLEARED = ("IMAGEGRAPH_", "GITHUB_", "GITLAB_", "DOCKER_HOST", "CI")


def git(root: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test", "-c", "init.defaultBranch=main", "-C", str(root), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


class FakeRegistry:
    """Repositories of tag -> digest, and each digest's image (its revision label, its creation time).

    Records every ``has`` (the refs a lookup asked about) and every tag it
    wrote (``moves``: repository, tag, digest). It keeps the registry leases
    a release or a tag move takes (``leased``: repository, purpose), and is
    read-only for anything else: a cleanup's record of doomed digests is
    refused, as with read-only credentials.
    """

    host = "127.0.0.1:5000"

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, str]] = {}
        self.images: dict[str, dict[str, str]] = {}  # digest -> {"revision": ..., "created": ...}
        self.asked: list[str] = []
        self.moves: list[tuple[str, str, str]] = []
        self.claims: dict[str, dict] = {}  # a lease claim's digest -> its manifest
        self.leased: list[tuple[str, str]] = []

    def put(self, repository: str, tag: str, digest: str, *, revision: str = "", created: str = "") -> None:
        self.repos.setdefault(repository, {})[tag] = digest
        self.images.setdefault(digest, {"revision": revision, "created": created})

    def push(self, ref: str, digest: str, *, revision: str = "") -> None:
        """What a build's push leaves: the fingerprint tag naming the image."""
        _, repository, tag = split_ref(ref)
        self.put(repository, tag, digest, revision=revision)

    def has(self, ref: str, platforms=()) -> bool:
        self.asked.append(ref)
        host, repository, tag = split_ref(ref)
        assert host == self.host, ref
        return self.manifest_digest(repository, tag) is not None

    def manifest_digest(self, name: str, tag: str) -> str | None:
        tags = self.repos.get(name, {})
        if tag.startswith("sha256:"):
            return tag if tag in tags.values() else None
        return tags.get(tag)

    def manifest_digest_at(self, name: str, tag: str):
        return self.manifest_digest(name, tag), None  # no Date: the lease counts by this machine's clock

    def tags(self, name: str) -> tuple[str, ...]:
        return tuple(self.repos.get(name, {}))

    def lists_tag(self, name: str, tag: str) -> bool:
        return tag in self.tags(name)

    def copy_tag(self, name: str, source: str, target: str) -> str:
        digest = self.manifest_digest(name, source)
        assert digest is not None, f"{name}:{source} is not in the fake registry"
        self.repos[name][target] = digest
        self.moves.append((name, target, digest))
        return digest

    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]:
        digest = self.manifest_digest(name, reference)
        if digest is None:
            raise RegistryError(f"{name}:{reference} not found")
        if digest in self.claims:
            return OCI_MANIFEST, digest, self.claims[digest]
        return OCI_MANIFEST, digest, {"mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": f"config-{digest}"}}

    def blob(self, name: str, digest: str) -> bytes:
        image = self.images[digest.removeprefix("config-")]
        return json.dumps({"created": image["created"], "config": {"Labels": {REVISION_LABEL: image["revision"]}}}).encode()

    def push_blob(self, name: str, data: bytes) -> str:
        if data == EMPTY:  # a lease claim's config
            return EMPTY_DIGEST
        raise RegistryError("denied: this fake is read-only")

    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str:
        if not is_lease_tag(reference):
            raise RegistryError("denied: this fake is read-only")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.claims[digest] = json.loads(data)
        self.repos.setdefault(name, {})[reference] = digest
        self.leased.append((name, self.claims[digest]["annotations"]["imagegraph.lease.purpose"]))
        return digest

    def delete_manifest(self, name: str, digest: str) -> bool:
        assert digest in self.claims, "a dry run deletes nothing"
        del self.claims[digest]
        tags = self.repos.get(name, {})
        for tag in [tag for tag, named in tags.items() if named == digest]:
            del tags[tag]
        return True

    def tag_names(self, image: str) -> dict[str, str]:
        return dict(self.repos.get(f"test/{image}", {}))


class FakeLocal:
    """The engine's images: the refs it holds; records every ``has``."""

    def __init__(self, refs=()) -> None:
        self.refs = set(refs)
        self.asked: list[str] = []

    def has(self, ref: str) -> bool:
        self.asked.append(ref)
        return ref in self.refs

    def image_store(self) -> str:
        return "overlay2"


@pytest.fixture(autouse=True)
def no_ci(monkeypatch):
    for name in list(os.environ):
        if name.startswith(CLEARED):
            monkeypatch.delenv(name)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The family as a git repository on main, one commit."""
    root = tmp_path / "repo"
    write_tree(root, {"images.yaml": FAMILY.format(extra=""), **FILES})
    git(root, "init", "-q")
    commit(root, "family")
    return root


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


def workspace(repo: Path, registry: FakeRegistry, local: FakeLocal | None = None, **options) -> Workspace:
    ws = Workspace(repo, BuildOptions(**options), registry=registry, local=local or FakeLocal())  # type: ignore[arg-type]
    ws.lease_times = LeaseTimes(settle=0.02, late=0.01, poll=0.01)  # one process, a registry in memory: no one to wait for
    return ws


def built(workspace: Workspace, registry: FakeRegistry, *, failed=(), plan=None) -> tuple[ImageResult, ...]:
    """What a run of the workspace's plan reports: every selected image built, the pushed ones pushed to the fake registry."""
    plan = plan or workspace.plan()
    head = workspace.git.head() or ""
    results = []
    for entry in plan.images:
        digest = f"sha256:{entry.name}-{entry.fingerprint}"
        if entry.push and entry.decision is not Decision.SKIP:
            registry.push(entry.ref, digest, revision=head)
        results.append(ImageResult(entry.name, entry.decision, entry.ref, entry.reason, seconds=1.0,
                                   digest=digest if entry.push else None, pushed=entry.push,
                                   error="boom" if entry.name in failed else None))
    return tuple(results)


def digests(results) -> dict[str, str | None]:
    return {r.name: r.digest for r in results}


# --- publish_tags: which tags a build moves -----------------------------------------------------


def test_the_default_branch_moves_edge_and_sha_on_pushed_images_and_nothing_on_a_local_only_one(repo, registry):
    ws = workspace(repo, registry)
    plan = ws.plan()
    results = built(ws, registry, plan=plan)
    head = git(repo, "rev-parse", "HEAD")
    notes: list[str] = []
    moves = publish_tags(ws, results, plan, say=notes.append)

    assert moves.outcome is Outcome.MOVED
    assert moves.tagged == dict.fromkeys(PUSHED, ("edge", f"sha-{head[:7]}"))
    assert moves.line == f"tags: moved edge, sha-{head[:7]} on base, app"
    ours = digests(results)
    for name in PUSHED:
        assert registry.tag_names(name)["edge"] == registry.tag_names(name)[f"sha-{head[:7]}"] == ours[name]
    assert {repository for repository, _, _ in registry.moves} == {"test/base", "test/app"}  # tools is push: false
    assert notes == []


def test_an_image_the_run_skipped_gets_no_moving_tag(repo, registry):
    ws = workspace(repo, registry, targets=("base",))
    plan = ws.plan()
    assert {e.name: e.decision for e in plan.images} == {"base": Decision.BUILD, "app": Decision.SKIP, "tools": Decision.SKIP}
    moves = publish_tags(ws, built(ws, registry, plan=plan), plan, say=lambda _: None)
    assert set(moves.tagged) == {"base"}
    assert "edge" not in registry.tag_names("app")


def test_no_tag_moves_when_any_image_failed(repo, registry):
    ws = workspace(repo, registry)
    plan = ws.plan()
    moves = publish_tags(ws, built(ws, registry, plan=plan, failed=("app",)), plan, say=lambda _: None)
    assert moves.outcome is Outcome.UNCHANGED and moves.line == "tags: none moved: app failed"
    assert moves.tagged == {} and registry.moves == []


def test_no_tag_moves_when_an_image_input_has_uncommitted_changes(repo, registry):
    head = git(repo, "rev-parse", "HEAD")
    (repo / "src/svc/app.py").write_text("print('not committed')\n")
    ws = workspace(repo, registry)
    plan = ws.plan()
    moves = publish_tags(ws, built(ws, registry, plan=plan), plan, say=lambda _: None)
    assert moves.line == (f"tags: none moved: uncommitted changes to image inputs (src/svc/app.py); "
                          f"the images are not {head[:7]}'s, commit first")
    assert registry.moves == []


def test_uncommitted_changes_outside_the_image_inputs_do_not_hold_the_tags(repo, registry):
    (repo / "README.md").write_text("# edited, not committed\n")
    ws = workspace(repo, registry)
    plan = ws.plan()
    moves = publish_tags(ws, built(ws, registry, plan=plan), plan, say=lambda _: None)
    assert moves.outcome is Outcome.MOVED and set(moves.tagged) == set(PUSHED)


def test_a_version_tag_event_moves_no_tag_and_points_to_release(repo, registry):
    git(repo, "tag", "v1.2.0")
    ws = workspace(repo, registry)
    plan = ws.plan()
    notes: list[str] = []
    moves = publish_tags(ws, built(ws, registry, plan=plan), plan, say=notes.append)
    assert notes == ["v1.2.0: version tags are given by `invoke release` (promotion of these digests), not by the build"]
    assert moves.line == "tags: fingerprint tags only (version tags come from `invoke release`)"
    assert registry.moves == []


def test_another_branch_moves_sha_only_and_says_why_edge_stays(repo, registry):
    git(repo, "checkout", "-q", "-b", "feature")
    ws = workspace(repo, registry)
    plan = ws.plan()
    head = git(repo, "rev-parse", "HEAD")
    notes: list[str] = []
    moves = publish_tags(ws, built(ws, registry, plan=plan), plan, say=notes.append)
    assert moves.tagged == dict.fromkeys(PUSHED, (f"sha-{head[:7]}",))
    assert notes == [f"[{name}] edge not moved: moves only on main; this is branch feature" for name in PUSHED]


def pull_request(monkeypatch, repo: Path, number: int = 42) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REF", f"refs/pull/{number}/merge")
    monkeypatch.setenv("GITHUB_SHA", git(repo, "rev-parse", "HEAD").strip())


def test_a_pull_request_moves_pr_n_only_when_asked(repo, registry, monkeypatch):
    pull_request(monkeypatch, repo)
    ws = workspace(repo, registry)
    plan = ws.plan()
    results = built(ws, registry, plan=plan)
    notes: list[str] = []
    held = publish_tags(ws, results, plan, say=notes.append)
    assert held.line == "tags: fingerprint tags only" and held.tagged == {} and registry.moves == []
    assert notes == [f"[{name}] pr-42 not moved: built and tested, not pushed (push it with --push-pr)" for name in PUSHED]

    asked = workspace(repo, registry, push_pr=True)
    moves = publish_tags(asked, results, asked.plan(), say=lambda _: None)
    assert moves.tagged == dict.fromkeys(PUSHED, ("pr-42",))
    assert registry.tag_names("app")["pr-42"] == digests(results)["app"]


def test_push_pull_requests_in_images_yaml_moves_pr_n_too(repo, registry, monkeypatch):
    (repo / "images.yaml").write_text(FAMILY.format(extra="tags:\n  push_pull_requests: true\n"))
    commit(repo, "push pull requests")
    pull_request(monkeypatch, repo, 7)
    ws = workspace(repo, registry)
    plan = ws.plan()
    assert publish_tags(ws, built(ws, registry, plan=plan), plan, say=lambda _: None).tagged == dict.fromkeys(PUSHED, ("pr-7",))


def test_edge_stays_for_the_whole_family_when_a_newer_commits_run_moved_it(repo, registry):
    """A run of an older commit finishing last: its sha tag moves, edge keeps the newer family."""
    ours = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "later")
    (repo / "docker/Dockerfile.base").write_text("FROM python:3.12-slim\n")
    newer = commit(repo, "a newer base")
    git(repo, "checkout", "-q", "main")
    registry.put("test/base", "edge", "sha256:newer-base", revision=newer)

    ws = workspace(repo, registry)
    plan = ws.plan()
    notes: list[str] = []
    moves = publish_tags(ws, built(ws, registry, plan=plan), plan, say=notes.append)
    assert notes == [f"edge stays: a newer run moved it (base:edge's image was built at {newer[:7]}, a descendant of this build's {ours[:7]})"]
    assert moves.line == f"tags: moved sha-{ours[:7]} on base, app; edge stays where it is (see above)"
    assert registry.tag_names("base")["edge"] == "sha256:newer-base"
    assert "edge" not in registry.tag_names("app")  # held for the family, not only where a newer run moved it


# --- lookups: whom the plan asks ------------------------------------------------------------------


def test_the_registry_is_asked_only_about_pushed_images_and_the_engine_only_about_what_the_registry_lacks(repo, registry):
    probe = workspace(repo, registry)
    refs = {name: probe.ref(name) for name in ("base", "app", "tools")}
    registry.push(refs["base"], "sha256:base")
    local = FakeLocal({refs["base"], refs["app"], refs["tools"]})

    plan = workspace(repo, registry, local).plan()
    assert sorted(registry.asked) == sorted([refs["base"], refs["app"]])
    assert sorted(local.asked) == sorted([refs["app"], refs["tools"]])
    entries = {e.name: e for e in plan.images}
    assert {name: e.decision for name, e in entries.items()} == dict.fromkeys(("base", "app", "tools"), Decision.REUSE)
    assert entries["app"].push_existing and not entries["tools"].push_existing and not entries["base"].push_existing


def test_an_image_in_neither_place_is_built(repo, registry):
    local = FakeLocal()
    plan = workspace(repo, registry, local).plan()
    assert {e.name: e.decision for e in plan.images} == dict.fromkeys(("base", "app", "tools"), Decision.BUILD)
    assert len(local.asked) == 3  # the registry lacked every one


# --- release -------------------------------------------------------------------------------------


def released(repo: Path, registry: FakeRegistry) -> dict[str, str]:
    """This commit's images in the registry (as its build left them): image -> digest."""
    ws = workspace(repo, registry)
    ours = {name: f"sha256:{name}-built" for name in PUSHED}
    for name in PUSHED:
        registry.push(ws.ref(name), ours[name])
    return ours


def test_release_gives_the_built_digests_the_versions_tags(repo, registry):
    ours = released(repo, registry)
    promotions, moves = release(workspace(repo, registry), version="v1.3.0", say=lambda _: None)
    assert moves.ok and [p.image for p in promotions] == list(PUSHED)
    for name in PUSHED:
        assert {tag: registry.tag_names(name)[tag] for tag in ("1.3.0", "1.3", "latest")} == dict.fromkeys(("1.3.0", "1.3", "latest"), ours[name])
    assert "test/tools" not in registry.repos


def test_release_refuses_a_version_that_names_another_digest_and_moves_nothing(repo, registry):
    released(repo, registry)
    registry.put("test/app", "1.3.0", "sha256:someone-elses")
    with pytest.raises(ReleaseError, match=r"1\.3\.0 is already released on other digests \(app:1\.3\.0 is sha256:someone-else…\)"):
        release(workspace(repo, registry), version="v1.3.0", say=lambda _: None)
    assert registry.moves == []
    assert registry.tag_names("app")["1.3.0"] == "sha256:someone-elses"


def test_release_with_force_replaces_it_and_says_what_it_replaced(repo, registry):
    ours = released(repo, registry)
    registry.put("test/app", "1.3.0", "sha256:someone-elses")
    notes: list[str] = []
    _, moves = release(workspace(repo, registry), version="v1.3.0", force=True, say=notes.append)
    assert moves.ok and registry.tag_names("app")["1.3.0"] == ours["app"]
    assert f"[app] --force: 1.3.0 replaced: it was sha256:someone-elses, now {ours['app']}" in notes


def test_a_dry_run_release_moves_nothing(repo, registry):
    released(repo, registry)
    promotions, moves = release(workspace(repo, registry), version="v1.3.0", dry_run=True, say=lambda _: None)
    assert promotions and moves.line == "tags: dry run: none moved" and registry.moves == []


# --- cleanup -------------------------------------------------------------------------------------


def test_cleanup_keeps_by_the_configs_keep_protect_and_edge_and_looks_only_at_pushed_images(repo, registry):
    (repo / "images.yaml").write_text(FAMILY.format(extra="tags:\n  edge: latest-dev\nretention:\n  keep: 2\n  protect: [\"stable-*\"]\n"))
    commit(repo, "retention")
    for n, tag in enumerate(["old", "dev", "stable-1", "pinned", "fp-4", "fp-5"]):
        registry.put("test/app", tag, f"sha256:app-{n}", created=f"2026-01-0{n + 1}T00:00:00Z")
    registry.put("test/app", "latest-dev", "sha256:app-1")  # the configured edge tag
    registry.put("test/tools", "fp-1", "sha256:tools-1", created="2026-01-01T00:00:00Z")  # push: false: never looked at
    notes: list[str] = []

    pruning = cleanup(workspace(repo, registry), protect=("pinned",), say=notes.append)
    kept = {v.manifest.digest: v.keep for v in pruning.verdicts}
    assert kept == {"sha256:app-0": False, "sha256:app-1": True, "sha256:app-2": True, "sha256:app-3": True,
                    "sha256:app-4": True, "sha256:app-5": True}
    assert {v.manifest.repository for v in pruning.verdicts} == {"test/app"}  # base has no tags here, tools is not pushed
    assert any("not written" in note for note in notes)  # the fake is read-only: the dry run says so, deletes nothing

    fewer = cleanup(workspace(repo, registry), keep=1, protect=("pinned",), say=lambda _: None)
    assert {v.manifest.digest for v in fewer.verdicts if not v.keep} == {"sha256:app-0", "sha256:app-4"}  # --keep 1 wins over keep: 2


# --- the seam ------------------------------------------------------------------------------------


def test_adapters_not_given_are_the_real_ones_built_on_first_use(repo):
    from imagegraph.adapters.registry import Registry

    ws = Workspace(repo, BuildOptions())
    assert "registry" not in vars(ws)
    assert isinstance(ws.registry, Registry) and ws.registry.host == "127.0.0.1:5000"
