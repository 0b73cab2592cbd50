"""Fuzz the command line: whatever a user writes, it succeeds or says one `error:` line; never a traceback.

Hypothesis spoils images.yaml (values, keys, raw text, bytes), the first
lines of a Dockerfile, the flags and the environment of one real CLI run in a
family checkout. Only commands that need no engine run (`ref`, `affected`,
`plan`, `build --dry-run`, `report`, `cleanup`), against a registry that is
not there. Every run must end in exit 0, or exit 1 with exactly one error
line, within a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FAMILY, FAMILY_FILES
from tests.unit.cli import make_family, run_cli

#: Examples per run; $FUZZ_EXAMPLES asks for more (say 1000) when hunting, the suite's run stays short.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
#: Seconds one run may take: the unreachable registry answers at once, so anything slower is a hang or a blow-up.
RUN_LIMIT = 10.0

# Characters that make bad values: separators of the grammars, blanks, case, non-ASCII, YAML syntax.
_TRICKY = ":/@._-, \t\n[]{}&*!|>'\"#%$\\~?=+AZaz09éß\u200b\u00a0"
_TEXT = st.text(alphabet=st.sampled_from(_TRICKY), max_size=12) | st.text(max_size=8).filter(lambda t: "\x00" not in t)
_ARGV_TEXT = _TEXT.filter(lambda t: "\x00" not in t)
_WORDS = st.sampled_from([
    "", "linux/amd64", "linux/amd65", "127.0.0.1:5000", ":::", "http://x", "Test", "app", "base", "0", "-1", "abc", "1e3",
    "3.10", "null", "~", "[a, b]", "{a: 1}", "&a x", "*a", "HEAD", "main", "nope", "engine", "ghcr.io/acme", "x" * 300,
])
_VALUE = _WORDS | _ARGV_TEXT

_FLAG_VALUES = {
    "ref base": ("--registry", "--platform"),
    "affected": ("--since", "--target", "--force", "--platform"),
    "plan": ("--registry", "--platform", "--target", "--since"),
    "build --dry-run": ("--jobs", "--registry", "--builder", "--platform", "--progress", "--target", "--force"),
    "report": ("--history", "--file"),
    "cleanup": ("--keep", "--protect", "--registry"),
}


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from(sorted(_FLAG_VALUES)))
    flags = draw(st.lists(st.sampled_from(_FLAG_VALUES[command]), max_size=2, unique=True))
    # --flag=value, so a value that starts with '-' is a value, not another flag
    return [*command.split(), *(f"{flag}={draw(_VALUE)}" for flag in flags)]


_ENV_NAMES = ("IMAGEGRAPH_REGISTRY", "IMAGEGRAPH_PLATFORMS", "DOCKER_HOST")
environments = st.dictionaries(st.sampled_from(_ENV_NAMES), _VALUE.filter(lambda t: "\x00" not in t), max_size=2)

_KEY_PATHS = [
    ("registry",), ("namespace",), ("python",), ("images", "base", "platforms"), ("images", "base", "build_args"),
    ("images", "app", "target"), ("images", "ci", "parent"), ("images", "ci", "dockerfile"), ("images", "app", "inputs"),
    ("images", "ci", "wheels"), ("images", "app", "push"), ("retention",), ("retention", "keep"), ("report", "history"),
    ("tags", "edge"), ("images", "Bad Name"), ("images", "app", "context"), ("images",),
]
_YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=True) | _VALUE,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_VALUE, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def images_yamls(draw) -> bytes:
    kind = draw(st.sampled_from(["value", "text", "bytes"]))
    if kind == "value":
        data = yaml.safe_load(FAMILY)
        path = draw(st.sampled_from(_KEY_PATHS))
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else {}
        node[path[-1]] = draw(_YAML_VALUES)
        return yaml.safe_dump(data, allow_unicode=True).encode()
    text = FAMILY.encode()
    at = draw(st.integers(0, len(text)))
    if kind == "text":
        return text[:at] + draw(_VALUE).encode() + text[at + draw(st.integers(0, 8)):]
    return text[:at] + draw(st.binary(min_size=1, max_size=4)) + text[at:]


_DOCKERFILE_LINES = st.sampled_from([
    "FROM python:3.11-slim", "FROM ${BASE_IMAGE}", "FROM $BASE_IMAGE AS runtime", "ARG BASE_IMAGE", "ARG BASE_IMAGE=x",
    "FROM scratch AS Runtime", "# syntax=docker/dockerfile:1", "# escape=`", "FROM", "RUN <<EOF", "COPY . /app", "from base as builder",
    "FROM --platform=$BUILDPLATFORM ${BASE_IMAGE} AS runtime", "\\", "ONBUILD FROM x", "",
]) | _ARGV_TEXT


@st.composite
def dockerfiles(draw) -> tuple[str, bytes]:
    relpath = draw(st.sampled_from(sorted(p for p in FAMILY_FILES if "Dockerfile" in p)))
    lines = draw(st.lists(_DOCKERFILE_LINES, min_size=1, max_size=3))
    head = "\n".join(lines).encode() + (draw(st.sampled_from([b"", b"\xff"])))
    return relpath, head + b"\n" + FAMILY_FILES[relpath].encode()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return make_family(tmp_path_factory.mktemp("fuzz"))


def assert_one_line_or_success(outcome, seconds: float, case: str) -> None:
    assert seconds < RUN_LIMIT, f"{case}: took {seconds:.1f}s"
    assert "Traceback" not in outcome.stderr, f"{case}:\n{outcome.stderr}"
    if outcome.code != 0:
        assert outcome.code == 1, f"{case}: exit {outcome.code}\n{outcome.stderr}"
        assert len(outcome.errors) == 1, f"{case}: expected one error line\n{outcome.stderr}"
        assert "\n" not in outcome.errors[0]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=command_lines(), env=environments, config=st.none() | images_yamls(), dockerfile=st.none() | dockerfiles())
def test_any_input_succeeds_or_says_one_error_line(checkout, argv, env, config, dockerfile):
    written = {}
    if config is not None:
        written["images.yaml"] = config
    if dockerfile is not None:
        written[dockerfile[0]] = dockerfile[1]
    for relpath, content in written.items():
        (checkout / relpath).write_bytes(content)
    try:
        started = time.monotonic()
        outcome = run_cli(checkout, argv, env)
        assert_one_line_or_success(outcome, time.monotonic() - started, f"invoke {argv} env={env} files={written}")
    finally:
        if written:
            subprocess.run(["git", "checkout", "-q", "--", *written], cwd=checkout, check=True)
