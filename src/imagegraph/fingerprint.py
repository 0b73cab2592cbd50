"""Content fingerprints: the identity of an image before it is built.

An image's fingerprint hashes everything that decides its content: the
Dockerfile and its ignore file, the declared inputs, build args, platforms,
target stage, and the parent's fingerprint (a Merkle chain, so a change to the
base changes every child). Two checkouts of the same commit give the same
fingerprints wherever they live on disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pathspec

from .config import CONFIG_NAME, Config, ImageSpec
from .errors import ConfigError, ImagegraphError
from .graph import build_order

__all__ = ["Fingerprint", "GitSources", "Sources", "fingerprint_images", "normalize_requirements"]

SCHEME = "imagegraph-fingerprint/1"
TAG_LENGTH = 16


class Sources(Protocol):
    """The repository's files as the fingerprint sees them (the seam tests replace)."""

    def files(self) -> Sequence[str]:
        """Relative POSIX paths of every file that is tracked or untracked-but-not-ignored."""
        ...

    def read(self, path: str) -> bytes: ...


@dataclass(frozen=True)
class Fingerprint:
    image: str
    digest: str
    #: (path, content hash) of every file that went into the digest.
    files: tuple[tuple[str, str], ...]

    @property
    def tag(self) -> str:
        return self.digest[:TAG_LENGTH]


class GitSources:
    """Lists files with git (so ignored build debris like __pycache__ never counts) and reads them from disk."""

    def __init__(self, root: Path) -> None:
        import git  # GitPython; imported here so the pure core does not need it

        self.root = Path(root)
        try:
            self._repo = git.Repo(self.root, search_parent_directories=False)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise ImagegraphError(f"{self.root} is not a git repository; imagegraph lists inputs with git: run `git init` there") from None

    def files(self) -> Sequence[str]:
        out = self._repo.git.ls_files("-z", "--cached", "--others", "--exclude-standard")
        # --cached still lists files deleted from the work tree; they are not inputs any more.
        return sorted({p for p in out.split("\0") if p and (self.root / p).is_file()})

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()


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


def fingerprint_images(config: Config, sources: Sources) -> dict[str, Fingerprint]:
    """Fingerprint every image, parents first."""
    files = sources.files()
    present = frozenset(files)
    hashes: dict[str, str] = {}

    def content_hash(path: str, spec: ImageSpec) -> str:
        if path not in hashes:
            data = sources.read(path)
            if _is_requirements(path, spec):
                data = normalize_requirements(data.decode("utf-8", "replace")).encode()
            hashes[path] = hashlib.sha256(data).hexdigest()
        return hashes[path]

    result: dict[str, Fingerprint] = {}
    for name in build_order(config):
        spec = config.image(name)
        parent = result[spec.parent].digest if spec.parent else ""
        paths = _input_files(spec, files, present)
        used = tuple((p, content_hash(p, spec)) for p in paths)
        result[name] = Fingerprint(image=name, digest=_digest(spec, used, parent), files=used)
    return result


def _digest(spec: ImageSpec, files: Sequence[tuple[str, str]], parent: str) -> str:
    lines = [SCHEME, f"context {spec.context}", f"target {spec.target or ''}", f"parent {parent}"]
    lines += [f"file {path} {digest}" for path, digest in files]
    lines += [f"arg {key}={value}" for key, value in spec.build_args]
    lines += [f"platform {platform}" for platform in sorted(spec.platforms)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _input_files(spec: ImageSpec, files: Sequence[str], present: frozenset[str]) -> tuple[str, ...]:
    """The Dockerfile, its ignore files, wheels' requirements and every file the input globs match."""
    fixed = [spec.dockerfile, spec.dockerignore, _context_ignore(spec), *spec.wheels]
    chosen = {p for p in fixed if p in present}
    if spec.dockerfile not in chosen:
        raise ConfigError(CONFIG_NAME, f"image {spec.name!r}: {spec.dockerfile} is ignored by git or missing; commit it or fix the path")
    for pattern in spec.inputs:
        matcher = pathspec.GitIgnoreSpec.from_lines([pattern])
        matched = [p for p in files if matcher.match_file(p)]
        if not matched:
            raise ConfigError(CONFIG_NAME, f"image {spec.name!r}: input {pattern!r} matches no file; fix the pattern or remove it")
        chosen.update(matched)
    return tuple(sorted(chosen))


def _context_ignore(spec: ImageSpec) -> str:
    return ".dockerignore" if spec.context == "." else f"{spec.context}/.dockerignore"


def _is_requirements(path: str, spec: ImageSpec) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path in spec.wheels or (name.startswith("requirements") and name.endswith(".txt"))

