"""Links never take imagegraph outside the repository: not to read for a build, not to write, not to delete.

Each case is a real git repository in a temp folder with one committed link
(or one images.yaml field) that leads outside it, to a sentinel folder
(:mod:`tests.outside`), and the real command line (`invoke plan`, `invoke plan
--bake`, `invoke build --dry-run`, in-process). Each ends in one `error:` line
that names the link, exit 1, with the sentinel exactly as it was and its secret
shown nowhere. These cases are refused before the registry is asked; those
that need a plan first (contexts, wheels, logs, the bake file) are in
tests/integration/test_links.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.outside import BAKE, DRY_RUN, FILES, PLAN, commit, family, make_world, refused
from tests.unit.cli import run_cli


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    return make_world(tmp_path)


# -- (b) what a build reads: the context, the Dockerfile, its ignore file, requirements, inputs, images.yaml ----------------

READ_CASES = {
    # name: (files, links, context:, what the line names)
    "context: a link to a folder outside": ({}, {"ctx": "{outside}"}, "ctx", ("images.yaml:6", "context", "'ctx'")),
    "context: a link outside, by ..": ({}, {"ctx": "../outside"}, "ctx", ("images.yaml:6", "'ctx' -> '../outside'")),
    "context: below a folder that is a link": ({}, {"deep": "{outside}"}, "deep/old", ("images.yaml:6", "'deep'")),
    "the Dockerfile a link to a file outside": ({}, {"docker/Dockerfile": "{outside}/Dockerfile"}, ".",
                                                ("images.yaml:5", "dockerfile", "'docker/Dockerfile'")),
    "the Dockerfile's folder a link outside": ({"docker/Dockerfile": None}, {"docker": "{outside}"}, ".",
                                               ("images.yaml:5", "'docker' -> ")),
    "the Dockerfile's folder out and back in": ({"docker/Dockerfile": None, "real/Dockerfile": "FROM scratch\n"},
                                                {"docker": "../repo/real"}, ".", ("images.yaml:5", "'docker' -> '../repo/real'")),
    "<Dockerfile>.dockerignore a link outside": ({}, {"docker/Dockerfile.dockerignore": "{outside}/secret.txt"}, ".",
                                                 ("images.yaml:5", "ignore file", "Dockerfile.dockerignore")),
    "the context's .dockerignore a link outside": ({}, {".dockerignore": "../outside/secret.txt"}, ".",
                                                   ("images.yaml", "ignore file", "'.dockerignore'")),
    "a wheels: file a link outside": ({}, {"requirements/app.txt": "{outside}/secret.txt"}, ".",
                                      ("images.yaml:8", "wheels", "'requirements/app.txt'")),
    "a wheels: file through a folder link outside": ({"requirements/app.txt": None}, {"requirements": "../outside"}, ".",
                                                     ("images.yaml:8", "'requirements' -> '../outside'")),
    "an input a link to an absolute path": ({}, {"src/leak.txt": "{outside}/secret.txt"}, ".", ("src/leak.txt", "an input of app")),
    "an input a link climbing out by ..": ({}, {"src/leak.txt": "../../outside/secret.txt"}, ".", ("src/leak.txt", "an input of app")),
    "an input a link to a link out": ({}, {"src/leak.txt": "../links/hop/secret.txt", "links/hop": "../../outside"}, ".",
                                      ("src/leak.txt", "'links/hop' -> '../../outside'")),
    "an input out and back in": ({}, {"src/leak.txt": "../../repo/src/app.py"}, ".", ("src/leak.txt", "an input of app")),
    "images.yaml a link outside": ({}, {"images.yaml": "{outside}/images.yaml"}, ".", ("images.yaml", "leads outside")),
}


@pytest.mark.parametrize("argv", [PLAN, BAKE, DRY_RUN], ids=" ".join)
@pytest.mark.parametrize("case", sorted(READ_CASES))
def test_a_link_out_of_the_repository_is_refused_before_anything_reads_it(world, case, argv):
    files, links, context, names = READ_CASES[case]
    outside = world["outside"]
    kept = {path: text for path, text in {**FILES, **files}.items() if text is not None and path not in links}
    commit(world["repo"], kept, {link: target.format(outside=outside) for link, target in links.items()}, context)
    line = refused(world, argv, *names)
    assert "leads outside the repository" in line, line
    assert not (world["repo"] / "bake.json").exists()


# -- (a) imagegraph's own working folders and files: never through a link ----------------------------------------------------

WRITE_CASES = {
    # name: (link, target below the sentinel folder, commands); what needs a plan first is in tests/integration/test_links.py
    ".imagegraph": (".imagegraph", "", (PLAN, DRY_RUN)),
    ".imagegraph/cache": (".imagegraph/cache", "", (PLAN, DRY_RUN)),
    ".imagegraph/cache/inputs": (".imagegraph/cache/inputs", "", (PLAN, DRY_RUN)),
    "the build lock": (".imagegraph/build.lock", "keep.txt", (DRY_RUN,)),
}


@pytest.mark.parametrize("case", [pytest.param((name, argv), id=f"{name}: {' '.join(argv)}")
                                  for name, (_, _, commands) in WRITE_CASES.items() for argv in commands])
def test_a_link_at_a_working_folder_is_refused_and_nothing_outside_changes(world, case):
    name, argv = case
    link, target, _ = WRITE_CASES[name]
    commit(world["repo"], FILES, {link: str(world["outside"] / target) if target else str(world["outside"])})
    line = refused(world, argv, f"{link.split('/')[-1]}'")
    assert "is a symbolic link" in line and "remove the link (rm " in line, line


def test_a_wheels_file_whose_folder_would_be_the_wheelhouse_parent_is_refused(world):
    """`...txt` has the stem `..`: its wheel folder would be .wheelhouse/.., the repository itself, emptied by the sync."""
    commit(world["repo"], {**FILES, "requirements/...txt": "six==1.16.0\n"}, {})
    (world["repo"] / "images.yaml").write_text(family().replace("requirements/app.txt", "requirements/...txt"))
    outcome = run_cli(world["repo"], BAKE, env={"XDG_CACHE_HOME": str(world["cache"])})
    assert "images.yaml:8" in outcome.error and ".wheelhouse/.." in outcome.error and "rename the file" in outcome.error
    assert (world["repo"] / "src" / "app.py").is_file()
