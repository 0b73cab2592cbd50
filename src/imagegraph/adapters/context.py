"""The build context: exactly the files an image's fingerprint covers, and nothing else.

One definition of an image's inputs serves both sides: the fingerprint's
file list (:attr:`imagegraph.core.fingerprint.Fingerprint.files`) is what gets
hashed, and :func:`assemble_context` copies exactly those files into a fresh
directory that the builder receives as its context (bind-mount sources
included), with the wheel folders of the image's declared requirements. A
file the fingerprint does not cover (undeclared, git-ignored, untracked
under an ignored folder) cannot reach an image, and a file that changed
since it was fingerprinted is refused rather than built under the old
fingerprint.

Files are copied (never hard-linked: an edit in place would reach the
context through the link) with git's view of them: mode 0644 or 0755 and a
fixed modification time, so two checkouts of one commit send the builder the
same bytes and metadata. Wheels are hard-linked from the wheelhouse: they are
named by their content and never edited in place.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.config import ImageSpec
from ..core.errors import ImagegraphError
from ..core.fingerprint import REQUIREMENTS_ID, requirements_id
from ..core.request import ContextLayout, context_folder, context_layout
from .trees import blob_id, file_blob_id, read_small
from .workdirs import own_folder, refuse_link, remove_own

__all__ = ["AssembledContext", "ContextChanged", "assemble_context", "assemble_image_context", "assemble_layout", "assemble_planned"]

#: The modification time of every file and folder of an assembled context (1980-01-01, the oldest a zip holds).
FIXED_MTIME = 315532800


class ContextChanged(ImagegraphError):
    """An input changed (or vanished) between fingerprinting and building."""


@dataclass(frozen=True)
class AssembledContext:
    """A context on disk: hand ``context`` and ``dockerfile`` to the builder."""

    root: Path
    context: Path
    dockerfile: Path
    files: int
    #: Bytes written (copied inputs) and bytes hard-linked (wheels: no new disk space).
    copied_bytes: int
    linked_bytes: int


def assemble_context(spec: ImageSpec, files: Sequence[tuple[str, str]], root: Path, dest: Path) -> AssembledContext:
    """Write the context of ``spec`` into ``dest`` (emptied first) from the files under ``root``; see the module doc."""
    return assemble_layout(context_layout(spec, files), root, dest)


def assemble_layout(layout: ContextLayout, root: Path, dest: Path, *, within: Path | None = None) -> AssembledContext:
    """Write the context ``layout`` describes into ``dest`` (emptied first) from the files under ``root``.

    ``dest`` and the folders between it and ``within`` (the repository's root
    for its own ``.imagegraph/contexts``; by default ``dest``'s folder) are
    never links (:mod:`imagegraph.adapters.workdirs`): emptying one would empty
    a folder elsewhere.
    """
    root, dest = Path(root), Path(dest)
    within = Path(within) if within is not None else dest.parent
    remove_own(dest, within)
    own_folder(dest, within)
    copied = linked = 0
    for path, content_id in layout.files:
        copied += _copy_verified(root, dest, path, content_id)
    for folder in layout.wheel_folders:
        linked += _link_wheels(root, folder, dest / folder)
    _fix_folder_times(dest)
    return AssembledContext(root=dest, context=dest / layout.context, dockerfile=dest / layout.dockerfile,
                            files=len(layout.files), copied_bytes=copied, linked_bytes=linked)


def assemble_image_context(spec: ImageSpec, files: Sequence[tuple[str, str]], root: Path, contexts: Path,
                           fingerprint: str) -> AssembledContext:
    """The context of one image, in ``contexts/<image>/<fingerprint>`` (see :func:`assemble_planned`)."""
    return assemble_planned(spec.name, context_layout(spec, files), root, contexts, fingerprint)


def assemble_planned(image: str, layout: ContextLayout, root: Path, contexts: Path, fingerprint: str) -> AssembledContext:
    """The context of one planned image, in ``contexts/<image>/<fingerprint>``: a folder whose path names its content.

    BuildKit sends a context folder incrementally, by its path, and takes a
    file whose size and modification time did not change as unchanged. The
    times here are fixed, so one folder reused for other content could keep a
    stale file of the same size: a new fingerprint gets a new folder. The
    image's earlier folders go.
    """
    folder = context_folder(contexts, image, fingerprint)
    own_folder(folder.parent, root)  # .imagegraph, contexts, <image>: real folders, or refused before anything is listed
    for earlier in folder.parent.iterdir():
        if earlier.name != fingerprint:
            remove_own(earlier, root)
    return assemble_layout(layout, root, folder, within=root)


def _copy_verified(root: Path, dest: Path, path: str, content_id: str) -> int:
    """Copy one input, refusing it when its content is not the one fingerprinted; the bytes written."""
    source, target = root / path, dest / path
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = source.lstat()
        is_link = stat.S_ISLNK(info.st_mode)
        mode = "120000" if is_link else "100755" if info.st_mode & 0o111 else "100644"
        if is_link:
            link = os.readlink(source)
            actual = f"{mode} {blob_id(os.fsencode(link))}"  # a target is bytes, as a name is
        elif content_id.startswith(f"{REQUIREMENTS_ID} "):  # read as pip reads it: its mode is not part of its id
            data = read_small(path, info.st_size, source.read_bytes)
            actual = requirements_id(data)
            target.write_bytes(data)
        else:  # copied and hashed in one pass, a chunk at a time: an input may be gigabytes
            actual = f"{mode} {file_blob_id(source, copy_to=target)}"
    except OSError:
        raise ContextChanged(f"{path} vanished after it was fingerprinted; run the build again") from None
    if actual != content_id:
        target.unlink(missing_ok=True)
        raise ContextChanged(f"{path} changed after it was fingerprinted; run the build again (the plan is made afresh)")
    if is_link:
        os.symlink(link, target)
    else:
        target.chmod(0o755 if mode == "100755" else 0o644)
    os.utime(target, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    return info.st_size


def _link_wheels(root: Path, relative: str, target: Path) -> int:
    """Hard-link a wheelhouse folder's files (a copy across filesystems); the bytes linked.

    The wheelhouse is imagegraph's own folder: a link at it, above it or in
    it is refused, so no file from elsewhere reaches a context through it.
    """
    folder = own_folder(root / relative, root, make=False)
    if not folder.is_dir():
        return 0  # no wheels fetched: the build's bind mount says which folder is missing
    target.mkdir(parents=True, exist_ok=True)
    total = 0
    for wheel in sorted(folder.iterdir()):
        refuse_link(wheel)
        if not wheel.is_file():
            continue
        try:
            os.link(wheel, target / wheel.name)
        except OSError:
            shutil.copy2(wheel, target / wheel.name)
        total += wheel.stat().st_size
    return total


def _fix_folder_times(dest: Path) -> None:
    for folder, _, _ in os.walk(dest, topdown=False):
        os.chmod(folder, 0o755)
        os.utime(folder, (FIXED_MTIME, FIXED_MTIME))
