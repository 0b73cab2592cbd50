"""`invoke build`'s engine path for real: a small family built, pushed, reused and partly rebuilt."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import docker
import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.core.buildkit import StepCount
from imagegraph.core.errors import EngineError
from imagegraph.core.manifests import missing_platforms
from imagegraph.core.options import BuildOptions
from imagegraph.core.plan import Decision
from imagegraph.core.result import ImageResult
from imagegraph.core.values import KNOWN_PLATFORMS
from imagegraph.publishing import publish_tags
from imagegraph.workspace import Workspace
from tests.conftest import split_ref
from tests.integration.conftest import commit_all, git, init_repo, local_tags, remove_local_images, run_invoke

pytestmark = pytest.mark.integration

SMALL_FAMILY = """
registry: {registry}
namespace: {namespace}
images:
  base:
    dockerfile: docker/Dockerfile.base
    platforms: [linux/amd64, linux/arm64]
  app:
    dockerfile: docker/Dockerfile
    parent: base
    target: runtime
    inputs: ["src/svc/**"]
    platforms: [linux/amd64]
  tools:
    dockerfile: docker/Dockerfile.tools
    parent: base
    platforms: [linux/amd64]
"""

FILES = {
    # {namespace} makes each test's steps its own: no cache left by another test (or an earlier run on this engine) can answer them
    "docker/Dockerfile.base": "FROM python:3.11-slim\nRUN echo {namespace} > /family.txt && uname -m > /arch.txt\n",
    "docker/Dockerfile": (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS runtime\nCOPY src/svc /app/svc\n"
        "CMD [\"python\", \"-c\", \"import sys; sys.path.insert(0, '/app'); import svc\"]\n"
    ),
    "docker/Dockerfile.dockerignore": "*\n!src/svc\n",
    "docker/Dockerfile.tools": "ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo tools {namespace} > /tools.txt\n",
    "src/svc/__init__.py": "print('version 1')\n",
    "README.md": "# a small family\n",
}


def family_files(namespace: str) -> dict[str, str]:
    return {path: text.format(namespace=namespace) if path.endswith((".base", ".tools")) else text for path, text in FILES.items()}


@pytest.fixture
def repo(tmp_path, registry, namespace, monkeypatch):
    # This family is small on purpose so that it can build every platform it declares.
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    files = {"images.yaml": SMALL_FAMILY.format(registry=registry, namespace=namespace), **family_files(namespace),
             "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n"}
    return init_repo(tmp_path / "repo", files)


def publish(workspace: Workspace, results, *, say=lambda _: None):
    """A build's tag move (what `invoke build` does after the run), with the plan of the same checkout."""
    return publish_tags(workspace, tuple(results), workspace.plan(), say=say)


def build(repo, **options) -> tuple[dict[str, ImageResult], Workspace]:
    workspace = Workspace(repo, BuildOptions(**options))
    results = workspace.executor(say=lambda _: None).run(workspace.plan())
    failed = [f"{r.name}: {r.error}" for r in results if not r.ok]
    assert not failed, failed
    return {r.name: r for r in results}, workspace


def test_family_builds_then_reuses_then_rebuilds_only_what_changed(repo, docker_client, registry):
    first, workspace = build(repo)
    assert {name: r.decision for name, r in first.items()} == dict.fromkeys(("base", "app", "tools"), Decision.BUILD)
    # .ci/run's second pass names the store it restarted the engine on: the path taken must be that store's
    store = os.environ.get("IMAGEGRAPH_TEST_IMAGE_STORE")
    if store:
        assert workspace.local.image_store() == store
        assert workspace.builder_choice.multi_platform == (store == "containerd")
    client = Registry(registry)
    for result in first.values():
        _, name, tag = split_ref(result.ref)
        assert client.manifest_digest(name, tag) == result.digest is not None

    # The base is one tag with one manifest per platform, and its arm64 variant ran arm64 code.
    _, base_name, base_tag = split_ref(first["base"].ref)
    media_type, index = client.manifest(base_name, base_tag)
    assert "list" in media_type or "index" in media_type
    images = [m for m in index["manifests"] if m["platform"]["os"] != "unknown"]
    assert sorted(m["platform"]["architecture"] for m in images) == ["amd64", "arm64"]
    attestations = [m for m in index["manifests"] if m.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest"]
    if workspace.builder_choice.multi_platform:
        # one build for both platforms; buildx's provenance attestations ride along, one per image, naming it
        assert sorted(m["annotations"]["vnd.docker.reference.digest"] for m in attestations) == sorted(m["digest"] for m in images)
    else:
        # the classic image store: a build and push per platform under its part tag, joined by the executor as `invoke join`
        # joins (no attestations: the classic store's exporter makes none), each with its inline cache tag
        assert not attestations
        for suffix in ("amd64", "arm64"):
            platform_digest = client.manifest_digest(base_name, f"{base_tag}-{suffix}")
            assert platform_digest in {m["digest"] for m in images}
            assert client.manifest_digest(base_name, f"buildcache-{suffix}") == platform_digest
    arch = docker_client.containers.run(first["base"].ref, ["cat", "/arch.txt"], platform="linux/arm64", remove=True)
    assert arch.decode().strip() == "aarch64"

    # Children are pinned to the parent's exact fingerprint reference.
    app_image = docker_client.images.get(first["app"].ref)
    assert app_image.labels["imagegraph.parent"] == first["base"].ref
    assert app_image.labels["imagegraph.fingerprint"] == first["app"].ref.rsplit(":", 1)[1]
    # OCI labels: the commit, and its time (not the wall clock, so a rebuild of the same commit is reproducible).
    head = git(repo, "rev-parse", "HEAD").strip()
    assert app_image.labels["org.opencontainers.image.revision"] == head
    committed = subprocess.run(["git", "-C", str(repo), "show", "-s", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ", "HEAD"],
                               check=True, capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}).stdout.strip()
    assert app_image.labels["org.opencontainers.image.created"] == committed
    assert "org.opencontainers.image.version" not in app_image.labels  # a branch build is no release

    started = time.monotonic()
    second, _ = build(repo)
    assert {r.decision for r in second.values()} == {Decision.REUSE}
    assert {name: r.ref for name, r in second.items()} == {name: r.ref for name, r in first.items()}
    assert time.monotonic() - started < 10

    (repo / "src/svc/__init__.py").write_text("print('version 2')\n")
    commit_all(repo, "code change")
    third, _ = build(repo)
    assert {name: r.decision for name, r in third.items()} == {"base": Decision.REUSE, "app": Decision.BUILD, "tools": Decision.REUSE}
    assert third["app"].ref != first["app"].ref
    output = docker_client.containers.run(third["app"].ref, remove=True)
    assert output.decode().strip() == "version 2"

    # A revert back to the published state: git says the code changed since HEAD~1, the fingerprint is
    # the first build's, and the registry has it: reused from there, nothing built, nothing pulled.
    (repo / "src/svc/__init__.py").write_text("print('version 1')\n")
    commit_all(repo, "revert")
    docker_client.images.remove(first["app"].ref)  # not in the local engine any more: only the registry has it
    fourth, _ = build(repo, since="HEAD~1")
    assert {name: r.decision for name, r in fourth.items()} == dict.fromkeys(("base", "app", "tools"), Decision.REUSE)
    assert fourth["app"].ref == first["app"].ref
    assert fourth["app"].reason == "src/svc/__init__.py changed, to content already built: fingerprint tag in the registry"
    assert not any(first["app"].ref in tag for tag in local_tags(docker_client))


def test_docs_change_plans_no_build(repo):
    build(repo, targets=("app",))
    (repo / "README.md").write_text("# docs only\n")
    commit_all(repo, "docs")
    plan = Workspace(repo, BuildOptions(targets=("app",))).plan()
    assert plan.to_build() == ()
    assert plan.image("tools").decision is Decision.SKIP


def test_failed_parent_stops_its_children_and_names_the_log(repo):
    (repo / "docker/Dockerfile.base").write_text("FROM python:3.11-slim\nRUN exit 3\n")
    commit_all(repo, "broken base")
    workspace = Workspace(repo, BuildOptions())
    results = {r.name: r for r in workspace.executor(say=lambda _: None).run(workspace.plan())}
    # the one line says why (BuildKit's last word) and where the rest is
    assert "exited 1: " in results["base"].error and "exit code: 3" in results["base"].error
    assert results["base"].log.endswith("base.log")
    assert results["app"].error == "not built: parent base failed"
    assert "exit 3" in (repo / ".imagegraph/logs/base.log").read_text()


def empty_the_engine(docker_client, namespace: str) -> None:
    """What a fresh CI runner has: none of this family's images, and no build cache record of its steps.

    Records of other builds on this engine may stay (they are in use, or made
    meanwhile): the steps here name this test's namespace, so no other record
    can answer them. What must go is every record of this family's own steps;
    BuildKit lets go of a finished build's records a moment later, so prune
    until none is left, and say which one stayed rather than test on with it.
    """
    remove_local_images(docker_client, lambda tag: f"/{namespace}/" in tag)
    deadline = time.monotonic() + 60
    while True:
        docker_client.api.prune_builds(all=True)
        left = records_of(docker_client, namespace)
        if not left:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the engine kept build cache records of this test's steps through a minute of prunes: {left}")
        time.sleep(1)


def records_of(docker_client, namespace: str) -> list[str]:
    """The engine's build cache records made by steps that name ``namespace``."""
    try:
        records = docker_client.df().get("BuildCache") or ()
    except docker.errors.NotFound:  # the containerd store lists images too, and one went while it did
        return ["(the engine's listing changed while it was read)"]
    return [f"{r.get('ID')} {r.get('Description')!r}" for r in records if namespace in (r.get("Description") or "")]


def test_an_empty_engine_reuses_layers_from_the_registry_cache(repo, docker_client, registry, namespace):
    first, workspace = build(repo)
    client = Registry(registry)
    base_repo = f"{namespace}/base"
    if workspace.builder_choice.multi_platform:
        # one registry cache (mode=max) for all platforms
        assert client.manifest_digest(base_repo, "buildcache") is not None
    else:
        for platform in ("amd64", "arm64"):
            # the classic store's cache is the pushed platform image itself (inline cache), tagged buildcache-<platform>
            image_tag = f"{workspace.fingerprints['base'].tag}-{platform}"
            assert client.manifest_digest(base_repo, f"buildcache-{platform}") == client.manifest_digest(base_repo, image_tag) is not None
    assert first["base"].steps.total == 2  # one RUN per platform

    empty_the_engine(docker_client, namespace)
    cold, _ = build(repo, force=("base",), registry_cache=False)
    assert cold["base"].steps == StepCount(cached=0, total=2)
    assert cold["tools"].steps == StepCount(cached=0, total=1)

    empty_the_engine(docker_client, namespace)
    warm, _ = build(repo, force=("base",))
    assert warm["base"].steps == StepCount(cached=2, total=2)
    assert warm["tools"].steps == StepCount(cached=1, total=1)
    assert warm["app"].steps == StepCount(cached=1, total=1)


def test_the_default_branch_moves_edge_and_sha_tags_only_when_every_image_built(repo, registry, namespace, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    results, workspace = build(repo)
    moves = publish(workspace, tuple(results.values()), say=lambda _: None)
    tagged = moves.tagged
    head = git(repo, "rev-parse", "HEAD").strip()
    assert tagged == dict.fromkeys(("base", "app", "tools"), ("edge", f"sha-{head[:7]}"))
    assert moves.line == f"tags: moved edge, sha-{head[:7]} on base, app, tools"
    client = Registry(registry)
    for name in tagged:
        digest = results[name].digest
        assert client.manifest_digest(f"{namespace}/{name}", "edge") == digest
        assert client.manifest_digest(f"{namespace}/{name}", f"sha-{head[:7]}") == digest
    failed = (*(r for n, r in results.items() if n != "tools"), ImageResult("tools", Decision.BUILD, results["tools"].ref, "x", error="boom"))
    notes: list[str] = []
    held = publish(workspace, failed, say=notes.append)
    assert held.tagged == {} and held.line == "tags: none moved: tools failed"
    # a build of uncommitted work is not HEAD's: it gets its fingerprint tags only
    (repo / "src/svc/__init__.py").write_text("print('version 2')\n")
    dirty_results, dirty = build(repo)
    held = publish(dirty, tuple(dirty_results.values()), say=notes.append)
    assert held.tagged == {} and held.line.startswith("tags: none moved: uncommitted changes to image inputs (src/svc/__init__.py)")
    assert client.manifest_digest(f"{namespace}/app", "edge") == results["app"].digest


def test_a_pull_request_pushes_its_pr_tag_only_when_asked(repo, registry, namespace, monkeypatch):
    results, _ = build(repo)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REF", "refs/pull/42/merge")
    monkeypatch.setenv("GITHUB_SHA", git(repo, "rev-parse", "HEAD").strip())
    monkeypatch.delenv("GITHUB_EVENT_PATH", raising=False)
    workspace = Workspace(repo, BuildOptions(since="HEAD"))
    notes: list[str] = []
    assert publish(workspace, tuple(results.values()), say=notes.append).tagged == {}
    assert notes[0] == "[base] pr-42 not moved: built and tested, not pushed (push it with --push-pr)"
    asked = Workspace(repo, BuildOptions(since="HEAD", push_pr=True))
    assert publish(asked, tuple(results.values()), say=notes.append).tagged == dict.fromkeys(("base", "app", "tools"), ("pr-42",))
    assert Registry(registry).manifest_digest(f"{namespace}/app", "pr-42") == results["app"].digest


def test_a_platform_the_builder_cannot_build_is_refused_before_any_build(repo):
    # The builder's own platform list speaks for it, here or across a socket.
    choice = Workspace(repo, BuildOptions()).builder_choice
    missing = [p for p in KNOWN_PLATFORMS if p not in choice.platforms and p.rsplit("/", 1)[0] not in choice.platforms
               and p != "linux/386"]
    if not missing:
        pytest.skip(f"this builder lists every platform imagegraph knows: {', '.join(choice.platforms)}")
    workspace = Workspace(repo, BuildOptions(platforms=(missing[0],)))
    with pytest.raises(EngineError, match=rf"^cannot build for {missing[0]}: the builder .* runs only linux/amd64.*--platform$"):
        workspace.check_platforms(workspace.plan())
    # what it lists passes, and so does 386 on an amd64 builder (it runs without emulation)
    for platforms in (("linux/arm64",), ("linux/386",)):
        allowed = Workspace(repo, BuildOptions(platforms=platforms))
        allowed.check_platforms(allowed.plan())

def second_push_fault(output: str) -> bool:
    """Whether a plain-progress build failed in buildx's own push after the exporter's, on a registry's 5xx answer.

    On the docker driver with the containerd image store, the exporter pushes the image whole (platform manifests by
    digest, the index to the tag), then buildx pushes it again through the engine ("pushing REF with docker"), which
    writes every platform's manifest to the tag itself, several at once. The distribution registry's filesystem driver
    rewrites a tag's link in place, so a lookup of the tag in between reads it empty and answers 500 ("invalid checksum
    digest format" in its log), and the second push stops. imagegraph's builds try such a push again
    (:mod:`imagegraph.adapters.failures`) and accept a tag only when it names every platform (:mod:`imagegraph.core.manifests`).
    """
    steps = set(re.findall(r"^#(\d+) \[[^\]]+\] pushing \S+ with docker$", output, re.M))
    failed = re.findall(r"^#(\d+) ERROR: unexpected status from [A-Z]+ request to \S+: 5\d\d ", output, re.M)
    return any(step in steps for step in failed)


def test_a_bake_file_of_the_plan_pushes_the_fingerprint_tags_invoke_build_would(repo, registry, docker_client):
    workspace = Workspace(repo, BuildOptions())
    if not workspace.builder_choice.multi_platform:
        pytest.skip("bake builds every platform of a target at once, which the docker driver on the classic image store cannot")
    planned = workspace.plan()
    refs = {entry.name: entry.ref for entry in planned.images}
    result = run_invoke(repo, "plan", "--bake", "out/bake.json")
    assert result.returncode == 0, result.stderr
    definition = json.loads((repo / "out/bake.json").read_text())
    assert definition["group"]["default"]["targets"] == ["base", "app", "tools"]
    app = definition["target"]["app"]
    # the child is pinned to its parent's fingerprint reference, which this bake builds as the parent target
    assert app["args"]["BASE_IMAGE"] == refs["base"] and app["contexts"] == {refs["base"]: "target:base"}
    assert app["tags"] == [refs["app"]] and app["target"] == "runtime"
    assert app["output"] == ["type=registry,compression=gzip,compression-level=1"]  # imagegraph's default compression

    bake = ["docker", "buildx", "bake", "--progress", "plain", "-f", "out/bake.json"]
    baked = subprocess.run(bake, cwd=repo, capture_output=True, text=True, timeout=600)
    if baked.returncode != 0 and second_push_fault(baked.stderr):
        # not the bake file's fault (see second_push_fault); `invoke build` tries such a push again, and so does this test, once
        baked = subprocess.run(bake, cwd=repo, capture_output=True, text=True, timeout=600)
    assert baked.returncode == 0, baked.stderr[-2000:]

    # what bake pushed is exactly what `invoke build` looks for: it now builds nothing
    after = Workspace(repo, BuildOptions()).plan()
    assert {entry.name: entry.decision for entry in after.images} == dict.fromkeys(("base", "app", "tools"), Decision.REUSE)
    client = Registry(registry)
    platforms = {entry.name: entry.platforms for entry in planned.images}
    for name, ref in refs.items():
        _, repository, tag = split_ref(ref)
        media_type, _, body = client.inspect(repository, tag)
        assert missing_platforms(media_type, body, platforms[name]) == (), (name, body)  # the whole image, every platform
    docker_client.images.pull(refs["app"])
    assert docker_client.containers.run(refs["app"], remove=True).decode().strip() == "version 1"
    assert docker_client.images.get(refs["app"]).labels["imagegraph.parent"] == refs["base"]


def test_a_fingerprint_tag_left_naming_one_platform_is_no_image_to_reuse(repo, registry):
    """A push cut short after writing one platform's manifest to the tag (buildx's second push on the docker driver writes
    each platform's manifest to the tag before the index) leaves a tag that exists. The plan builds that image again."""
    from tests.integration.oci_seed import Seeder

    planned = Workspace(repo, BuildOptions()).plan()
    base = next(entry for entry in planned.images if entry.name == "base")
    assert len(base.platforms) > 1 and base.decision is Decision.BUILD
    _, repository, tag = split_ref(base.ref)
    Seeder(registry).image(repository, tag, text="one platform only", created="2026-01-01T00:00:00Z")
    assert Registry(registry).manifest_digest(repository, tag) is not None  # the tag exists...
    again = {entry.name: entry for entry in Workspace(repo, BuildOptions()).plan().images}
    assert again["base"].decision is Decision.BUILD  # ...and names no whole image
    # the same tag naming a list of every platform is reused
    seed = Seeder(registry)
    children = {p: seed.image(repository, None, text=f"base {p}", created="2026-01-01T00:00:00Z", arch=p.split("/")[1])
                for p in base.platforms}
    seed.index(repository, tag, children)
    assert {e.name: e for e in Workspace(repo, BuildOptions()).plan().images}["base"].decision is Decision.REUSE
