"""Content fingerprints: the identity of an image before it is built.

An image's fingerprint hashes everything that decides its content: the
Dockerfile and its ignore files, the declared inputs, build args, platforms,
target stage, and the parent's fingerprint (a Merkle chain, so a change to the
base changes every child).

Files enter by their content id: git's blob id (with the file mode), which git
already holds for every committed file, so fingerprinting a large checkout
reads almost nothing from disk. Requirements files are the exception: they
are read and normalized, so a comment or an order change counts for nothing.
Paths are relative to the project root, so two clones of the same commit give
the same fingerprints wherever they live and whichever machine holds them.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pathspec

from .config import CONFIG_NAME, Config, ImageSpec
from .errors import ConfigError
from .graph import build_order

__all__ = ["Fingerprint", "Fingerprinter", "InputFiles", "Sources", "fingerprint_images", "input_files", "normalize_requirements"]

SCHEME = "imagegraph-fingerprint/2"
TAG_LENGTH = 16


class Sources(Protocol):
    """A tree of files as fingerprints see it: the working tree, a commit, or a dict in a test."""

    def paths(self) -> Sequence[str]:
        """Sorted relative POSIX paths of every file (tracked, or untracked but not ignored)."""
        ...

    def oid(self, path: str) -> str:
        """A content id of the file, ``"<mode> <git blob id>"``; equal content gives an equal id."""
        ...

    def read(self, path: str) -> bytes: ...


@dataclass(frozen=True)
class Fingerprint:
    image: str
    digest: str
    #: (path, content id) of every file that went into the digest, sorted by path.
    files: tuple[tuple[str, str], ...]

    @property
    def tag(self) -> str:
        return self.digest[:TAG_LENGTH]


@dataclass(frozen=True)
class InputFiles:
    """What an image is made of, as paths: the fixed files and the files its globs match."""

    fixed: tuple[str, ...]
    matched: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(sorted({*self.fixed, *self.matched}))


def normalize_requirements(text: str) -> str:
    """The requirements that matter: no comments, blank lines, spacing or order differences."""
    lines = set()
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].split("\t#", 1)[0]
        if line.lstrip().startswith("#"):
            continue
        line = " ".join(line.split())
        if line:
            lines.add(line)
    return "\n".join(sorted(lines)) + "\n"


def fingerprint_images(config: Config, sources: Sources, *, strict: bool = True) -> dict[str, Fingerprint]:
    """Fingerprint every image, parents first.

    ``strict`` makes a missing Dockerfile or a glob that matches nothing an
    error (the working tree); for an older commit (``strict=False``) they are
    simply what that commit held.
    """
    fingerprinter = Fingerprinter(sources, strict=strict)
    result: dict[str, Fingerprint] = {}
    for name in build_order(config):
        spec = config.image(name)
        result[name] = fingerprinter.image(spec, result[spec.parent].digest if spec.parent else "")
    return result


class Fingerprinter:
    """Fingerprints images one at a time over one tree, identifying each file once."""

    def __init__(self, sources: Sources, *, strict: bool = True) -> None:
        self.sources = sources
        self.strict = strict
        self._paths = sources.paths()
        self._present = frozenset(self._paths)
        self._ids: dict[str, str] = {}

    def image(self, spec: ImageSpec, parent_digest: str) -> Fingerprint:
        chosen = input_files(spec, self._paths, self._present, strict=self.strict).all
        used = tuple((p, self._content_id(p, spec)) for p in chosen)
        return Fingerprint(image=spec.name, digest=_digest(spec, used, parent_digest), files=used)

    def _content_id(self, path: str, spec: ImageSpec) -> str:
        known = self._ids.get(path)
        if known is None:
            if _is_requirements(path, spec):
                text = normalize_requirements(self.sources.read(path).decode("utf-8", "replace"))
                known = "requirements " + hashlib.sha256(text.encode()).hexdigest()
            else:
                known = self.sources.oid(path)
            self._ids[path] = known
        return known


def input_files(spec: ImageSpec, paths: Sequence[str], present: frozenset[str] | None = None, *, strict: bool = True) -> InputFiles:
    """The Dockerfile, its ignore files, the wheels' requirements and every file the input globs match.

    ``paths`` must be sorted: globs with a literal directory prefix (most of
    them, e.g. ``src/scorer/**``) only look at that slice of the tree.
    """
    present = present if present is not None else frozenset(paths)
    fixed = tuple(p for p in _fixed_paths(spec) if p in present)
    if strict and spec.dockerfile not in present:
        raise ConfigError(CONFIG_NAME, f"image {spec.name!r}: {spec.dockerfile} is ignored by git or missing; commit it or fix the path")
    matched: set[str] = set()
    for pattern in spec.inputs:
        hits = match_glob(pattern, paths)
        if strict and not hits:
            raise ConfigError(CONFIG_NAME, f"image {spec.name!r}: input {pattern!r} matches no file; fix the pattern or remove it")
        matched.update(hits)
    return InputFiles(fixed=fixed, matched=tuple(sorted(matched)))


def match_glob(pattern: str, paths: Sequence[str]) -> list[str]:
    """The sorted ``paths`` a gitignore-style pattern matches, scanning only its literal prefix's slice."""
    matcher = _compiled(pattern)
    prefix = _literal_prefix(pattern)
    if prefix:
        lo = bisect.bisect_left(paths, prefix)
        hi = bisect.bisect_left(paths, prefix[:-1] + chr(ord(prefix[-1]) + 1))
        candidates: Sequence[str] = paths[lo:hi]
    else:
        candidates = paths
    return [p for p in candidates if matcher.match_file(p)]


def matches(spec: ImageSpec, path: str) -> bool:
    """Whether a single path is one of the image's inputs (used for paths that no longer exist, e.g. deleted)."""
    if path in _fixed_paths(spec):
        return True
    return any(_compiled(pattern).match_file(path) for pattern in spec.inputs)


_SPECS: dict[str, pathspec.GitIgnoreSpec] = {}


def _compiled(pattern: str) -> pathspec.GitIgnoreSpec:
    spec = _SPECS.get(pattern)
    if spec is None:
        spec = _SPECS[pattern] = pathspec.GitIgnoreSpec.from_lines([pattern])
    return spec


def _literal_prefix(pattern: str) -> str:
    """``src/scorer/`` for ``src/scorer/**``; "" when the pattern may match at any depth (gitignore rules)."""
    body = pattern.lstrip("/")
    if "/" not in body.rstrip("/") and not pattern.startswith("/"):
        return ""  # a pattern without an inner slash matches in every directory
    literal = re.split(r"[*?\[\\]", body, maxsplit=1)[0]
    return literal[: literal.rfind("/") + 1]


def _fixed_paths(spec: ImageSpec) -> tuple[str, ...]:
    """The files every image is made of whatever its globs say: Dockerfile, ignore files, wheels' requirements."""
    return (spec.dockerfile, spec.dockerignore, context_ignore(spec), *spec.wheels)


def context_ignore(spec: ImageSpec) -> str:
    """The context's own .dockerignore (BuildKit uses it when <Dockerfile>.dockerignore is absent)."""
    return ".dockerignore" if spec.context == "." else f"{spec.context}/.dockerignore"


def _digest(spec: ImageSpec, files: Sequence[tuple[str, str]], parent: str) -> str:
    lines = [SCHEME, f"context {spec.context}", f"target {spec.target or ''}", f"parent {parent}"]
    lines += [f"file {path} {digest}" for path, digest in files]
    lines += [f"arg {key}={value}" for key, value in spec.build_args]
    lines += [f"platform {platform}" for platform in sorted(spec.platforms)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _is_requirements(path: str, spec: ImageSpec) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path in spec.wheels or (name.startswith("requirements") and name.endswith(".txt"))
