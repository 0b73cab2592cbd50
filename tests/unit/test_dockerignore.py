"""The ignore-file rules against docker-py's PatternMatcher (the docker client's rules, as the reference), on generated input."""

from __future__ import annotations

from docker.utils.build import PatternMatcher
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegraph.core.dockerignore import IgnorePattern, _IgnoreFile, matches

PARTS = st.sampled_from(["a", "b", "A", "ab", "*", "?", "**", "a*", "*b", "[ab]", "[!a]", "[", "..", ".", "x.py", ".dockerignore"])
PATTERNS = st.builds(lambda neg, parts, lead: ("!" if neg else "") + ("/" if lead else "") + "/".join(parts),
                     st.booleans(), st.lists(PARTS, min_size=1, max_size=4), st.booleans())
PATHS = st.lists(st.sampled_from(["a", "b", "ab", "B", "x.py", "c", ".dockerignore"]), min_size=1, max_size=4).map("/".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=5), PATHS)
def test_matches_as_docker_py_does(lines, path):
    reference = PatternMatcher(lines)
    ours = [p for p in (IgnorePattern.parse(line) for line in lines) if p.dirs] + [IgnorePattern.parse("!.dockerignore")]
    assert matches(ours, path) == reference.matches(path)


@settings(max_examples=200, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=4), st.lists(PATHS, min_size=1, max_size=12, unique=True))
def test_an_ignore_file_excludes_what_docker_pys_walk_leaves_out(tmp_path_factory, lines, paths):
    # the walk sees folders as well as files: a path that is also a folder of another one is left out
    files = sorted(p for p in paths if not any(other.startswith(p + "/") for other in paths))
    root = tmp_path_factory.mktemp("context")
    for relative in files:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(relative)
    walked = {p for p in PatternMatcher(lines).walk(str(root)) if (root / p).is_file()}
    excluded = _IgnoreFile(lines)
    assert {p for p in files if not excluded(p)} == walked
