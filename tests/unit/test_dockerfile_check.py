"""The Dockerfile syntax check agrees with BuildKit: what it refuses is an error with its line, what it accepts is no error.

Every case of CASES is also built by the real BuildKit in
tests/integration/test_dockerfile_buildkit.py, which asserts the same verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.core.dockerfile_check import syntax_problems

ROOT = Path(__file__).resolve().parents[2]
#: What every case stands on: a stage with a shell (the integration test provides rootfs/, dash alone, and the files a, b).
HEAD = "FROM scratch\nCOPY rootfs/ /\n"

# name -> (the lines after HEAD, what the error says, or None when BuildKit accepts it). Errors are on line 3.
CASES: dict[str, tuple[str, str | None]] = {
    # refused by BuildKit's parser
    "COPY with an unclosed JSON array": ('COPY ["a", "b" /x\n', "is not a JSON array"),
    "COPY with a JSON array missing its ]": ('COPY ["a", /x\n', "is no valid path pattern"),
    "unknown instruction": ("FOO bar\n", "unknown instruction FOO"),
    "unterminated heredoc": ("RUN <<EOF\necho hi\n", "the heredoc <<EOF is never closed"),
    "unterminated heredoc after a closed one": ("RUN <<ONE <<TWO\na\nONE\nb\n", "<<TWO is never closed"),
    "heredoc as COPY's destination": ("COPY a <<EOF\nx\nEOF\n", "cannot write to a heredoc"),
    "a JSON array of a number": ('COPY ["a", 1, "/x"]\n', "holds only strings"),
    "EXPOSE without a port": ("EXPOSE\n", "EXPOSE needs at least one port"),
    "a stage name starting with a digit": ("FROM scratch AS 1x\n", "cannot name a stage"),
    "FROM ... AS without a name": ("FROM scratch AS\n", "FROM takes an image"),
    "SHELL not in JSON": ("SHELL sh -c\n", "SHELL takes a JSON array"),
    "ONBUILD ONBUILD": ("ONBUILD ONBUILD RUN x\n", "ONBUILD ONBUILD is not allowed"),
    "ENV without a value": ("ENV A\n", "has no value"),
    "ENV mixing forms": ("ENV A=1 B\n", "'B' has no ="),
    "LABEL without a value": ("LABEL a\n", "has no value"),
    "HEALTHCHECK alone": ("HEALTHCHECK\n", "HEALTHCHECK needs CMD"),
    "HEALTHCHECK of another type": ("HEALTHCHECK FOO true\n", "HEALTHCHECK FOO"),
    "HEALTHCHECK NONE with arguments": ("HEALTHCHECK NONE --x\n", "takes no arguments"),
    "HEALTHCHECK interval without a unit": ("HEALTHCHECK --interval=5 CMD true\n", "--interval=5"),
    # refused by BuildKit's flag parser
    "a flag in the wrong case": ("COPY --FROM=x a /a\n", "COPY has no flag --FROM"),
    "a misspelt flag": ("COPY --form=x a /a\n", "did you mean '--from'?"),
    "a string flag without =": ("COPY --chmod a /a\n", "--chmod needs a value after ="),
    "COPY --from with a space": ("COPY --from builder a /a\n", "--from needs a value after ="),
    "a switch with a word": ("COPY --link=yes a /a\n", "--link=yes"),
    "a flag given twice": ("COPY --chown=1 --chown=2 a /a\n", "--chown is given twice"),
    "CMD with a leading flag": ("CMD --verbose\n", "CMD has no flag --verbose"),
    "RUN --network with a variable": ("RUN --network=$N echo\n", "RUN --network=$N"),
    "RUN --mount that is empty": ("RUN --mount= echo\n", "not comma-separated"),
    # refused when BuildKit builds the stage
    "an unclosed quote in RUN --mount": ('RUN --mount=type=bind,source="a cat /a\n', "quote in RUN's --mount flag is never closed"),
    "a misspelt --mount field": ("RUN --mount=typ=cache,target=/x echo\n", "did you mean 'type'?"),
    "a misspelt --mount type": ("RUN --mount=type=cach,target=/x echo\n", "did you mean 'cache'?"),
    "mode on a bind mount": ("RUN --mount=type=bind,source=a,target=/m,mode=0700 cat /m\n", "mode= is for secret"),
    "a secret mount naming nothing": ("RUN --mount=type=secret echo\n", "needs id="),
    "an unclosed quote in ENV": ('ENV A="x\n', "never closes"),
    "an unclosed quote in WORKDIR": ('WORKDIR "/app\n', "never closes"),
    "a quote BuildKit's lexer reads in a JSON COPY": ('COPY ["a\'b", "/x"]\n', "never closes"),
    "an escaped quote inside single quotes": ("ENV name='a\\'b'\n", "never closes"),
    # accepted by BuildKit
    "COPY with a JSON array": ('COPY ["a", "b", "/x/"]\n', None),
    "a closed heredoc": ("RUN <<EOF\necho hi\nEOF\n", None),
    "a heredoc with tabs stripped": ("RUN <<-EOF\n\techo hi\n\tEOF\n", None),
    "a quoted heredoc delimiter": ("RUN <<'EOF'\necho $HOME\nEOF\n", None),
    "a quoted heredoc marker is no heredoc": ('RUN echo "<<EOF"\n', None),
    "shell test brackets": ("RUN [ -f /bin/sh ] && echo ok\n", None),
    "a COPY glob with a class": ("COPY [ab] /x/\n", None),
    "COPY --link": ("COPY --link a /a\n", None),
    "COPY --chmod with =": ("COPY --chmod=644 a /a\n", None),
    "ARG ignores flags": ("ARG --foo=1 X\n", None),
    "STOPSIGNAL ignores flags": ("STOPSIGNAL --x 9\n", None),
    "USER with a group": ("USER a b\n", None),
    "ONBUILD of an unknown trigger": ("ONBUILD FOO x\n", None),
    "a JSON VOLUME missing its ]": ('VOLUME ["/data"\n', None),
    "a cache mount": ("RUN --mount=type=cache,target=/root/.cache,sharing=locked echo hi\n", None),
    "a bind mount, read-write": ("RUN --mount=type=bind,source=a,target=/m,rw read x < /m\n", None),
    "a secret mount with an id": ("RUN --mount=type=secret,id=token,required=false echo\n", None),
    "a mount field with a variable": ("ARG T=cache\nRUN --mount=type=$T,target=/x echo\n", None),
    "a line continued with comments between": ("RUN echo a \\\n# a comment\n  b\n", None),
    "the escape directive": (None, None),
    "an unclosed quote in a stage not built": ('FROM scratch AS other\nWORKDIR "/x\nFROM scratch\nCOPY a /a\n', None),
    "HEALTHCHECK with every flag": ("HEALTHCHECK --interval=5s --timeout=3s --start-period=0s --start-interval=1s --retries=3 CMD true\n", None),
    "MAINTAINER": ("MAINTAINER a b\n", None),
    "legacy ENV with spaces": ("ENV A some value\n", None),
    "quoted ENV values": ('ENV A="x y" B=\'z\' C=plain\n', None),
    "an escaped quote": ('ENV A=\\"x\n', None),
}
ESCAPE_DIRECTIVE = "# escape=`\nFROM scratch\nCOPY rootfs/ /\nRUN echo a `\n  b\nWORKDIR C:\\\\x\n"


def dockerfile(case: str) -> str:
    body, _ = CASES[case]
    return ESCAPE_DIRECTIVE if body is None else HEAD + body


def errors(text: str, **kwargs) -> list:
    return [problem for problem in syntax_problems(text, **kwargs) if problem.error]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_check_refuses_what_buildkit_refuses_and_nothing_else(case):
    expected = CASES[case][1]
    found = errors(dockerfile(case))
    if expected is None:
        assert found == [], f"BuildKit accepts this, the check refuses it: {found}"
    else:
        assert found, "BuildKit refuses this, the check does not"
        assert expected in found[0].message and found[0].line == 3, found[0]


@pytest.mark.parametrize("path", ["docker/Dockerfile.base", "docker/Dockerfile.ci", "docker/Dockerfile", ".devcontainer/Dockerfile"])
def test_this_repositorys_dockerfiles_pass_without_a_word(path):
    assert syntax_problems((ROOT / path).read_text()) == ()


def test_a_line_buildkit_reads_otherwise_than_written_is_a_warning_with_its_line():
    text = HEAD + 'RUN ["echo", "hi"\nCMD ["serve"] --port 80\nCOPY ["a", "b"] /x\n'
    problems = syntax_problems(text)
    assert [(p.line, p.error) for p in problems] == [(3, False), (4, False), (5, False)]
    assert "runs it as a shell command" in problems[0].message and "before 1.9" in problems[1].message


def test_flags_newer_than_an_engines_frontend_warn_unless_the_file_names_its_frontend():
    body = "COPY --parents a /a\nCOPY --exclude=b . /x\nRUN --security=sandbox --device=x echo\nADD --unpack=true a /a\n"
    assert {p.line: p.error for p in syntax_problems(HEAD + body)} == {3: False, 4: False, 5: False, 6: False}
    assert syntax_problems("# syntax=docker/dockerfile:1\n" + HEAD + body) == ()


def test_a_file_for_another_frontend_is_not_checked():
    assert syntax_problems("# syntax=example.com/frontend:1\nthis is not a Dockerfile\n") == ()


def test_an_expansion_error_counts_only_in_the_stages_the_target_builds():
    text = 'FROM scratch AS broken\nWORKDIR "/x\nFROM scratch AS good\nCOPY --from=broken /x /x\nFROM scratch AS alone\n'
    assert [p.line for p in errors(text, target="good")] == [2]  # built from the broken stage
    assert errors(text, target="alone") == [] and errors(text) == []
    assert [p.line for p in syntax_problems(text) if not p.error] == [2]


def test_a_parse_error_counts_in_every_stage():
    text = "FROM scratch AS unused\nCOPY --form=x a /a\nFROM scratch\n"
    assert [p.line for p in errors(text)] == [2]


def test_parser_directives_are_checked():
    assert "escape character must be" in errors("# escape=x\nFROM scratch\n")[0].message
    assert "a second `# escape=`" in errors("# escape=`\n# escape=\\\nFROM scratch\n")[0].message


def test_instructions_before_the_first_from():
    assert errors("ARG V=1\nFROM scratch\n") == []
    assert "before the first FROM" in errors("RUN true\nFROM scratch\n")[0].message


def test_the_check_is_quick_on_a_long_file():
    import time
    text = HEAD + "RUN --mount=type=cache,target=/c echo hi && \\\n    echo there\nCOPY a /a\nENV A=1 B=\"2 3\"\n" * 2000
    started = time.perf_counter()
    assert errors(text) == []
    assert time.perf_counter() - started < 2
