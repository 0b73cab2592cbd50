from __future__ import annotations

import os
from pathlib import Path

import pathspec
import pytest
from docker.utils.build import PatternMatcher

from imagegraph.core.config import ImageSpec
from imagegraph.core.dockerfile import InputWarning, undeclared_inputs
from imagegraph.core.dockerfile_context import Source, context_sources, used_files

ROOT = Path(__file__).parents[2]
REAL_DOCKERFILES = ("docker/Dockerfile", "docker/Dockerfile.base", "docker/Dockerfile.ci", ".devcontainer/Dockerfile")
#: Folders a walk of the checkout skips: tool caches and git's own files, never build inputs.
SKIPPED_DIRS = {".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".nox", ".venv", "node_modules", ".benchmarks", ".imagegraph"}


def paths(text: str, **build_args: str) -> list[str]:
    return [source.path for source in context_sources(text, build_args=build_args)]


def everything(line: int = 1) -> list[Source]:
    return [Source("COPY", ".", line)]


def checkout_files() -> list[str]:
    """The repository's files as they are on disk (tracked or not): what `git ls-files -co` plus the wheelhouse give."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        found += [Path(folder, name).relative_to(ROOT).as_posix() for name in files]
    return sorted(found)


def ignore_lines(dockerfile: str) -> list[str]:
    return (ROOT / f"{dockerfile}.dockerignore").read_text(encoding="utf-8").splitlines()


# --- COPY and ADD -----------------------------------------------------------------------------------------------------


def test_copy_shell_form_reads_every_argument_but_the_destination():
    sources = context_sources("FROM scratch\nCOPY a.txt b/ c/d.py /dest/\n")
    assert sources == (Source("COPY", "a.txt", 2), Source("COPY", "b", 2), Source("COPY", "c/d.py", 2))


def test_copy_json_form_keeps_spaces_in_paths():
    text = 'FROM scratch\nCOPY ["my dir/file one.txt", "second.txt", "/dest/"]\nADD ["archive.tar", "/opt/"]\n'
    assert paths(text) == ["my dir/file one.txt", "second.txt", "archive.tar"]


def test_flags_are_not_sources():
    text = (
        "FROM scratch\n"
        "COPY --chown=app:app --chmod=0644 --link --parents --exclude=*.md --exclude=tests src docs /app/\n"
        'COPY --chown="a b" ["cfg.toml", "/etc/"]\n'
        "ADD --checksum=sha256:abc --keep-git-dir=true --link vendor.tar /opt/\n"
    )
    assert paths(text) == ["src", "docs", "cfg.toml", "vendor.tar"]


def test_copy_from_another_stage_or_image_reads_no_context():
    text = (
        "FROM python:3.11 AS build\n"
        "COPY --from=build /opt/deps /opt/deps\n"
        "COPY --link --from=docker.io/library/alpine:3.20 /etc/apk /apk\n"
        "COPY --from=0 /x /y\n"
        "COPY local.txt /y\n"
    )
    assert context_sources(text) == (Source("COPY", "local.txt", 5),)


def test_add_urls_and_git_repositories_are_not_context_files():
    text = (
        "FROM scratch\n"
        "ADD https://example.com/tool.tar.gz /opt/\n"
        "ADD http://example.com/a.txt git@github.com:moby/buildkit.git ssh://git@host/repo.git /src/\n"
        "ADD git://example.com/repo.git#main local.tar.gz /opt/\n"
    )
    assert context_sources(text) == (Source("ADD", "local.tar.gz", 4),)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("./src", "src"),
        ("/src/", "src"),
        ("src//scorer/./", "src/scorer"),
        (".", "."),
        ("./", "."),
        ("/", "."),
        ("a/../b", "b"),
        ("../outside", "outside"),
        ("src/*.py", "src/*.py"),
    ],
)
def test_paths_are_normalized_relative_to_the_context(written, expected):
    assert paths(f"FROM scratch\nCOPY {written} /dest/\n") == [expected]


def test_instructions_and_flags_are_case_insensitive():
    text = "from scratch\ncopy a /a\nAdd b /b\nrun --MOUNT=type=bind,source=c true\ncOpY --FROM=build /x /y\n"
    assert [(s.instruction, s.path) for s in context_sources(text)] == [("COPY", "a"), ("ADD", "b"), ("RUN --mount", "c")]


def test_malformed_instructions_do_not_crash():
    text = (
        "FROM scratch\n"
        "COPY\n"
        "COPY only-a-destination\n"
        'COPY ["unterminated, "/x"\n'
        "COPY \"unbalanced /x\n"
        "RUN --mount=type=bind,source=\"half /bin/true\n"
        "RUN --mount\n"
        "COPY [a-/b /x\n"
        "ADD ${ /x\n"
    )
    sources = context_sources(text)
    assert [s.line for s in sources] == [4, 5, 6, 8, 9]
    assert sources[0].path == '["unterminated,'  # not JSON, so the shell form: whitespace-split words
    assert sources[2].path == "half /bin/true"  # the open quote runs to the end of the flag, as BuildKit reads it
    assert context_sources("") == ()
    assert context_sources("# only a comment\n\n") == ()


# --- continuations, comments, directives ------------------------------------------------------------------------------


def test_continuations_skip_comments_and_blank_lines_and_keep_the_start_line():
    text = (
        "FROM scratch\n"
        "\n"
        "COPY \\\n"
        "    # a comment inside the instruction\n"
        "    first.txt \\\n"
        "\n"
        "    second.txt \\\n"
        "    /dest/\n"
        "COPY third.txt /dest/\n"
    )
    assert context_sources(text) == (Source("COPY", "first.txt", 3), Source("COPY", "second.txt", 3), Source("COPY", "third.txt", 9))


def test_an_escaped_escape_at_the_end_of_a_line_is_not_a_continuation():
    text = "FROM scratch\nRUN echo \\\\\nCOPY after.txt /x\n"
    assert context_sources(text) == (Source("COPY", "after.txt", 3),)


def test_escape_directive_switches_to_backtick():
    text = (
        "# syntax=docker/dockerfile:1\n"
        "# escape=`\n"
        "FROM mcr.microsoft.com/windows/servercore\n"
        "COPY C:\\build\\app `\n"
        "     tools /app/\n"
        "COPY next.txt C:\\\n"
    )
    assert context_sources(text) == (Source("COPY", "C:\\build\\app", 4), Source("COPY", "tools", 4), Source("COPY", "next.txt", 6))


def test_escape_directive_counts_only_at_the_top():
    text = "# a comment first\n# escape=`\nFROM scratch\nCOPY a.txt \\\n  b.txt /dest/\n"
    assert paths(text) == ["a.txt", "b.txt"]
    after_instruction = "FROM scratch\n# escape=`\nCOPY a.txt `\n  b.txt /dest/\n"
    assert paths(after_instruction) == ["a.txt"]  # the backtick is literal, so "b.txt /dest/" is an instruction of its own


def test_windows_line_endings_and_byte_order_mark():
    text = "\ufeffFROM scratch\r\nCOPY a.txt \\\r\n  b.txt /dest/\r\n"
    assert context_sources(text) == (Source("COPY", "a.txt", 2), Source("COPY", "b.txt", 2))


# --- heredocs ---------------------------------------------------------------------------------------------------------


def test_heredoc_bodies_are_never_parsed_as_instructions():
    text = (
        "FROM scratch\n"
        "RUN <<EOF\n"
        "COPY secret.key /root/\n"
        "EOF\n"
        "RUN <<-INDENTED bash\n"
        "\tADD not-a-source.tar /\n"
        "\tINDENTED\n"
        "RUN python3 <<'PY' && sh <<\"SH\"\n"
        "COPY nor-this /x\n"
        "PY\n"
        "COPY nor-that /x\n"
        "SH\n"
        "COPY real.txt /x\n"
    )
    assert context_sources(text) == (Source("COPY", "real.txt", 13),)


def test_copy_heredoc_is_inline_content_not_a_context_path():
    text = (
        "FROM scratch\n"
        "COPY <<EOF /etc/app.conf\n"
        "COPY inside.txt /x\n"
        "EOF\n"
        "COPY <<one <<two real.txt /dest/\n"
        "first\n"
        "one\n"
        "second\n"
        "two\n"
        "COPY last.txt /x\n"
    )
    assert context_sources(text) == (Source("COPY", "real.txt", 5), Source("COPY", "last.txt", 10))


def test_heredoc_markers_in_quotes_or_exec_form_are_not_heredocs():
    text = 'FROM scratch\nRUN echo "<<EOF"\nCOPY a.txt /x\nRUN ["sh", "-c", "cat <<EOF"]\nCOPY b.txt /x\n'
    assert paths(text) == ["a.txt", "b.txt"]


def test_onbuild_instructions_belong_to_the_child_build():
    text = "FROM scratch\nONBUILD COPY later.txt /x\nONBUILD RUN <<EOF\nCOPY body.txt /x\nEOF\nCOPY now.txt /x\n"
    assert context_sources(text) == (Source("COPY", "now.txt", 6),)


# --- RUN --mount ------------------------------------------------------------------------------------------------------


def test_bind_mounts_read_their_source_from_the_context():
    text = (
        "FROM scratch\n"
        "RUN --mount=type=bind,source=.wheelhouse/requirements,target=/wheels \\\n"
        "    --mount=type=bind,src=./requirements/requirements.txt,target=/tmp/r.txt,ro \\\n"
        "    --mount=target=/plain,source=implicit-bind \\\n"
        "    --network=none pip install\n"
        "RUN --mount=type=bind,target=/ctx ls /ctx\n"
    )
    assert context_sources(text) == (
        Source("RUN --mount", ".wheelhouse/requirements", 2),
        Source("RUN --mount", "requirements/requirements.txt", 2),
        Source("RUN --mount", "implicit-bind", 2),
        Source("RUN --mount", ".", 6),
    )


def test_mounts_from_stages_and_other_mount_types_read_nothing():
    text = (
        "FROM scratch\n"
        "RUN --mount=type=bind,from=build,source=/out,target=/in \\\n"
        "    --mount=type=cache,target=/root/.cache,source=cache-src \\\n"
        "    --mount=type=secret,id=token,src=token.txt \\\n"
        "    --mount=type=ssh \\\n"
        "    --mount=type=tmpfs,target=/tmp \\\n"
        '    --mount="type=bind,source=quoted dir,target=/q" true\n'
    )
    assert context_sources(text) == (Source("RUN --mount", "quoted dir", 2),)


def test_mount_sources_are_literal_paths_not_patterns():
    sources = [Source("RUN --mount", "data/*.csv", 1)]
    assert used_files(sources, ["data/*.csv", "data/a.csv"], []) == {"data/*.csv": sources[0]}


# --- variables --------------------------------------------------------------------------------------------------------


def test_variables_with_known_values_are_substituted():
    text = (
        "ARG SERVICE=scorer\n"
        "FROM python:3.11 AS base\n"
        "ARG SERVICE\n"
        "ARG CONFIG=config/${SERVICE}.toml\n"
        "ENV DATA=data OTHER=$DATA\n"
        "COPY src/${SERVICE} $CONFIG ${DATA}/x ${MISSING:-fallback} ${DATA:+set} /app/\n"
        "FROM base AS runtime\n"
        "COPY ${DATA}/inherited /app/\n"
        "RUN --mount=type=bind,source=${DATA}/mounted,target=/m true\n"
    )
    assert paths(text) == ["src/scorer", "config/scorer.toml", "data/x", "${MISSING:-fallback}", "set", "data/inherited", "data/mounted"]


def test_unknown_variables_keep_the_path_as_written():
    text = (
        "FROM python:3.11\n"
        "ARG BUILD_DIR\n"
        "COPY $BUILD_DIR/out ${UNDECLARED} ${HOME#/} '${SINGLE}' /app/\n"
        "ENV A=1 B=$A\n"
        "COPY ${B}/x /app/\n"
    )
    assert paths(text) == ["$BUILD_DIR/out", "${UNDECLARED}", "${HOME#/}", "${SINGLE}", "${B}/x"]


def test_build_args_resolve_declared_args_only():
    text = "FROM scratch\nARG FLAVOUR=cpu\nCOPY wheels/${FLAVOUR} ${NOT_AN_ARG}/x /w/\n"
    assert paths(text) == ["wheels/cpu", "${NOT_AN_ARG}/x"]
    assert paths(text, FLAVOUR="gpu", NOT_AN_ARG="nope") == ["wheels/gpu", "${NOT_AN_ARG}/x"]


def test_quotes_and_escapes_in_shell_form_words():
    text = "FROM scratch\nARG D=dir\nCOPY \"$D\"/a 'lit$D' esc\\$D /x/\n"
    assert paths(text) == ["dir/a", "lit$D", "esc$D"]


# --- the repository's own Dockerfiles ---------------------------------------------------------------------------------


EXPECTED_SOURCES = {
    "docker/Dockerfile": [
        ("RUN --mount", ".wheelhouse/requirements", 9),
        ("RUN --mount", "requirements/requirements.txt", 9),
        ("COPY", "src/scorer", 19),
    ],
    "docker/Dockerfile.base": [
        ("RUN --mount", ".wheelhouse/requirements-torch", 16),
        ("RUN --mount", "requirements/requirements-torch.txt", 16),
    ],
    "docker/Dockerfile.ci": [
        ("RUN --mount", ".wheelhouse/requirements", 16),
        ("RUN --mount", ".wheelhouse/requirements-dev", 16),
        ("RUN --mount", "requirements/requirements.txt", 16),
        ("RUN --mount", "requirements/requirements-dev.txt", 16),
    ],
    ".devcontainer/Dockerfile": [
        ("RUN --mount", ".wheelhouse/requirements", 13),
        ("RUN --mount", ".wheelhouse/requirements-dev", 13),
        ("RUN --mount", "requirements/requirements.txt", 13),
        ("RUN --mount", "requirements/requirements-dev.txt", 13),
    ],
}


@pytest.mark.parametrize("dockerfile", REAL_DOCKERFILES)
def test_real_dockerfiles_give_their_sources(dockerfile):
    sources = context_sources((ROOT / dockerfile).read_text(encoding="utf-8"))
    assert [(s.instruction, s.path, s.line) for s in sources] == EXPECTED_SOURCES[dockerfile]


# A context shaped like this repository's, with the debris a checkout accumulates.
CONTEXT = [
    ".dockerignore",
    ".wheelhouse/requirements/starlette-1.10.0-py3-none-any.whl",
    ".wheelhouse/requirements-dev/pytest-9.0.0-py3-none-any.whl",
    ".wheelhouse/requirements-torch/torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    "README.md",
    "docker/Dockerfile",
    "docker/Dockerfile.dockerignore",
    "images.yaml",
    "requirements/requirements-dev.txt",
    "requirements/requirements-torch.txt",
    "requirements/requirements.txt",
    "src/imagegraph/config.py",
    "src/scorer/__init__.py",
    "src/scorer/__pycache__/app.cpython-311.pyc",
    "src/scorer/__pycache__/stray.txt",
    "src/scorer/app.py",
    "src/scorer/model.pyc",
    "src/scorer/static/index.html",
    "tests/unit/test_config.py",
]

EXPECTED_USED = {
    "docker/Dockerfile": [
        ".wheelhouse/requirements/starlette-1.10.0-py3-none-any.whl",
        "requirements/requirements.txt",
        "src/scorer/__init__.py",
        "src/scorer/app.py",
        "src/scorer/static/index.html",
    ],
    "docker/Dockerfile.base": [
        ".wheelhouse/requirements-torch/torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "requirements/requirements-torch.txt",
    ],
    "docker/Dockerfile.ci": [
        ".wheelhouse/requirements/starlette-1.10.0-py3-none-any.whl",
        ".wheelhouse/requirements-dev/pytest-9.0.0-py3-none-any.whl",
        "requirements/requirements-dev.txt",
        "requirements/requirements.txt",
    ],
}
EXPECTED_USED[".devcontainer/Dockerfile"] = EXPECTED_USED["docker/Dockerfile.ci"]


@pytest.mark.parametrize("dockerfile", REAL_DOCKERFILES)
def test_real_dockerfiles_and_ignore_files_use_exactly_their_files(dockerfile):
    sources = context_sources((ROOT / dockerfile).read_text(encoding="utf-8"))
    used = used_files(sources, CONTEXT, ignore_lines(dockerfile))
    assert list(used) == EXPECTED_USED[dockerfile]
    assert all(source in sources for source in used.values())


def test_app_dockerfile_attributes_each_file_to_its_instruction():
    sources = context_sources((ROOT / "docker/Dockerfile").read_text(encoding="utf-8"))
    used = used_files(sources, CONTEXT, ignore_lines("docker/Dockerfile"))
    assert used["src/scorer/app.py"] == Source("COPY", "src/scorer", 19)
    assert used["requirements/requirements.txt"] == Source("RUN --mount", "requirements/requirements.txt", 9)


# --- used_files -------------------------------------------------------------------------------------------------------


FILES = [
    "a.py",
    "b.txt",
    "src/a.py",
    "src/b.py",
    "src/data.json",
    "src/pkg/a.py",
    "src/pkg/deep/x.py",
    "src.py",
    "srcx/a.py",
    "x1.txt",
    "x2.txt",
    "xa.txt",
]


def copy(path: str, line: int = 1) -> Source:
    return Source("COPY", path, line)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("src", ["src/a.py", "src/b.py", "src/data.json", "src/pkg/a.py", "src/pkg/deep/x.py"]),
        ("src/a.py", ["src/a.py"]),
        ("src/pkg", ["src/pkg/a.py", "src/pkg/deep/x.py"]),
        ("*.py", ["a.py", "src.py"]),
        ("src/*.py", ["src/a.py", "src/b.py"]),
        ("src/*", ["src/a.py", "src/b.py", "src/data.json", "src/pkg/a.py", "src/pkg/deep/x.py"]),
        ("x?.txt", ["x1.txt", "x2.txt", "xa.txt"]),
        ("x[0-9].txt", ["x1.txt", "x2.txt"]),
        ("x[^0-9].txt", ["xa.txt"]),
        ("x[\\^a].txt", ["xa.txt"]),
        ("s*c", ["src/a.py", "src/b.py", "src/data.json", "src/pkg/a.py", "src/pkg/deep/x.py"]),
        ("*/*/a.py", ["src/pkg/a.py"]),
        ("missing", []),
        ("[z-a]", []),
        ("[", []),
        (".", FILES),
        ("", FILES),
    ],
)
def test_sources_select_files_dirs_and_wildcards(path, expected):
    assert list(used_files([copy(path)], FILES, [])) == expected


def test_each_file_maps_to_the_first_source_that_reads_it():
    first, second, third = copy("src/pkg", 3), copy("src", 4), copy(".", 5)
    used = used_files([first, second, third], FILES, [])
    assert used["src/pkg/a.py"] is first
    assert used["src/a.py"] is second
    assert used["b.txt"] is third
    assert list(used) == FILES  # in the order of context_files


def test_no_sources_use_no_files():
    assert used_files([], FILES, ["*"]) == {}


def test_ignored_files_are_not_sent_so_not_used():
    ignore = ["# comment", "", "  *.txt  ", "src/pkg", "!src/pkg/deep"]
    assert list(used_files(everything(), FILES, ignore)) == ["a.py", "src/a.py", "src/b.py", "src/data.json", "src/pkg/deep/x.py", "src.py", "srcx/a.py"]


def test_ignore_negation_reincludes_inside_an_excluded_folder():
    ignore = ["*", "!src/pkg", "!b.txt"]
    assert list(used_files(everything(), FILES, ignore)) == ["b.txt", "src/pkg/a.py", "src/pkg/deep/x.py"]


def test_double_star_pycache_is_excluded_at_any_depth():
    files = ["__pycache__/top.pyc", "src/__pycache__/a.pyc", "src/pkg/__pycache__/notes.txt", "src/pkg/mod.py", "pycache_not.py"]
    assert list(used_files(everything(), files, ["**/__pycache__"])) == ["src/pkg/mod.py", "pycache_not.py"]


def test_ignore_patterns_anchor_at_the_context_root():
    files = ["build/out.bin", "src/build/keep.py", "node_modules/x.js", "web/node_modules/y.js"]
    assert list(used_files(everything(), files, ["build", "/node_modules/"])) == ["src/build/keep.py", "web/node_modules/y.js"]


IGNORE_CASES = [
    [],
    ["*", "!src", "**/__pycache__", "**/*.py[cod]"],
    ["docs", "!docs/keep.md"],
    ["**/__pycache__", "!src/__pycache__/notes.txt"],
    ["build/", "/node_modules", "deep/**/c.txt", "# comment", "", "  README.md  "],
    ["*", "!docs/sub"],
    ["**", "!**/*.md", "docs/sub"],
    ["src/*.py", "!src/app.py", "*/pkg"],
]


@pytest.mark.parametrize("lines", IGNORE_CASES)
def test_ignore_matches_docker_py_walk_of_a_real_tree(tmp_path, lines):
    tree = [
        ".dockerignore", "Dockerfile", "README.md", "a.txt", "build/out.bin", "deep/a/b/c.txt", "deep/c.txt",
        "docs/drop.md", "docs/keep.md", "docs/sub/keep.md", "node_modules/x/index.js", "src/__pycache__/notes.txt",
        "src/__pycache__/x.pyc", "src/app.py", "src/app.pyc", "src/lib.py", "src/pkg/__pycache__/y.txt", "src/pkg/mod.py",
    ]  # fmt: skip
    for relative in tree:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(relative)
    patterns = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    walked = {path for path in PatternMatcher(patterns).walk(str(tmp_path)) if (tmp_path / path).is_file()}
    assert set(used_files(everything(), tree, lines)) == walked


def test_used_files_scales_to_large_contexts():
    files = [f"pkg{i % 50}/mod{i % 7}/file{i}.{'pyc' if i % 10 == 0 else 'py'}" for i in range(20_000)]
    used = used_files(everything(), files, [".git", "**/__pycache__", "**/*.py[cod]", "pkg1", "!pkg1/mod1"])
    assert len(used) == sum(1 for f in files if not f.endswith(".pyc") and (not f.startswith("pkg1/") or f.startswith("pkg1/mod1/")))


# --- undeclared_inputs ------------------------------------------------------------------------------------------------


APP = ImageSpec(name="app", dockerfile="docker/Dockerfile", inputs=("src/scorer/**",), wheels=("requirements/requirements.txt",))


def declared_for(spec: ImageSpec, files: list[str]) -> set[str]:
    """What images.yaml declares: the inputs' matches, the wheels' requirements, the Dockerfile and its ignore file."""
    matcher = pathspec.GitIgnoreSpec.from_lines(spec.inputs)
    return {p for p in files if matcher.match_file(p)} | {*spec.wheels, spec.dockerfile, spec.dockerignore}


def test_the_real_app_image_declares_everything_it_uses():
    files = checkout_files()
    text = (ROOT / APP.dockerfile).read_text(encoding="utf-8")
    assert any(p.startswith("src/scorer/") for p in files)
    assert undeclared_inputs(APP, text, files, ignore_lines(APP.dockerfile), declared_for(APP, files)) == ()
    # the check is not vacuous: without the declarations every used file is reported
    assert {w.path for w in undeclared_inputs(APP, text, CONTEXT, ignore_lines(APP.dockerfile), set())} == {
        "requirements/requirements.txt",
        "src/scorer/__init__.py",
        "src/scorer/app.py",
        "src/scorer/static/index.html",
    }


def test_a_copied_file_missing_from_images_yaml_is_one_warning_naming_it():
    files = [*checkout_files(), "models/scorer.onnx", "models/unused.onnx"]
    text = (ROOT / APP.dockerfile).read_text(encoding="utf-8") + "COPY models/scorer.onnx /app/models/\n"
    ignore = [*ignore_lines(APP.dockerfile), "!models/scorer.onnx"]
    warnings = undeclared_inputs(APP, text, files, ignore, declared_for(APP, files))
    assert len(warnings) == 1
    (warning,) = warnings
    line = len(text.splitlines())
    assert warning == InputWarning("app", "models/scorer.onnx", Source("COPY", "models/scorer.onnx", line), "docker/Dockerfile", ".")
    assert str(warning) == (
        f"image 'app': docker/Dockerfile:{line} COPY models/scorer.onnx uses models/scorer.onnx, which images.yaml does not declare; "
        'add it to the image\'s inputs (e.g. "models/scorer.onnx")'
    )


def test_a_narrow_input_glob_misses_files_of_a_copied_folder():
    spec = ImageSpec(name="app", dockerfile="docker/Dockerfile", inputs=("src/scorer/*.py",), wheels=("requirements/requirements.txt",))
    text = (ROOT / spec.dockerfile).read_text(encoding="utf-8")
    warnings = undeclared_inputs(spec, text, CONTEXT, ignore_lines(spec.dockerfile), declared_for(spec, CONTEXT))
    assert [w.path for w in warnings] == ["src/scorer/static/index.html"]
    assert warnings[0].suggestion == "src/scorer/**"
    assert str(warnings[0]) == (
        "image 'app': docker/Dockerfile:19 COPY src/scorer uses src/scorer/static/index.html, which images.yaml does not declare; "
        'add it to the image\'s inputs (e.g. "src/scorer/**")'
    )


def test_wheelhouse_files_of_declared_wheels_count_as_declared():
    spec = ImageSpec(name="ci", dockerfile="docker/Dockerfile.ci", wheels=("requirements/requirements.txt",))
    text = (ROOT / spec.dockerfile).read_text(encoding="utf-8")
    declared = {*spec.wheels, spec.dockerfile, spec.dockerignore}
    warnings = undeclared_inputs(spec, text, CONTEXT, ignore_lines(spec.dockerfile), declared)
    # requirements-dev is mounted but not among this spec's wheels: both its file and its wheels are reported
    assert [w.path for w in warnings] == [".wheelhouse/requirements-dev/pytest-9.0.0-py3-none-any.whl", "requirements/requirements-dev.txt"]
    assert str(warnings[0]).startswith(
        "image 'ci': docker/Dockerfile.ci:16 RUN --mount=type=bind,source=.wheelhouse/requirements-dev uses .wheelhouse/requirements-dev/pytest-"
    )
    assert warnings[0].suggestion == ".wheelhouse/requirements-dev/**"


def test_a_nested_wheelhouse_of_a_declared_requirements_file_counts_as_declared():
    spec = ImageSpec(name="svc", dockerfile="services/svc/Dockerfile", context="services/svc", wheels=("requirements/svc.txt",))
    text = "FROM python:3.11\nCOPY . /app\n"
    files = ["services/svc/.wheelhouse/svc/a.whl", "services/svc/.wheelhouse/other/b.whl", "services/svc/main.py"]
    warnings = undeclared_inputs(spec, text, files, [], {"services/svc/main.py"})
    assert [w.path for w in warnings] == ["services/svc/.wheelhouse/other/b.whl"]


def test_only_files_inside_the_context_count_and_warnings_are_repository_relative():
    spec = ImageSpec(name="svc", dockerfile="services/svc/Dockerfile", context="services/svc", inputs=("services/svc/app/**",))
    text = "FROM python:3.11\nCOPY app /srv/app\nCOPY conf /srv/conf\nRUN --mount=type=bind,target=/ctx true\n"
    files = ["app/outside.py", "services/svc/app/main.py", "services/svc/conf/a/settings.toml", "services/svc/notes.md", "services/svcx/app/main.py"]
    declared = {"services/svc/app/main.py", "services/svc/Dockerfile"}
    warnings = undeclared_inputs(spec, text, files, ["notes.md"], declared)
    assert [(w.path, w.source.path, w.suggestion) for w in warnings] == [("services/svc/conf/a/settings.toml", "conf", "services/svc/conf/**")]


def test_a_whole_context_mount_suggests_the_file_itself():
    spec = ImageSpec(name="tool", dockerfile="Dockerfile")
    warnings = undeclared_inputs(spec, "FROM alpine\nRUN --mount=type=bind,target=/src make\n", ["Makefile", "Dockerfile"], [], {"Dockerfile"})
    assert [str(w) for w in warnings] == [
        "image 'tool': Dockerfile:2 RUN --mount=type=bind,source=. uses Makefile, which images.yaml does not declare; "
        'add it to the image\'s inputs (e.g. "Makefile")'
    ]


def test_build_args_of_the_spec_resolve_paths():
    spec = ImageSpec(name="app", dockerfile="Dockerfile", build_args=(("SERVICE", "billing"),))
    text = "FROM python:3.11\nARG SERVICE=scorer\nCOPY src/${SERVICE} /app\n"
    warnings = undeclared_inputs(spec, text, ["src/billing/a.py", "src/scorer/a.py"], [], set())
    assert [w.path for w in warnings] == ["src/billing/a.py"]


def test_warnings_are_frozen():
    warning = InputWarning("app", "a.txt", copy("a.txt"))
    with pytest.raises(AttributeError):
        warning.path = "b.txt"  # type: ignore[misc]
    assert str(warning).startswith("image 'app': line 1 COPY a.txt uses a.txt,")
