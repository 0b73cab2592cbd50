"""A Dockerfile checked against its image in images.yaml, before anything builds.

:func:`check_dockerfile` refuses what would build the wrong image or none (no
FROM, an unknown target, a parent that is not pinned). :func:`undeclared_inputs`
finds what a fingerprint would miss: it only covers the files images.yaml
declares, so a file the build copies or mounts without being declared changes
the image without changing its tag, and the registry keeps serving a stale
image; every such file is reported as a warning that names it.

The Dockerfile is read with :mod:`imagegraph.core.dockerfile_syntax`, and what it
takes from its context found with :mod:`imagegraph.core.dockerfile_context`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from .config import Config, ImageSpec, read_repo_text
from .defaults import CONFIG_NAME, WHEELHOUSE_DIR
from .dockerfile_check import syntax_problems
from .dockerfile_context import WHOLE_CONTEXT, Source, context_sources, used_files
from .dockerfile_syntax import stages
from .errors import InputError
from .fingerprint import Fingerprint, Sources, ignore_file, large_inputs
from .values import did_you_mean

__all__ = ["BASE_IMAGE", "InputWarning", "check_dockerfile", "check_dockerfiles", "input_warnings", "undeclared_inputs"]

_BASE_IMAGE = re.compile(r"\$(?:BASE_IMAGE\b|\{BASE_IMAGE\b)")
BASE_IMAGE = "BASE_IMAGE"


@dataclass(frozen=True)
class InputWarning:
    """A file the build reads that images.yaml does not declare: it changes the image but not its fingerprint."""

    image: str
    #: Repository-relative path of the file.
    path: str
    source: Source
    #: The Dockerfile (repository-relative), so the warning points at the line to look at.
    dockerfile: str = ""
    #: The image's build context (repository-relative), to turn the source's path into an input glob.
    context: str = "."

    @property
    def suggestion(self) -> str:
        """The input glob that declares this file: the entry the source names (a folder, as `<folder>/**`), or the file itself."""
        prefix = _context_prefix(self.context)
        relative = self.path[len(prefix):] if self.path.startswith(prefix) else self.path
        depth = 0 if self.source.path in WHOLE_CONTEXT else self.source.path.count("/") + 1
        parts = relative.split("/")
        if depth == 0 or depth >= len(parts):
            return self.path
        return prefix + "/".join(parts[:depth]) + "/**"

    def __str__(self) -> str:
        where = f"{self.dockerfile}:{self.source.line}" if self.dockerfile else f"line {self.source.line}"
        return (
            f"image {self.image!r}: {where} {self.source.describe()} uses {self.path}, which images.yaml does not declare; "
            f'add it to the image\'s inputs (e.g. "{self.suggestion}")'
        )


# --- checking a Dockerfile against its image ---------------------------------------------------------------------



def check_dockerfile(spec: ImageSpec, text: str) -> None:
    """Refuse what would build the wrong image or none: no FROM, a line BuildKit refuses, an unknown target, a child whose
    parent is not pinned."""
    found = stages(text)
    where = f"image {spec.name!r}"
    if not found.froms:
        raise InputError(spec.dockerfile, f"has no FROM instruction, so {where} cannot build; start it with FROM <image>"
                                          f"{' (ARG BASE_IMAGE, then FROM ${BASE_IMAGE})' if spec.parent else ''}")
    for problem in syntax_problems(text, target=spec.target):
        if problem.error:
            raise InputError(f"{spec.dockerfile}:{problem.line}", f"{problem.message} (BuildKit would refuse it when {where} builds)")
    if spec.target is not None and spec.target.lower() not in found.names:
        stage_list = ", ".join(found.names) or "none are named"
        raise InputError(f"{CONFIG_NAME}: {where}: target", f"{spec.target!r} is not a stage of {spec.dockerfile}"
                                                            f"{did_you_mean(spec.target.lower(), found.names)} (stages: {stage_list}); "
                                                            "name one with `FROM ... AS <name>` or fix `target:`")
    if spec.parent is None:
        return
    pinned = [line for line, image, _ in found.froms if _BASE_IMAGE.search(image)]
    if not pinned:
        raise InputError(spec.dockerfile, f"{where} has parent {spec.parent!r} but no FROM uses ${{{BASE_IMAGE}}}, so the parent is "
                                          f"not pinned; declare `ARG {BASE_IMAGE}` before the first FROM and build `FROM ${{{BASE_IMAGE}}}`, "
                                          "or remove `parent:`")
    if BASE_IMAGE not in found.global_args:
        raise InputError(f"{spec.dockerfile}:{pinned[0]}", f"FROM uses ${{{BASE_IMAGE}}} but no `ARG {BASE_IMAGE}` comes before the first "
                                                           "FROM, so it is empty when the build runs; add that line at the top")


def check_dockerfiles(config: Config) -> None:
    """Every image's Dockerfile (and its own ignore file), read as UTF-8 and checked before any plan or build."""
    for spec in config.images:
        check_dockerfile(spec, read_repo_text(config.root, spec.dockerfile))
        if (config.root / spec.dockerignore).is_file():
            read_repo_text(config.root, spec.dockerignore)


# --- checking images.yaml ---------------------------------------------------------------------------------------------


def input_warnings(config: Config, sources: Sources, fingerprints: Mapping[str, Fingerprint], *,
                   read_text: Callable[[str], str], size: Callable[[str], int]) -> tuple[str, ...]:
    """Lines of a Dockerfile BuildKit reads otherwise than they look, files a Dockerfile uses that images.yaml does not
    declare as the image's inputs, and inputs so large they cost every build.

    ``read_text`` reads a file of the tree as text, ``size`` tells its bytes.
    """
    warnings: list[str] = []
    paths = sources.paths()
    present = frozenset(paths)
    for spec in config.images:
        ignore = ignore_file(spec, present)
        ignore_lines = read_text(ignore).splitlines() if ignore in present else []
        declared = {path for path, _ in fingerprints[spec.name].files}
        text = read_text(spec.dockerfile)
        warnings.extend(f"image {spec.name!r}: {spec.dockerfile}:{problem.line}: {problem.message}"
                        for problem in syntax_problems(text, target=spec.target) if not problem.error)
        warnings.extend(str(w) for w in undeclared_inputs(spec, text, paths, ignore_lines, declared, ordered=True))
    warnings.extend(str(big) for big in large_inputs(fingerprints, size))
    return tuple(warnings)


def undeclared_inputs(
    spec: ImageSpec,
    dockerfile_text: str,
    repo_files: Sequence[str],
    ignore_lines: Sequence[str],
    declared: Collection[str],
    *,
    ordered: bool = False,
) -> tuple[InputWarning, ...]:
    """Files the Dockerfile of ``spec`` uses (inside spec.context, after the ignore file) that are not in ``declared``.

    ``declared`` is a set of repository-relative paths; ``repo_files`` are
    repository-relative, and only those under spec.context count. Wheels under
    ``.wheelhouse/<stem>/`` for one of spec.wheels count as declared: they are
    generated from the declared requirements file, which is what the
    fingerprint hashes. ``ordered`` says ``repo_files`` are sorted (a tree's
    paths are): the context and the files its sources name are then found by
    bisection, not by a scan of the whole tree for every image.
    """
    prefix = _context_prefix(spec.context)
    if prefix and ordered:
        inside: Sequence[str] = repo_files[bisect.bisect_left(repo_files, prefix):bisect.bisect_left(repo_files, prefix[:-1] + "0")]
    else:
        inside = repo_files
    context_files = [path[len(prefix):] for path in inside if path.startswith(prefix)] if prefix else inside
    declared = declared if isinstance(declared, (set, frozenset)) else frozenset(declared)
    stems = frozenset(PurePosixPath(requirements).stem for requirements in spec.wheels)
    used = used_files(context_sources(dockerfile_text, build_args=dict(spec.build_args)), context_files, ignore_lines, ordered=ordered)
    warnings = []
    for relative, source in sorted(used.items()):
        path = prefix + relative
        if path in declared or _generated_wheel(path, stems):
            continue
        warnings.append(InputWarning(image=spec.name, path=path, source=source, dockerfile=spec.dockerfile, context=spec.context))
    return tuple(warnings)


def _context_prefix(context: str) -> str:
    context = context.strip("/")
    return "" if context in WHOLE_CONTEXT else context + "/"


def _generated_wheel(path: str, stems: frozenset[str]) -> bool:
    """A file inside a ``.wheelhouse/<stem>/`` folder whose requirements file the image declares under ``wheels:``."""
    parts = path.split("/")
    return any(parts[i] == WHEELHOUSE_DIR and parts[i + 1] in stems for i in range(len(parts) - 2))
