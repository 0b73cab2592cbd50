"""The host-side wheelhouse: wheels fetched once, bind-mounted into builds.

Builds install with ``pip install --no-index --find-links /wheels`` from a
``RUN --mount=type=bind`` of ``.wheelhouse/<requirements stem>/``, so no wheel
file ever lands in a layer and builds need no network. Downloads are cached
per (normalised requirements, platform, python) under the user cache dir and
hard-linked into the repository, so a fresh clone on the same machine fetches
nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from ..core.defaults import WHEELHOUSE_DIR, wheel_folder
from ..core.fingerprint import normalize_requirements
from ..core.links import inside
from .runner import Command, Runner
from .workdirs import own_folder, refuse_link, remove_own, write_own

__all__ = ["Wheelhouse", "pip_platform_tags"]


_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x", "386": "i686"}
_COMPLETE = ".complete"


def pip_platform_tags(platform: str) -> tuple[str, ...]:
    """pip ``--platform`` tags for a Debian bookworm (glibc 2.36) image of ``platform``.

    pip does not widen ``manylinux_2_X`` to older glibc versions by itself, so
    every compatible one is listed.
    """
    arch = _ARCH.get(platform.split("/")[1])
    if arch is None:
        raise ValueError(f"no wheel platform known for {platform}")
    return (*(f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)), f"manylinux2014_{arch}")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imagegraph" / "wheels"


class Wheelhouse:
    def __init__(self, root: Path, runner: Runner, *, python: str = "3.11", cache_dir: Path | None = None,
                 pip: tuple[str, ...] = (sys.executable, "-m", "pip")) -> None:
        self.root = Path(root)
        self.runner = runner
        self.python = python
        self.cache_dir = cache_dir or default_cache_dir()
        self.pip = pip
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def folder(self, requirements: str) -> Path:
        """Where builds find the wheels of ``requirements``: ``.wheelhouse/<stem>``."""
        return self.root / WHEELHOUSE_DIR / wheel_folder(requirements)

    def download_command(self, requirements: str, platform: str, dest: Path) -> Command:
        tags = [flag for tag in pip_platform_tags(platform) for flag in ("--platform", tag)]
        abi = "cp" + self.python.replace(".", "")
        return Command.of(
            # One retry: an unreachable extra index (e.g. PyTorch's CPU index offline) costs seconds, not minutes.
            # not --quiet: progress follows pip's "Collecting / Downloading / Saved" lines (no bar outside a terminal)
            *self.pip, "download", "--progress-bar", "off", "--disable-pip-version-check", "--retries", "1", "--only-binary=:all:",
            *tags, "--python-version", self.python, "--implementation", "cp", "--abi", abi,
            "--dest", str(dest), "--requirement", str(self.root / requirements),
            hint=f"check that every package in {requirements} has a wheel for {platform} and Python {self.python}",
            purpose=f"wheels {Path(requirements).name}",
        )

    def ensure(self, requirements: Iterable[str], platforms: Iterable[str], *,
               log_path: Path | None = None, say: Callable[[str], None] = lambda _: None,
               follow: Callable[[Command], Callable[[str], None] | None] = lambda _: None) -> None:
        """Make ``.wheelhouse/<stem>/`` hold exactly the wheels these requirements need on these platforms.

        ``follow`` gives, for a download command, the callback that receives its output lines (live progress).
        """
        platforms = tuple(platforms)
        if log_path is not None:
            refuse_link(log_path)  # before a download is prepared in the cache, not once pip is about to write to it
        for requirements_file in requirements:
            with self._lock(requirements_file):
                wanted: dict[str, Path] = {}
                for platform in platforms:
                    cached = self._cached(requirements_file, platform, log_path, say, follow)
                    for wheel in cached.glob("*.whl"):
                        wanted[wheel.name] = wheel
                _sync(self.folder(requirements_file), wanted, self.root)

    def _cached(self, requirements: str, platform: str, log_path: Path | None, say: Callable[[str], None],
                follow: Callable[[Command], Callable[[str], None] | None]) -> Path:
        # pip reads the file too: a link out of the repository is refused before either does
        text = normalize_requirements(inside(self.root, requirements).read_text(encoding="utf-8"))
        key = hashlib.sha256(f"{text}\n{platform}\n{self.python}".encode()).hexdigest()[:20]
        folder = self.cache_dir / f"{wheel_folder(requirements)}-{platform_slug(platform)}-{key}"
        refuse_link(folder)  # the cache folder is the user's; what imagegraph names in it is its own
        if (folder / _COMPLETE).exists():
            return folder
        say(f"wheels: downloading {requirements} for {platform}")
        partial = folder.with_name(folder.name + ".partial")
        remove_own(partial, self.cache_dir)
        own_folder(partial, self.cache_dir)
        command = self.download_command(requirements, platform, partial)
        self.runner.run(command, log_path=log_path, on_line=follow(command))
        write_own(partial / _COMPLETE, self.cache_dir, requirements + "\n")
        remove_own(folder, self.cache_dir)
        partial.rename(folder)
        return folder

    def _lock(self, requirements: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(requirements, threading.Lock())


def platform_slug(platform: str) -> str:
    return platform.replace("/", "-")


def _sync(folder: Path, wanted: dict[str, Path], root: Path) -> None:
    """Hard-link the wanted wheels into ``folder`` (inside ``root``) and drop every other file.

    ``.wheelhouse`` and its folders are imagegraph's own: a link at any of
    them, or among the files, is refused rather than emptied or linked into.
    """
    own_folder(folder, root)
    for existing in folder.iterdir():
        refuse_link(existing)
        if existing.name not in wanted:
            remove_own(existing, root)
    for name, source in wanted.items():
        target = folder / name
        if target.exists():
            continue
        try:
            os.link(source, target)
        except OSError:  # another filesystem: a copy works everywhere
            shutil.copy2(source, target)
