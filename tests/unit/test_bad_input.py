"""Each bad input the issue found ends in one `error:` line that names the value, where it came from and the fix.

Every case runs the real command line (in-process) in a family checkout with
one file, flag or environment variable spoiled; the registry is unreachable
and no engine is needed.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAMILY, FAMILY_FILES
from tests.unit.cli import NO_REGISTRY, make_family, run_cli

ROOT = Path(__file__).resolve().parents[2]


def family_yaml(old: str, new: str) -> str:
    assert old in FAMILY, old
    return FAMILY.replace(old, new, 1)


BASE_WHEELS = "    wheels: [requirements/requirements-torch.txt]\n"


def with_build_args(args: str) -> str:
    return family_yaml(BASE_WHEELS, f"{BASE_WHEELS}    build_args: {args}\n")


ALIAS_BOMB = "{A: &a [x, x, x, x, x, x, x, x, x], B: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a], C: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]}"

# (images.yaml or another file, argv, environment, what the one error line must say)
CASES = {
    # tracebacks before
    "alias bomb under build_args": ({"images.yaml": with_build_args(ALIAS_BOMB)}, ["ref", "base"], {},
                                    ["images.yaml:", "alias *a is not supported", "write the value out"]),
    "--registry :::": ({}, ["ref", "base", "--registry", ":::"], {}, ["--registry", "':::'", "e.g. 127.0.0.1:5000"]),
    "IMAGEGRAPH_REGISTRY=:::": ({}, ["ref", "base"], {"IMAGEGRAPH_REGISTRY": ":::"}, ["$IMAGEGRAPH_REGISTRY", "':::'"]),
    "uppercase namespace": ({"images.yaml": family_yaml("namespace: test", "namespace: Test")}, ["ref", "base"], {},
                            ["images.yaml:3", "'Test' is not a registry namespace", "e.g. 'test'"]),
    "spaced namespace": ({"images.yaml": family_yaml("namespace: test", "namespace: my team")}, ["plan"], {},
                         ["images.yaml:3", "'my team'", "e.g. 'my-team'"]),
    "--jobs abc": ({}, ["build", "--dry-run", "--jobs", "abc"], {}, ["--jobs", "'abc' is not a whole number", "e.g. --jobs 2"]),
    "report --history abc": ({}, ["report", "--history", "abc"], {}, ["--history", "'abc' is not a whole number", "e.g. --history 10"]),
    # accepted in silence before
    "build_args null": ({"images.yaml": with_build_args("{VERSION: null}")}, ["ref", "base"], {},
                        ["images.yaml:", "VERSION: nothing (null)", 'write a string, e.g. VERSION: "value"']),
    "build_args list": ({"images.yaml": with_build_args("{VERSION: [a, b]}")}, ["ref", "base"], {}, ["VERSION: a list", "write a string"]),
    "build_args map": ({"images.yaml": with_build_args("{VERSION: {a: 1}}")}, ["ref", "base"], {}, ["VERSION: a mapping", "write a string"]),
    "duplicate image key": ({"images.yaml": FAMILY + "  base:\n    dockerfile: docker/Dockerfile.ci\n"}, ["ref", "base"], {},
                            ["images.yaml:23", "duplicate key 'base' (first at line 5)", "keep one"]),
    "IMAGEGRAPH_REGISTRY with a host label longer than DNS allows": ({}, ["build", "--dry-run"], {"IMAGEGRAPH_REGISTRY": "x" * 64 + ".io"},
                                                                       ["$IMAGEGRAPH_REGISTRY", "a part of 64 characters (63 at most)", "e.g. 127.0.0.1:5000"]),
    "--registry with a host name longer than DNS allows": ({}, ["plan", "--registry", ".".join(["a" * 60] * 5)], {},
                                                            ["--registry", "304 characters (253 at most)"]),
    "a wheels path part longer than a file name": ({"images.yaml": family_yaml(BASE_WHEELS, f"    wheels: {'x' * 300}requirements/r.txt\n")},
                                                   ["affected"], {}, ["images.yaml:7", "a part of 312 bytes", "(255)", "fix the path"]),
    "a dockerfile path longer than a path": ({"images.yaml": family_yaml("dockerfile: docker/Dockerfile.base",
                                                                          "dockerfile: " + "/".join(["d" * 200] * 21) + "/Dockerfile")},
                                             ["plan"], {}, ["images.yaml:", "longer than a path can be (4095 bytes)", "fix the path"]),
    "target naming no stage": ({"images.yaml": family_yaml("target: runtime", "target: runtim")}, ["affected"], {},
                               ["'runtim' is not a stage of docker/Dockerfile", "did you mean 'runtime'?", "fix `target:`"]),
    "linux/amd65 in images.yaml": ({"images.yaml": family_yaml("[linux/amd64, linux/arm64]", "[linux/amd65]")}, ["ref", "base"], {},
                                   ["images.yaml:8", "'linux/amd65'", "did you mean 'linux/amd64'?"]),
    "--platform linux/amd65": ({}, ["ref", "base", "--platform", "linux/amd65"], {}, ["--platform", "did you mean 'linux/amd64'?"]),
    "--jobs 0": ({}, ["build", "--dry-run", "--jobs", "0"], {}, ["--jobs", "'0' is not a whole number of at least 1"]),
    "--jobs -1": ({}, ["build", "--dry-run", "--jobs=-1"], {}, ["--jobs", "'-1' is not a whole number of at least 1"]),
    "two wheels files sharing a wheel folder": ({"src/svc/requirements.txt": "six==1.16.0\n", "images.yaml": family_yaml(
        "    wheels: [requirements/requirements.txt]\n", "    wheels: [src/svc/requirements.txt]\n")}, ["build", "--dry-run"], {},
        ["images.yaml:18", "'src/svc/requirements.txt' and 'requirements/requirements.txt' (image 'ci', images.yaml:12)",
         "share the wheel folder .wheelhouse/requirements", "rename one of the two files"]),
    "--registry ''": ({}, ["ref", "base", "--registry", ""], {}, ["--registry is empty", "e.g. --registry 127.0.0.1:5000", "or leave the flag out"]),
    "IMAGEGRAPH_REGISTRY=''": ({}, ["ref", "base"], {"IMAGEGRAPH_REGISTRY": ""}, ["$IMAGEGRAPH_REGISTRY", "is empty"]),
    "--builder of no buildx form": ({}, ["build", "--dry-run", "--builder", "no such"], {}, ["--builder", "'no such'", "docker buildx ls"]),
    "child ignoring BASE_IMAGE": ({"docker/Dockerfile.ci": "FROM python:3.11-slim\n"}, ["affected"], {},
                                  ["docker/Dockerfile.ci", "parent 'base'", "no FROM uses ${BASE_IMAGE}", "ARG BASE_IMAGE"]),
    "FROM ${BASE_IMAGE} without ARG": ({"docker/Dockerfile.ci": "FROM ${BASE_IMAGE}\n"}, ["affected"], {},
                                       ["docker/Dockerfile.ci:1", "no `ARG BASE_IMAGE`"]),
    "Dockerfile without FROM": ({"docker/Dockerfile.base": "RUN true\n"}, ["ref", "base"], {}, ["docker/Dockerfile.base", "has no FROM"]),
    # Dockerfile lines BuildKit refuses, found before anything builds
    "COPY with an unclosed JSON array": ({"docker/Dockerfile.base": 'FROM python:3.11-slim\nCOPY ["a", "b" /x\n'}, ["plan"], {},
                                         ["docker/Dockerfile.base:2", "not a JSON array", "fix the array"]),
    "an unknown instruction": ({"docker/Dockerfile.ci": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPYY a /a\n"}, ["affected"], {},
                               ["docker/Dockerfile.ci:3", "unknown instruction COPYY", "did you mean 'COPY'?"]),
    "an unterminated heredoc": ({"docker/Dockerfile.base": "FROM python:3.11-slim\nRUN <<EOF\necho hi\n"}, ["build", "--dry-run"], {},
                                ["docker/Dockerfile.base:2", "heredoc <<EOF is never closed", "`EOF`"]),
    "an unclosed quote in RUN --mount": ({"docker/Dockerfile.base": 'FROM python:3.11-slim\nRUN --mount=type=cache,target="/root/.cache pip list\n'},
                                         ["ref", "base"], {}, ["docker/Dockerfile.base:2", "--mount flag is never closed", "no command"]),
    "a misspelt COPY flag": ({"docker/Dockerfile.base": "FROM python:3.11-slim\nCOPY --chonw=1 a /a\n"}, ["plan"], {},
                             ["docker/Dockerfile.base:2", "COPY has no flag --chonw", "did you mean '--chown'?"]),
    # misleading before
    "registry with a scheme": ({"images.yaml": family_yaml("registry: 127.0.0.1:5000", "registry: http://127.0.0.1:5000")},
                               ["ref", "base"], {"IMAGEGRAPH_REGISTRY": NO_REGISTRY},
                               ["images.yaml:2", "'http://127.0.0.1:5000' is a URL", "without http://", "'127.0.0.1:5000'"]),
    "bad IMAGEGRAPH_PLATFORMS": ({}, ["ref", "base"], {"IMAGEGRAPH_PLATFORMS": "linux/amd65"}, ["$IMAGEGRAPH_PLATFORMS", "linux/amd64"]),
    "dockerfile: a directory": ({"images.yaml": family_yaml("dockerfile: docker/Dockerfile.ci", "dockerfile: docker")}, ["ref", "ci"], {},
                                ["images.yaml:", "docker is a directory", "name the file in it, e.g. docker/Dockerfile"]),
    "python: 3.10": ({"images.yaml": family_yaml("namespace: test", "namespace: test\npython: 3.10")}, ["ref", "base"], {},
                     ["images.yaml:4", "3.10, which YAML reads as 3.1", 'quote it: python: "3.10"']),
    "YAML error line": ({"images.yaml": family_yaml("images:", "images")}, ["ref", "base"], {}, ["images.yaml:4", "could not find expected ':'"]),
    "runner label that reads as an option": ({"images.yaml": family_yaml("namespace: test", "namespace: test\nrunners: {linux/arm64: --x}")},
                                             ["affected", "--json"], {},
                                             ["images.yaml:4", "runners: linux/arm64: '--x' is not a runner label", "e.g. ubuntu-24.04-arm"]),
    "runner for a platform no image builds": ({"images.yaml": family_yaml("namespace: test", "namespace: test\nrunners:\n  linux/arm/v7: pi")},
                                              ["affected"], {}, ["images.yaml:5", "no image declares linux/arm/v7", "remove the line"]),
}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return make_family(tmp_path_factory.mktemp("family"))


@pytest.fixture
def spoil(checkout):
    """Write files into the checkout for one test; put the committed ones back after."""
    written: list[str] = []

    def write(files: dict[str, str | bytes]) -> Path:
        for relpath, content in files.items():
            path = checkout / relpath
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            written.append(relpath)
        return checkout

    yield write
    for relpath in written:
        if relpath in FAMILY_FILES or relpath == "images.yaml":
            subprocess.run(["git", "checkout", "-q", "--", relpath], cwd=checkout, check=True)
        else:
            (checkout / relpath).unlink(missing_ok=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_input_is_one_line_naming_value_origin_and_fix(spoil, case):
    files, argv, env, expected = CASES[case]
    error = run_cli(spoil(files), argv, env).error
    missing = [part for part in expected if part not in error]
    assert not missing, f"{error!r} lacks {missing}"


@pytest.mark.parametrize("relpath", ["images.yaml", "docker/Dockerfile.ci", "docker/Dockerfile.ci.dockerignore"])
def test_a_byte_that_is_not_utf8_names_the_file_and_line(spoil, relpath):
    original = (FAMILY if relpath == "images.yaml" else FAMILY_FILES.get(relpath, "")).encode()
    root = spoil({relpath: original + b"# caf\xe9\n"})
    line = original.count(b"\n") + 1
    error = run_cli(root, ["plan"]).error
    assert f"{relpath}:{line}: byte 0xe9 is not UTF-8" in error


def test_a_stored_report_that_is_not_utf8_or_has_a_word_for_a_time_is_one_line(spoil):
    good = {"schema": "imagegraph.build-report/1", "started": "2026-01-01T00:00:00Z", "seconds": 1.0, "commit": None, "event": "local",
            "kind": "no change", "since": "", "builder": None, "registry": NO_REGISTRY, "images": [
                {"name": "base", "decision": "reuse", "reason": "r", "ok": True, "error": None, "seconds": 0, "phases": {"build": "fast"},
                 "size": None, "layers": None, "steps": {"cached": 0, "total": 0}, "digest": None, "tags": [], "ref": "", "parent": None,
                 "platforms": [], "changed": [], "recipe": ""}]}
    root = spoil({"word.json": json.dumps(good), "latin1.json": b'{"schema": "caf\xe9"}'})
    word = run_cli(root, ["report", "--file", "word.json"]).error
    assert "'phases': 'build' is 'fast', not a number of seconds" in word and "delete it or restore it" in word
    latin = run_cli(root, ["report", "--file", "latin1.json"]).error
    assert "latin1.json: byte 0xe9" in latin and "not UTF-8" in latin


def test_ref_never_prints_a_reference_a_registry_refuses(checkout):
    printed = run_cli(checkout, ["ref", "base"])
    assert printed.code == 0 and printed.stdout.startswith(f"{NO_REGISTRY}/test/base:")


def test_a_missing_requirements_file_suggests_none_the_image_lists(spoil):
    yaml = family_yaml("wheels: [requirements/requirements.txt, requirements/requirements-dev.txt]",
                       "wheels: [requirements/requirements.txt, requirements/requirement.txt]")
    error = run_cli(spoil({"images.yaml": yaml}), ["ref", "ci"]).error
    assert "requirements/requirement.txt does not exist" in error and "did you mean 'requirements/requirements.txt'" not in error


def test_build_args_keep_numbers_as_written(checkout, spoil):
    from imagegraph.core.config import load_config

    root = spoil({"images.yaml": with_build_args("{VERSION: 1.10, PORT: 8080, OCTAL: 010}")})
    assert dict(load_config(root).image("base").build_args) == {"VERSION": "1.10", "PORT": "8080", "OCTAL": "010"}


def test_an_unreachable_engine_names_the_docker_host_it_tried(monkeypatch):
    from invoke import Exit

    from imagegraph.core.errors import EngineError
    from imagegraph.tasks._common import user_errors

    @user_errors
    def needs_engine():
        raise EngineError("the Docker engine is not reachable; run `invoke engine.up` (or start Docker) and retry")

    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    with pytest.raises(Exit) as info:
        needs_engine()
    assert "DOCKER_HOST='tcp://127.0.0.1:9' from the environment" in str(info.value.message)


def test_the_invoke_command_itself_prints_one_line_for_a_flag_invoke_used_to_convert(tmp_path):
    root = make_family(tmp_path, {"tasks.py": "from imagegraph.tasks import namespace as ns\n"})
    done = subprocess.run([sys.executable, "-m", "invoke", "build", "--dry-run", "--jobs", "abc"], cwd=root, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp_path),
                                           "IMAGEGRAPH_REGISTRY": NO_REGISTRY})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: --jobs: 'abc' is not a whole number of at least 1; e.g. --jobs 2"


def test_an_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path):
    def half_a_gigabyte():
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))

    root = make_family(tmp_path, {"tasks.py": "from imagegraph.tasks import namespace as ns\n", "images.yaml": with_build_args(ALIAS_BOMB)})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "invoke", "ref", "base"], cwd=root, capture_output=True, text=True, timeout=60,
                          preexec_fn=half_a_gigabyte, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp_path)})
    assert time.monotonic() - started < 30
    assert done.returncode == 1 and done.stderr.startswith("error: images.yaml:") and "alias *a" in done.stderr


def test_a_dockerfile_warning_names_the_image_file_and_line(spoil):
    from imagegraph.workspace import Workspace

    root = spoil({"docker/Dockerfile.base": 'FROM python:3.11-slim\nCMD ["serve", "--port"\n'})
    warnings = Workspace(root).input_warnings()
    assert any(w.startswith("image 'base': docker/Dockerfile.base:2: CMD starts like a JSON array but is not one") for w in warnings)


def test_buildx_builder_from_the_environment_is_checked_as_a_name_before_buildx_sees_it():
    from imagegraph.adapters.engine.builder_choice import named_builder
    from imagegraph.core.errors import InputError

    with pytest.raises(InputError, match=r"\$BUILDX_BUILDER: '--help' is not a buildx builder name"):
        named_builder(None, {"BUILDX_BUILDER": "--help"}, None)
    assert named_builder(None, {"BUILDX_BUILDER": "farm"}, "local") == ("farm", "$BUILDX_BUILDER")
