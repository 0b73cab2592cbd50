"""images.yaml `compression:`: parsed with one-line errors, carried in the build request, rendered as BuildKit's exporter
options on every builder path and in a bake file, and counted in the fingerprint by its type only."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.adapters.bake import bake_definition
from imagegraph.adapters.engine.builders import BuildxBuilder
from imagegraph.core.cache import BuilderKind
from imagegraph.core.config import DEFAULT_COMPRESSION, Compression, config_from_text
from imagegraph.core.errors import ImagegraphError, InputError
from imagegraph.core.fingerprint import fingerprint_images
from tests.conftest import FAMILY, FAMILY_FILES, forced_plan, write_tree
from tests.unit.test_fingerprint import MemorySources

ZSTD3 = ("compression=zstd", "compression-level=3", "force-compression=true", "oci-mediatypes=true")


def family_with(top: str = "", **images: str) -> str:
    """FAMILY with ``top`` added at the top level and a line added under each named image (e.g. app="compression: zstd")."""
    text = FAMILY.replace("images:\n", f"{top}\nimages:\n" if top else "images:\n")
    for name, line in images.items():
        text = text.replace(f"  {name}:\n", f"  {name}:\n    {line}\n")
    return text


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_tree(tmp_path, FAMILY_FILES)
    return tmp_path


def config_of(root: Path, text: str):
    return config_from_text(text, root)


def error_of(root: Path, text: str) -> str:
    with pytest.raises(InputError) as info:
        config_of(root, text)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- images.yaml ------------------------------------------------------------------

def test_nothing_said_is_gzip_at_its_default_level(root):
    config = config_of(root, FAMILY)
    assert {spec.compression for spec in config.images} == {DEFAULT_COMPRESSION} == {Compression("gzip", None)}


def test_the_family_default_applies_to_every_image_and_an_image_of_its_own_wins(root):
    config = config_of(root, family_with("compression: {type: zstd, level: 3}", app="compression: {type: gzip, level: 1}"))
    assert config.image("base").compression == config.image("ci").compression == Compression("zstd", 3)
    assert config.image("app").compression == Compression("gzip", 1)


def test_a_type_alone_and_a_level_alone(root):
    config = config_of(root, family_with(base="compression: zstd", ci="compression: {level: 1}"))
    assert config.image("base").compression == Compression("zstd")
    assert config.image("ci").compression == Compression("gzip", 1)
    assert config.image("app").compression == DEFAULT_COMPRESSION


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("line", "expected"), [
    ("compression: {type: lz4}", "compression: type must be one of gzip, zstd, got str 'lz4'"),
    ("compression: brotli", "compression: type must be one of gzip, zstd, got str 'brotli'"),
    ("compression: {type: [zstd]}", "compression: type must be one of gzip, zstd"),
    ("compression: {type: gzip, level: 10}", "level must be a whole number from 0 to 9 for gzip, got a number '10'"),
    ("compression: {type: zstd, level: 23}", "level must be a whole number from 0 to 22 for zstd, got a number '23'"),
    ("compression: {type: zstd, level: -1}", "level must be a whole number from 0 to 22 for zstd"),
    ("compression: {type: zstd, level: 3.5}", "level must be a whole number from 0 to 22 for zstd"),
    ("compression: {type: zstd, level: true}", "level must be a whole number from 0 to 22 for zstd"),
    ("compression: {type: zstd, level: \"3\"}", "level must be a whole number from 0 to 22 for zstd"),
    ("compression: {type: zstd, levle: 3}", "unknown key 'levle'"),
    ("compression: 3", "compression must be gzip, zstd or a mapping such as {type: zstd, level: 3}, got a number '3'"),
    ("compression:", "compression: is empty"),
])
def test_a_bad_value_is_one_line_naming_the_line_and_the_allowed_values(root, line, expected):
    text = family_with(app=line)
    message = error_of(root, text)
    assert message.startswith(f"images.yaml:{line_of(text, line)}: image 'app': ")
    assert expected in message


def test_a_bad_family_default_names_its_line(root):
    text = family_with("compression: {type: zstd, level: 99}")
    assert error_of(root, text).startswith(f"images.yaml:{line_of(text, 'level: 99')}: top level: compression: level must be")


# --- the build request and `invoke plan --json` ------------------------------------

def requests_of(root: Path, text: str, kind: BuilderKind = BuilderKind.INDEX):
    class Kind:
        pass
    builder = Kind()
    builder.kind = kind  # type: ignore[attr-defined]
    plan = forced_plan(config_of(root, text), root / "contexts", builder=builder)
    return {entry.name: entry.request for entry in plan.images}


def test_the_default_is_gzip_at_level_1_and_leaves_layers_already_gzip_as_they_are(root):
    requests = requests_of(root, FAMILY)
    assert {request.exporter_options for request in requests.values()} == {("compression=gzip", "compression-level=1")}
    assert requests["app"].to_dict()["compression"] == {"type": "gzip", "level": 1, "force": False}
    # a level written wins; zstd without one is BuildKit's own level
    assert requests_of(root, family_with("compression: {level: 6}"))["app"].exporter_options == ("compression=gzip", "compression-level=6")
    assert "compression-level" not in ",".join(requests_of(root, family_with("compression: zstd"))["app"].exporter_options)


def test_zstd_forces_every_layer_and_says_oci_media_types(root):
    requests = requests_of(root, family_with("compression: {type: zstd, level: 3}"))
    assert requests["base"].exporter_options == requests["app"].exporter_options == ZSTD3
    shown = requests["base"].to_dict()
    assert shown["compression"] == {"type": "zstd", "level": 3, "force": True}
    # `invoke plan --json` shows the cache export exactly as the build passes it
    assert shown["cache"][0]["cache_to"] == [requests["base"].cache_exports(requests["base"].cache[0])[0]]
    assert shown["cache"][0]["cache_to"][0].endswith(",".join(ZSTD3))


def test_a_gzip_child_of_a_zstd_parent_recompresses_the_parents_layers(root):
    requests = requests_of(root, family_with(base="compression: zstd"))
    assert requests["base"].exporter_options == ("compression=zstd", "force-compression=true", "oci-mediatypes=true")
    # without force, the child would carry its parent's zstd layers: an image old clients cannot pull though it says gzip
    assert requests["app"].exporter_options == ("compression=gzip", "compression-level=1", "force-compression=true")


def test_a_gzip_level_is_passed_without_forcing_layers_already_gzip(root):
    requests = requests_of(root, family_with("compression: {level: 1}"))
    assert requests["base"].exporter_options == ("compression=gzip", "compression-level=1")


def test_a_plan_for_the_classic_stores_builder_refuses_compression_in_one_line(root):
    with pytest.raises(InputError) as info:
        requests_of(root, family_with(app="compression: zstd"), BuilderKind.PER_PLATFORM)
    message = str(info.value)
    assert "\n" not in message and "image 'app': compression zstd needs a builder whose exporter pushes" in message
    assert "containerd image store" in message and "docker-container builder" in message
    assert requests_of(root, FAMILY, BuilderKind.PER_PLATFORM)["app"].exporter_options == ()


# --- the commands and the bake file --------------------------------------------------

def test_the_multi_platform_build_pushes_through_the_registry_exporter_with_the_options(root):
    requests = requests_of(root, family_with("compression: {type: zstd, level: 3}"))
    argv = BuildxBuilder().commands(requests["base"])[0].argv
    assert "--push" not in argv
    assert argv[argv.index("--output") + 1] == "type=registry," + ",".join(ZSTD3)
    cache_to = argv[argv.index("--cache-to") + 1]
    assert cache_to == "type=registry,ref=127.0.0.1:5000/test/base:buildcache,mode=max,ignore-error=true," + ",".join(ZSTD3)
    assert argv[argv.index("--cache-from") + 1] == "type=registry,ref=127.0.0.1:5000/test/base:buildcache"


def test_the_default_build_pushes_at_gzip_level_1_and_its_cache_too(root):
    argv = BuildxBuilder().commands(requests_of(root, FAMILY)["base"])[0].argv
    assert "--push" not in argv and argv[argv.index("--output") + 1] == "type=registry,compression=gzip,compression-level=1"
    assert argv[argv.index("--cache-to") + 1] == ("type=registry,ref=127.0.0.1:5000/test/base:buildcache,mode=max,ignore-error=true,"
                                                  "compression=gzip,compression-level=1")


def test_the_per_platform_builder_refuses_a_request_that_asks_for_compression(root):
    request = requests_of(root, family_with("compression: zstd"))["base"]
    with pytest.raises(ImagegraphError) as info:
        BuildxBuilder(multi_platform=False).commands(request)
    assert "\n" not in str(info.value) and "pushes through dockerd, which always uses gzip" in str(info.value)


def test_the_per_platform_builder_builds_the_default_as_before(root):
    commands = BuildxBuilder(multi_platform=False).commands(requests_of(root, FAMILY, BuilderKind.PER_PLATFORM)["base"])
    assert all("--push" in command.argv for command in commands[:2]) and not any("--output" in c.argv for c in commands)


def test_the_bake_file_carries_the_options_in_output_and_cache_to(root):
    requests = requests_of(root, family_with("compression: {type: zstd, level: 3}", app="compression: {type: gzip, level: 1}"))
    targets = bake_definition(list(requests.values()), {"ci": "base", "app": "base", "devcontainer": "base"})["target"]
    assert targets["base"]["output"] == ["type=registry," + ",".join(ZSTD3)]
    assert targets["base"]["cache-to"] == ["type=registry,ref=127.0.0.1:5000/test/base:buildcache,mode=max,ignore-error=true,"
                                           + ",".join(ZSTD3)]
    assert targets["app"]["output"] == ["type=registry,compression=gzip,compression-level=1,force-compression=true"]
    plain = bake_definition(list(requests_of(root, FAMILY).values()), {})["target"]
    assert plain["base"]["output"] == ["type=registry,compression=gzip,compression-level=1"]


# --- the fingerprint ------------------------------------------------------------------

def fingerprints(root: Path, text: str) -> dict[str, str]:
    return {name: fp.digest for name, fp in fingerprint_images(config_of(root, text), MemorySources(FAMILY_FILES)).items()}


def test_the_type_counts_in_the_fingerprint_and_reaches_the_children(root):
    default = fingerprints(root, FAMILY)
    zstd_base = fingerprints(root, family_with(base="compression: zstd"))
    assert all(zstd_base[name] != default[name] for name in default)  # the base's layers differ, and every child stands on them
    zstd_app = fingerprints(root, family_with(app="compression: zstd"))
    assert zstd_app["app"] != default["app"] and zstd_app["base"] == default["base"]


def test_gzip_said_and_any_level_leave_the_fingerprint_as_it_was(root):
    default = fingerprints(root, FAMILY)
    assert fingerprints(root, family_with("compression: {type: gzip, level: 1}")) == default
    assert fingerprints(root, family_with("compression: {type: zstd, level: 3}")) \
        == fingerprints(root, family_with("compression: {type: zstd, level: 19}"))
