"""File names git can hold and a terminal must not obey, through every listing imagegraph reads from git.

Real repositories in temp dirs: a file with each kind of hostile name (a
newline, a tab, a carriage return, an escape sequence, quotes, a backslash,
bytes that are not UTF-8, a leading dash, blanks at either end, git's own
quoting and pathspec syntax) is committed, staged, changed, left untracked,
renamed, deleted, made executable or made a link; `invoke affected` and
`invoke plan --since` must see every one (the change list names it exactly)
and print it escaped (no raw control character reaches the terminal).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagegraph.adapters.repo import Repository
from imagegraph.core.values import escaped
from tests.integration.conftest import commit_all, git, init_repo, run_invoke

pytestmark = pytest.mark.integration

#: Names as git stores them (bytes): each would break a reader of git's quoted, line-based or option-parsed output.
HOSTILE = (b"nl\nname", b"tab\tname", b"cr\rname", b"esc\x1b[2Jname", b'quo"te', b"back\\slash", b"bad\xffbyte",
           b"-dash", b"--end-of-options", b" lead", b"trail ", "\u00e9t\u00e9".encode(), b"a -> b", b":(glob)*",
           b"forged\nerror: forged")
NAMES = tuple(os.fsdecode(name) for name in HOSTILE)
FAMILY_HEAD = "registry: {registry}\nnamespace: {namespace}\nimages:\n"
#: One image per name, so each image's reason names its one changed file.
IMAGE = "  n{k}:\n    dockerfile: docker/Dockerfile\n    inputs: [\"files/n{k}/**\"]\n    platforms: [linux/amd64]\n"
TASKS = "from imagegraph.tasks import namespace  # noqa: F401\n"
STATES = ("added", "modified", "staged", "unstaged", "untracked", "renamed", "renamed-staged", "deleted", "deleted-unstaged",
          "executable", "link")


def path_of(k: int, name: str) -> str:
    return f"files/n{k}/{name}"


def committer(root: Path, *args: str) -> None:
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args)


@pytest.fixture
def family(tmp_path, registry, namespace) -> tuple[Path, str]:
    """A repository whose image n<k> holds the hostile name NAMES[k] (committed, except where the state adds it); its base commit."""
    text = FAMILY_HEAD.format(registry=registry, namespace=namespace) + "".join(IMAGE.format(k=k) for k in range(len(NAMES)))
    files = {"images.yaml": text, "docker/Dockerfile": "FROM scratch\nCOPY files /files\n", "tasks.py": TASKS,
             **{f"files/n{k}/keep.txt": f"{k}\n" for k in range(len(NAMES))}}
    root = init_repo(tmp_path / "mono", files)
    return root, git(root, "rev-parse", "HEAD").strip()


def apply(root: Path, state: str) -> dict[str, str]:
    """Put every hostile file in ``state``; the changed path of each image, by image."""
    def write(path: str, text: str = "one\n") -> None:
        (root / path).write_text(text)

    if state not in ("added", "untracked", "link"):  # the name exists at the base
        for k, name in enumerate(NAMES):
            write(path_of(k, name))
        commit_all(root, "hostile names")
        base = git(root, "rev-parse", "HEAD").strip()
        (root / ".base").write_text(base)
    changed: dict[str, str] = {}
    for k, name in enumerate(NAMES):
        path = path_of(k, name)
        if state in ("added", "untracked"):
            write(path)
        elif state in ("modified", "staged", "unstaged"):
            write(path, "two\n")
        elif state in ("renamed", "renamed-staged"):
            git(root, "mv", "--", path, moved := path_of(k, "moved " + name))
            changed[f"n{k}"] = moved
            continue
        elif state in ("deleted", "deleted-unstaged"):
            (root / path).unlink()
        elif state == "executable":
            (root / path).chmod(0o755)
        elif state == "link":
            os.symlink(name + ".target", root / path)  # the target's name is as hostile (a dangling link is content too)
            write(path + ".target")
        changed[f"n{k}"] = path
    if state in ("staged", "renamed-staged"):
        git(root, "add", "-A")
    elif state not in ("unstaged", "untracked", "deleted-unstaged", "renamed-staged"):
        commit_all(root, state)
    return changed


def inert(text: str) -> bool:
    return all(ch.isprintable() or ch == "\n" for ch in text)


@pytest.mark.parametrize("state", STATES)
def test_every_hostile_name_is_seen_and_printed_escaped(family, state):
    root, first = family
    changed = apply(root, state)
    base = (root / ".base").read_text() if (root / ".base").exists() else first
    (root / ".base").unlink(missing_ok=True)

    affected = run_invoke(root, "affected", "--since", base, "--json")
    assert affected.returncode == 0, affected.stdout + affected.stderr
    data = json.loads(affected.stdout)  # the JSON keeps every name exactly (a non-UTF-8 byte as its surrogate escape)
    assert data["images"] == [f"n{k}" for k in range(len(NAMES))], affected.stderr
    listed = {change["path"] for change in data["git"]["changed"]}
    assert set(changed.values()) <= listed, sorted(set(changed.values()) - listed)
    assert "Traceback" not in affected.stderr and inert(affected.stderr)

    plan = run_invoke(root, "plan", "--since", base)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    output = plan.stdout + plan.stderr
    assert inert(output), [line for line in output.splitlines() if not inert(line)]
    assert not [line for line in output.splitlines() if line.startswith("error:")]
    rows = {line.split()[0]: line for line in plan.stdout.splitlines() if line.startswith("n")}
    for image, path in changed.items():
        assert rows[image].split()[1] == "build" and escaped(path) in rows[image], (image, rows.get(image))


def test_the_repository_lists_every_kind_of_entry_under_hostile_names(tmp_path):
    """Committed, staged, unstaged, untracked, renamed, deleted, mode changes, links and submodule gitlinks, at the top level too."""
    root = init_repo(tmp_path / "repo", {"keep.txt": "k\n"})
    (root / "sub").mkdir()
    for k, name in enumerate(NAMES):  # each its own content: a rename is found by content
        (root / name).write_text(f"{k}\n")
        (root / "sub" / name).write_text(f"sub {k}\n")
    commit_all(root, "names")
    base = git(root, "rev-parse", "HEAD").strip()
    expected = {*NAMES, *(f"new{name}" for name in NAMES), *(f"mv{name}" for name in NAMES[1::6])}
    for k, name in enumerate(NAMES):
        match k % 6:
            case 0:
                (root / name).chmod(0o755)
            case 1:
                git(root, "mv", "--", name, f"mv{name}")
            case 2:
                (root / name).unlink()
                os.symlink(name, root / name)  # a file made a link to itself by name: a type change
            case 3:
                (root / name).unlink()
            case 4:
                (root / name).write_text("2\n")
                git(root, "add", "--", name)
            case _:
                (root / name).write_text("2\n")
        (root / f"new{name}").write_text("untracked\n")
    # A submodule's gitlink (what `git submodule add` stages), by a hostile name.
    gitlink = "gitlink " + NAMES[0]
    commit_all(root, "changes")
    committer(root, "update-index", "--add", "--cacheinfo", f"160000,{base},{gitlink}")
    committer(root, "commit", "-qm", "submodule")
    (root / gitlink).mkdir()  # as a clone shows a submodule not yet initialised
    committed = {change.path: change for change in Repository(root).committed_changes(base, git(root, "rev-parse", "HEAD").strip())}
    assert gitlink in committed and "sub/" + NAMES[0] not in committed
    assert {f"mv{NAMES[1]}", NAMES[3], NAMES[0]} <= set(committed)
    assert committed[f"mv{NAMES[1]}"].kind == "renamed" and committed[f"mv{NAMES[1]}"].old_path == NAMES[1]

    (root / "sub" / NAMES[5]).write_text("unstaged\n")
    (root / "sub" / NAMES[6]).unlink()
    (root / "sub" / f"untracked{NAMES[7]}").write_text("new\n")
    changes = {change.path: change.kind for change in Repository(root).diff(base)}
    for name in (NAMES[5], NAMES[6], f"untracked{NAMES[7]}"):
        assert "sub/" + name in changes, name
    assert changes["sub/" + NAMES[6]] == "deleted" and changes["sub/" + f"untracked{NAMES[7]}"] == "untracked"
    named = {path for change in committed.values() for path in change.paths}
    assert set(expected) <= named | set(changes), sorted(set(expected) - named - set(changes))
    assert committed[NAMES[2]].kind == "type-changed" and committed[NAMES[3]].kind == "deleted"
    tree = Repository(root).commit_tree(git(root, "rev-parse", "HEAD").strip())
    assert tree.oid(gitlink) == f"160000 {base}" and tree.oid(f"mv{NAMES[1]}").startswith("100644 ")
    working = Repository(root).working_tree()
    assert "sub/" + NAMES[6] not in working and "sub/" + f"untracked{NAMES[7]}" in working and NAMES[4] in working


@pytest.mark.parametrize("quote_path", ["true", "false"])
def test_git_settings_and_variables_change_no_listing(tmp_path, monkeypatch, quote_path):
    """core.quotePath either way and the pathspec variables of the caller's environment: the same paths, read the same way."""
    root = init_repo(tmp_path / "repo", {"project/keep.txt": "k\n", "images.yaml": ""})
    for name in NAMES:
        (root / "project" / name).write_text("1\n")
    git(root, "config", "core.quotePath", quote_path)
    base = git(root, "rev-parse", "HEAD").strip()
    commit_all(root, "names")
    for variable in ("GIT_LITERAL_PATHSPECS", "GIT_ICASE_PATHSPECS", "GIT_NOGLOB_PATHSPECS"):
        monkeypatch.setenv(variable, "1")
    repo = Repository(root / "project")
    assert {change.path for change in repo.diff(base)} == set(NAMES)
    assert set(NAMES) <= set(repo.working_tree().paths())


def test_the_pre_commit_hook_lints_a_staged_file_by_its_exact_name(tmp_path):
    root = init_repo(tmp_path / "repo", {"sub/images.yaml": "", "tasks.py": TASKS})
    for name in ("-dash.py", "nl\nname.py", " lead.py"):  # (not bytes that are not UTF-8: ruff's own cache fails on them)
        (root / "sub" / name).write_text("import os\n")  # unused import: ruff must name this very file
    git(root, "add", "-A")
    hook = subprocess.run([sys.executable, "-m", "invoke", "dev.pre-commit"], cwd=root / "sub", capture_output=True, text=True,
                          errors="surrogateescape", timeout=120)
    assert hook.returncode == 1 and "3 staged file(s)" in hook.stderr, hook.stdout + hook.stderr
    assert inert(hook.stdout) and hook.stdout.count("F401") == 3, hook.stdout
