"""One build per fingerprint, at the executor's seam: a registry in memory holds the leases and the images, the test's clock the time."""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest

from imagegraph.adapters.engine.builders import BuildxBuilder
from imagegraph.adapters.interrupt import Stop
from imagegraph.adapters.lease import BuildLeases, Lease
from imagegraph.adapters.wheelhouse import Wheelhouse
from imagegraph.core.config import load_config
from imagegraph.core.errors import RegistryError
from imagegraph.core.fingerprint import Fingerprint
from imagegraph.core.lease import LeaseBusy, LeaseTimes
from imagegraph.core.plan import Availability, Decision, make_plan
from imagegraph.core.request import BuildSettings
from imagegraph.core.result import INTERRUPTED
from imagegraph.core.values import ImageRef
from imagegraph.execute import BuildExecutor
from tests.conftest import forced_plan, write_tree
from tests.unit.test_execute import BUILD_FAILED, BUILT, NoImages, ScriptedRunner, whole_image
from tests.unit.test_lease import NOW, Memory
from tests.unit.test_lease import Clock as LeaseClock

TIMES = LeaseTimes(ttl=120.0, settle=1.0, late=0.5, renew=20.0, margin=40.0, wait=3600.0, poll=1.0)
IMAGES = """
registry: 127.0.0.1:5000
namespace: unit
images:
  base:
    dockerfile: docker/Dockerfile.base
  app:
    dockerfile: docker/Dockerfile
    parent: base
"""
FILES = {"docker/Dockerfile.base": "FROM python:3.11-slim\nRUN true\n", "docker/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN true\n"}
APP, APP_TAG = "unit/app", "1" * 16
LEASE = f"imagegraph-lease-build-{APP_TAG}"


class Clock(LeaseClock):
    """The test's clock, each thread's moving as it sleeps (threads sleep side by side); the registry's is the latest of them.
    ``meanwhile`` runs after each sleep: what another run does while this one waits."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile = lambda: None
        self._own = threading.local()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        if not hasattr(self._own, "now"):
            self._own.now = self.now  # a thread's clock starts at the latest time, then moves only as that thread sleeps
        return self._own.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._own.now = self() + seconds
            self.now = max(self.now, self._own.now)
        self.meanwhile()


class Registry(Memory):
    """Leases as :class:`Memory` keeps them, and images: a fingerprint tag is there once ``pushed``."""

    host = "127.0.0.1:5000"
    insecure = True

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.images: set[tuple[str, str]] = set()
        self.looks = 0

    def has(self, ref, platforms=()) -> bool:
        self.looks += 1
        return (ref.repository, ref.reference) in self.images

    def manifest_digest(self, name: str, tag: str) -> str | None:
        if (name, tag) not in self.images:
            return None
        return f"sha256:{name.replace('/', '-')}-{tag}" if name == APP else "sha256:" + hashlib.sha256(f"{name}:{tag}".encode()).hexdigest()

    def inspect(self, name: str, reference: str):
        if reference in self.bodies:
            return super().inspect(name, reference)
        if (name, reference) not in self.images:
            raise RegistryError(f"{name}:{reference} is not in the registry")
        return whole_image("linux/amd64")

    def copy_tag(self, name: str, tag: str, new_tag: str) -> None:
        pass

    def lease_tags(self) -> dict[tuple[str, str], str]:
        return {key: digest for key, digest in self.tags.items() if key[1].startswith("imagegraph-lease-")}


class PushingRunner(ScriptedRunner):
    """buildx's answers as scripted; a build that succeeds leaves its image in the registry, as --push does."""

    def __init__(self, registry: Registry, script) -> None:
        super().__init__(script)
        self.registry = registry

    def run(self, command, **kw):
        result = super().run(command, **kw)
        if command.argv[1:3] in (("buildx", "build"), ("buildx", "bake")):
            for ref in [a.split("=", 1)[-1] for a in command.argv if a.split("=", 1)[-1].startswith("127.0.0.1:5000/")]:
                repository, _, tag = ref.removeprefix("127.0.0.1:5000/").partition(":")
                self.registry.images.add((repository, tag))
        return result


def execute(tmp_path, registry: Registry, clock: Clock, runner: ScriptedRunner, *, forced: bool = True,
            said: list[str] | None = None, push: bool = True, builder: BuildxBuilder | None = None):
    write_tree(tmp_path, {"images.yaml": IMAGES, **FILES})
    config = load_config(tmp_path)
    if not push:
        config = replace(config, images=tuple(replace(spec, push=False) for spec in config.images))
    builder = builder or BuildxBuilder(docker="docker")
    executor = BuildExecutor(config.root, builder, runner, Wheelhouse(config.root, runner), local=NoImages(), registry=registry,
                             log_dir=tmp_path / "logs", say=(said if said is not None else []).append, sleep=clock.sleep,
                             leases=BuildLeases(registry, times=TIMES, holder="this run", clock=clock, sleep=clock.sleep))
    if forced:
        plan = forced_plan(config, executor.contexts_dir, {"base": "0" * 64, "app": "1" * 64}, builder=builder)
    else:  # base is in the registry, app is not: app is built because nothing holds its fingerprint, not because it is forced
        fingerprints = {name: Fingerprint(name, digit * 64, ()) for name, digit in (("base", "0"), ("app", "1"))}
        plan = make_plan(config, fingerprints, {"127.0.0.1:5000/unit/base:" + "0" * 16: Availability(registry=True)},
                         settings=BuildSettings(contexts=executor.contexts_dir, insecure_registry=True, builder=builder.kind))
    return {result.name: result for result in executor.run(plan)}


def other_run(registry: Registry, clock: Clock, name: str = "runner-2 pid 7 beef") -> Lease:
    """Another run's lease on app's fingerprint, taken and never renewed here (its renewer waits 20 s of real time)."""
    return Lease(registry, [APP], f"build-{APP_TAG}", f"invoke build {APP}", times=TIMES, holder=name, clock=clock,
                 sleep=clock.sleep).acquire()


def test_an_image_nobody_else_builds_costs_one_claim_and_its_lease_is_let_go(tmp_path):
    clock = Clock()
    registry = Registry(clock)
    registry.images.add(("unit/base", "0" * 16))
    runner = PushingRunner(registry, {"buildx": [BUILT]})
    said: list[str] = []
    results = execute(tmp_path, registry, clock, runner, forced=False, said=said)
    assert results["app"].ok and results["app"].decision is Decision.BUILD, results["app"].error
    assert registry.writes == [f"invoke build {APP}"]  # one claim written; base, reused, took none
    assert clock.now == TIMES.settle and registry.looks == 2  # the settle, and a look before and after whether another run pushed it
    assert registry.lease_tags() == {}
    assert "lease" in dict(results["app"].phases)
    assert not any("waiting" in line for line in said)


def test_a_run_waits_for_the_run_that_builds_the_fingerprint_then_reuses_its_push(tmp_path):
    clock = Clock()
    registry = Registry(clock)
    registry.images.add(("unit/base", "0" * 16))
    holder = other_run(registry, clock)
    pushed_at = clock.now + 30

    def meanwhile() -> None:
        if clock.now >= pushed_at and (APP, APP_TAG) not in registry.images:
            registry.images.add((APP, APP_TAG))  # the other run's push lands, then it lets go
            holder.release()

    clock.meanwhile = meanwhile
    runner = PushingRunner(registry, {"buildx": []})
    said: list[str] = []
    results = execute(tmp_path, registry, clock, runner, forced=False, said=said)
    app = results["app"]
    assert runner.ran == []  # nothing built
    assert app.ok and app.decision is Decision.REUSE and app.digest == f"sha256:unit-app-{APP_TAG}" and not app.pushed
    until = (NOW + timedelta(seconds=TIMES.ttl)).strftime("%H:%M:%S")
    assert said[0] == f"[app] waiting: run runner-2 pid 7 beef builds this fingerprint (lease until {until} UTC)"
    assert said[1].startswith(f"[app] reusing 127.0.0.1:5000/unit/app:{APP_TAG}: another run built and pushed it while this one "
                              f"waited (lease ")
    assert len(said) == 2
    assert pushed_at <= clock.now < pushed_at + 3 * TIMES.poll
    assert registry.writes == [f"invoke build {APP}"]  # the other run's claim only: the waiter wrote none
    assert registry.lease_tags() == {}


def test_a_holder_that_died_lets_go_when_its_lease_expires_and_the_waiter_builds(tmp_path):
    clock = Clock()
    registry = Registry(clock)
    registry.images.add(("unit/base", "0" * 16))
    other_run(registry, clock, "runner-9 pid 1 dead")  # never renewed, never released
    runner = PushingRunner(registry, {"buildx": [BUILT]})
    said: list[str] = []
    results = execute(tmp_path, registry, clock, runner, forced=False, said=said)
    assert results["app"].ok and results["app"].decision is Decision.BUILD, results["app"].error
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "build")]
    assert TIMES.ttl <= clock.now <= TIMES.ttl + 2 * TIMES.poll + 2 * TIMES.settle  # waited for the expiry, no longer
    assert said[0].startswith("[app] waiting: run runner-9 pid 1 dead builds this fingerprint")
    assert said[1] == "[app] building it here: run runner-9 pid 1 dead let go of its lease without pushing it"
    assert registry.lease_tags() == {}


def test_a_build_that_fails_lets_go_of_its_lease_at_once(tmp_path):
    clock = Clock()
    registry = Registry(clock)
    registry.images.add(("unit/base", "0" * 16))
    runner = PushingRunner(registry, {"buildx": [(1, BUILD_FAILED)]})
    results = execute(tmp_path, registry, clock, runner, forced=False)
    assert "exit code: 3" in results["app"].error
    assert registry.writes == [f"invoke build {APP}"] and registry.lease_tags() == {}


def test_a_forced_build_takes_the_lease_and_builds_though_the_fingerprint_is_there(tmp_path):
    clock = Clock()
    registry = Registry(clock)
    registry.images |= {("unit/base", "0" * 16), (APP, APP_TAG)}
    runner = PushingRunner(registry, {"buildx": [BUILT, BUILT]})
    results = execute(tmp_path, registry, clock, runner, forced=True)
    assert all(r.ok and r.decision is Decision.BUILD for r in results.values()), results
    # base and app build in one bake, each under its own lease: one claim each, let go after
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "bake")]
    assert sorted(registry.writes) == ["invoke build unit/app", "invoke build unit/base"]
    assert registry.looks == 0  # forced: what the registry holds is not asked
    assert registry.lease_tags() == {}


def test_a_bake_whose_member_another_run_builds_leaves_each_to_build_alone_and_a_forced_one_waits_then_builds(tmp_path):
    clock = Clock()
    registry = Registry(clock)
    holder = other_run(registry, clock)
    started = clock.now

    def meanwhile() -> None:
        if clock.now - started >= 10 and holder.expires() is not None:
            holder.release()  # the other run is done (pushed or not: a forced build builds all the same)

    clock.meanwhile = meanwhile
    runner = PushingRunner(registry, {"buildx": [BUILT, BUILT]})
    said: list[str] = []
    results = execute(tmp_path, registry, clock, runner, forced=True, said=said)
    assert all(r.ok and r.decision is Decision.BUILD for r in results.values()), results
    # base's lease was taken with app's and let go when app's was busy; each then built alone, app after the other run let go
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "build"), ("buildx", "build")]
    assert f"--tag={'127.0.0.1:5000/unit/app:' + APP_TAG}" in runner.ran[1] or "127.0.0.1:5000/unit/app:" + APP_TAG in runner.ran[1]
    assert any(line.startswith("[app] waiting: run runner-2 pid 7 beef builds this fingerprint") for line in said), said
    assert registry.lease_tags() == {}


def test_a_local_only_image_takes_no_lease(tmp_path):
    clock = Clock()
    registry = Registry(clock)
    runner = PushingRunner(registry, {"buildx": [BUILT, BUILT]})
    results = execute(tmp_path, registry, clock, runner, push=False)
    assert all(r.ok for r in results.values())
    assert registry.writes == [] and clock.now == 0


@pytest.mark.parametrize("wait", [True, False])
def test_without_waiting_a_held_lease_is_no_lease(wait):
    clock = Clock()
    registry = Registry(clock)
    other_run(registry, clock)
    leases = BuildLeases(registry, times=replace(TIMES, wait=5.0), holder="this run", clock=clock, sleep=clock.sleep)
    image = ImageRef.parse(f"127.0.0.1:5000/{APP}:{APP_TAG}")
    if wait:
        with pytest.raises(LeaseBusy, match="is held by invoke build unit/app"):
            leases.take(image, ("linux/amd64",))
    else:
        assert leases.take(image, ("linux/amd64",), wait=False) is None
        assert registry.writes == [f"invoke build {APP}"]


def test_the_plan_says_which_builds_are_forced_the_image_named_and_those_below_it(tmp_path):
    write_tree(tmp_path, {"images.yaml": IMAGES, **FILES})
    config = load_config(tmp_path)
    fingerprints = {name: Fingerprint(name, digit * 64, ()) for name, digit in (("base", "0"), ("app", "1"))}
    settings = BuildSettings(contexts=tmp_path / "contexts", insecure_registry=True)
    assert [entry.forced for entry in make_plan(config, fingerprints, {}, force=["base"], settings=settings).images] == [True, True]
    assert [entry.forced for entry in make_plan(config, fingerprints, {}, force=["app"], settings=settings).images] == [False, True]
    assert [entry.forced for entry in make_plan(config, fingerprints, {}, settings=settings).images] == [False, False]


def test_a_stop_while_waiting_for_another_runs_build_ends_the_wait_at_once(tmp_path):
    clock = Clock()
    registry = Registry(clock)
    registry.images.add(("unit/base", "0" * 16))
    other_run(registry, clock)
    runner = PushingRunner(registry, {"buildx": []})
    runner.stop = Stop()

    def meanwhile() -> None:
        if clock.now >= 5:
            runner.stop.signum = signal.SIGTERM  # what Stop.request records, without ending commands that are not there

    clock.meanwhile = meanwhile
    results = execute(tmp_path, registry, clock, runner, forced=False)
    assert results["app"].stopped == INTERRUPTED and runner.ran == []
    assert clock.now < 5 + 2 * TIMES.poll
    assert registry.writes == [f"invoke build {APP}"]  # the other run's claim only


def test_a_whole_image_under_a_held_lease_is_waited_for_until_the_holder_lets_go(tmp_path):
    """buildx's docker driver pushes twice, the second time writing each platform's manifest to the tag before the index: the tag
    can name the whole image while the holder still pushes. The waiter reuses it only once the holder has let go."""
    clock = Clock()
    registry = Registry(clock)
    registry.images.add(("unit/base", "0" * 16))
    holder = other_run(registry, clock)

    def meanwhile() -> None:
        if clock.now >= 10:
            registry.images.add((APP, APP_TAG))  # BuildKit's push landed; buildx's own is under way
        if clock.now >= 20 and holder.expires() is not None:
            holder.release()

    clock.meanwhile = meanwhile
    said: list[str] = []
    results = execute(tmp_path, registry, clock, PushingRunner(registry, {"buildx": []}), forced=False, said=said)
    assert results["app"].decision is Decision.REUSE, said
    assert 20 <= clock.now < 20 + 3 * TIMES.poll
    assert registry.writes == [f"invoke build {APP}"]


class Watching(PushingRunner):
    """Holds the first build until ``claim`` is written (5 s at most), and notes the claims written by then."""

    def __init__(self, registry: Registry, script, claim: str) -> None:
        super().__init__(registry, script)
        self.claim = claim
        self.at_first_build: list[str] | None = None

    def run(self, command, **kw):
        if command.argv[1:3] == ("buildx", "build") and self.at_first_build is None:
            deadline = time.monotonic() + 5
            while self.claim not in self.registry.writes and time.monotonic() < deadline:
                time.sleep(0.01)
            self.at_first_build = list(self.registry.writes)
        return super().run(command, **kw)


def test_a_run_takes_every_builds_lease_as_it_starts_one_settle_for_the_run_not_one_per_image(tmp_path):
    """base and app, each built alone (a builder that cannot bake): app's lease is taken while base is built, not after."""
    clock = Clock()
    registry = Registry(clock)
    runner = Watching(registry, {"buildx": [BUILT, BUILT]}, f"invoke build {APP}")
    results = execute(tmp_path, registry, clock, runner, forced=True, builder=BuildxBuilder(docker="docker", multi_platform=False))
    assert all(r.ok and r.decision is Decision.BUILD for r in results.values()), results
    assert [argv[1:3] for argv in runner.ran] == [("buildx", "build")] * 2
    assert sorted(runner.at_first_build) == [f"invoke build {APP}", "invoke build unit/base"]
    assert sorted(registry.writes) == [f"invoke build {APP}", "invoke build unit/base"]  # app's build took no lease of its own
    assert registry.lease_tags() == {}


def test_a_lease_taken_as_the_run_started_is_let_go_when_its_image_will_not_be_built(tmp_path):
    clock = Clock()
    registry = Registry(clock)
    runner = PushingRunner(registry, {"buildx": [(1, BUILD_FAILED)]})
    results = execute(tmp_path, registry, clock, runner, forced=True, builder=BuildxBuilder(docker="docker", multi_platform=False))
    assert not results["base"].ok and results["app"].error == "not built: parent base failed"
    assert sorted(registry.writes) == [f"invoke build {APP}", "invoke build unit/base"]
    assert registry.lease_tags() == {}


def test_a_run_of_one_platform_builds_under_its_parts_lease_not_waiting_for_another_platforms_run(tmp_path):
    """Two runners of one family, one per platform: each part has its own lease (named from the part tag it pushes)."""
    clock = Clock()
    registry = Registry(clock)
    write_tree(tmp_path, {"images.yaml": IMAGES.replace("    dockerfile: docker/Dockerfile\n",
                                                         "    dockerfile: docker/Dockerfile\n    platforms: [linux/amd64, linux/arm64]\n"),
                          **FILES})
    config = load_config(tmp_path)
    fingerprints = {name: Fingerprint(name, digit * 64, ()) for name, digit in (("base", "0"), ("app", "1"))}
    amd64 = Lease(registry, [APP], f"build-{APP_TAG}-amd64", f"invoke build {APP}", times=TIMES, holder="runner-amd64",
                  clock=clock, sleep=clock.sleep).acquire()
    registry.images.add(("unit/base", "0" * 16))
    claimed: list[str] = []
    put = registry.put_manifest
    registry.put_manifest = lambda name, reference, data, media_type: claimed.append(reference) or put(name, reference, data, media_type)
    runner = PushingRunner(registry, {"buildx": [BUILT]})
    builder = BuildxBuilder(docker="docker")
    executor = BuildExecutor(config.root, builder, runner, Wheelhouse(config.root, runner), local=NoImages(), registry=registry,
                             log_dir=tmp_path / "logs", sleep=clock.sleep,
                             leases=BuildLeases(registry, times=TIMES, holder="runner-arm64", clock=clock, sleep=clock.sleep))
    plan = make_plan(config, fingerprints, {"127.0.0.1:5000/unit/base:" + "0" * 16: Availability(registry=True)},
                     settings=BuildSettings(contexts=executor.contexts_dir, insecure_registry=True, builder=builder.kind),
                     only_platform="linux/arm64")
    results = {r.name: r for r in executor.run(plan)}
    assert results["app"].ok and results["app"].decision is Decision.BUILD, results["app"].error
    assert results["app"].ref.endswith(f":{APP_TAG}-arm64")
    assert claimed == [f"imagegraph-lease-build-{APP_TAG}-arm64"]  # the lease of the part it pushes, not of the fingerprint
    assert clock.now == 2 * TIMES.settle  # the amd64 runner's settle, then this run's: no wait for the amd64 part's lease
    assert registry.lease_tags() == {(APP, f"imagegraph-lease-build-{APP_TAG}-amd64"): amd64._mine[APP][0]}
    arm64 = Lease(registry, [APP], f"build-{APP_TAG}-arm64", f"invoke build {APP}", times=replace(TIMES, wait=0.0),
                  holder="another arm64 runner", clock=clock, sleep=clock.sleep)
    assert arm64.acquire()._mine  # and this run's part lease is let go
    arm64.release()
    amd64.release()
