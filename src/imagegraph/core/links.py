"""What a build reads from the repository goes through a symbolic link only while the link stays inside it.

A committed link can point anywhere: ``docker -> /etc``, ``ctx -> ../../home/me``,
or out and back in by the checkout's own folder name (``docker -> ../repo/build``),
which names another folder in every clone. Before imagegraph reads a Dockerfile,
an ignore file, a requirements file or a context (or copies an input link into a
context), each link on the way is followed by its text, one step at a time: a
link to an absolute path, or one whose ``..`` climbs above the repository's root,
is refused in one line naming the link, and nothing behind it is read.

Only the names of links are read here (``lstat``, ``readlink``), never a file's
content, so a refusal can neither print nor hash what lies outside.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import InputError
from .values import shown

__all__ = ["LINK_MODE", "MAX_LINKS", "OutsideLink", "check_input_links", "inside", "link_outside"]

#: The mode git gives a symbolic link: a content id ``"120000 <blob id>"`` is a link's.
LINK_MODE = "120000"
#: Links followed on one path before it counts as a loop (the kernel's own limit, ELOOP).
MAX_LINKS = 40


@dataclass(frozen=True)
class OutsideLink:
    """A link on the way to a path of the repository that leads outside it."""

    #: The link, relative to the root; what it points at, as committed.
    link: str
    target: str

    def __str__(self) -> str:
        return f"{shown(self.link)} -> {shown(self.target)}"

    def fix(self) -> str:
        return f"replace the link with the files themselves (git rm {shown(self.link)}) or name a path inside the repository"


def link_outside(root: Path, relpath: str) -> OutsideLink | None:
    """The first link on the way from ``root`` to ``relpath`` that leads outside the repository; None when none does.

    Each link is followed by its text (``readlink``), so a relative target
    whose ``..`` climbs above the root, or an absolute target, is outside even
    when it would come back in. A path that does not exist (wholly or from some
    part on) is not this check's to refuse: it ends where the file system does.
    """
    pending = deque(part for part in PurePosixPath(relpath).parts if part not in ("", "."))
    if pending and pending[0] == "/":
        return OutsideLink(relpath, relpath)
    done: list[str] = []
    followed = 0
    while pending:
        part = pending.popleft()
        if part == "..":
            if not done:
                return OutsideLink("/".join(done) or ".", relpath)
            done.pop()
            continue
        here = root.joinpath(*done, part)
        try:
            info = os.lstat(here)
        except OSError:
            return None
        if not stat.S_ISLNK(info.st_mode):
            done.append(part)
            continue
        link = "/".join([*done, part])
        followed += 1
        target = os.readlink(here)
        if followed > MAX_LINKS or target.startswith("/") or _climbs_out(done, target):
            return OutsideLink(link, target)
        pending.extendleft(reversed([p for p in PurePosixPath(target).parts if p not in ("", ".")]))
    return None


def _climbs_out(folder: list[str], target: str) -> bool:
    """Whether ``target``, read from ``folder``, passes above the root at any step (out and back counts)."""
    depth = len(folder)
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            return True
    return False


def inside(root: Path, relpath: str, origin: str | None = None) -> Path:
    """``root / relpath``, refused in one line (:class:`InputError`) when a link on the way leads outside the repository."""
    found = link_outside(root, relpath)
    if found is not None:
        raise InputError(origin or relpath, f"{shown(relpath)} leads outside the repository through the link {found}; {found.fix()}")
    return root / relpath


def check_input_links(root: Path, inputs: Mapping[str, Iterable[tuple[str, str]]]) -> None:
    """Refuse an input (image -> its (path, content id) pairs) that is a link leading outside the repository.

    Git holds a link as its text, and a context holds it as a link: one to
    ``/etc/passwd`` or ``../../secrets`` would have the build read outside
    content the fingerprint never saw. Only links are looked at (their mode
    says which), so this costs nothing on a checkout without them.
    """
    for image, files in inputs.items():
        for path, content_id in files:
            if content_id.startswith(LINK_MODE + " "):
                found = link_outside(root, path)
                if found is not None:
                    raise InputError(path, f"an input of {image}, is a link that leads outside the repository ({found}); {found.fix()}")
