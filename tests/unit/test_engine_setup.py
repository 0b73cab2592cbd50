"""Engine setup decisions, from observed facts built in memory (no engine, no subprocess)."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from imagegraph.adapters.engine.builder_choice import BuilderChoice
from imagegraph.adapters.engine.builders import BuildxBuilder
from imagegraph.adapters.engine.images import image_store_of
from imagegraph.adapters.runner import Runner
from imagegraph.core.errors import EngineError, ImagegraphError, RegistryError, ToolMissing
from imagegraph.core.values import Platform, is_loopback
from imagegraph_provision import seed, seed_build
from imagegraph_provision.decide import (
    EnableBinfmts,
    InstallPackages,
    MountBinfmt,
    NoEmulation,
    RemovePidfile,
    ReuseDaemon,
    ReuseRegistry,
    StartDockerd,
    StartRegistry,
    StopProcess,
    WaitForDaemon,
    decide_daemon,
    decide_down,
    decide_emulation,
    decide_registry,
)
from imagegraph_provision.facts import (
    CONTAINERD_CONFIG,
    CONTAINERD_PIDFILE,
    DEFAULT_HOST,
    DOCKER_PIDFILE,
    BinfmtEntry,
    DaemonFacts,
    DockerClientInfo,
    EmulationFacts,
    MachineFacts,
    PidFile,
    Proc,
    RegistryFacts,
    emulated_platforms,
    is_debian_like,
    mirror_configured,
    parse_binfmt_entry,
    parse_registry_address,
)
from imagegraph_provision.install import Distribution, EnginePackages, engine_packages, parse_docker_version
from imagegraph_provision.observe import observe_emulation
from imagegraph_provision.procs import parse_stat, read_pidfile, read_process, read_processes
from imagegraph_provision.seed import (
    BuildImage,
    BuildRootfs,
    PushManifestList,
    SeedFacts,
    SeedPresent,
    SkipSeed,
    decide_seed,
)
from imagegraph_provision.state import StatePaths, daemon_config, default_state_dir, registry_config, registry_config_address
from imagegraph_provision.status import EngineStatus
from imagegraph_provision.steps import EngineSteps, stop_process, unrestored_images

REGISTRY = "127.0.0.1:5000"
MIRROR = f"http://{REGISTRY}"
STATE = Path("/var/lib/imagegraph")
OURS = str(STATE / "dockerd.pid")

BOOKWORM = Distribution("debian", "12", "bookworm")
TRIXIE = Distribution("debian", "13", "trixie")
NOBLE = Distribution("ubuntu", "24.04", "noble", ("debian",))

ROOT_DEBIAN = MachineFacts(
    is_root=True, debian_like=True,
    tools={"apt-get": "/usr/bin/apt-get", "dockerd": "/usr/sbin/dockerd", "docker-registry": "/usr/bin/docker-registry",
           "update-binfmts": "/usr/sbin/update-binfmts", "debootstrap": "/usr/sbin/debootstrap"},
    distro=BOOKWORM, dockerd_version="26.1.5+dfsg1", buildx=True,
)
#: Debian 12's own engine: dockerd 20.10 and no buildx.
OLD_DEBIAN = replace(ROOT_DEBIAN, dockerd_version="20.10.24+dfsg1", buildx=False)
FRESH_DEBIAN = MachineFacts(is_root=True, debian_like=True, tools={"apt-get": "/usr/bin/apt-get"}, distro=BOOKWORM)
USER_WITH_DOCKER = MachineFacts(is_root=False, debian_like=True, tools={"dockerd": "/usr/sbin/dockerd"}, distro=BOOKWORM,
                                dockerd_version="26.1.5+dfsg1", buildx=True)


def proc(pid: int, name: str, *argv: str, ppid: int = 1, zombie: bool = False) -> Proc:
    return Proc(pid, ppid, name, argv or (name,), zombie)


def containerd_of_dockerd(pid: int) -> Proc:
    return proc(pid, "containerd", "containerd", "--config", CONTAINERD_CONFIG, "--log-level", "info")


def down(**changes) -> DaemonFacts:
    return DaemonFacts(host=DEFAULT_HOST, answers=False, **changes)


def answering(version: str = "26.1.5+dfsg1", store: str | None = "containerd", ours: bool = False) -> DaemonFacts:
    managed = PidFile(OURS, 2477, proc(2477, "dockerd")) if ours else None
    return DaemonFacts(DEFAULT_HOST, True, version, "1.45", processes=(proc(2477, "dockerd"),), managed_pidfile=managed,
                       image_store=store)


def start(store: str = "containerd") -> StartDockerd:
    return StartDockerd(DEFAULT_HOST, MIRROR, store)


# --- daemon ----------------------------------------------------------------

def test_a_current_daemon_that_answers_is_reused_and_named_ours_only_when_our_pidfile_holds_it():
    assert decide_daemon(answering(), ROOT_DEBIAN, REGISTRY) == (
        ReuseDaemon(DEFAULT_HOST, "26.1.5+dfsg1", "1.45", False, "containerd"),)
    assert decide_daemon(answering(store="classic", ours=True), ROOT_DEBIAN, REGISTRY) == (
        ReuseDaemon(DEFAULT_HOST, "26.1.5+dfsg1", "1.45", True, "classic"),)
    # a pid file of ours naming some other program is not ours
    reused = replace(answering(), managed_pidfile=PidFile(OURS, 2477, proc(2477, "bash")))
    assert decide_daemon(reused, ROOT_DEBIAN, REGISTRY)[0].managed is False


def test_someone_elses_current_daemon_without_buildx_is_reused_with_a_note():
    (reuse,) = decide_daemon(answering(), replace(ROOT_DEBIAN, buildx=False), REGISTRY)
    assert isinstance(reuse, ReuseDaemon) and not reuse.managed
    assert "docker-buildx" in reuse.note
    line = reuse.describe()
    assert line == (f"engine: reusing dockerd 26.1.5+dfsg1 (API 1.45, containerd image store, not started by imagegraph) "
                    f"at {DEFAULT_HOST}; {reuse.note}")


def test_the_same_store_named_explicitly_reuses_the_daemon():
    assert decide_daemon(answering(store="classic"), ROOT_DEBIAN, REGISTRY, "classic") == (
        ReuseDaemon(DEFAULT_HOST, "26.1.5+dfsg1", "1.45", False, "classic"),)


def test_docker_23_is_current_and_22_is_not():
    assert isinstance(decide_daemon(answering("23.0.0"), ROOT_DEBIAN, REGISTRY)[0], ReuseDaemon)
    with pytest.raises(EngineError, match=re.escape("dockerd 22.06.0 answers")):
        decide_daemon(answering("22.06.0"), ROOT_DEBIAN, REGISTRY)


def test_someone_elses_daemon_older_than_23_is_an_error_that_names_the_fix():
    with pytest.raises(EngineError, match=r"^[^\n]+$") as caught:
        decide_daemon(answering("20.10.24+dfsg1", store="classic"), OLD_DEBIAN, REGISTRY)
    message = str(caught.value)
    assert message.startswith(f"dockerd 20.10.24+dfsg1 answers at {DEFAULT_HOST}, but imagegraph builds with Docker 23")
    assert "upgrade that engine" in message and "invoke engine.up` as root" in message


def test_our_daemon_older_than_23_is_stopped_upgraded_and_restarted():
    reason = "dockerd 20.10.24+dfsg1 is older than Docker 23"
    # no --image-store: the upgraded engine starts on the containerd store, whatever the old one used
    assert decide_daemon(answering("20.10.24+dfsg1", store="classic", ours=True), OLD_DEBIAN, REGISTRY) == (
        StopProcess(2477, "dockerd", f"{reason}: upgrading", OURS),
        InstallPackages(engine_packages(BOOKWORM), reason),
        start("containerd"),
    )
    # an explicit store is what the upgraded one starts on
    actions = decide_daemon(answering("20.10.24+dfsg1", store="classic", ours=True), OLD_DEBIAN, REGISTRY, "containerd")
    assert actions[-1] == start("containerd") and isinstance(actions[1], InstallPackages)


def test_our_daemon_older_than_23_without_apt_is_an_error():
    with pytest.raises(EngineError, match="older than Docker 23 \\(no buildx\\); upgrade Docker"):
        decide_daemon(answering("20.10.24", ours=True), replace(OLD_DEBIAN, is_root=False), REGISTRY)


def test_our_daemon_without_buildx_is_stopped_and_buildx_installed():
    machine = replace(ROOT_DEBIAN, buildx=False)
    assert decide_daemon(answering(store="containerd", ours=True), machine, REGISTRY) == (
        StopProcess(2477, "dockerd", "no buildx plugin: upgrading", OURS),
        InstallPackages(engine_packages(BOOKWORM), "no buildx plugin"),
        start("containerd"),
    )


@pytest.mark.parametrize(("running", "wanted"), [("classic", "containerd"), ("containerd", "classic")])
def test_another_image_store_restarts_our_daemon_on_it(running, wanted):
    assert decide_daemon(answering(store=running, ours=True), ROOT_DEBIAN, REGISTRY, wanted) == (
        StopProcess(2477, "dockerd", f"switching to the {wanted} image store", OURS),
        start(wanted),
    )


def test_another_image_store_for_someone_elses_daemon_is_an_error():
    with pytest.raises(EngineError, match=r"^[^\n]+$") as caught:
        decide_daemon(answering(store="classic"), ROOT_DEBIAN, REGISTRY, "containerd")
    message = str(caught.value)
    assert "uses the classic image store and imagegraph did not start it" in message
    assert "features.containerd-snapshotter" in message and "drop --image-store" in message


def test_a_clean_machine_with_a_current_engine_but_nothing_running_starts_dockerd_with_our_config():
    assert decide_daemon(down(), ROOT_DEBIAN, REGISTRY) == (start(),)
    assert start().argv(STATE / "daemon.json") == (
        "dockerd", "--host", "unix:///var/run/docker.sock", "--config-file", "/var/lib/imagegraph/daemon.json")
    assert decide_daemon(down(), ROOT_DEBIAN, REGISTRY, "classic") == (start("classic"),)


def test_the_mirror_follows_the_registry_address():
    (action,) = decide_daemon(down(), ROOT_DEBIAN, "127.0.0.1:5055")
    assert action == StartDockerd(DEFAULT_HOST, "http://127.0.0.1:5055", "containerd")


@pytest.mark.parametrize("store", ["containerd", "classic"])
def test_daemon_config_holds_the_mirror_and_the_image_store(store):
    text = daemon_config("http://127.0.0.1:5000", store)
    assert text.endswith("}\n")
    assert json.loads(text) == {"registry-mirrors": ["http://127.0.0.1:5000"],
                                "features": {"containerd-snapshotter": store == "containerd"}}


@pytest.mark.parametrize(
    ("machine", "reason", "distro"),
    [
        (FRESH_DEBIAN, "no engine installed", BOOKWORM),
        (replace(OLD_DEBIAN, buildx=True), "dockerd 20.10.24+dfsg1 is older than Docker 23", BOOKWORM),
        (replace(ROOT_DEBIAN, buildx=False), "no buildx plugin", BOOKWORM),
        (replace(FRESH_DEBIAN, distro=TRIXIE), "no engine installed", TRIXIE),
        (replace(OLD_DEBIAN, distro=NOBLE), "dockerd 20.10.24+dfsg1 is older than Docker 23", NOBLE),
    ],
    ids=["fresh debian 12", "debian 12's own 20.10", "no buildx", "fresh debian 13", "ubuntu 24.04 with 20.10"],
)
def test_a_machine_without_a_current_engine_installs_it_then_starts(machine, reason, distro):
    assert not machine.engine_current
    assert decide_daemon(down(), machine, REGISTRY) == (InstallPackages(engine_packages(distro), reason), start())


def test_debian_12_gets_the_engine_from_trixie_and_the_rest_from_bookworm():
    (install, _) = decide_daemon(down(), FRESH_DEBIAN, REGISTRY)
    assert install.packages.apt_arguments() == (
        "docker.io/trixie", "docker-cli/trixie", "containerd/trixie", "docker-buildx/trixie",
        "docker-registry", "qemu-user-static", "binfmt-support", "debootstrap")
    assert install.describe() == (
        "engine: installing docker.io docker-cli containerd docker-buildx docker-registry qemu-user-static binfmt-support "
        "debootstrap (docker.io, docker-cli, containerd, docker-buildx from Debian trixie, pinned) with apt-get "
        "(no engine installed)")


@pytest.mark.parametrize(
    ("machine", "fix"),
    [
        (MachineFacts(is_root=True, debian_like=False, tools={}), "install Docker Engine (23 or later, with buildx) or Docker Desktop"),
        (MachineFacts(is_root=False, debian_like=True, tools={"apt-get": "/usr/bin/apt-get"}, distro=BOOKWORM),
         "as root on Debian/Ubuntu"),
        (USER_WITH_DOCKER, "start Docker (Docker Desktop"),
        (replace(USER_WITH_DOCKER, dockerd_version="20.10.24+dfsg1"), "dockerd 20.10.24+dfsg1 is older than Docker 23 (no buildx); upgrade"),
        (replace(USER_WITH_DOCKER, buildx=False), "has the buildx plugin; install docker-buildx"),
        # root, apt, a debian-like distribution whose packages imagegraph does not know
        (replace(FRESH_DEBIAN, distro=Distribution("linuxmint", "21.3", "virginia", ("ubuntu", "debian"))),
         "Linuxmint 21.3 (virginia) has no Docker 23+ with buildx"),
        (replace(FRESH_DEBIAN, distro=Distribution("ubuntu", "22.04", "jammy", ("debian",))), "Ubuntu 22.04 (jammy) has no Docker 23+"),
    ],
    ids=["not debian", "user with apt", "user with a current engine", "user with 20.10", "user without buildx",
         "root on mint", "root on ubuntu 22.04"],
)
def test_without_a_way_to_get_a_daemon_the_error_says_the_fix(machine, fix):
    with pytest.raises(EngineError, match=r"^[^\n]+$") as caught:
        decide_daemon(down(), machine, REGISTRY)
    assert fix in str(caught.value)


@pytest.mark.parametrize(
    ("machine", "current"),
    [
        (ROOT_DEBIAN, True),
        (replace(ROOT_DEBIAN, dockerd_version="23.0.1"), True),
        (replace(ROOT_DEBIAN, dockerd_version=None), True),  # a version dockerd did not say is not held against it
        (replace(ROOT_DEBIAN, dockerd_version="20.10.24+dfsg1"), False),
        (replace(ROOT_DEBIAN, buildx=False), False),
        (replace(ROOT_DEBIAN, tools={"apt-get": "/usr/bin/apt-get"}), False),
    ],
)
def test_engine_current_needs_dockerd_23_and_buildx(machine, current):
    assert machine.engine_current is current


def test_an_engine_elsewhere_that_does_not_answer_is_not_replaced_by_a_local_one():
    with pytest.raises(EngineError, match="unset DOCKER_HOST"):
        decide_daemon(DaemonFacts("tcp://10.0.0.5:2376", answers=False), ROOT_DEBIAN, REGISTRY)
    # /var/run is a link to /run: the same socket.
    assert decide_daemon(DaemonFacts("unix:///run/docker.sock", answers=False), ROOT_DEBIAN, REGISTRY)[-1] == start()


def test_image_store_of_docker_info():
    containerd = {"Driver": "overlayfs", "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]}
    classic = {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                                                      ["Using metacopy", "false"], ["Native Overlay Diff", "true"],
                                                      ["userxattr", "false"]]}
    assert image_store_of(containerd) == "containerd"
    assert image_store_of(classic) == "classic"
    assert image_store_of({"DriverStatus": [("driver-type", "something.else")]}) == "classic"
    assert image_store_of({"DriverStatus": None}) == "classic" and image_store_of({}) == "classic"


def test_a_running_dockerd_that_does_not_answer_is_never_joined_by_a_second_one():
    facts = down(processes=(proc(812, "dockerd"),), docker_pidfile=PidFile(DOCKER_PIDFILE, 812, proc(812, "dockerd")))
    with pytest.raises(EngineError, match=r"dockerd \(pid 812\) runs but does not answer.*kill 812"):
        decide_daemon(facts, ROOT_DEBIAN, REGISTRY)


def test_our_own_dockerd_still_starting_is_waited_for():
    ours = PidFile(str(STATE / "dockerd.pid"), 812, proc(812, "dockerd"))
    facts = down(processes=(proc(812, "dockerd"),), managed_pidfile=ours)
    assert decide_daemon(facts, ROOT_DEBIAN, REGISTRY) == (WaitForDaemon(DEFAULT_HOST, 812),)
    with pytest.raises(EngineError, match="812 900"):
        decide_daemon(facts.__class__(**{**facts.__dict__, "processes": (proc(812, "dockerd"), proc(900, "dockerd"))}),
                      ROOT_DEBIAN, REGISTRY)


def test_after_kill_9_the_orphaned_containerd_is_stopped_and_its_pidfile_cleared():
    # dockerd is gone: its pid file names a dead pid (dockerd itself accepts
    # that), its containerd lives on with init as parent.
    facts = down(
        processes=(containerd_of_dockerd(2515),),
        docker_pidfile=PidFile(DOCKER_PIDFILE, 2477, None),
        containerd_pidfile=PidFile(CONTAINERD_PIDFILE, 2515, containerd_of_dockerd(2515)),
        managed_pidfile=PidFile(str(STATE / "dockerd.pid"), 2477, None),
    )
    assert decide_daemon(facts, ROOT_DEBIAN, REGISTRY) == (
        StopProcess(2515, "containerd", "orphaned by a dockerd that is gone"),
        RemovePidfile(CONTAINERD_PIDFILE, "pid 2515 is not a containerd to adopt"),
        RemovePidfile(str(STATE / "dockerd.pid"), "the dockerd it names is gone"),
        start(),
    )


@pytest.mark.parametrize(
    "holder",
    [proc(2477, "bash"), proc(2477, "dockerd", zombie=True)],
    ids=["pid reused after reboot", "unreaped zombie"],
)
def test_a_docker_pidfile_naming_a_live_non_dockerd_is_removed_because_dockerd_refuses_it(holder):
    facts = down(processes=(holder,) if holder.name == "dockerd" else (), docker_pidfile=PidFile(DOCKER_PIDFILE, 2477, holder))
    actions = decide_daemon(facts, ROOT_DEBIAN, REGISTRY)
    assert actions[0] == RemovePidfile(DOCKER_PIDFILE, f"pid 2477 is {holder.name}, not a running dockerd")
    assert actions[-1] == start()


def test_a_containerd_not_started_by_dockerd_is_left_alone():
    system = proc(300, "containerd", "/usr/bin/containerd")
    assert decide_daemon(down(processes=(system,)), ROOT_DEBIAN, REGISTRY) == (start(),)


def test_no_observed_state_ever_plans_two_dockerds_or_one_beside_a_live_one():
    states = itertools.product(
        [(), (proc(10, "dockerd"),), (proc(10, "dockerd", zombie=True),), (containerd_of_dockerd(11),)],
        [None, PidFile(DOCKER_PIDFILE, 10, None), PidFile(DOCKER_PIDFILE, 10, proc(10, "sleep"))],
        [None, PidFile(str(STATE / "dockerd.pid"), 10, proc(10, "dockerd")), PidFile(str(STATE / "dockerd.pid"), 10, None)],
        [ROOT_DEBIAN, FRESH_DEBIAN],
    )
    for processes, pidfile, ours, machine in states:
        facts = down(processes=processes, docker_pidfile=pidfile, managed_pidfile=ours)
        try:
            actions = decide_daemon(facts, machine, REGISTRY)
        except EngineError:
            continue
        starts = [a for a in actions if isinstance(a, StartDockerd)]
        assert len(starts) <= 1
        if any(p.name == "dockerd" and p.running for p in processes):
            assert not starts, facts


# --- registry --------------------------------------------------------------

def registry_facts(**changes) -> RegistryFacts:
    return RegistryFacts(**{"address": REGISTRY, "answers": False, "port_open": False, **changes})


def ours_registry(pid: int = 4000, alive: bool = True) -> PidFile:
    holder = proc(pid, "docker-registry", "/usr/bin/docker-registry", "serve", str(STATE / "registry.yml")) if alive else None
    return PidFile(str(STATE / "registry.pid"), pid, holder)


def test_a_registry_that_answers_is_reused():
    assert decide_registry(registry_facts(answers=True, port_open=True), ROOT_DEBIAN, STATE) == (ReuseRegistry(REGISTRY, False),)
    facts = registry_facts(answers=True, port_open=True, managed_pidfile=ours_registry(), managed_address=REGISTRY)
    assert decide_registry(facts, ROOT_DEBIAN, STATE) == (ReuseRegistry(REGISTRY, True),)


def test_a_missing_registry_is_started_and_installed_first_when_needed():
    assert decide_registry(registry_facts(), ROOT_DEBIAN, STATE) == (StartRegistry(REGISTRY),)
    (install, started) = decide_registry(registry_facts(), FRESH_DEBIAN, STATE)
    # only the registry, emulation and seed tools: never the engine, from the distribution itself
    assert (install, started) == (InstallPackages(EnginePackages(engine=())), StartRegistry(REGISTRY))
    assert install.packages.apt_arguments() == ("docker-registry", "qemu-user-static", "binfmt-support", "debootstrap")
    assert install.describe() == "engine: installing docker-registry qemu-user-static binfmt-support debootstrap with apt-get"
    with pytest.raises(ToolMissing, match="docker-registry is not installed"):
        decide_registry(registry_facts(), USER_WITH_DOCKER, STATE)


def test_a_registry_of_ours_that_stopped_answering_is_restarted_and_a_stale_pidfile_removed():
    facts = registry_facts(port_open=True, managed_pidfile=ours_registry(), managed_address=REGISTRY)
    assert decide_registry(facts, ROOT_DEBIAN, STATE) == (
        StopProcess(4000, "docker-registry", "ours, but it does not answer", str(STATE / "registry.pid")),
        StartRegistry(REGISTRY),
    )
    stale = registry_facts(managed_pidfile=ours_registry(alive=False), managed_address=REGISTRY)
    assert decide_registry(stale, ROOT_DEBIAN, STATE) == (
        RemovePidfile(str(STATE / "registry.pid"), "the registry it names is gone"),
        StartRegistry(REGISTRY),
    )


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        (registry_facts(port_open=True), "taken by something that is not a registry"),
        (registry_facts(address="192.168.1.4:5000"), "only starts one on this machine"),
        # A transparent proxy accepts any remote connection: that says nothing.
        (registry_facts(address="10.1.2.3:5000", port_open=True), "only starts one on this machine"),
        (registry_facts(address="0.0.0.0:5000"), "pass --registry 127.0.0.1:5000"),
        (registry_facts(address="127.0.0.1:5055", managed_pidfile=ours_registry(), managed_address=REGISTRY),
         "already runs a registry at 127.0.0.1:5000"),
    ],
)
def test_registries_imagegraph_must_not_start(facts, message):
    with pytest.raises(RegistryError, match=message):
        decide_registry(facts, ROOT_DEBIAN, STATE)


def test_registry_address_parsing():
    assert parse_registry_address("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert parse_registry_address("localhost:5055") == ("localhost", 5055)
    assert parse_registry_address("[::1]:5000") == ("[::1]", 5000)
    for bad in ("127.0.0.1", "127.0.0.1:port", ":5000", "127.0.0.1:0", "http://127.0.0.1:5000", "127.0.0.1:5000/path"):
        with pytest.raises(RegistryError, match=re.escape("--registry 127.0.0.1:5000")):
            parse_registry_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("registry.example.com")


def test_our_registry_config_listens_on_loopback_with_deletes_and_its_own_storage():
    text = registry_config("127.0.0.1:5000", Path("/var/lib/imagegraph/registry-data"))
    assert text == (
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
        '    rootdirectory: "/var/lib/imagegraph/registry-data"\n  delete:\n    enabled: true\n'
        'http:\n  addr: "127.0.0.1:5000"\n'
    )
    assert registry_config_address(text) == "127.0.0.1:5000"
    assert registry_config_address("version: 0.1\n") is None


# --- emulation -------------------------------------------------------------

# Captured from /proc/sys/fs/binfmt_misc/qemu-aarch64 on the build machine.
QEMU_AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


def test_binfmt_entries_map_to_the_platforms_they_emulate():
    entry = parse_binfmt_entry("qemu-aarch64", QEMU_AARCH64)
    assert entry == BinfmtEntry("qemu-aarch64", True, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "PF")
    facts = EmulationFacts(True, True, (
        entry,
        parse_binfmt_entry("qemu-arm", QEMU_AARCH64.replace("enabled", "disabled", 1)),
        BinfmtEntry("qemu-x86_64", True),
        BinfmtEntry("python3.11", True),
    ))
    assert emulated_platforms(facts, native="linux/amd64") == ("linux/arm64",)
    assert emulated_platforms(facts, native="linux/arm64") == ("linux/amd64",)
    assert emulated_platforms(EmulationFacts(True, False, facts.entries), "linux/amd64") == ()


def test_binfmt_is_read_from_its_directory(tmp_path):
    assert observe_emulation(tmp_path) == EmulationFacts(mounted=False)
    (tmp_path / "register").write_text("")
    (tmp_path / "status").write_text("enabled\n")
    (tmp_path / "qemu-aarch64").write_text(QEMU_AARCH64)
    facts = observe_emulation(tmp_path)
    assert facts.mounted and facts.enabled and [e.name for e in facts.entries] == ["qemu-aarch64"]


def test_emulation_is_set_up_only_when_binfmt_misc_is_empty_and_we_are_root():
    assert decide_emulation(EmulationFacts(True, True, ()), ROOT_DEBIAN) == ()
    assert decide_emulation(EmulationFacts(False), ROOT_DEBIAN) == (MountBinfmt(), EnableBinfmts())
    (only,) = decide_emulation(EmulationFacts(False), USER_WITH_DOCKER)
    assert isinstance(only, NoEmulation) and "as root" in only.describe()
    mount, missing = decide_emulation(EmulationFacts(False), FRESH_DEBIAN)
    assert mount == MountBinfmt() and "update-binfmts is missing" in missing.describe()
    (off,) = decide_emulation(EmulationFacts(True, False, ()), ROOT_DEBIAN)
    assert "switched off" in off.describe()


# --- down ------------------------------------------------------------------

def test_down_stops_only_what_our_pidfiles_hold_registry_first():
    dockerd = PidFile(str(STATE / "dockerd.pid"), 812, proc(812, "dockerd"))
    assert decide_down(ours_registry(), STATE / "registry.yml", dockerd) == (
        StopProcess(4000, "docker-registry", "started by imagegraph", str(STATE / "registry.pid")),
        StopProcess(812, "dockerd", "started by imagegraph", str(STATE / "dockerd.pid")),
    )


def test_down_never_stops_a_reused_pid_and_does_nothing_without_pidfiles():
    assert decide_down(None, STATE / "registry.yml", None) == ()
    reused = PidFile(str(STATE / "dockerd.pid"), 812, proc(812, "python3"))
    other_registry = PidFile(str(STATE / "registry.pid"), 4000, proc(4000, "docker-registry", "docker-registry", "serve", "/x.yml"))
    actions = decide_down(other_registry, STATE / "registry.yml", reused)
    assert all(isinstance(a, RemovePidfile) for a in actions) and len(actions) == 2


def _spawn_sleep(tmp_path: Path) -> tuple[int, Path]:
    steps = EngineSteps(Runner(), StatePaths(tmp_path), ROOT_DEBIAN, lambda line: None)
    pidfile = tmp_path / "sleep.pid"
    spawned = steps._spawn(("sleep", "60"), tmp_path / "sleep.log", pidfile)
    return spawned.pid, pidfile


def test_a_spawned_server_outlives_nothing_it_should_not_and_stops_on_sigterm(tmp_path):
    pid, pidfile = _spawn_sleep(tmp_path)
    record = read_pidfile(pidfile)
    assert record is not None and record.holds("sleep") and os.getsid(pid) == pid  # its own session
    stop_process(StopProcess(pid, "sleep", "test", str(pidfile)))
    assert read_process(pid) is None and not pidfile.exists()


def test_a_killed_child_is_a_zombie_that_a_pidfile_check_must_not_count_as_running(tmp_path):
    pid, pidfile = _spawn_sleep(tmp_path)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while (p := read_process(pid)) is not None and not p.zombie and time.monotonic() < deadline:
        time.sleep(0.05)
    record = read_pidfile(pidfile)
    # What dockerd would refuse on: the pid exists in /proc, as a zombie.
    assert record is not None and record.proc is not None and record.proc.zombie and not record.holds("sleep")
    stop_process(StopProcess(pid, "sleep", "test", str(pidfile)))  # reaps it, signals nothing
    assert read_process(pid) is None and not pidfile.exists()


# --- seeding ---------------------------------------------------------------

def seed_facts(**changes) -> SeedFacts:
    return SeedFacts(**{
        "registry": REGISTRY, "registry_reachable": True, "mirror_configured": True,
        "seeded_platforms": (), "pushed_platforms": (), "cached_platforms": (),
        "emulated_platforms": ("linux/arm64",), "native_platform": "linux/amd64",
        "is_root": True, "debootstrap_installed": True, **changes,
    })


BOTH = ("linux/amd64", "linux/arm64")
LIST = "127.0.0.1:5000/library/python:3.11-slim"


def test_nothing_seeded_debootstraps_builds_and_pushes_each_platform_then_the_list():
    assert decide_seed(seed_facts(), BOTH) == (
        BuildRootfs("linux/amd64", emulated=False),
        BuildImage("linux/amd64", f"{LIST}-amd64"),
        BuildRootfs("linux/arm64", emulated=True),
        BuildImage("linux/arm64", f"{LIST}-arm64"),
        PushManifestList(LIST, (f"{LIST}-amd64", f"{LIST}-arm64"), BOTH),
    )


def test_a_cached_rootfs_is_not_debootstrapped_again():
    actions = decide_seed(seed_facts(cached_platforms=BOTH), BOTH)
    assert not any(isinstance(a, BuildRootfs) for a in actions)
    # Nor are images rebuilt when their per-platform tags are already pushed.
    assert decide_seed(seed_facts(pushed_platforms=BOTH), BOTH) == (
        PushManifestList(LIST, (f"{LIST}-amd64", f"{LIST}-arm64"), BOTH),
    )


def test_adding_a_platform_keeps_the_ones_seeded_before():
    facts = seed_facts(seeded_platforms=("linux/amd64",), pushed_platforms=("linux/amd64",))
    assert decide_seed(facts, ("linux/arm64",)) == (
        BuildRootfs("linux/arm64", emulated=True),
        BuildImage("linux/arm64", f"{LIST}-arm64"),
        PushManifestList(LIST, (f"{LIST}-amd64", f"{LIST}-arm64"), BOTH),
    )


def test_a_seeded_base_is_reused():
    assert decide_seed(seed_facts(seeded_platforms=BOTH), ("linux/arm64",)) == (SeedPresent(REGISTRY, BOTH),)


@pytest.mark.parametrize(
    ("facts", "enabled", "reason"),
    [
        (seed_facts(), False, "--no-seed"),
        (seed_facts(registry_reachable=False), True, "no registry answers"),
        (seed_facts(mirror_configured=False), True, "--registry-mirror http://127.0.0.1:5000"),
    ],
)
def test_seeding_is_skipped_with_the_reason(facts, enabled, reason):
    (skip,) = decide_seed(facts, BOTH, enabled)
    assert isinstance(skip, SkipSeed) and reason in skip.describe()


@pytest.mark.parametrize(
    ("facts", "error", "message"),
    [
        (seed_facts(is_root=False), EngineError, "needs root for debootstrap"),
        (seed_facts(debootstrap_installed=False), ToolMissing, "apt-get install -y debootstrap"),
        (seed_facts(emulated_platforms=()), EngineError, "no QEMU emulation .* --platforms linux/amd64"),
    ],
)
def test_seeding_that_cannot_work_says_why(facts, error, message):
    with pytest.raises(error, match=message):
        decide_seed(facts, BOTH)


def test_seed_platforms_are_parsed_as_builds_parse_them_and_unseedable_ones_rejected():
    assert seed.seedable(Platform("linux", "arm64")) == "linux/arm64"
    assert seed.seedable("linux/arm64") == "linux/arm64"
    assert seed.seedable("linux/arm/v7") == "linux/arm/v7"
    with pytest.raises(EngineError, match="cannot seed platform 'windows/amd64'"):
        seed.seedable("windows/amd64")
    with pytest.raises(EngineError, match="cannot seed platform 'linux/riscv64'"):
        seed.seedable(Platform("linux", "riscv64"))
    with pytest.raises(ImagegraphError, match="--platforms"):
        seed.seedable("arm64")  # the command line's own rule: os/arch
    assert seed.native_platform("x86_64") == "linux/amd64"
    assert seed.native_platform("aarch64") == "linux/arm64"


def test_seed_commands_as_data(tmp_path):
    target = tmp_path / "rootfs"
    assert seed_build.debootstrap_command("linux/arm64", target, "/usr/sbin/debootstrap").argv == (
        "/usr/sbin/debootstrap", "--arch=arm64", "--variant=minbase",
        "--include=python3,python3-pip,python3-venv,ca-certificates,tzdata", "bookworm", str(target),
    )
    assert seed_build.tar_command(target, tmp_path / "r.tar").argv == (
        "tar", "--numeric-owner", "-C", str(target), "-cf", str(tmp_path / "r.tar"), ".",
    )
    assert [c.argv for c in seed_build.manifest_commands("/usr/bin/docker", LIST, (f"{LIST}-amd64", f"{LIST}-arm64"))] == [
        ("/usr/bin/docker", "manifest", "rm", LIST),
        ("/usr/bin/docker", "manifest", "create", "--insecure", LIST, f"{LIST}-amd64", f"{LIST}-arm64"),
        ("/usr/bin/docker", "manifest", "push", "--insecure", "--purge", LIST),
    ]
    context = seed_build.context_dir(tmp_path, "linux/arm64")
    # the seed image carries no provenance manifest: `docker manifest create` joins plain images only
    for multi_platform in (True, False):
        (build,) = BuildxBuilder(docker="/usr/bin/docker", multi_platform=multi_platform).commands(
            seed_build.build_request(tmp_path, "linux/arm64", f"{LIST}-arm64"))
        assert build.argv == ("/usr/bin/docker", "buildx", "build", "--progress", "plain", "--platform", "linux/arm64",
                              "--file", str(context / "Dockerfile"), "--provenance=false", "--tag", f"{LIST}-arm64", "--push",
                              str(context))
        assert build.env == ()


def test_the_seed_dockerfile_never_pulls_a_frontend():
    text = seed_build.dockerfile(with_ca_bundle=True)
    assert "syntax" not in text
    assert text.splitlines()[:3] == ["FROM scratch", "ADD rootfs.tar /",
                                     "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt"]
    assert 'CMD ["python3"]' in text and "LANG=C.UTF-8" in text
    assert "COPY" not in seed_build.dockerfile(with_ca_bundle=False)


def test_the_rootfs_is_made_to_behave_like_the_official_image(tmp_path):
    (tmp_path / "usr/lib/python3.11").mkdir(parents=True)
    (tmp_path / "usr/lib/python3.11/EXTERNALLY-MANAGED").write_text("[externally-managed]\n")
    (tmp_path / "var/lib/apt/lists/partial").mkdir(parents=True)
    (tmp_path / "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease").write_text("x")
    (tmp_path / "var/cache/apt/archives").mkdir(parents=True)
    (tmp_path / "var/cache/apt/archives/python3_3.11.2-1+b1_amd64.deb").write_text("x")
    seed_build.make_official_like(tmp_path)
    seed_build.make_official_like(tmp_path)  # a second pass (an interrupted run) is fine
    assert os.readlink(tmp_path / "usr/local/bin/python") == "/usr/bin/python3"
    assert os.readlink(tmp_path / "usr/local/bin/pip") == "/usr/bin/pip3"
    assert not (tmp_path / "usr/lib/python3.11/EXTERNALLY-MANAGED").exists()
    assert list((tmp_path / "var/lib/apt/lists").iterdir()) == []
    assert list((tmp_path / "var/cache/apt/archives").iterdir()) == []


# Captured from the local registry: GET /v2/library/python/manifests/3.11-slim (manifest list).
MANIFEST_LIST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 739,
         "digest": "sha256:c63eab1f5957f0c9b2478f59d7275ae7dcd7d8ed1c93135a76cdc2941fcee1c2",
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 739,
         "digest": "sha256:73977dab7d36397d70d82f56e2a8cd96b419a164d8a32454a41ebc63ebc76e56",
         "platform": {"architecture": "arm64", "os": "linux"}},
    ],
}


def test_index_platforms_drop_arm64_v8_and_attestations():
    assert seed_build.registry_platforms(MANIFEST_LIST) == ("linux/amd64", "linux/arm64")
    attested = json.loads(json.dumps(MANIFEST_LIST))
    attested["manifests"][1]["platform"]["variant"] = "v8"  # how buildx labels arm64
    attested["manifests"].append({"platform": {"architecture": "unknown", "os": "unknown"}})
    attested["manifests"].append({"platform": {"architecture": "arm", "os": "linux", "variant": "v7"}})
    assert seed_build.registry_platforms(attested) == ("linux/amd64", "linux/arm/v7", "linux/arm64")


def test_cache_and_state_dirs_follow_xdg_and_root(tmp_path):
    assert default_state_dir({}, is_root=True) == Path("/var/lib/imagegraph")
    assert default_state_dir({"XDG_STATE_HOME": "/x/state"}, is_root=False) == Path("/x/state/imagegraph")
    assert default_state_dir({}, is_root=False, home=tmp_path) == tmp_path / ".local/state/imagegraph"
    assert seed.default_cache_dir({"XDG_CACHE_HOME": "/x/cache"}) == Path("/x/cache/imagegraph/seed")
    assert seed.default_cache_dir({}, home=tmp_path) == tmp_path / ".cache/imagegraph/seed"
    # The recipe is in the cache key: changing the packages rebuilds the rootfs.
    assert seed_build.context_dir(tmp_path, "linux/arm/v7").name == f"{seed.recipe_key()}-arm-v7"
    assert seed_build.cached_platforms(tmp_path) == ()
    seed_build.context_dir(tmp_path, "linux/arm64").mkdir()
    (seed_build.context_dir(tmp_path, "linux/arm64") / "rootfs.tar").write_bytes(b"")
    assert seed_build.cached_platforms(tmp_path) == ("linux/arm64",)


# --- parsers of the machine -----------------------------------------------

def test_os_release_debian_family():
    assert is_debian_like('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    assert is_debian_like("ID=ubuntu\nID_LIKE=debian\n")
    assert is_debian_like('ID=linuxmint\nID_LIKE="ubuntu debian"\n')
    assert not is_debian_like('ID=fedora\n')
    assert not is_debian_like('ID="rhel"\nID_LIKE="fedora"\n')


def test_proc_stat_with_spaces_and_parentheses_in_the_name():
    assert parse_stat("2477 (dockerd) S 1 2477 2477 0 -1 4194560 ...") == ("dockerd", "S", 1)
    assert parse_stat("99 (a (b) c) Z 12 99") == ("a (b) c", "Z", 12)


def test_processes_and_pidfiles_are_read_from_proc(tmp_path):
    for pid, stat, cmdline in (
        (2477, "2477 (dockerd) S 1 1", b"dockerd\0--host\0unix:///var/run/docker.sock\0"),
        (2515, "2515 (containerd) S 2477 1", b"containerd\0--config\0" + CONTAINERD_CONFIG.encode() + b"\0"),
        (3000, "3000 (bash) S 1 1", b"bash\0"),
    ):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(stat)
        (tmp_path / str(pid) / "cmdline").write_bytes(cmdline)
    (tmp_path / "self").mkdir()
    found = read_processes(("dockerd", "containerd"), tmp_path)
    assert [(p.pid, p.ppid, p.name) for p in found] == [(2477, 1, "dockerd"), (2515, 2477, "containerd")]
    assert found[0].argv == ("dockerd", "--host", "unix:///var/run/docker.sock")

    pidfile = tmp_path / "docker.pid"
    assert read_pidfile(pidfile) is None
    pidfile.write_text("garbage")
    assert read_pidfile(pidfile) == PidFile(str(pidfile), None, None)
    pidfile.write_text(f"{os.getpid()}\n")
    mine = read_pidfile(pidfile)
    assert mine is not None and mine.proc is not None and mine.proc.running and mine.pid == os.getpid()


def test_client_versions_and_mirrors():
    assert parse_docker_version("Docker version 20.10.24+dfsg1, build 297e128\n") == "20.10.24+dfsg1"
    assert parse_docker_version("Docker version 28.2.2, build e6534b4") == "28.2.2"
    assert parse_docker_version("nonsense") is None
    assert mirror_configured(["http://127.0.0.1:5000/"], "127.0.0.1:5000")
    assert not mirror_configured(["http://127.0.0.1:5000/"], "127.0.0.1:5055")
    assert not mirror_configured([], "127.0.0.1:5000")


def test_status_lines_say_who_runs_what():
    status = EngineStatus(
        host=DEFAULT_HOST, daemon_version="20.10.24+dfsg1", api_version="1.41", daemon_managed=False,
        registry=REGISTRY, registry_reachable=True, registry_managed=True, mirrors=("http://127.0.0.1:5000/",),
        emulated_platforms=("linux/arm64",), seeded_platforms=BOTH,
        clients=(DockerClientInfo("/usr/local/bin/docker", "28.2.2", False), DockerClientInfo("/usr/bin/docker", "20.10.24", True)),
        state_dir=str(STATE),
    )
    assert status.mirror_configured and status.seeded and status.daemon_reachable
    assert not status.buildx  # the docker on PATH lacks it
    text = "\n".join(status.lines())
    assert "dockerd 20.10.24+dfsg1 (API 1.41)" in text and "not started by imagegraph" in text
    assert "http://127.0.0.1:5000/ answers, started by imagegraph" in text
    assert "seeded for linux/amd64, linux/arm64" in text
    assert status.lines()[1:4] == (
        "store:     unknown (no engine)",
        "buildx:    missing",
        "builder:   none",
    )


CHOICE = BuilderChoice("/usr/bin/docker", None, "docker", False, ("linux/amd64", "linux/arm64"), "why")


@pytest.mark.parametrize(
    ("changes", "store", "buildx", "builder"),
    [
        ({"builder": CHOICE}, "containerd image store", "github.com/docker/buildx 0.13.1",
         "the current builder, docker driver, a build per platform, joined into the index by imagegraph, inline cache; "
         "platforms linux/amd64, linux/arm64"),
        ({"builder": replace(CHOICE, builder="farm", driver="kubernetes", multi_platform=True, platforms=())},
         "containerd image store", "github.com/docker/buildx 0.13.1",
         "farm, kubernetes driver, one build for all platforms, registry cache mode=max; platforms not known until it starts"),
        ({"builder_problem": "no buildx builder named 'farm' (--builder)", "buildx_version": None, "image_store": "classic"},
         "classic image store", "missing", "no buildx builder named 'farm' (--builder)"),
    ],
)
def test_status_lines_name_the_store_buildx_and_builder(changes, store, buildx, builder):
    status = EngineStatus(
        host=DEFAULT_HOST, daemon_version="26.1.5+dfsg1", api_version="1.45", daemon_managed=True,
        registry=REGISTRY, registry_reachable=False, registry_managed=False, mirrors=(), emulated_platforms=(),
        seeded_platforms=(), clients=(DockerClientInfo("/usr/bin/docker", "26.1.5+dfsg1", True),), state_dir=str(STATE),
        **{"image_store": "containerd", "buildx_version": "github.com/docker/buildx 0.13.1", **changes},
    )
    lines = status.lines()
    assert lines[0] == f"engine:    dockerd 26.1.5+dfsg1 (API 1.45) at {DEFAULT_HOST}, started by imagegraph"
    assert lines[1:4] == (f"store:     {store}", f"buildx:    {buildx}", f"builder:   {builder}")
    assert all("\n" not in line for line in lines)


def test_every_action_says_one_line():
    actions = [
        ReuseDaemon(DEFAULT_HOST, "26.1.5", "1.45", False, "classic", "no buildx"), InstallPackages(engine_packages(BOOKWORM), "why"),
        InstallPackages(EnginePackages(engine=())), start(), start("classic"), WaitForDaemon(DEFAULT_HOST, 1),
        RemovePidfile(DOCKER_PIDFILE, "stale"), StopProcess(1, "containerd", "orphaned"), ReuseRegistry(REGISTRY, True),
        StartRegistry(REGISTRY), MountBinfmt(), EnableBinfmts(), NoEmulation("x"), SkipSeed("x"), SeedPresent(REGISTRY, BOTH),
        BuildRootfs("linux/arm64", True), BuildImage("linux/arm64", LIST), PushManifestList(LIST, (LIST,), BOTH),
    ]
    for action in actions:
        line = action.describe()
        assert line.startswith("engine: ") and "\n" not in line


# --- tasks -----------------------------------------------------------------

def test_engine_tasks_are_wired_with_help_for_every_flag(family, monkeypatch, capsys):
    from imagegraph_provision import tasks

    assert tasks.ns.name == "engine"
    assert sorted(tasks.ns.task_names) == ["builder", "down", "status", "up"]
    for name in tasks.ns.task_names:
        task = tasks.ns[name]
        assert task.__doc__ or task.body.__doc__
        for argument in task.get_arguments():
            assert argument.help, f"{name} --{argument.name} lacks help"
    # no flag: what the builds will use: images.yaml's platforms (here), narrowed by $IMAGEGRAPH_PLATFORMS
    monkeypatch.chdir(family)
    monkeypatch.delenv("IMAGEGRAPH_PLATFORMS", raising=False)
    assert tasks._platforms(None, seed=True) == BOTH
    monkeypatch.setenv("IMAGEGRAPH_PLATFORMS", "linux/amd64")
    assert tasks._platforms(None, seed=True) == ("linux/amd64",)
    assert tuple(map(str, tasks._platforms(["linux/amd64,linux/arm64", "linux/arm/v7"], seed=True))) == (
        "linux/amd64", "linux/arm64", "linux/arm/v7")
    # --no-seed seeds nothing, and says nothing of seeding
    capsys.readouterr()
    assert tasks._platforms(None, seed=False) == ()
    assert "seeding" not in capsys.readouterr().out


#: Lines of a real dockerd start after an unclean stop: two of the images whose layers were gone.
DOCKERD_START = (Path(__file__).parent / "data/dockerd-start.log").read_text()


def test_the_images_dockerd_dropped_at_start_are_read_from_its_log():
    assert unrestored_images(DOCKERD_START) == {
        "sha256:e95bad8f3641fcc01d3f58dc0360169dff021541d3bb5c679dcfdde96070de4d",
        "sha256:f65a6f1105d3578fe8e6d196f4cbdc38053029bce45a7d85e345d6728be93b44",
    }
    # a clean start, and the same line about a layer from elsewhere, drop nothing
    assert unrestored_images(DOCKERD_START.splitlines()[0]) == frozenset()
    assert unrestored_images('level=error msg="failed to get layer sha256:62e1: layer does not exist"') == frozenset()


# --- installing packages (apt through a recording runner) ----------------------

class AptRunner(Runner):
    """Records what apt would be asked; every command succeeds."""

    def __init__(self) -> None:
        self.ran: list[tuple[tuple[str, ...], dict[str, str]]] = []

    def run(self, command, *, check=True, log_path=None, on_line=None, **_):
        from imagegraph.adapters.runner import CommandResult

        self.ran.append((command.argv, dict(command.env)))
        return CommandResult(0, "")


def _apt_steps(tmp_path, monkeypatch, after: MachineFacts) -> tuple[EngineSteps, AptRunner]:
    for sub in ("sources.list.d", "preferences.d"):
        (tmp_path / "apt" / sub).mkdir(parents=True)
    monkeypatch.setattr("imagegraph_provision.steps.observe_machine", lambda **_: after)
    runner = AptRunner()
    return EngineSteps(runner, StatePaths(tmp_path / "state"), FRESH_DEBIAN, lambda line: None, apt_dir=tmp_path / "apt"), runner


def test_installing_on_debian_12_pins_trixie_for_the_engine_only(tmp_path, monkeypatch):
    steps, runner = _apt_steps(tmp_path, monkeypatch, ROOT_DEBIAN)
    steps.perform(InstallPackages(engine_packages(BOOKWORM), "no engine installed"))
    assert (tmp_path / "apt/sources.list.d/imagegraph-trixie.list").read_text() == (
        "# imagegraph: the Docker engine packages only (see imagegraph-trixie)\n"
        "deb http://deb.debian.org/debian trixie main\n")
    assert (tmp_path / "apt/preferences.d/imagegraph-trixie").read_text() == (
        "# imagegraph: from trixie, only docker.io docker-cli containerd docker-buildx\n"
        "Package: *\nPin: release n=trixie\nPin-Priority: 100\n\n"
        "Package: docker.io docker-cli containerd docker-buildx\nPin: release n=trixie\nPin-Priority: 500\n")
    assert [argv for argv, _ in runner.ran] == [
        ("/usr/bin/apt-get", "update"),
        ("/usr/bin/apt-get", "install", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
         "docker.io/trixie", "docker-cli/trixie", "containerd/trixie", "docker-buildx/trixie",
         "docker-registry", "qemu-user-static", "binfmt-support", "debootstrap"),
    ]
    assert all(env == {"DEBIAN_FRONTEND": "noninteractive"} for _, env in runner.ran)
    assert steps.machine is ROOT_DEBIAN  # observed again after the install


def test_installing_from_the_distribution_writes_no_apt_source(tmp_path, monkeypatch):
    steps, runner = _apt_steps(tmp_path, monkeypatch, replace(ROOT_DEBIAN, distro=TRIXIE))
    steps.perform(InstallPackages(engine_packages(TRIXIE)))
    assert list((tmp_path / "apt/sources.list.d").iterdir()) == [] and list((tmp_path / "apt/preferences.d").iterdir()) == []
    assert runner.ran[-1][0][-8:] == ("docker.io", "docker-cli", "containerd", "docker-buildx",
                                      "docker-registry", "qemu-user-static", "binfmt-support", "debootstrap")


def test_an_install_that_leaves_no_current_engine_is_an_error(tmp_path, monkeypatch):
    steps, _ = _apt_steps(tmp_path, monkeypatch, OLD_DEBIAN)
    with pytest.raises(EngineError, match=r"dockerd is 20\.10\.24\+dfsg1 and buildx does not; see .*apt\.log"):
        steps.perform(InstallPackages(engine_packages(BOOKWORM), "no engine installed"))
    # support packages alone are not held to that
    steps, _ = _apt_steps(tmp_path / "support", monkeypatch, OLD_DEBIAN)
    steps.perform(InstallPackages(EnginePackages(engine=())))


def test_engine_up_seeds_what_a_run_will_build_and_no_more():
    from imagegraph.core.values import parse_platforms
    from imagegraph_provision.seed import seed_platforms

    family = ("linux/amd64", "linux/arm64", "linux/amd64")
    # $IMAGEGRAPH_PLATFORMS replaces every image's platforms: a foreign one nobody builds is never debootstrapped
    assert seed_platforms(parse_platforms(["linux/amd64"], "$IMAGEGRAPH_PLATFORMS"), family, "linux/amd64") == (
        ("linux/amd64",), "$IMAGEGRAPH_PLATFORMS")
    assert seed_platforms((), family, "linux/amd64") == (("linux/amd64", "linux/arm64"), "images.yaml")
    assert seed_platforms((), None, "linux/arm64") == (("linux/arm64",), "this machine")
    assert seed_platforms((), (), "linux/amd64") == (("linux/amd64",), "this machine")

