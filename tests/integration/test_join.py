"""`invoke join` on the real registry: each platform's image pushed apart under its platform tag, then joined, pulled by the engine.

The parts are pushed as each platform's run pushes them (no engine build needed: the seeder writes real, pullable images):
an index of one platform's image and its provenance attestation, as BuildKit pushes it, or a bare image manifest.
The classic image store's way (a build per platform, the executor joining them as `invoke join` does) is built on the real
engine too, with the docker driver told to build as it would on that store.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import replace

import pytest

from imagegraph.adapters.engine.builder_choice import BuilderChoice, choose_builder, named_builder, observe_builder
from imagegraph.adapters.joins import read_join_facts
from imagegraph.adapters.registry import Registry
from imagegraph.adapters.runner import Runner
from imagegraph.core.cache import BuilderKind
from imagegraph.core.join import JoinState, decide_join, part_tag
from imagegraph.core.media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from imagegraph.core.options import BuildOptions
from imagegraph.joining import join
from imagegraph.workspace import Workspace
from tests.integration.conftest import init_repo, one_error_line, run_invoke
from tests.integration.oci_seed import Seeder

pytestmark = pytest.mark.integration

BOTH = ("linux/amd64", "linux/arm64")

FAMILY = """
registry: {registry}
namespace: {namespace}
images:
  base:
    dockerfile: docker/Dockerfile.base
    platforms: [linux/amd64, linux/arm64]
  app:
    dockerfile: docker/Dockerfile.child
    parent: base
    platforms: [linux/amd64, linux/arm64]
  ci:
    dockerfile: docker/Dockerfile.child
    parent: base
    platforms: [linux/amd64, linux/arm64]
    build_args: {{ROLE: ci}}
  tools:
    dockerfile: docker/Dockerfile.child
    parent: base
    platforms: [linux/amd64]
    build_args: {{ROLE: tools}}
"""

FILES = {
    "docker/Dockerfile.base": "FROM python:3.11-slim\nRUN echo base > /base.txt\n",
    "docker/Dockerfile.child": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG ROLE=app\nRUN echo $ROLE > /role.txt\n",
    "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n",
}


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def family(tmp_path, registry, namespace, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    root = init_repo(tmp_path / "repo", {"images.yaml": FAMILY.format(registry=registry, namespace=namespace), **FILES})
    workspace = Workspace(root, BuildOptions())
    refs = {name: workspace.config.image_ref(name, workspace.fingerprints[name].tag) for name in workspace.config.names}
    return root, refs


def push_part(seeder: Seeder, repository: str, tag: str, platform: str, *, attested: bool) -> str:
    """One platform's image under ``tag``: bare, or (``attested``) in an index with its provenance, as BuildKit pushes it."""
    arch = platform.split("/")[1]
    if not attested:
        return seeder.image(repository, tag, text=f"{tag} {platform}", created="2026-01-01T00:00:00Z", arch=arch)
    image = seeder.image(repository, None, text=f"{tag} {platform}", created="2026-01-01T00:00:00Z", arch=arch)
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v0.2",
                            "subject": [{"name": "_", "digest": {"sha256": image.removeprefix("sha256:")}}], "predicate": {}}).encode()
    attestation = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                   "config": {"mediaType": OCI_CONFIG, "digest": seeder.blob(repository, b"{}"), "size": 2},
                   "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": seeder.blob(repository, statement),
                               "size": len(statement), "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}]}
    data = json.dumps(attestation, sort_keys=True).encode()
    seeder.put_manifest(repository, _sha(data), attestation, OCI_MANIFEST)
    os_, arch = platform.split("/")[:2]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": image, "size": len(seeder.raw(repository, image)),
         "platform": {"os": os_, "architecture": arch}},
        {"mediaType": OCI_MANIFEST, "digest": _sha(data), "size": len(data), "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.digest": image, "vnd.docker.reference.type": "attestation-manifest"}}]}
    return seeder.put_manifest(repository, tag, index, OCI_INDEX)


def push_parts(seeder: Seeder, refs, platforms=BOTH, *, skip=()) -> None:
    """Every image's part of ``platforms``, as the runs of those platforms push them (``skip``: (image, platform) not pushed)."""
    for name, ref in refs.items():
        declared = ("linux/amd64",) if name == "tools" else BOTH
        for platform in platforms:
            if platform in declared and (name, platform) not in skip:
                # app's parts are bare image manifests (a run without attestations); the others carry provenance, as buildx pushes
                push_part(seeder, ref.repository, part_tag(ref.tag, declared, platform), platform, attested=name != "app")


def test_a_join_makes_each_image_of_its_platforms_keeps_attestations_and_pulls_and_a_second_does_nothing(family, registry, docker_client):
    root, refs = family
    seeder = Seeder(registry)
    push_parts(seeder, refs)
    client = Registry(registry)
    assert all(client.manifest_digest(ref.repository, ref.tag) is None for name, ref in refs.items() if name != "tools")

    dry = run_invoke(root, "join", "--dry-run")
    assert dry.returncode == 0 and "dry run: 3 index(es) would be written; nothing written" in dry.stdout, dry.stdout + dry.stderr
    assert all(client.manifest_digest(ref.repository, ref.tag) is None for name, ref in refs.items() if name != "tools")

    started = time.monotonic()
    done = run_invoke(root, "join")
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    joined = re.search(r"joined 3 image\(s\) in ([0-9.]+)s \(([0-9.]+)s in all\)", done.stdout)
    assert joined, done.stdout
    print(f"\njoin of a 4-image family: {joined[1]}s joining, {joined[2]}s in the task, {wall:.2f}s with the interpreter")
    assert float(joined[1]) < 2.0

    for name in ("base", "ci"):
        media_type, _, body = client.inspect(refs[name].repository, refs[name].tag)
        assert media_type == OCI_INDEX
        images = [m for m in body["manifests"] if m["platform"]["os"] != "unknown"]
        attestations = [m for m in body["manifests"] if m["platform"]["os"] == "unknown"]
        assert [m["platform"]["architecture"] for m in images] == ["amd64", "arm64"]
        # each attestation names the image it attests, which is in this index
        assert sorted(a["annotations"]["vnd.docker.reference.digest"] for a in attestations) == sorted(m["digest"] for m in images)
        for platform, listed in zip(BOTH, images, strict=True):
            part = client.inspect(refs[name].repository, part_tag(refs[name].tag, BOTH, platform))[2]
            assert listed == part["manifests"][0]  # the platform's descriptor, byte for byte as its run pushed it
    media_type, _, body = client.inspect(refs["app"].repository, refs["app"].tag)
    assert media_type == DOCKER_MANIFEST_LIST and [m["platform"]["architecture"] for m in body["manifests"]] == ["amd64", "arm64"]
    assert "already joined" in done.stdout  # tools: one platform, its part is its fingerprint tag

    # the branch tags moved as after a build, to the joined digests
    digests = {name: client.manifest_digest(ref.repository, ref.tag) for name, ref in refs.items()}
    assert {name: client.manifest_digest(ref.repository, "edge") for name, ref in refs.items()} == digests
    assert "tags: moved" in done.stdout

    pulled = docker_client.images.pull(f"{registry}/{refs['base'].repository}", tag=refs["base"].tag)
    assert f"{registry}/{refs['base'].repository}@{digests['base']}" in pulled.attrs["RepoDigests"]

    again = run_invoke(root, "join")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to join: every image's fingerprint tag already names all its platforms" in again.stdout
    assert {name: client.manifest_digest(ref.repository, ref.tag) for name, ref in refs.items()} == digests


def test_a_join_with_a_platform_missing_is_refused_in_one_line_and_writes_nothing(family, registry):
    root, refs = family
    seeder = Seeder(registry)
    push_parts(seeder, refs, skip={("ci", "linux/arm64")})
    refused = run_invoke(root, "join")
    line = one_error_line(refused)
    assert line == (f"error: cannot join: linux/arm64 is not pushed for ci (no {refs['ci'].repository}:{refs['ci'].tag}-arm64); "
                    f"the run that builds linux/arm64 must push it first, then join again; nothing was written")
    client = Registry(registry)
    # base's and app's parts were all there: still nothing of the family was joined, and no branch tag moved
    for name in ("base", "app", "ci"):
        assert client.manifest_digest(refs[name].repository, refs[name].tag) is None
        assert "edge" not in client.tags(refs[name].repository)


def test_a_platform_tag_naming_a_whole_multi_platform_image_is_refused(family, registry):
    root, refs = family
    seeder = Seeder(registry)
    push_parts(seeder, refs, skip={("base", "linux/arm64")})
    base = refs["base"]
    # a run that pushed both platforms to the arm64 tag by mistake
    both = {platform: seeder.image(base.repository, None, text=platform, created="2026-01-01T00:00:00Z", arch=platform.split("/")[1])
            for platform in BOTH}
    seeder.index(base.repository, f"{base.tag}-arm64", both)
    line = one_error_line(run_invoke(root, "join"))
    assert line == (f"error: cannot join base: {base.repository}:{base.tag}-arm64 names an index of the whole image linux/amd64, "
                    f"linux/arm64, not linux/arm64's image alone (a multi-platform push to a platform tag); the run that builds linux/arm64 "
                    f"pushes linux/arm64 alone there; nothing was written")
    assert all(Registry(registry).manifest_digest(ref.repository, ref.tag) is None for name, ref in refs.items() if name != "tools")


def classic_choice() -> BuilderChoice:
    """The current docker driver, choosing as it does on the classic image store: a build per platform, joined by the executor."""
    named, origin = named_builder(None, {}, None)
    facts = observe_builder(Runner(), named=named, named_from=origin)
    if facts.builder is None or facts.builder.driver != "docker":
        pytest.skip("the current builder is no docker driver: the classic store's way is the docker driver's alone")
    choice = choose_builder(replace(facts, image_store="classic"))
    assert choice.kind is BuilderKind.PER_PLATFORM
    return choice


def test_a_build_per_platform_is_joined_by_the_executor_into_the_index_invoke_join_makes(family, registry):
    root, refs = family
    workspace = Workspace(root, BuildOptions(), builder_choice=classic_choice())
    plan = workspace.plan()
    results = {r.name: r for r in workspace.executor(say=lambda _: None).run(plan)}
    assert all(r.ok for r in results.values()), {n: r.error for n, r in results.items()}
    client = Registry(registry)
    joined = [entry for entry in plan.images if len(entry.platforms) > 1]
    assert [entry.name for entry in joined] == ["base", "app", "ci"]
    for entry in joined:
        ref = refs[entry.name]
        _, digest, body = client.inspect(ref.repository, ref.tag)
        assert results[entry.name].digest == digest and "manifest" in dict(results[entry.name].phases)
        images = [m for m in body["manifests"] if m["platform"]["os"] != "unknown"]
        assert [m["platform"]["architecture"] for m in images] == ["amd64", "arm64"]
        for platform, listed in zip(BOTH, images, strict=True):
            _, part_digest, part = client.inspect(ref.repository, part_tag(ref.tag, BOTH, platform))
            # the platform's image as its build pushed it: the part itself, or its image inside the index BuildKit pushed
            assert listed["digest"] == (part_digest if "layers" in part else part["manifests"][0]["digest"]), (entry.name, platform)
        # attestations of the parts ride along, each naming an image of this index
        attested = [m["annotations"]["vnd.docker.reference.digest"] for m in body["manifests"] if m["platform"]["os"] == "unknown"]
        assert set(attested) <= {m["digest"] for m in images}
    # byte for byte the index `invoke join` makes of these parts, so a join afterwards has nothing to do
    fresh = decide_join(read_join_facts(client, joined, current=False))
    assert [step.digest for step in fresh.steps] == [results[entry.name].digest for entry in joined]
    again = join(Workspace(root, BuildOptions()), clock=time.monotonic, say=lambda _: None)
    assert {step.name: step.state for step in again.decided.steps} == dict.fromkeys(("base", "app", "ci", "tools"), JoinState.JOINED)
    seconds = {name: dict(results[name].phases)["manifest"] for name in ("base", "app", "ci")}
    print(f"\nthe executor's join (manifest phase) per image: {seconds}")
    assert max(seconds.values()) < 2.0
    # the child stands on its parent's joined index, named by the fingerprint tag the join wrote
    assert client.manifest_digest(refs["tools"].repository, refs["tools"].tag) == results["tools"].digest is not None


class Meddling(Runner):
    """The real runner, and another writer that changes the arm64 part tag as soon as the arm64 build has pushed it."""

    def __init__(self, registry: str, repository: str, tag: str, how: str) -> None:
        super().__init__()
        self.registry, self.repository, self.tag, self.how = registry, repository, tag, how

    def run(self, command, **options):
        result = super().run(command, **options)
        if command.purpose == "build linux/arm64":
            client = Registry(self.registry)
            if self.how == "amd64":
                Seeder(self.registry).image(self.repository, self.tag, text="not arm64", created="2026-01-01T00:00:00Z", arch="amd64")
            else:
                client.delete_manifest(self.repository, client.manifest_digest(self.repository, self.tag))
        return result


@pytest.mark.parametrize(("how", "error"), [
    ("amd64", "cannot join pinned: {part} holds a linux/amd64 image, not linux/arm64; its linux/arm64 build pushes linux/arm64 there; "
              "nothing was written"),
    ("gone", "cannot join: linux/arm64 is not pushed for pinned (no {part}); its linux/arm64 build must push it first, then run "
             "`invoke build` again; nothing was written"),
], ids=["another platform's image", "deleted"])
def test_a_part_changed_before_the_executors_join_fails_the_image_in_one_line_and_writes_no_index(tmp_path, registry, namespace,
                                                                                                monkeypatch, how, error):
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    images = (f"registry: {registry}\nnamespace: {namespace}\nimages:\n  pinned:\n    dockerfile: Dockerfile\n"
              "    platforms: [linux/amd64, linux/arm64]\n")
    root = init_repo(tmp_path / "repo", {"images.yaml": images, "Dockerfile": "FROM python:3.11-slim\nRUN echo pinned > /pinned.txt\n"})
    ref = Workspace(root, BuildOptions(), builder_choice=classic_choice()).plan().image("pinned").image
    part = f"{ref.repository}:{part_tag(ref.tag, BOTH, 'linux/arm64')}"
    workspace = Workspace(root, BuildOptions(), builder_choice=classic_choice(),
                          runner=Meddling(registry, ref.repository, part.rsplit(":", 1)[1], how))
    (result,) = workspace.executor(say=lambda _: None).run(workspace.plan())
    assert result.error == error.format(part=part)
    assert Registry(registry).manifest_digest(ref.repository, ref.tag) is None


def test_join_force_makes_the_index_afresh_from_parts_built_again(family, registry):
    root, refs = family
    seeder = Seeder(registry)
    push_parts(seeder, refs)
    assert run_invoke(root, "join", "--no-tags").returncode == 0
    client = Registry(registry)
    before = {name: client.manifest_digest(ref.repository, ref.tag) for name, ref in refs.items()}
    # `invoke build --only-platform P --force base` on each runner: base's parts (and its children's) are pushed again, anew
    for name in ("base", "app", "ci"):
        for platform in BOTH:
            seeder_part = part_tag(refs[name].tag, BOTH, platform)
            # each pushed the other way from before (app's with provenance now, the others' bare): new parts, new digests
            push_part(seeder, refs[name].repository, seeder_part, platform, attested=name == "app")
    kept = run_invoke(root, "join", "--no-tags")
    assert kept.returncode == 0 and "nothing to join" in kept.stdout, kept.stdout + kept.stderr
    assert {name: client.manifest_digest(ref.repository, ref.tag) for name, ref in refs.items()} == before

    forced = run_invoke(root, "join", "--no-tags", "--force", "base")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    after = {name: client.manifest_digest(ref.repository, ref.tag) for name, ref in refs.items()}
    assert all(after[name] != before[name] for name in ("base", "app", "ci")) and after["tools"] == before["tools"]
    for name in ("base", "app", "ci"):
        _, _, body = client.inspect(refs[name].repository, refs[name].tag)
        parts = [client.manifest_digest(refs[name].repository, part_tag(refs[name].tag, BOTH, p)) for p in BOTH]
        images = [m["digest"] for m in body["manifests"] if m["platform"]["os"] != "unknown"]
        if name == "app":  # its parts are indexes of an image and its attestation now: the index lists their images
            parts = [client.inspect(refs[name].repository, part_tag(refs[name].tag, BOTH, p))[2]["manifests"][0]["digest"] for p in BOTH]
        assert images == parts
        assert len(body["manifests"]) == (4 if name == "app" else 2)  # no attestation of an earlier part left over
