"""A repository beside a sentinel folder: committed links that lead out to it, and checks that nothing there was touched.

The sentinel holds a secret file, a file to keep and an old folder; the wheel
cache is a real one in a temp folder, filled beforehand as a fetch leaves it,
so no command needs the network. :func:`refused` runs the real command line
(in-process) and checks what every refusal must hold: one `error:` line, exit
1, the sentinel and the cache exactly as they were, and the secret nowhere: not
in the output, not in a log, a context or a bake file of the repository.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from imagegraph.adapters.wheelhouse import platform_slug
from imagegraph.core.fingerprint import normalize_requirements
from tests.conftest import write_tree
from tests.unit.cli import run_cli

SECRET = "SECRET-7f3c9a-outside-the-repository"

FAMILY = """\
registry: 127.0.0.1:5000
namespace: {namespace}
images:
  app:
    dockerfile: docker/Dockerfile
    context: {context}
    inputs: ["src/**"]
    wheels: [requirements/app.txt]
"""
FILES = {
    "docker/Dockerfile": "FROM python:3.11-slim\nCOPY src /src\n",
    "requirements/app.txt": "six==1.16.0\n",
    "src/app.py": "print('hello')\n",
}
WHEEL = "six-1.16.0-py2.py3-none-any.whl"

PLAN = ("plan",)
BAKE = ("plan", "--bake", "bake.json")
DRY_RUN = ("build", "--dry-run")


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=main", *args],
                   cwd=root, check=True, capture_output=True)


def make_world(tmp_path: Path) -> dict[str, Path]:
    """A repository, a sentinel folder beside it (a secret, a file to keep, an old folder) and a filled wheel cache."""
    outside = tmp_path / "outside"
    write_tree(outside, {"secret.txt": f"{SECRET}\n", "keep.txt": "keep me\n", "old/keep.txt": "keep me too\n",
                         "Dockerfile": f"FROM scratch\n# {SECRET}\n", "images.yaml": family() + f"# {SECRET}\n"})
    cache = tmp_path / "cache"
    requirements = FILES["requirements/app.txt"]
    key = hashlib.sha256(f"{normalize_requirements(requirements)}\nlinux/amd64\n3.11".encode()).hexdigest()[:20]
    filled = cache / "imagegraph" / "wheels" / f"app-{platform_slug('linux/amd64')}-{key}"
    write_tree(filled, {WHEEL: "a wheel\n", ".complete": "requirements/app.txt\n"})
    repo = tmp_path / "repo"
    repo.mkdir()
    return {"repo": repo, "outside": outside, "cache": cache, "filled": filled}


def family(context: str = ".", namespace: str = "test") -> str:
    return FAMILY.format(context=context, namespace=namespace)


def commit(repo: Path, files: dict[str, str], links: dict[str, str], context: str = ".", namespace: str = "test") -> None:
    write_tree(repo, {"images.yaml": family(context, namespace), **files})
    for link, target in links.items():
        path = repo / link
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            raise AssertionError(f"{link} is a folder of the test's own tree")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
    git(repo, "init", "-q")
    git(repo, "add", "-A", "-f")
    git(repo, "commit", "-q", "-m", "family")


def snapshot(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry below ``folder`` with its kind and content (a link: its text), links never followed."""
    found: dict[str, tuple[str, bytes]] = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(top, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path).encode())
            elif path.is_dir():
                found[rel] = ("folder", b"")
            else:
                found[rel] = ("file", path.read_bytes())
    return found


def files_holding(folder: Path, text: str) -> list[str]:
    """The regular files below ``folder`` (links not followed) that contain ``text``."""
    return [rel for rel, (kind, data) in snapshot(folder).items() if kind == "file" and text.encode() in data]


def refused(world: Mapping[str, Path], argv: tuple[str, ...], *names: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``argv`` in the repository; its one error line, after the checks every case shares."""
    before = snapshot(world["outside"])
    cache_before = snapshot(world["cache"])
    outcome = run_cli(world["repo"], argv, env={"XDG_CACHE_HOME": str(world["cache"]), **(env or {})})
    line = outcome.error  # exit 1, exactly one error line
    assert "Traceback" not in outcome.stderr
    for name in names:
        assert name in line, line
    assert "remove" in line or "replace the link" in line, line
    assert SECRET not in outcome.stdout + outcome.stderr
    assert snapshot(world["outside"]) == before, "the folder outside the repository changed"
    assert snapshot(world["cache"]) == cache_before, "the wheel cache changed"
    assert files_holding(world["repo"], SECRET) == [], "outside content reached the repository's working folders"
    return line
