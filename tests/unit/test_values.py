"""The value parsers: what each accepts, and that each refusal is one line naming the value, its origin and the fix."""

from __future__ import annotations

import pytest

from imagegraph.core.errors import InputError
from imagegraph.core.values import (
    Platform,
    RegistryAddress,
    parse_builder_name,
    parse_count,
    parse_duration,
    parse_namespace,
    parse_platform,
    parse_reference,
    parse_registry,
    split_list,
)


def refusal(parse, text: str, origin: str = "--flag") -> str:
    with pytest.raises(InputError) as info:
        parse(text, origin)
    message = str(info.value)
    assert message.startswith(f"{origin}: ") and "\n" not in message
    return message


@pytest.mark.parametrize(("text", "address"), [
    ("127.0.0.1:5000", RegistryAddress("127.0.0.1", 5000)),
    ("localhost:5000/", RegistryAddress("localhost", 5000)),
    ("ghcr.io/acme", RegistryAddress("ghcr.io", None, "acme")),
    ("registry.example:443/team/images", RegistryAddress("registry.example", 443, "team/images")),
    ("[::1]:5000", RegistryAddress("[::1]", 5000)),
])
def test_registries_by_the_reference_grammar(text, address):
    parsed = parse_registry(text, "--registry")
    assert parsed == address and str(parsed) == text.rstrip("/")


@pytest.mark.parametrize(("text", "says"), [
    (":::", "port ''"),
    ("", "is empty"),
    (" ", "is empty"),
    ("http://127.0.0.1:5000", "without http://"),
    ("host:99999", "from 1 to 65535"),
    ("host:5000x", "from 1 to 65535"),
    ("ho_st:5000", "not a host name"),
    ("-host", "not a host name"),
    ("ghcr.io/Acme", "the path 'Acme' must be lowercase"),
    ("a b", "whitespace"),
    (":5000", "no host"),
])
def test_bad_registries_are_refused_with_the_fix(text, says):
    assert says in refusal(parse_registry, text, "$IMAGEGRAPH_REGISTRY")


@pytest.mark.parametrize(("text", "says"), [
    ("Test", "e.g. 'test'"),
    ("my team", "e.g. 'my-team'"),
    ("a//b", "not a registry namespace"),
    ("-a", "not a registry namespace"),
])
def test_namespaces_are_lowercase_path_components(text, says):
    assert says in refusal(parse_namespace, text, "images.yaml:3: namespace")
    assert parse_namespace("team/images", "x") == "team/images" and parse_namespace("a__b-c.d", "x") == "a__b-c.d"


def test_platforms_are_the_ones_buildkit_knows():
    assert parse_platform("linux/arm/v7", "--platform") == Platform("linux", "arm", "v7")
    assert str(parse_platform("linux/amd64", "x")) == "linux/amd64"
    assert "did you mean 'linux/amd64'?" in refusal(parse_platform, "linux/amd65", "--platform")
    assert "BuildKit calls it linux/arm64" in refusal(parse_platform, "linux/aarch64")
    assert "BuildKit calls it linux/amd64" in refusal(parse_platform, "linux/x86_64")
    assert "is empty" in refusal(parse_platform, "")
    assert "e.g. linux/amd64" in refusal(parse_platform, "amd64")


@pytest.mark.parametrize("text", ["abc", "0", "-1", "", " ", "1.5", "²", "٣"])
def test_counts_are_whole_numbers_of_at_least_one(text):
    assert "is not a whole number of at least 1; e.g. --jobs 2" in refusal(
        lambda t, o: parse_count(t, o, example="--jobs 2"), text, "--jobs")


def test_counts_accept_digits_and_a_floor():
    assert parse_count("4", "--jobs") == 4 and parse_count("0", "--history", minimum=0) == 0


def test_empty_list_items_are_refused_not_skipped():
    assert split_list("a, b", "--target", "--target app") == ("a", "b")
    assert "has an empty item" in refusal(lambda t, o: split_list(t, o, "--target app"), "a,,b", "--target")
    assert "has an empty item" in refusal(lambda t, o: split_list(t, o, "--target app"), "", "--target")


def test_builder_names_have_the_buildx_form():
    assert parse_builder_name("team-builder.1", "--builder") == "team-builder.1"
    for bad in ("", "a b", "1abc", "x/y"):
        assert "`docker buildx ls` lists the builders" in refusal(parse_builder_name, bad, "--builder")


def test_image_references_as_docker_tag_takes_them():
    for good in ("imagegraph-devcontainer:local", "127.0.0.1:5000/ns/app:v1", "app"):
        assert parse_reference(good, "--tag") == good
    for bad in ("App:v1", "app:", "app:-x", "a b"):
        refusal(parse_reference, bad, "--tag")


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), ("2H", 7200)])
def test_durations_are_a_whole_number_and_a_unit(text, seconds):
    assert parse_duration(text, "--grace").total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "1.5h", "-1h", "1w", "h", "1 h"])
def test_bad_durations_are_refused_with_an_example(text):
    assert refusal(parse_duration, text, "--grace").startswith("--grace: ") and "e.g. 1h (0 for none)" in refusal(parse_duration, text, "--grace")
