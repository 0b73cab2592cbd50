"""The executor at its seam: a scripted runner stands in for docker, the engine's own output replayed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from imagegraph.adapters.engine.builders import BuildxBuilder
from imagegraph.adapters.registry import Registry
from imagegraph.adapters.runner import Command, CommandResult, Runner
from imagegraph.adapters.trees import blob_id
from imagegraph.adapters.wheelhouse import Wheelhouse
from imagegraph.core.config import load_config
from imagegraph.core.errors import CommandFailed, RegistryError
from imagegraph.core.fingerprint import Fingerprint
from imagegraph.core.media_types import DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from imagegraph.core.plan import Availability, BuiltImage, ReusedLocalImage, make_plan
from imagegraph.core.request import BuildSettings
from imagegraph.execute import BuildExecutor
from tests.conftest import forced_plan, write_tree

DATA = Path(__file__).parent / "data"
#: A real engine build whose cached RUN step named a layer dockerd had lost (from a machine restored after an unclean stop).
LOST_LAYER_LOG = (DATA / "engine-lost-layer.log").read_text()
BUILD_FAILED = ("#5 [2/2] RUN exit 3\n#5 0.211 /bin/sh: 1: exit: Illegal number\n"
                "#5 ERROR: executor failed running [/bin/sh -c exit 3]: exit code: 3\n"
                "executor failed running [/bin/sh -c exit 3]: exit code: 3\n")
BUILT = "#5 [2/2] RUN echo lost-layer-1 > /marker\n#5 DONE 0.2s\n#6 exporting to image\n#6 DONE 0.1s\n"

IMAGES = """
registry: 127.0.0.1:5000
namespace: unit
images:
  base:
    dockerfile: docker/Dockerfile.base
    push: false
"""


class ScriptedRunner(Runner):
    """Answers each command with the next scripted output; a (returncode, output) pair fails like the real runner."""

    def __init__(self, script: dict[str, list[str | tuple[int, str]]]) -> None:
        self.script = script
        self.ran: list[tuple[str, ...]] = []

    def run(self, command: Command, *, check: bool = True, log_path: Path | None = None, on_line=None, **_) -> CommandResult:
        self.ran.append(command.argv)
        answer = self.script[command.argv[1]].pop(0)
        returncode, output = answer if isinstance(answer, tuple) else (0, answer)
        if log_path is not None:
            with log_path.open("a") as log:
                log.write(f"$ {command.display()}\n{output}")
        if on_line is not None:  # the real runner hands over each line as it comes
            for line in output.splitlines():
                on_line(line)
        if check and returncode:
            raise CommandFailed(command.argv, returncode, output_tail="".join(output.splitlines(keepends=True)[-12:]),
                                log_path=str(log_path) if log_path else None)
        return CommandResult(returncode, output)


class NoImages:
    def info(self, ref: str) -> None:
        return None


@pytest.fixture
def config(tmp_path):
    write_tree(tmp_path, {"images.yaml": IMAGES, "docker/Dockerfile.base": "FROM python:3.11-slim\nRUN true\n"})
    return load_config(tmp_path)


#: The builder a lost layer hits: the docker driver (the engine's own BuildKit), here on the classic image store.
DOCKER_DRIVER = BuildxBuilder(docker="/usr/bin/docker", multi_platform=False)


def run(config, runner: ScriptedRunner, said: list[str], builder: BuildxBuilder = DOCKER_DRIVER, *, push: bool = False, registry=None,
        **options):
    if push:  # the same image, pushed
        config = replace(config, images=tuple(replace(spec, push=True) for spec in config.images))
    options.setdefault("sleep", lambda seconds: None)
    executor = BuildExecutor(config.root, builder, runner, Wheelhouse(config.root, runner),
                        local=NoImages(), registry=registry, log_dir=config.root / "logs", say=said.append, **options)
    (result,) = executor.run(forced_plan(config, executor.contexts_dir, builder=executor.builder))
    return result


@pytest.mark.parametrize("builder", [DOCKER_DRIVER, BuildxBuilder(docker="/usr/bin/docker")], ids=["classic store", "containerd store"])
def test_a_build_that_hit_a_lost_layer_prunes_the_build_cache_and_builds_again(config, builder):
    runner = ScriptedRunner({"buildx": [(1, LOST_LAYER_LOG), BUILT], "builder": [""]})
    said: list[str] = []
    result = run(config, runner, said, builder)
    assert result.ok, result.error
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "build"), ("builder", "prune"), ("buildx", "build")]
    assert runner.ran[0] == runner.ran[2]  # the same build again
    assert runner.ran[1] == ("/usr/bin/docker", "builder", "prune", "--all", "--force")
    assert any("names a layer dockerd no longer has" in line for line in said)
    assert dict(result.phases)["prune"] >= 0
    log = (config.root / "logs/base.log").read_text()
    assert log.index("layer does not exist") < log.index("builder prune") < log.rindex("exporting to image")


def test_a_lost_layer_after_the_repair_is_a_failure_with_its_reason(config):
    runner = ScriptedRunner({"buildx": [(1, LOST_LAYER_LOG), (1, LOST_LAYER_LOG)], "builder": [""]})
    result = run(config, runner, [])
    assert len(runner.ran) == 3  # one repair per image, never a loop
    assert result.error.startswith("`/usr/bin/docker buildx build --progress ...` exited 1: layer does not exist (full log: ")


def test_any_other_failure_is_not_retried_and_its_last_line_is_in_the_message(config):
    runner = ScriptedRunner({"buildx": [(1, BUILD_FAILED)]})
    said: list[str] = []
    result = run(config, runner, said)
    assert len(runner.ran) == 1
    assert "exited 1: executor failed running [/bin/sh -c exit 3]: exit code: 3 (full log:" in result.error
    # under the failure line: what the failed step printed, not BuildKit's framing or the reason again
    failed_at = next(i for i, line in enumerate(said) if "FAILED" in line)
    assert said[failed_at + 1:] == ["[base]   /bin/sh: 1: exit: Illegal number"]


def test_a_long_reason_is_cut_to_one_short_line():
    err = CommandFailed(("docker", "build"), 1, output_tail="x" * 1000 + "\n\n")
    assert len(err.reason) == 240 and err.reason.endswith("…") and "\n" not in str(err)
    assert str(CommandFailed(("docker", "build"), 1)) == "`docker build` exited 1"


PUSHED_IMAGES = """
registry: 127.0.0.1:5000
namespace: unit
images:
  app:
    dockerfile: Dockerfile
    platforms: [linux/amd64, linux/arm64]
"""


def whole_image(*platforms: str) -> tuple[str, str, dict]:
    """What a registry answers for a tag that names a whole multi-platform image: an index of every platform, and attestations."""
    entries = [{"mediaType": OCI_MANIFEST, "digest": f"sha256:{n}", "platform": dict(zip(("os", "architecture"), p.split("/"), strict=False))}
               for n, p in enumerate(platforms or ("linux/amd64", "linux/arm64"))]
    entries.append({"mediaType": OCI_MANIFEST, "digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}})
    return OCI_INDEX, "sha256:" + "a" * 64, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}


class RecordingRegistry:
    """The registry calls the executor makes after a pushed build."""

    insecure = True

    def __init__(self) -> None:
        self.copies: list[tuple[str, str, str]] = []

    def copy_tag(self, name: str, tag: str, new_tag: str) -> None:
        self.copies.append((name, tag, new_tag))

    def manifest_digest(self, name: str, tag: str) -> str:
        return "sha256:" + "a" * 64

    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]:
        return whole_image()


def test_a_pushed_multi_platform_build_is_one_command_and_copies_no_cache_tag(tmp_path):
    write_tree(tmp_path, {"images.yaml": PUSHED_IMAGES, "Dockerfile": "FROM python:3.11-slim\nRUN true\n"})
    config = load_config(tmp_path)
    runner = ScriptedRunner({"buildx": [BUILT]})
    registry = RecordingRegistry()
    executor = BuildExecutor(config.root, BuildxBuilder(docker="/usr/bin/docker"), runner, Wheelhouse(config.root, runner),
                             local=NoImages(), registry=registry, log_dir=tmp_path / "logs", say=lambda line: None)
    (result,) = executor.run(forced_plan(config, executor.contexts_dir, {"app": "f" * 64}, builder=executor.builder))
    assert result.ok and result.pushed and result.ref == "127.0.0.1:5000/unit/app:" + "f" * 16, result.error
    (argv,) = runner.ran
    # one command for both platforms, pushed by the registry exporter with the image's compression
    assert argv[argv.index("--platform") + 1] == "linux/amd64,linux/arm64" and argv[argv.index("--output") + 1].startswith("type=registry,")
    assert registry.copies == [] and {phase for phase, _ in result.phases} == {"build"}


def reply(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response._content = body
    return response


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class MemoryRegistry:
    """A distribution registry in memory, at the session seam under imagegraph's own client (:meth:`client`): manifests by tag
    and digest, blobs. ``faults``: (method, part of the path, status) answered once each, to the first request that matches."""

    host = "127.0.0.1:5000"

    def __init__(self, faults: tuple[tuple[str, str, int], ...] = ()) -> None:
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.faults = list(faults)
        self.sent: list[tuple[str, str]] = []
        self.slept: list[float] = []

    def client(self) -> Registry:
        return Registry(self.host, session=self, sleep=self.slept.append)

    def push_image(self, repository: str, tag: str, platform: str) -> str:
        """Push one platform's image as buildx on the classic image store does: a Docker manifest whose config names the platform."""
        os_, arch, *variant = platform.split("/")
        config = json.dumps({"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {}),
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        self.blobs[sha256(config)] = config
        self.sent.append(("push", f"{repository}:{tag}"))  # what buildx sent, as one event
        manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "layers": [],
                               "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(config), "size": len(config)}}).encode()
        return self.put(repository, tag, DOCKER_MANIFEST, manifest)

    def put(self, repository: str, reference: str, media_type: str, data: bytes) -> str:
        self.manifests[(repository, reference)] = self.manifests[(repository, sha256(data))] = (media_type, data)
        return sha256(data)

    def body(self, repository: str, reference: str) -> dict:
        return json.loads(self.manifests[(repository, reference)][1])

    def digest(self, repository: str, reference: str) -> str | None:
        found = self.manifests.get((repository, reference))
        return None if found is None else sha256(found[1])

    def request(self, method, url, *, headers, data=None, timeout=None):
        path = url.split("/v2/", 1)[1]
        self.sent.append((method, path))
        fault = next((f for f in self.faults if f[0] == method and f[1] in path), None)
        if fault is not None:
            self.faults.remove(fault)
            return reply(fault[2])
        repository, kind, reference = path.rsplit("/", 2)
        if kind == "blobs" and method == "GET":
            return reply(200, body=self.blobs[reference]) if reference in self.blobs else reply(404)
        if kind != "manifests":
            return reply(404)
        if method == "PUT":
            return reply(201, {"Docker-Content-Digest": self.put(repository, reference, headers["Content-Type"], data)})
        found = self.manifests.get((repository, reference))
        if found is None:
            return reply(404)
        media_type, stored = found
        return reply(200, {"Content-Type": media_type, "Docker-Content-Digest": sha256(stored)}, stored if method == "GET" else b"")


class PushingRunner(ScriptedRunner):
    """The scripted docker whose builds with --push that succeed push their image to a :class:`MemoryRegistry`: of the platform
    they build, or of the one ``pushes`` names for it ("" pushes nothing: a push the registry lost)."""

    def __init__(self, script, registry: MemoryRegistry, pushes: dict[str, str] | None = None) -> None:
        super().__init__(script)
        self.registry = registry
        self.pushes = pushes or {}

    def run(self, command: Command, **options) -> CommandResult:
        result = super().run(command, **options)
        argv = command.argv
        if "--push" in argv:
            platform = argv[argv.index("--platform") + 1]
            pushed = self.pushes.get(platform, platform)
            repository, tag = argv[argv.index("--tag") + 1].split("/", 1)[1].rsplit(":", 1)
            if pushed:
                self.registry.push_image(repository, tag, pushed)
        return result


APP, FINGERPRINT = "unit/app", "f" * 16


def build_per_platform(tmp_path, monkeypatch, memory: MemoryRegistry, *, images: str = PUSHED_IMAGES, script=None, said=None,
                       pushes=None, runner_type: type[PushingRunner] | None = None, **options):
    """Build PUSHED_IMAGES' app of two platforms on the classic image store's docker driver, against ``memory``; (result, runner)."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))  # no credentials of the machine's are looked at
    write_tree(tmp_path, {"images.yaml": images, "Dockerfile": "FROM python:3.11-slim\nRUN true\n"})
    config = load_config(tmp_path)
    runner = (runner_type or PushingRunner)(script or {"buildx": [BUILT, BUILT]}, memory, pushes)
    executor = BuildExecutor(config.root, DOCKER_DRIVER, runner, Wheelhouse(config.root, runner), local=NoImages(),
                             registry=memory.client(), log_dir=tmp_path / "logs", say=(said if said is not None else []).append,
                             sleep=lambda seconds: None, **options)
    (result,) = executor.run(forced_plan(config, executor.contexts_dir, {"app": "f" * 64}, builder=executor.builder))
    return result, runner


def test_per_platform_builds_push_their_parts_and_the_executor_joins_them_as_invoke_join_does(tmp_path, monkeypatch):
    memory = MemoryRegistry()
    result, runner = build_per_platform(tmp_path, monkeypatch, memory)
    assert result.ok and result.pushed, result.error
    # two builds, each pushed under its platform tag; no other command (no imagetools): the index is imagegraph's
    assert [(argv[1:3], argv[argv.index("--platform") + 1], argv[argv.index("--tag") + 1]) for argv in runner.ran] == [
        (("buildx", "build"), "linux/amd64", f"127.0.0.1:5000/{APP}:{FINGERPRINT}-amd64"),
        (("buildx", "build"), "linux/arm64", f"127.0.0.1:5000/{APP}:{FINGERPRINT}-arm64")]
    parts = {arch: memory.digest(APP, f"{FINGERPRINT}-{arch}") for arch in ("amd64", "arm64")}
    media_type, _ = memory.manifests[(APP, FINGERPRINT)]
    index = memory.body(APP, FINGERPRINT)
    assert media_type == DOCKER_MANIFEST_LIST == index["mediaType"]
    assert [(m["digest"], m["platform"]) for m in index["manifests"]] == [
        (parts["amd64"], {"os": "linux", "architecture": "amd64"}), (parts["arm64"], {"os": "linux", "architecture": "arm64"})]
    assert result.digest == memory.digest(APP, FINGERPRINT)
    # written once, after both parts were pushed, then read back; the cache tags name the parts (their inline caches)
    writes = [path for method, path in memory.sent if method == "PUT"]
    assert writes[0] == f"{APP}/manifests/{FINGERPRINT}" and writes.count(f"{APP}/manifests/{FINGERPRINT}") == 1
    put = memory.sent.index(("PUT", writes[0]))
    assert [event for event in memory.sent[:put] if event[0] == "push"] == [("push", f"{APP}:{FINGERPRINT}-amd64"),
                                                                            ("push", f"{APP}:{FINGERPRINT}-arm64")]
    assert memory.sent.index(("HEAD", f"{APP}/manifests/{FINGERPRINT}")) > put
    assert [memory.digest(APP, f"buildcache-{arch}") for arch in ("amd64", "arm64")] == [parts["amd64"], parts["arm64"]]
    assert [phase for phase, _ in result.phases] == ["build", "manifest"]
    assert f"joined linux/amd64, linux/arm64 into 127.0.0.1:5000/{APP}:{FINGERPRINT}: {result.digest}" in Path(result.log).read_text()


def test_a_rebuild_joins_its_own_parts_whatever_the_fingerprint_tag_named_before(tmp_path, monkeypatch):
    memory = MemoryRegistry()
    memory.push_image(APP, f"{FINGERPRINT}-amd64", "linux/amd64")
    old = memory.put(APP, FINGERPRINT, OCI_INDEX, json.dumps(whole_image()[2]).encode())  # an earlier run's index of both
    result, _ = build_per_platform(tmp_path, monkeypatch, memory)
    assert result.ok, result.error
    assert result.digest == memory.digest(APP, FINGERPRINT) != old
    assert [m["digest"] for m in memory.body(APP, FINGERPRINT)["manifests"]] == [
        memory.digest(APP, f"{FINGERPRINT}-amd64"), memory.digest(APP, f"{FINGERPRINT}-arm64")]


@pytest.mark.parametrize(("pushes", "error"), [
    ({"linux/arm64": "linux/amd64"}, f"cannot join app: unit/app:{FINGERPRINT}-arm64 holds a linux/amd64 image, not linux/arm64; its "
                                     "linux/arm64 build pushes linux/arm64 there; nothing was written"),
    ({"linux/arm64": ""}, f"cannot join: linux/arm64 is not pushed for app (no unit/app:{FINGERPRINT}-arm64); its linux/arm64 build "
                          "must push it first, then run `invoke build` again; nothing was written"),
], ids=["a part of the wrong platform", "a part missing"])
def test_a_part_that_cannot_be_joined_fails_the_image_in_one_line_and_writes_no_index(tmp_path, monkeypatch, pushes, error):
    memory = MemoryRegistry()
    said: list[str] = []
    result, runner = build_per_platform(tmp_path, monkeypatch, memory, pushes=pushes, said=said)
    assert not result.ok and result.error == error
    assert (APP, FINGERPRINT) not in memory.manifests and not any(method == "PUT" for method, _ in memory.sent)
    assert "[app] FAILED after " in "\n".join(said) and len(runner.ran) == 2  # a join refused is not built again
    assert dict(result.phases)["manifest"] >= 0


def test_a_build_that_is_not_pushed_loads_each_platform_and_joins_nothing(tmp_path, monkeypatch):
    memory = MemoryRegistry()
    result, runner = build_per_platform(tmp_path, monkeypatch, memory, images=PUSHED_IMAGES + "    push: false\n")
    assert result.ok and not result.pushed, result.error
    assert [argv[-2] for argv in runner.ran] == ["--load", "--load"]
    assert memory.sent == [] and [phase for phase, _ in result.phases] == ["build"]


FAMILY = """
registry: 127.0.0.1:5000
namespace: unit
images:
  base:
    dockerfile: docker/Dockerfile.base
  app:
    dockerfile: docker/Dockerfile
    parent: base
"""
FAMILY_FILES = {"docker/Dockerfile.base": "FROM python:3.11-slim\nRUN echo base > /base.txt\n",
                "docker/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo app > /app.txt\n"}
def _rawjson(*vertexes: dict) -> str:
    """bake's ``--progress rawjson`` output: one indented JSON status document per event, as buildx prints them."""
    return "".join(json.dumps({"vertexes": [vertex]}, indent=2) + "\n" for vertex in vertexes)


_T0, _T1 = "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.3Z"
_BASE_RUN, _APP_RUN = "sha256:" + "1" * 64, "sha256:" + "2" * 64
#: bake of both: base's RUN reported by app's solve first (its graph holds it), then by base's own
BAKED = _rawjson(
    {"digest": _BASE_RUN, "name": "[app linux/amd64 2/2] RUN echo base > /base.txt", "started": _T0, "completed": _T1},
    {"digest": _BASE_RUN, "name": "[base 2/2] RUN echo base > /base.txt", "started": _T0, "completed": _T1},
    {"digest": _APP_RUN, "name": "[app 1/2] RUN echo app > /app.txt", "started": _T0, "completed": _T1},
)
#: bake of both that failed in app's own step; base's step was cancelled, unfinished: base builds alone afterwards
BAKE_FAILED = _rawjson(
    {"digest": _BASE_RUN, "name": "[base 2/2] RUN echo base > /base.txt", "started": _T0, "completed": _T1,
     "error": "rpc error: code = Canceled desc = context canceled"},
    {"digest": _APP_RUN, "name": "[app 1/2] RUN echo app > /app.txt", "started": _T0, "completed": _T1,
     "error": "process did not complete successfully: exit code: 3"},
) + "ERROR: failed to solve: exit code: 3\n"


class FakeRegistry:
    """The registry at its seam: which fingerprint tags were pushed."""

    host = "127.0.0.1:5000"
    insecure = True

    def __init__(self, pushed: set[str]) -> None:
        self.pushed = pushed

    def manifest_digest(self, name: str, tag: str) -> str | None:
        return f"sha256:{name.replace('/', '-')}" if name.rsplit("/", 1)[1] in self.pushed else None

    def inspect(self, name: str, reference: str) -> tuple[str, str, dict]:
        if self.manifest_digest(name, reference) is None:
            raise RegistryError(f"{name}:{reference} is not in the registry")
        return whole_image()


def run_family(tmp_path, runner: ScriptedRunner, registry: FakeRegistry, said: list[str] | None = None, **options):
    write_tree(tmp_path, {"images.yaml": FAMILY, **FAMILY_FILES})
    config = load_config(tmp_path)
    dockerfiles = {"base": "docker/Dockerfile.base", "app": "docker/Dockerfile"}
    files = {name: ((path, f"100644 {blob_id(FAMILY_FILES[path].encode())}"),) for name, path in dockerfiles.items()}
    executor = BuildExecutor(config.root, BuildxBuilder(docker="docker"), runner, Wheelhouse(config.root, runner),
                        local=NoImages(), registry=registry, log_dir=config.root / "logs",
                        say=said.append if said is not None else lambda _: None, **options)
    plan = forced_plan(config, executor.contexts_dir, {"base": "0" * 64, "app": "1" * 64}, files, builder=executor.builder)
    return {result.name: result for result in executor.run(plan)}


def test_the_executor_carries_out_the_plan_as_made_the_build_by_its_request_the_local_image_by_a_push(tmp_path):
    write_tree(tmp_path, {"images.yaml": FAMILY, **FAMILY_FILES})
    config = load_config(tmp_path)
    fingerprints = {name: Fingerprint(name, digit * 64, ()) for name, digit in (("base", "0"), ("app", "1"))}
    base_ref = "127.0.0.1:5000/unit/base:" + "0" * 16
    plan = make_plan(config, fingerprints, {base_ref: Availability(local=True)},
                     settings=BuildSettings(contexts=tmp_path / "contexts", insecure_registry=True))
    base, app = plan.images
    # the kind of each entry is its decision, and a built one carries its request: nothing is left for the executor to fill in
    assert isinstance(base, ReusedLocalImage) and not hasattr(base, "request")
    assert isinstance(app, BuiltImage) and plan.to_build() == (app,)
    assert app.request.ref == app.ref and dict(app.request.build_args)["BASE_IMAGE"] == base_ref
    runner = ScriptedRunner({"push": [""], "buildx": [BUILT]})
    executor = BuildExecutor(config.root, BuildxBuilder(docker="/usr/bin/docker"), runner, Wheelhouse(config.root, runner), local=NoImages(),
                             registry=RecordingRegistry(), log_dir=tmp_path / "logs", say=lambda line: None)
    results = {result.name: result for result in executor.run(plan)}
    assert all(result.ok for result in results.values()), results
    push, build = runner.ran
    assert push[1:] == ("push", base_ref)
    assert build[1:3] == ("buildx", "build") and str(app.request.dockerfile) in build and f"BASE_IMAGE={base_ref}" in build
    assert app.request.context.is_dir()  # assembled where the request says, before the build


def test_a_parent_and_its_child_build_in_one_bake_each_with_its_own_steps(tmp_path):
    runner = ScriptedRunner({"buildx": [BAKED]})
    results = run_family(tmp_path, runner, FakeRegistry({"base", "app"}))
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "bake")]
    assert runner.ran[0][-2:] == ("base", "app")
    assert {name: (r.ok, r.steps.total) for name, r in results.items()} == {"base": (True, 1), "app": (True, 1)}
    assert "RUN echo app" in (tmp_path / "logs/app.log").read_text()
    assert "RUN echo app" not in (tmp_path / "logs/base.log").read_text()


def test_a_childs_own_failure_in_a_bake_is_the_childs_and_its_cancelled_parent_builds_alone(tmp_path):
    alone_ok = "#5 [2/2] RUN echo base > /base.txt\n#5 DONE 0.3s\n"
    app_alone = (1, "#6 [1/2] RUN echo app > /app.txt\n#6 ERROR: process did not complete successfully: exit code: 3\n")
    runner = ScriptedRunner({"buildx": [(1, BAKE_FAILED), alone_ok, app_alone]})
    results = run_family(tmp_path, runner, FakeRegistry(set()))
    # base was cancelled unfinished, so whose the failed step was is not sure from the bake: base builds alone, and builds;
    # then app alone fails in its own step, with its own error
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "bake"), ("buildx", "build"), ("buildx", "build")]
    assert results["base"].ok
    assert "process did not complete successfully: exit code: 3" in results["app"].error
    assert "parent base failed" not in results["app"].error
    assert results["app"].log.endswith("app.log") and "ERROR" in (tmp_path / "logs/app.log").read_text()


#: bake of both that failed in base's own RUN, which only app's solve reported (its graph holds base's steps, named as its own);
#: base's solve never said a word of it: BuildKit ran the shared step once. Seen on a loaded engine.
BAKE_FAILED_IN_PARENT_SEEN_BY_CHILD = _rawjson(
    {"digest": _BASE_RUN, "name": "[app linux/amd64 2/2] RUN echo base > /base.txt", "started": _T0, "completed": _T1,
     "error": "process did not complete successfully: exit code: 3"},
) + "ERROR: failed to solve: exit code: 3\n"


def test_a_parents_failed_step_reported_by_its_child_alone_is_never_the_childs(tmp_path):
    base_alone = (1, "#5 [2/2] RUN echo base > /base.txt\n#5 ERROR: process did not complete successfully: exit code: 3\n")
    runner = ScriptedRunner({"buildx": [(1, BAKE_FAILED_IN_PARENT_SEEN_BY_CHILD), base_alone]})
    results = run_family(tmp_path, runner, FakeRegistry(set()))
    # the parent is not known to be built, so the failure is not given to the child: base builds alone and fails in its
    # own step; app is not built, because of base
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "bake"), ("buildx", "build")]
    assert "exit code: 3" in results["base"].error and results["base"].log.endswith("base.log")
    assert results["app"].error == "not built: parent base failed"


def test_a_stop_after_the_last_push_leaves_the_index_unbegun(tmp_path, monkeypatch):
    from imagegraph.adapters.interrupt import Stop

    class StoppedAfterTheBuilds(PushingRunner):
        stop = Stop()

        def run(self, command: Command, **options) -> CommandResult:
            result = super().run(command, **options)
            if len(self.ran) == 2:
                self.stop.request(2)  # SIGINT as the second platform's push ends
            return result

    memory = MemoryRegistry()
    result, runner = build_per_platform(tmp_path, monkeypatch, memory, runner_type=StoppedAfterTheBuilds)
    assert len(runner.ran) == 2
    assert result.stopped == "interrupted" and (APP, FINGERPRINT) not in memory.manifests
    assert not any(method in ("GET", "PUT") for method, _ in memory.sent)
