"""Image references, registry addresses and the loopback rule: each read once, by one parser, into a value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imagegraph.adapters import registry_http
from imagegraph.adapters.registry import full_ref
from imagegraph.core.config import config_from_text
from imagegraph.core.errors import InputError, RegistryError
from imagegraph.core.retention import Manifest
from imagegraph.core.values import ImageRef, RegistryAddress, is_loopback, login_domain, parse_reference, parse_registry

SRC = Path(__file__).resolve().parents[2] / "src"
DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), [
    ("127.0.0.1:5000/imagegraph/base:0123456789abcdef", RegistryAddress("127.0.0.1", 5000), "imagegraph/base", "0123456789abcdef", ""),
    ("[::1]:5000/ns/app:edge", RegistryAddress("[::1]", 5000), "ns/app", "edge", ""),
    ("[::1]/app:v1", RegistryAddress("[::1]"), "app", "v1", ""),
    ("localhost/app", RegistryAddress("localhost"), "app", "", ""),
    ("localhost:5000/a/b/c:1.2.0", RegistryAddress("localhost", 5000), "a/b/c", "1.2.0", ""),
    ("ghcr.io/acme/imagegraph/app", RegistryAddress("ghcr.io"), "acme/imagegraph/app", "", ""),
    (f"ghcr.io/acme/app@{DIGEST}", RegistryAddress("ghcr.io"), "acme/app", "", DIGEST),
    (f"registry.example:443/app:v1@{DIGEST}", RegistryAddress("registry.example", 443), "app", "v1", DIGEST),
    ("Registry/app:v1", RegistryAddress("Registry"), "app", "v1", ""),  # a capital letter makes it a host, as for docker
    ("imagegraph-devcontainer:local", None, "imagegraph-devcontainer", "local", ""),
    ("r/app:f", None, "r/app", "f", ""),  # no '.', ':' or localhost: a path, not a registry
    ("a__b/c-d/e.f", None, "a__b/c-d/e.f", "", ""),
    ("localhost:5000", None, "localhost", "5000", ""),  # no '/': docker reads this as a name and a tag too
])
def test_references_parse_into_their_parts_and_print_back(text, registry, repository, tag, digest):
    ref = ImageRef.parse(text, "--ref")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == text and ImageRef.parse(str(ref)) == ref
    assert ref.domain == (registry.domain if registry else "")
    assert ref.name == repository.rpartition("/")[2]
    assert ref.reference == (digest or tag)


def test_a_reference_names_the_image_shortly_and_takes_another_tag():
    ref = ImageRef.parse("127.0.0.1:5000/imagegraph/app:abc")
    assert ref.short == "app:abc" and ImageRef.parse(f"h.io/x/app@{DIGEST}").short == f"app@{DIGEST}"
    moved = ref.with_tag("edge")
    assert str(moved) == "127.0.0.1:5000/imagegraph/app:edge" and moved.registry == ref.registry


def test_a_registry_with_a_path_is_no_reference_registry():
    with pytest.raises(ValueError, match="belongs to the repository"):
        ImageRef(RegistryAddress("ghcr.io", None, "acme"), "app")


@pytest.mark.parametrize(("text", "says"), [
    ("", "is empty"),
    ("a b:1", "whitespace"),
    ("app\x1b[2J", "control characters"),
    ("App:v1", "is not an image reference"),
    ("app:", "is not a tag"),
    ("app:-x", "is not a tag"),
    ("ns//app", "is not an image reference"),
    ("127.0.0.1:5000/", "names a registry but no repository"),
    ("127.0.0.1:99999/app", "from 1 to 65535"),
    ("[::1/app", "is not a host name"),
    ("ho_st.io/app", "is not a host name"),
    ("http://127.0.0.1:5000/app:v1", "is a URL"),
    ("https://user:secret@ghcr.io/app", "is a URL"),
    ("app@sha256:abc", "is not a digest"),
    ("app@sha256:" + "A" * 64, "is not a digest"),
    ("app@", "is not a digest"),
    ("host.io/" + "a/" * 130 + "b:v1", "longer than the 255 characters"),
])
def test_bad_references_are_one_line_that_says_why(text, says):
    with pytest.raises(InputError) as info:
        ImageRef.parse(text, "images.yaml:4: from")
    message = str(info.value)
    assert message.startswith("images.yaml:4: from: ") and says in message and "\n" not in message
    assert "secret" not in message and "\x1b" not in message


def test_parse_reference_keeps_docker_tags_form_and_refuses_a_digest():
    assert parse_reference("127.0.0.1:5000/ns/app:v1", "--tag") == "127.0.0.1:5000/ns/app:v1"
    with pytest.raises(InputError, match="has a digest"):
        parse_reference(f"app@{DIGEST}", "--tag")


def test_the_registry_client_wants_a_full_reference():
    assert full_ref("[::1]:5000/ns/app:v1") == ImageRef.parse("[::1]:5000/ns/app:v1")
    assert full_ref("127.0.0.1:5000/ns/app:v1") == ImageRef(RegistryAddress("127.0.0.1", 5000), "ns/app", "v1")
    for partial in ("ns/app:v1", "127.0.0.1:5000/ns/app", "Not A Ref"):
        with pytest.raises(RegistryError, match="is not a full reference"):
            full_ref(partial)


def test_config_builds_references_from_parts_never_from_text(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY", raising=False)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    config = config_from_text("registry: ghcr.io/acme\nnamespace: team\nimages:\n  base:\n    dockerfile: Dockerfile\n", tmp_path)
    ref = config.image_ref("base", "0123456789abcdef")
    assert ref == ImageRef(RegistryAddress("ghcr.io"), "acme/team/base", "0123456789abcdef")
    assert config.repository_path("base") == "acme/team/base" and str(ref) == f"{config.repository('base')}:0123456789abcdef"
    assert ImageRef.parse(str(ref)) == ref


def test_a_manifest_is_named_by_its_repository_last_part():
    assert Manifest("acme/team/base", DIGEST).name == "base" and Manifest("base", DIGEST).label() == f"base@{DIGEST[:19]}"


#: host -> loopback: containerd's rule before it speaks plain HTTP, and what dockerd trusts for HTTP by default.
LOOPBACK = {
    "localhost": True, "localhost:5000": True, "LOCALHOST:5000": True,
    "127.0.0.1": True, "127.0.0.1:5000": True, "127.255.255.254:80": True,
    "::1": True, "[::1]": True, "[::1]:5000": True, "::ffff:127.0.0.1": True, "0:0:0:0:0:0:0:1": True,
    "127.1": False,  # only a resolver reads the short form; Go's and Python's address parsers refuse it
    "0.0.0.0": False, "0.0.0.0:5000": False, "::": False, "[::]:5000": False,
    "128.0.0.1": False, "10.0.0.1:5000": False, "::2": False, "[::2]:5000": False,
    "127.0.0.256": False, "127.0.0.1.nip.io": False, "localhost.example.com": False, "mylocalhost": False,
    "ghcr.io": False, "registry.example:5000": False, "": False,
    "localhost:": False, "localhost:http": False, "[::1]x": False, "[::1": False, "[127.0.0.1]:5000": False,
}


@pytest.mark.parametrize(("host", "loopback"), LOOPBACK.items())
def test_one_loopback_rule_for_every_caller(host, loopback):
    assert is_loopback(host) is loopback
    # the registry client and provisioning ask the same rule, not copies of it


def test_a_registry_address_knows_whether_it_is_loopback():
    assert parse_registry("[::1]:5000", "--registry").is_loopback and parse_registry("localhost", "x").is_loopback
    assert not parse_registry("ghcr.io/acme", "x").is_loopback
    assert registry_http.RegistryHTTP("[::1]:5000").base == "http://[::1]:5000/v2"
    assert registry_http.RegistryHTTP("127.1:5000").base == "https://127.1:5000/v2"


@pytest.mark.parametrize(("key", "domain"), [
    ("127.0.0.1:5000", "127.0.0.1:5000"),
    ("http://127.0.0.1:5000", "127.0.0.1:5000"),
    ("https://index.docker.io/v1/", "index.docker.io"),
    ("ghcr.io/acme", "ghcr.io"),
    ("[::1]:5000/", "[::1]:5000"),
    ("", ""),
    ("https://", ""),
    ("ftp://host", ""),  # the docker CLI strips http(s):// only; anything else is no registry
    ("user:pw@host", ""),
    ("not a host", ""),
])
def test_docker_login_keys_are_read_as_registry_addresses(key, domain):
    assert login_domain(key) == domain


def test_media_types_are_written_in_one_place():
    spelled = [str(path.relative_to(SRC)) for path in SRC.rglob("*.py")
               if re.search(r"application/vnd\.", path.read_text(encoding="utf-8")) and path.name != "media_types.py"]
    assert spelled == []
