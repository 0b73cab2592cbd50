"""imagegraph's own folders and files, made, written and removed without following a link.

imagegraph writes below the repository (``.imagegraph/``: contexts, logs,
reports, bake files, the plan cache, the build lock; ``.wheelhouse/``) and in
its cache folder (``~/.cache/imagegraph``), nowhere else. A checkout may hold a
committed link at any of those names (``.imagegraph -> /home/me``,
``.imagegraph/contexts/app -> /srv``, a log file linked to ``~/.bashrc``); a
folder made, emptied or written through it would be one outside. So every part
of such a path below its base (the repository's root, the cache folder) is
looked at without following it (``lstat``): a link there, or a file where a
folder belongs, is refused in one line that names it and says to remove it.
Files are opened with ``O_NOFOLLOW``, and a tree is removed only when it is a
real folder (``shutil.rmtree`` then removes links inside it, never what they
point at).

The threat is content: what a commit or a CI configuration put in the
checkout, fixed while a run lasts. Another local user racing the run is not:
that one could write the files directly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path
from typing import IO

from ..core.errors import ImagegraphError
from ..core.values import shown

__all__ = ["LinkRefused", "no_follow", "open_own", "own_folder", "refuse_link", "remove_own", "write_own"]


class LinkRefused(ImagegraphError):
    """A link (or a file) where imagegraph keeps its own files: it is never followed."""


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _refuse(path: Path, info: os.stat_result, *, folder: bool) -> None:
    if stat.S_ISLNK(info.st_mode):
        try:
            target = f" (to {shown(os.readlink(path), 120)})"
        except OSError:
            target = ""
        raise LinkRefused(f"{shown(str(path), 200)} is a symbolic link{target} where imagegraph keeps its own files, and it follows "
                          f"no link there: remove the link (rm {shown(str(path), 200)}) and run again")
    if folder and not stat.S_ISDIR(info.st_mode):
        raise LinkRefused(f"{shown(str(path), 200)} is not a folder, and imagegraph keeps its own files there: remove it "
                          f"(rm {shown(str(path), 200)}) and run again")


def _steps(path: Path, within: Path) -> tuple[Path, list[str]]:
    """(the base, the names below it down to ``path``): ``within`` when ``path`` lies in it, else ``path``'s own folder."""
    path, within = _absolute(path), _absolute(within)
    if path == within:
        return within, []
    if path.is_relative_to(within):
        return within, list(path.relative_to(within).parts)
    return path.parent, [path.name]  # a folder the user named (--bake /tmp/x/bake.json): theirs down to the last name


def own_folder(path: Path, within: Path, *, make: bool = True) -> Path:
    """``path``, a real folder: every part below ``within`` made (``make``) or found as a folder, never a link; the folder.

    With ``make=False`` nothing is made: a part that is missing ends the
    check (the caller finds the folder absent). A path outside ``within`` is
    checked from its own folder down (a folder the user named is theirs).
    """
    base, names = _steps(path, within)
    if make and names:
        base.mkdir(parents=True, exist_ok=True)
    here = base
    for name in names:
        if name in ("", ".", ".."):
            raise LinkRefused(f"{shown(str(path), 200)}: {shown(name)} is no folder name imagegraph makes; this is a bug, please report it")
        here = here / name
        try:
            info = os.lstat(here)
        except FileNotFoundError:
            if not make:
                return _absolute(path)
            with contextlib.suppress(FileExistsError):  # made meanwhile by another run: looked at below like any other
                os.mkdir(here)
            info = os.lstat(here)
        _refuse(here, info, folder=True)
    return _absolute(path)


def no_follow(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open` that never follows a link at the file's own name."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o666)


def open_own(path: Path, within: Path, mode: str = "w") -> IO[str]:
    """Open a working file of imagegraph's for writing (``w``, ``a``, ``a+``, ``x``), its folders made by :func:`own_folder`."""
    own_folder(Path(path).parent, within)
    try:
        return open(path, mode, encoding="utf-8", opener=no_follow)  # the caller closes it
    except OSError:
        info = _lstat(path)
        if info is not None:
            _refuse(Path(path), info, folder=False)
        raise


def write_own(path: Path, within: Path, text: str) -> Path:
    """Write ``text`` to a working file of imagegraph's (see :func:`open_own`)."""
    with open_own(path, within) as out:
        out.write(text)
    return Path(path)


def refuse_link(path: Path) -> None:
    """Refuse ``path`` when it is a link (an entry of one of imagegraph's own folders); nothing when it is anything else or absent."""
    info = _lstat(path)
    if info is not None:
        _refuse(Path(path), info, folder=False)


def remove_own(path: Path, within: Path) -> None:
    """Remove a working file or folder (all it holds) of imagegraph's; a link at it or above it is refused, never followed."""
    own_folder(Path(path).parent, within, make=False)
    info = _lstat(path)
    if info is None:
        return
    _refuse(Path(path), info, folder=False)
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path, ignore_errors=True)  # the fd-based walk: a link inside is removed, never entered
    else:
        Path(path).unlink(missing_ok=True)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None
