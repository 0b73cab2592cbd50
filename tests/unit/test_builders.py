"""Builders return commands as data: the tests compare argv tuples, nothing runs.

The choice of builder is a pure function of facts; the facts are gathered through a scripted runner.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.adapters.engine.builder_choice import (
    BuilderChoice,
    BuilderFacts,
    BuilderInfo,
    check_platforms,
    choose_builder,
    named_builder,
    observe_builder,
    parse_inspect,
    select_builder,
)
from imagegraph.adapters.engine.builders import BuildxBuilder, lost_layer
from imagegraph.adapters.runner import Command, CommandResult
from imagegraph.core.buildkit import StepCount, count_steps
from imagegraph.core.cache import BuilderKind, cache_entries
from imagegraph.core.errors import EngineError, ImagegraphError, ToolMissing
from imagegraph.core.join import part_tag
from imagegraph.core.request import BuildRequest, platform_suffix

REF = "127.0.0.1:5000/ns/app:0123456789abcdef"
CACHE = "127.0.0.1:5000/ns/app"
BOTH = ("linux/amd64", "linux/arm64")


def request(*, cache_repository: str | None = None, kind: BuilderKind = BuilderKind.INDEX, **changes) -> BuildRequest:
    """A request as the plan makes it for a builder of ``kind``, its registry cache in ``cache_repository``."""
    values = dict(image="app", dockerfile=Path("/r/docker/Dockerfile"), context=Path("/r"), ref=REF,
                  platforms=("linux/amd64",), target="runtime", build_args=(("BASE_IMAGE", "reg/ns/base:fp"),),
                  labels=(("imagegraph.fingerprint", "0123456789abcdef"),), push=True, insecure_registry=True)
    values.update(changes)
    values["cache"] = cache_entries(cache_repository, values["platforms"], kind=kind, push=values["push"],
                                    no_cache=values.get("no_cache", False))
    return BuildRequest(**values)


PER_PLATFORM = BuilderKind.PER_PLATFORM


COMMON = ("--file", "/r/docker/Dockerfile", "--target", "runtime", "--build-arg", "BASE_IMAGE=reg/ns/base:fp",
          "--label", "imagegraph.fingerprint=0123456789abcdef")
BUILD = ("docker", "buildx", "build", "--progress", "plain")


def value_of(argv: tuple[str, ...], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# --- multi-platform: one build, registry cache ------------------------------

def test_buildx_one_multi_platform_build_pushed():
    (step,) = BuildxBuilder(docker="docker").commands(request(platforms=BOTH))
    assert step.argv == (*BUILD, "--platform", "linux/amd64,linux/arm64", *COMMON, "--tag", REF, "--push", "/r")


def test_buildx_loads_a_single_platform_image_when_not_pushing():
    (step,) = BuildxBuilder().commands(request(push=False))
    assert step.argv[-2:] == ("--load", "/r") and "--push" not in step.argv


def test_a_named_builder_is_passed_with_builder():
    (step,) = BuildxBuilder(docker="/usr/bin/docker", builder="farm").commands(request())
    assert step.argv[:7] == ("/usr/bin/docker", "buildx", "build", "--progress", "plain", "--builder", "farm")
    (current,) = BuildxBuilder().commands(request())
    assert "--builder" not in current.argv


@pytest.mark.parametrize(
    ("changes", "cache_from", "cache_to"),
    [
        ({}, True, True),
        ({"push": False}, True, False),  # a local build reads the registry cache, never writes it
        ({"no_cache": True}, False, True),  # --no-cache reads nothing, but the pushed result still feeds the cache
        ({"push": False, "no_cache": True}, False, False),
    ],
)
def test_buildx_registry_cache_in_max_mode(changes, cache_from, cache_to):
    builder = BuildxBuilder(docker="docker")
    (step,) = builder.commands(request(cache_repository=CACHE, platforms=BOTH, **changes))
    argv = step.argv
    assert ("--cache-from" in argv) == cache_from and ("--cache-to" in argv) == cache_to
    if cache_from:
        assert value_of(argv, "--cache-from") == f"type=registry,ref={CACHE}:buildcache"
    if cache_to:
        assert value_of(argv, "--cache-to") == f"type=registry,ref={CACHE}:buildcache,mode=max,ignore-error=true"
    assert ("--no-cache" in argv) == changes.get("no_cache", False)
    assert builder.cache_copies(request(cache_repository=CACHE, platforms=BOTH, **changes)) == ()


def test_a_request_made_for_the_other_kind_of_builder_is_refused_not_built_without_its_cache():
    with pytest.raises(ImagegraphError, match="made for another kind of builder"):
        BuildxBuilder(multi_platform=False).commands(request(platforms=BOTH, cache_repository=CACHE))
    with pytest.raises(ImagegraphError, match="made for another kind of builder"):
        BuildxBuilder().commands(request(platforms=BOTH, cache_repository=CACHE, kind=PER_PLATFORM))


def test_no_cache_repository_means_no_cache_flags():
    (step,) = BuildxBuilder().commands(request(platforms=BOTH))
    assert "--cache-from" not in step.argv and "--cache-to" not in step.argv


def test_provenance_is_dropped_only_when_asked():
    (step,) = BuildxBuilder().commands(request(provenance=False))
    assert "--provenance=false" in step.argv
    assert step.argv.index("--provenance=false") < step.argv.index("--tag")
    (default,) = BuildxBuilder().commands(request())
    assert not any(a.startswith("--provenance") for a in default.argv)
    steps = BuildxBuilder(multi_platform=False).commands(request(platforms=BOTH, provenance=False))
    assert [("--provenance=false" in s.argv) for s in steps] == [True, True]


# --- per platform: the docker driver on the classic image store -------------

def test_per_platform_builds_push_each_platform_under_its_part_tag_with_an_inline_cache_and_leave_the_join():
    builder = BuildxBuilder(docker="docker", multi_platform=False)
    req = request(platforms=BOTH, cache_repository=CACHE, kind=PER_PLATFORM)
    steps = builder.commands(req)
    assert [s.argv for s in steps] == [
        (*BUILD, "--platform", "linux/amd64", *COMMON, "--tag", f"{REF}-amd64",
         "--cache-from", f"type=registry,ref={CACHE}:buildcache-amd64", "--cache-to", "type=inline", "--push", "/r"),
        (*BUILD, "--platform", "linux/arm64", *COMMON, "--tag", f"{REF}-arm64",
         "--cache-from", f"type=registry,ref={CACHE}:buildcache-arm64", "--cache-to", "type=inline", "--push", "/r"),
    ]
    # the part tags are the join's (invoke join reads the same ones), and the index is the executor's to join
    fingerprint = REF.rsplit(":", 1)[1]
    assert [value_of(s.argv, "--tag").rsplit(":", 1)[1] for s in steps] == [part_tag(fingerprint, BOTH, p) for p in BOTH]
    assert builder.joins(req) and [s.purpose for s in steps] == ["build linux/amd64", "build linux/arm64"]
    assert builder.cache_copies(req) == ((f"{REF}-amd64", "buildcache-amd64"), (f"{REF}-arm64", "buildcache-arm64"))


def test_only_the_classic_stores_pushed_builds_of_several_platforms_leave_a_join():
    classic = BuildxBuilder(docker="docker", builder="classic", multi_platform=False)
    assert all(value_of(s.argv, "--builder") == "classic" for s in classic.commands(request(platforms=BOTH)))
    assert classic.joins(request(platforms=BOTH))
    assert not classic.joins(request())  # one platform: its build pushes the fingerprint tag itself
    assert not classic.joins(request(platforms=BOTH, push=False))  # loaded: nothing in the registry to join
    assert not BuildxBuilder().joins(request(platforms=BOTH))  # one build pushes the index


def test_per_platform_single_platform_is_tagged_as_the_ref_and_needs_no_join():
    builder = BuildxBuilder(docker="docker", multi_platform=False)
    (step,) = builder.commands(request(cache_repository=CACHE, kind=PER_PLATFORM))
    assert value_of(step.argv, "--tag") == REF and value_of(step.argv, "--platform") == "linux/amd64"
    assert builder.cache_copies(request(cache_repository=CACHE, kind=PER_PLATFORM)) == ((REF, "buildcache-amd64"),)


def test_per_platform_without_push_loads_each_platform_and_copies_no_cache():
    builder = BuildxBuilder(docker="docker", multi_platform=False)
    req = request(platforms=BOTH, push=False, cache_repository=CACHE, no_cache=True, kind=PER_PLATFORM)
    steps = builder.commands(req)
    assert [s.argv[-2:] for s in steps] == [("--load", "/r"), ("--load", "/r")] and not builder.joins(req)  # nothing pushed
    assert all("--cache-from" not in s.argv and value_of(s.argv, "--cache-to") == "type=inline" for s in steps)
    assert builder.cache_copies(req) == ()
    assert builder.cache_copies(request(platforms=BOTH)) == ()  # no cache repository, nothing to copy


def test_describe_names_the_builder_and_the_mode():
    assert BuildxBuilder(summary="default (docker driver)").describe() == \
        "buildx default (docker driver): one build for all platforms, registry cache mode=max"
    assert BuildxBuilder(builder="x", multi_platform=False).describe() == \
        "buildx x: a build per platform, joined into the index by imagegraph, inline cache"
    assert BuildxBuilder().describe().startswith("buildx the current builder:")


def test_platform_suffix():
    assert platform_suffix("linux/arm64/v8") == "arm64-v8"
    assert platform_suffix("linux/amd64") == "amd64"
    assert request(platforms=("linux/arm/v7", "linux/amd64")).platform_tag("linux/arm/v7") == f"{REF}-arm-v7"
    assert request().platform_tag("linux/amd64") == REF


# --- docker buildx inspect ---------------------------------------------------

# `docker buildx inspect` (buildx 0.13) of the default builder: the docker driver of Docker 26 with QEMU registered.
INSPECT_DOCKER = (
    """\
Name:          default
Driver:        docker
Last Activity: 2024-05-21 09:12:44 +0000 UTC

Nodes:
Name:      default
Endpoint:  default
Status:    running
Buildkit:  v0.12.5
"""
    "Platforms: linux/amd64, linux/amd64/v2, linux/amd64/v3, linux/arm64, linux/riscv64, linux/ppc64le, linux/s390x, "
    "linux/386, linux/mips64le, linux/mips64, linux/arm/v7, linux/arm/v6\n"
    """\
Labels:
 org.mobyproject.buildkit.worker.moby.host-gateway-ip: 172.17.0.1
GC Policy rule#0:
 All:           false
 Filters:       type==source.local,type==exec.cachemount,type==source.git.checkout
 Keep Duration: 48h0m0s
 Keep Bytes:    2.764GiB
"""
)

# A docker-container builder created with --platform linux/amd64,linux/arm64: buildx marks those with `*`.
INSPECT_CONTAINER = """\
Name:          imagegraph
Driver:        docker-container
Last Activity: 2024-05-21 09:20:03 +0000 UTC

Nodes:
Name:           imagegraph0
Endpoint:       unix:///var/run/docker.sock
Driver Options: network="host"
Status:         running
BuildKit daemon flags: --allow-insecure-entitlement=network.host
Buildkit:       v0.13.2
Platforms:      linux/amd64*, linux/arm64*, linux/amd64/v2, linux/amd64/v3, linux/386
Labels:
 org.mobyproject.buildkit.worker.executor:         oci
 org.mobyproject.buildkit.worker.hostname:         a1b2c3d4e5f6
 org.mobyproject.buildkit.worker.network:          host
"""

# A docker-container builder that was created but never started.
INSPECT_INACTIVE = """\
Name:          ci
Driver:        docker-container
Last Activity: 2024-05-20 17:01:12 +0000 UTC

Nodes:
Name:      ci0
Endpoint:  unix:///var/run/docker.sock
Status:    inactive
Platforms:
"""

INSPECT_KUBERNETES = """\
Name:          farm
Driver:        kubernetes
Last Activity: 2024-05-21 08:00:00 +0000 UTC

Nodes:
Name:      farm0-6d8f
Endpoint:  kubernetes:///farm?deployment=farm0&kubeconfig=
Status:    running
Buildkit:  v0.13.2
Platforms: linux/amd64*, linux/amd64/v2
Name:      farm1-7c2a
Endpoint:  kubernetes:///farm?deployment=farm1&kubeconfig=
Status:    running
Buildkit:  v0.13.2
Platforms: linux/arm64*, linux/arm/v7
"""


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (INSPECT_DOCKER, BuilderInfo("default", "docker", (
            "linux/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/arm64", "linux/riscv64", "linux/ppc64le",
            "linux/s390x", "linux/386", "linux/mips64le", "linux/mips64", "linux/arm/v7", "linux/arm/v6"), "running")),
        (INSPECT_CONTAINER, BuilderInfo("imagegraph", "docker-container",
                                        ("linux/amd64", "linux/arm64", "linux/amd64/v2", "linux/amd64/v3", "linux/386"), "running")),
        (INSPECT_INACTIVE, BuilderInfo("ci", "docker-container", (), "inactive")),
        # the builder's name, not its first node's; every node's platforms count (buildx sends each platform to a node that runs it)
        (INSPECT_KUBERNETES, BuilderInfo("farm", "kubernetes", ("linux/amd64", "linux/amd64/v2", "linux/arm64", "linux/arm/v7"), "running")),
        ("Name: x\nDriver: remote\n", BuilderInfo("x", "remote")),
    ],
    ids=["docker driver", "docker-container with requested platforms", "inactive", "kubernetes two nodes", "bare"],
)
def test_parse_inspect_reads_buildx_0_13(output, expected):
    assert parse_inspect(output) == expected


@pytest.mark.parametrize("output", ["", "ERROR: no builder \"nope\" found\n", "Driver: docker\n", "Name: x\n"])
def test_parse_inspect_without_name_or_driver_is_none(output):
    assert parse_inspect(output) is None


# --- which builder ------------------------------------------------------------

DOCKER = BuilderInfo("default", "docker", ("linux/amd64", "linux/arm64"), "running")


def facts(**changes) -> BuilderFacts:
    return BuilderFacts(**{"client": "/usr/bin/docker", "buildx_version": "github.com/docker/buildx 0.13.1 0.13.1+ds1-3",
                           "builder": DOCKER, "image_store": "containerd", **changes})


def test_a_farm_of_native_nodes_builds_the_platforms_of_every_node():
    farm = choose_builder(facts(named="farm", named_from="--builder", builder=parse_inspect(INSPECT_KUBERNETES)))
    check_platforms(["linux/amd64", "linux/arm64", "linux/arm/v7"], farm)  # the second node's platforms are the farm's too
    with pytest.raises(EngineError, match="cannot build for linux/riscv64"):
        check_platforms(["linux/arm64", "linux/riscv64"], farm)


@pytest.mark.parametrize(
    ("given", "builder", "driver", "multi", "reason"),
    [
        (facts(), None, "docker", True, "builder default, the current builder: docker driver on the containerd image store"),
        (facts(image_store="classic"), None, "docker", False,
         "builder default, the current builder: the docker driver on the classic image store builds one platform at a time"),
        # an engine whose store is unknown is not assumed to be containerd
        (facts(image_store=None), None, "docker", False, "classic image store"),
        (facts(builder=BuilderInfo("ci", "docker-container")), None, "docker-container", True,
         "builder ci, the current builder: docker-container driver, one build for all platforms with a registry cache"),
        (facts(named="farm", named_from="--builder", builder=BuilderInfo("farm", "kubernetes"), image_store="classic"),
         "farm", "kubernetes", True, "builder farm, named by --builder: kubernetes driver"),
        (facts(named="hosted", named_from="$BUILDX_BUILDER", builder=BuilderInfo("hosted", "remote"), image_store=None),
         "hosted", "remote", True, "builder hosted, named by $BUILDX_BUILDER: remote driver"),
        (facts(named="cloud-x", named_from="images.yaml builder:", builder=BuilderInfo("cloud-x", "cloud")),
         "cloud-x", "cloud", True, "named by images.yaml builder:"),
        (facts(named="default", named_from="--builder", image_store="classic"), "default", "docker", False,
         "builder default, named by --builder: the docker driver on the classic image store"),
        (facts(named="default", named_from="--builder"), "default", "docker", True,
         "builder default, named by --builder: docker driver on the containerd image store"),
    ],
    ids=["docker containerd", "docker classic", "docker unknown store", "current container", "named kubernetes",
         "named remote", "named cloud", "named docker classic", "named docker containerd"],
)
def test_choose_builder(given, builder, driver, multi, reason):
    choice = choose_builder(given)
    assert (choice.client, choice.builder, choice.driver, choice.multi_platform) == ("/usr/bin/docker", builder, driver, multi)
    assert choice.platforms == given.builder.platforms
    assert reason in choice.reason and "\n" not in choice.reason
    made = choice.make()
    assert made == BuildxBuilder(docker="/usr/bin/docker", builder=builder, multi_platform=multi, summary=choice.summary)


def test_the_classic_store_reason_names_both_fixes():
    reason = choose_builder(facts(image_store="classic")).reason
    assert "turn on the containerd image store" in reason and "--builder" in reason


def test_choice_summary_names_the_builder_or_the_current_one():
    assert choose_builder(facts()).summary == "current builder (docker driver)"
    named = choose_builder(facts(named="farm", named_from="--builder", builder=BuilderInfo("farm", "kubernetes")))
    assert named.summary == "farm (kubernetes driver)"


@pytest.mark.parametrize(
    ("given", "error", "words"),
    [
        (facts(client=None), ToolMissing, ["buildx plugin", "invoke engine.up", "docker-buildx"]),
        (facts(named="farm", named_from="$BUILDX_BUILDER", builder=None), ToolMissing,
         ["no buildx builder named 'farm' ($BUILDX_BUILDER)", "docker buildx ls", "invoke engine.builder --name farm"]),
        (facts(named="x", named_from="images.yaml builder:", builder=None), ToolMissing, ["'x' (images.yaml builder:)"]),
        (facts(builder=None), EngineError, ["no current builder", "--builder"]),
    ],
    ids=["no client", "named from env not found", "named from config not found", "no current builder"],
)
def test_choose_builder_refuses_with_the_fix(given, error, words):
    with pytest.raises(error) as caught:
        choose_builder(given)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("flag", "environ", "configured", "expected"),
    [
        ("cli", {"BUILDX_BUILDER": "env"}, "cfg", ("cli", "--builder")),
        (None, {"BUILDX_BUILDER": "env"}, "cfg", ("env", "$BUILDX_BUILDER")),
        (None, {}, "cfg", ("cfg", "images.yaml builder:")),
        ("", {"BUILDX_BUILDER": ""}, "cfg", ("cfg", "images.yaml builder:")),
        (None, {}, None, (None, "")),
    ],
)
def test_named_builder_precedence(flag, environ, configured, expected):
    assert named_builder(flag, environ, configured) == expected


# --- observing through a scripted runner ---------------------------------------

class ScriptedRunner:
    """Answers commands from a table, like a tiny fake docker: the seam observe_builder runs through."""

    def __init__(self, answers: dict[tuple[str, ...], CommandResult]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, ...]] = []

    def run(self, command: Command, **_) -> CommandResult:
        self.seen.append(command.argv)
        return self.answers.get(command.argv, CommandResult(1, "unknown command"))


@pytest.fixture
def two_clients(monkeypatch):
    monkeypatch.setattr("imagegraph.adapters.engine.builder_choice.docker_clients", lambda: ["/usr/local/bin/docker", "/usr/bin/docker"])


VERSION = "github.com/docker/buildx 0.13.1 0.13.1+ds1-3\n"


def assert_created_nothing(runner: ScriptedRunner) -> None:
    assert not any(argv[1:3] == ("buildx", "create") or "--bootstrap" in argv for argv in runner.seen), runner.seen


def test_observe_asks_the_first_client_with_buildx_about_the_current_builder(two_clients):
    runner = ScriptedRunner({("/usr/bin/docker", "buildx", "version"): CommandResult(0, VERSION),
                             ("/usr/bin/docker", "buildx", "inspect"): CommandResult(0, INSPECT_DOCKER)})
    observed = observe_builder(runner, image_store="classic")
    assert observed == BuilderFacts("/usr/bin/docker", VERSION.strip(), None, "", parse_inspect(INSPECT_DOCKER), "classic")
    # each client is asked in turn (its questions side by side), the first one with buildx answers
    assert sorted(runner.seen) == sorted([("/usr/local/bin/docker", "buildx", "version"), ("/usr/local/bin/docker", "buildx", "inspect"),
                                          ("/usr/bin/docker", "buildx", "version"), ("/usr/bin/docker", "buildx", "inspect")])
    assert runner.seen.index(("/usr/bin/docker", "buildx", "version")) > runner.seen.index(("/usr/local/bin/docker", "buildx", "version"))
    assert_created_nothing(runner)


#: `docker info --format '{{json .DriverStatus}}'` of dockerd 26 on each image store.
DRIVER_STATUS = {"containerd": '[["driver-type","io.containerd.snapshotter.v1"]]\n',
                 "classic": '[["Backing Filesystem","extfs"],["Supports d_type","true"],["Using metacopy","false"],["Native Overlay Diff","true"],'
                            '["userxattr","false"]]\n'}
INFO = ("/usr/bin/docker", "info", "--format", "{{json .DriverStatus}}")


@pytest.mark.parametrize(("answer", "kind"), [
    (CommandResult(0, DRIVER_STATUS["containerd"]), BuilderKind.INDEX),
    (CommandResult(0, DRIVER_STATUS["classic"]), BuilderKind.PER_PLATFORM),
    # an engine that cannot be asked, or answers what is not a list: the classic store's rule, the one that builds anywhere
    (CommandResult(1, "Cannot connect to the Docker daemon"), BuilderKind.PER_PLATFORM),
    (CommandResult(0, "null\n"), BuilderKind.PER_PLATFORM),
    (CommandResult(0, "<no value>\n"), BuilderKind.PER_PLATFORM),
])
def test_the_docker_driver_asks_the_same_client_for_the_image_store(two_clients, answer, kind):
    runner = ScriptedRunner({("/usr/bin/docker", "buildx", "version"): CommandResult(0, VERSION),
                             ("/usr/bin/docker", "buildx", "inspect"): CommandResult(0, INSPECT_DOCKER), INFO: answer})
    assert choose_builder(observe_builder(runner)).kind is kind
    assert INFO in runner.seen


def test_a_container_driver_builds_every_platform_at_once_whatever_the_image_store():
    runner = ScriptedRunner({("/usr/bin/docker", "buildx", "version"): CommandResult(0, VERSION),
                             ("/usr/bin/docker", "buildx", "inspect"): CommandResult(0, INSPECT_CONTAINER),
                             INFO: CommandResult(0, DRIVER_STATUS["classic"])})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("imagegraph.adapters.engine.builder_choice.docker_clients", lambda: ["/usr/bin/docker"])
        facts = observe_builder(runner)
    assert facts.image_store is None and choose_builder(facts).kind is BuilderKind.INDEX


def test_a_given_image_store_is_not_asked_again(two_clients):
    runner = ScriptedRunner({("/usr/bin/docker", "buildx", "version"): CommandResult(0, VERSION),
                             ("/usr/bin/docker", "buildx", "inspect"): CommandResult(0, INSPECT_DOCKER)})
    assert choose_builder(observe_builder(runner, image_store="containerd")).kind is BuilderKind.INDEX
    assert not any(argv[1] == "info" for argv in runner.seen)


def test_observe_inspects_a_named_builder_and_creates_nothing_when_it_is_missing(two_clients):
    runner = ScriptedRunner({("/usr/local/bin/docker", "buildx", "version"): CommandResult(0, VERSION),
                             ("/usr/local/bin/docker", "buildx", "inspect"): CommandResult(0, INSPECT_DOCKER),
                             ("/usr/local/bin/docker", "buildx", "inspect", "farm"): CommandResult(1, 'ERROR: no builder "farm" found')})
    observed = observe_builder(runner, named="farm", named_from="--builder", image_store="containerd")
    assert observed.client == "/usr/local/bin/docker" and observed.named == "farm" and observed.builder is None
    assert runner.seen[-1] == ("/usr/local/bin/docker", "buildx", "inspect", "farm")
    assert_created_nothing(runner)
    with pytest.raises(ToolMissing, match="no buildx builder named 'farm' \\(--builder\\)"):
        choose_builder(observed)


def test_observe_a_named_kubernetes_builder(two_clients):
    runner = ScriptedRunner({("/usr/local/bin/docker", "buildx", "version"): CommandResult(0, VERSION),
                             ("/usr/local/bin/docker", "buildx", "inspect", "farm"): CommandResult(0, INSPECT_KUBERNETES)})
    choice = choose_builder(observe_builder(runner, named="farm", named_from="$BUILDX_BUILDER", image_store="classic"))
    assert (choice.builder, choice.driver, choice.multi_platform) == ("farm", "kubernetes", True)
    assert_created_nothing(runner)


def test_observe_without_buildx_finds_no_client(two_clients):
    runner = ScriptedRunner({})
    observed = observe_builder(runner, named="x", named_from="--builder", image_store="containerd")
    assert observed == BuilderFacts(None, named="x", named_from="--builder", image_store="containerd")
    assert sorted(argv for argv in runner.seen if argv[1:] == ("buildx", "version")) == [
        ("/usr/bin/docker", "buildx", "version"), ("/usr/local/bin/docker", "buildx", "version")]
    assert_created_nothing(runner)
    with pytest.raises(ToolMissing, match="buildx plugin"):
        choose_builder(observed)


def test_select_builder_on_the_classic_store_builds_per_platform(two_clients):
    runner = ScriptedRunner({("/usr/local/bin/docker", "buildx", "version"): CommandResult(0, VERSION),
                             ("/usr/local/bin/docker", "buildx", "inspect"): CommandResult(0, INSPECT_DOCKER)})
    builder = select_builder(runner, image_store="classic")
    assert builder == BuildxBuilder(docker="/usr/local/bin/docker", builder=None, multi_platform=False,
                                    summary="current builder (docker driver)")
    assert select_builder(runner, image_store="containerd").multi_platform
    assert_created_nothing(runner)


# --- platforms the builder lists ------------------------------------------------

def choice(platforms: tuple[str, ...], builder: str | None = None) -> BuilderChoice:
    return BuilderChoice("docker", builder, "docker", True, platforms, "")


@pytest.mark.parametrize(
    "wanted",
    [
        ["linux/amd64", "linux/arm64"],
        ["linux/arm64/v8"],  # a variant the builder lists without it
        ["linux/386"],  # what amd64 runs natively though BuildKit may not list it
        ["linux/arm/v7"],
        [],
    ],
)
def test_platforms_the_builder_lists_pass(wanted):
    check_platforms(wanted, choice(("linux/amd64", "linux/arm64", "linux/arm/v7")))


def test_an_empty_platform_list_says_nothing():
    check_platforms(["linux/s390x"], choice(()))


def test_a_platform_the_builder_does_not_list_is_one_line_with_the_fix():
    with pytest.raises(EngineError) as caught:
        check_platforms(["linux/amd64", "linux/s390x", "linux/arm/v6", "linux/mips64"],
                        choice(("linux/amd64", "linux/arm64", "linux/arm/v7"), builder="farm"))
    message = str(caught.value)
    assert message.startswith("cannot build for linux/s390x, linux/arm/v6, linux/mips64: the builder farm (docker driver) "
                              "runs only linux/amd64, linux/arm64, linux/arm/v7;")
    assert "invoke engine.up" in message and "--builder" in message and "--platform" in message and "\n" not in message


def test_386_is_not_implied_without_amd64():
    with pytest.raises(EngineError, match="cannot build for linux/386: the builder in use"):
        check_platforms(["linux/386"], choice(("linux/arm64",)))


# --- steps and repairs ------------------------------------------------------------

PLAIN_OUTPUT = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#4 [1/4] FROM 127.0.0.1:5000/library/python:3.11-slim@sha256:3bd7
#4 DONE 0.0s
#9 importing cache manifest from 127.0.0.1:5000/x:buildcache-amd64
#5 [2/4] RUN echo one > /one
#5 CACHED
#6 [runtime 3/4] RUN --mount=type=bind,source=.wheelhouse,target=/wh pip install
#6 CACHED
#8 [linux/arm64 runtime 4/4] COPY x /x
#8 DONE 0.0s
#10 exporting to image
"""


def test_count_steps_reads_buildkit_plain_progress():
    assert count_steps(PLAIN_OUTPUT) == StepCount(cached=2, total=3)
    assert count_steps("") == StepCount(0, 0)
    assert StepCount(1, 2) + StepCount(2, 3) == StepCount(3, 5)


@pytest.mark.parametrize("multi_platform", [True, False])
@pytest.mark.parametrize("reason", [
    "failed to get layer sha256:8edfd9fa5470886779f015428ed019bff2902c078904c42bb3cc7d8fef4847d2: layer does not exist",
    "ERROR: layer does not exist",
    "layer does not exist",
    "failed to export image: failed to create image: "
    "failed to get layer sha256:8edfd9fa5470886779f015428ed019bff2902c078904c42bb3cc7d8fef4847d2: layer does not exist",
])
def test_a_build_cache_naming_a_lost_layer_is_repaired_by_pruning_it(reason, multi_platform):
    buildx = BuildxBuilder(docker="/usr/bin/docker", multi_platform=multi_platform)
    build = buildx.commands(request())[0]
    repair = buildx.repair(build, reason)
    assert lost_layer(reason) and repair is not None
    assert repair.command.argv == ("/usr/bin/docker", "builder", "prune", "--all", "--force")
    assert "docker builder prune --all --force" in repair.command.hint
    assert "\n" not in repair.explanation and "pruning the build cache" in repair.explanation


@pytest.mark.parametrize("reason", [
    "executor failed running [/bin/sh -c exit 3]: exit code: 3",
    "#5 0.215 layer does not exist",  # a RUN step's own output, not the engine
    "",
])
def test_other_build_failures_are_not_repaired(reason):
    buildx = BuildxBuilder(docker="/usr/bin/docker")
    assert not lost_layer(reason)
    assert buildx.repair(buildx.commands(request())[0], reason) is None


def test_only_a_build_is_repaired_never_a_push():
    buildx = BuildxBuilder(docker="/usr/bin/docker", multi_platform=False)
    assert all(buildx.repair(step, "layer does not exist") is not None for step in buildx.commands(request(platforms=BOTH)))
    assert buildx.repair(Command.of("/usr/bin/docker", "push", REF), "layer does not exist") is None
