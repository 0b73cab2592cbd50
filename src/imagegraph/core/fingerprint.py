"""Content fingerprints: the identity of an image before it is built.

An image's fingerprint hashes everything that decides its content: the
Dockerfile, the one ignore file the builder reads, the declared inputs it lets through, the
wheels' requirements and the Python version that picks the wheels, build
args, platforms, target stage, and the parent's fingerprint (a Merkle chain,
so a change to the base changes every child). The files it covers are exactly
the files the build receives (:mod:`imagegraph.adapters.context` assembles them).

Files enter by their content id: git's blob id (with the file mode), which git
already holds for every committed file, so fingerprinting a large checkout
reads almost nothing from disk. The files declared as wheel requirements are
the exception: they are read as pip reads them (:func:`normalize_requirements`),
so only a change pip would see counts. Any other file, whatever its name,
counts byte for byte.
Paths are relative to the project root, so two clones of the same commit give
the same fingerprints wherever they live and whichever machine holds them.
"""

from __future__ import annotations

import bisect
import hashlib
import posixpath
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .config import Config, ImageSpec
from .defaults import CONFIG_NAME
from .dockerignore import context_excludes
from .errors import ConfigError
from .graph import build_order
from .links import LINK_MODE
from .values import shown

# pathspec (input globs) and packaging (requirements as pip reads them) load when a fingerprint is computed,
# not when a plan finds the fingerprints of unchanged content already known (see imagegraph.adapters.inputcache).
if TYPE_CHECKING:
    import pathspec
    from packaging.requirements import Requirement

__all__ = [
    "Fingerprint",
    "Fingerprinter",
    "InputFiles",
    "LargeInput",
    "Sources",
    "fingerprint_images",
    "ignore_file",
    "images_matching",
    "input_files",
    "large_inputs",
    "normalize_requirements",
]

SCHEME = "imagegraph-fingerprint/3"
#: An input at least this large is named in a warning: every build copies it into the image's context, and hashes it while
#: git's index cannot say its id (uncommitted).
LARGE_INPUT_BYTES = 100_000_000
#: The content id prefix of a wheel requirements file, hashed as pip reads it.
REQUIREMENTS_ID = "requirements"
TAG_LENGTH = 16
#: The mode git gives a submodule: a content id ``"160000 <commit>"`` names a commit of another repository, none of its files
#: (a link's is :data:`imagegraph.core.links.LINK_MODE`, ``"120000 <blob of its target's name>"``).
GITLINK_MODE = "160000"


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

    def to_dict(self) -> dict[str, object]:
        return {"digest": self.digest, "files": [list(pair) for pair in self.files]}

    @staticmethod
    def from_dict(image: str, data: Mapping[str, object]) -> Fingerprint:
        """The fingerprint :meth:`to_dict` wrote; ValueError when ``data`` is not one."""
        digest, files = data["digest"], data["files"]
        if not isinstance(digest, str) or not isinstance(files, list):
            raise ValueError(f"not a fingerprint of {image}")
        pairs = tuple((str(path), str(content)) for path, content in files)
        return Fingerprint(image=image, digest=digest, files=pairs)


@dataclass(frozen=True)
class InputFiles:
    """What an image is made of, as paths: the fixed files and the files its globs match."""

    fixed: tuple[str, ...]
    matched: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(sorted({*self.fixed, *self.matched}))


@dataclass(frozen=True)
class LargeInput:
    """An input file of :data:`LARGE_INPUT_BYTES` or more, and the images it goes into."""

    path: str
    size: int
    images: tuple[str, ...]

    def __str__(self) -> str:
        size = f"{self.size / 1e9:.1f} GB" if self.size >= 1e9 else f"{self.size / 1e6:.0f} MB"
        return (f"{self.path} is {size}, an input of {', '.join(self.images)}: every build copies it into the context (and hashes it "
                "while it is uncommitted); if no image needs it, leave it out of inputs: in images.yaml or list it in the .dockerignore")


def large_inputs(fingerprints: Mapping[str, Fingerprint], size: Callable[[str], int],
                 limit: int = LARGE_INPUT_BYTES) -> tuple[LargeInput, ...]:
    """Every input of ``limit`` bytes or more, once, with the images that take it (``size`` tells a path's bytes)."""
    images: dict[str, list[str]] = {}
    for name, fingerprint in fingerprints.items():
        for path, _ in fingerprint.files:
            images.setdefault(path, []).append(name)
    sizes = {path: size(path) for path in images}
    return tuple(LargeInput(path, sizes[path], tuple(names)) for path, names in sorted(images.items()) if sizes[path] >= limit)


def normalize_requirements(text: str) -> str:
    """The requirements as pip reads them: one canonical line per requirement or option, sorted, no duplicates.

    Comments, blank lines, continuations, spacing, order, name case and
    ``-``/``_``/``.`` spellings, specifier order, ``==1.10`` against
    ``==1.10.0``, marker quoting: none of them count. A line ``packaging``
    cannot read is kept as it is (spacing aside), so a change to it counts.
    """
    return "".join(f"{line}\n" for line in sorted({_pip_line(line) for line in _logical_lines(text)}))


def _logical_lines(text: str) -> list[str]:
    """pip's reading order: join ``\\`` continuations, then drop comments (``#`` at the start or after a space)."""
    joined = re.sub(r"\\\r?\n", "", text)
    lines = (re.sub(r"(^|\s+)#.*$", "", raw).strip() for raw in joined.splitlines())
    return [line for line in lines if line]


_SHORT_OPTIONS = {"-i": "--index-url", "-f": "--find-links", "-r": "--requirement", "-c": "--constraint", "-e": "--editable"}


def _pip_line(line: str) -> str:
    tokens = line.split()
    cut = next((i for i, token in enumerate(tokens) if token.startswith("-")), len(tokens))
    options = _options(tokens[cut:])
    if cut == 0:
        return " ".join(options)
    requirement = " ".join(tokens[:cut])
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion

    try:
        parsed = _requirement(Requirement(requirement))
    except (InvalidRequirement, InvalidVersion):
        parsed = requirement  # a path or an archive pip reads its own way: the text itself counts
    return " ".join([parsed, *sorted(options)])


def _options(tokens: Sequence[str]) -> list[str]:
    """``--index-url=X``, ``--index-url X``, ``-i X`` and ``-iX`` alike, as ``--index-url X``."""
    out: list[str] = []
    for token in tokens:
        if token[:2] in _SHORT_OPTIONS:
            rest = token[2:].lstrip("=")
            out.append(f"{_SHORT_OPTIONS[token[:2]]} {rest}" if rest else _SHORT_OPTIONS[token[:2]])
        elif token.startswith("-"):
            name, eq, value = token.partition("=")
            out.append(f"{name} {value}" if eq else name)
        elif out:
            out[-1] = f"{out[-1]} {token}"
        else:
            out.append(token)
    return out


def _requirement(req: Requirement) -> str:
    from packaging.utils import canonicalize_name

    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" if req.extras else ""
    target = f" @ {req.url}" if req.url else ",".join(sorted(_specifier(s.operator, s.version) for s in req.specifier))
    marker = f"; {req.marker}" if req.marker else ""
    return f"{canonicalize_name(req.name)}{extras}{target}{marker}"


def _specifier(operator: str, version: str) -> str:
    """One specifier as pip compares it: ``==1.10`` is ``==1.10.0``; ``~=1.4`` is not ``~=1.4.0``; ``===`` is literal."""
    from packaging.utils import canonicalize_version
    from packaging.version import Version

    if operator == "===":
        return f"==={version}"
    if version.endswith(".*"):
        return f"{operator}{Version(version[:-2])}.*"
    return f"{operator}{canonicalize_version(version, strip_trailing_zero=operator != '~=')}"


def fingerprint_images(config: Config, sources: Sources, *, strict: bool = True) -> dict[str, Fingerprint]:
    """Fingerprint every image, parents first.

    ``strict`` makes a missing Dockerfile or a glob that matches nothing an
    error (the working tree); for an older commit (``strict=False``) they are
    simply what that commit held.
    """
    fingerprinter = Fingerprinter(sources, strict=strict, python=config.python)
    result: dict[str, Fingerprint] = {}
    for name in build_order(config):
        spec = config.image(name)
        result[name] = fingerprinter.image(spec, result[spec.parent].digest if spec.parent else "")
    return result


class Fingerprinter:
    """Fingerprints images one at a time over one tree, identifying each file once."""

    def __init__(self, sources: Sources, *, strict: bool = True, python: str) -> None:
        self.sources = sources
        self.strict = strict
        #: images.yaml's `python:`: with the platforms, it picks the wheels an image with `wheels:` installs.
        self.python = python
        self._paths = sources.paths()
        self._present = frozenset(self._paths)
        self._ids: dict[tuple[str, bool], str] = {}
        self._oids: dict[str, str] = {}
        self._ignores: dict[str, Callable[[str], bool]] = {}
        self._read: dict[str, str] = {}

    def image(self, spec: ImageSpec, parent_digest: str) -> Fingerprint:
        paths = input_files(spec, self._paths, self._present, strict=self.strict).all
        if self.strict:
            self._refuse_read_through_links(spec)
        chosen = self._sent(spec, paths)
        used = tuple((p, self._content_id(p, spec)) for p in chosen)
        if self.strict:
            _refuse_submodules(spec, used, ignore_file(spec, self._present))
        return Fingerprint(image=spec.name, digest=_digest(spec, used, parent_digest, self.python), files=used)

    def _refuse_read_through_links(self, spec: ImageSpec) -> None:
        """Refuse a Dockerfile, ignore file or wheels file that is a symbolic link, or lies under one.

        These are the files read for their content (the builder's client reads
        the Dockerfile and its ignore file on the host, imagegraph reads the
        requirements), so a link would be followed, to a file git lists under
        another path: a change there would leave the image's inputs as git
        lists them unchanged while its content moved on, and the context, which
        gets links as links, would hold a link to a file it lacks. Any other
        input that is a link enters as the link (its target's name, as git
        keeps it) and reaches the context as one: consistent as it is.
        """
        for role, path in (("Dockerfile", spec.dockerfile), ("ignore file", ignore_file(spec, self._present)),
                           *(("wheels file", wheels) for wheels in spec.wheels)):
            if path in self._present:
                if self._oid(path).startswith(f"{LINK_MODE} "):
                    raise ConfigError(CONFIG_NAME, f"image {spec.name!r}: {role} {shown(path)} is a symbolic link, and a change to the file it "
                                                   "points to would not show as a change to this image's inputs; replace the link with a "
                                                   "copy of its target, or name the target in images.yaml")
                continue
            folder = posixpath.dirname(path)
            while folder:
                if folder in self._present and self._oid(folder).startswith((f"{LINK_MODE} ", f"{GITLINK_MODE} ")):
                    kind = "a symbolic link" if self._oid(folder).startswith(LINK_MODE) else "a git submodule"
                    raise ConfigError(CONFIG_NAME, f"image {spec.name!r}: {role} {shown(path)} lies under {shown(folder)}, {kind}, whose files "
                                                   "git does not list in this repository; name the file by a path git lists in images.yaml, "
                                                   "or replace the link with the folder itself")
                folder = posixpath.dirname(folder)

    def _sent(self, spec: ImageSpec, paths: Sequence[str]) -> tuple[str, ...]:
        """The declared files the builder receives: those inside the context that its ignore file lets through.

        A declared file the ignore file drops can reach no image, so it is
        neither hashed nor sent. The Dockerfile, the ignore file and the
        wheels' requirements always count (the wheels they pick are no file
        here), and a file outside the context counts as declared.
        """
        ignore = ignore_file(spec, self._present)
        if ignore not in self._present:
            return tuple(paths)
        excluded = self._ignores.get(ignore)
        if excluded is None:
            excluded = self._ignores[ignore] = context_excludes(self.sources.read(ignore).decode("utf-8", "replace").splitlines())
        prefix = "" if spec.context in ("", ".") else spec.context.strip("/") + "/"
        always = {spec.dockerfile, ignore, *spec.wheels}
        return tuple(p for p in paths if p in always or not p.startswith(prefix) or not excluded(p[len(prefix):]))

    def _content_id(self, path: str, spec: ImageSpec) -> str:
        # one path, two ids: a wheel requirements file of one image may be a plain (copied) input of another
        key = (path, path in spec.wheels)
        known = self._ids.get(key)
        if known is None:
            known = _requirements_id(self._requirements(path)) if path in spec.wheels else self._oid(path)
            self._ids[key] = known
        if path in spec.wheels and self.strict:
            _refuse_includes(spec, path, self._requirements(path))
        return known

    def _oid(self, path: str) -> str:
        """git's content id of a path (``"<mode> <blob id>"``), asked once."""
        known = self._oids.get(path)
        if known is None:
            known = self._oids[path] = self.sources.oid(path)
        return known

    def _requirements(self, path: str) -> str:
        """A wheels file as pip reads it, read once."""
        known = self._read.get(path)
        if known is None:
            known = self._read[path] = normalize_requirements(self.sources.read(path).decode("utf-8", "replace"))
        return known


def _refuse_submodules(spec: ImageSpec, used: Sequence[tuple[str, str]], ignore: str) -> None:
    """Refuse a submodule among an image's inputs: its files are another repository's, so neither fingerprinted nor sent.

    git lists a submodule as one entry, the commit it records; the files
    checked out under it are in neither this repository's index nor its
    history (a CI clone usually has none of them), and a checkout at another
    commit is not even a change git shows. Hashing the recorded commit would
    name content the context cannot be assembled from, so the submodule is
    refused rather than followed.
    """
    for path, content_id in used:
        if content_id.startswith(f"{GITLINK_MODE} "):
            folder = path.rstrip("/")
            prefix = "" if spec.context in ("", ".") else spec.context.strip("/") + "/"
            drop = f", list {shown(folder[len(prefix):])} in {ignore}" if folder.startswith(prefix) else ""
            raise ConfigError(CONFIG_NAME, f"image {spec.name!r}: {shown(folder)} is a git submodule (or a repository of its own) among its "
                                           f"inputs, whose files this repository does not hold; narrow the inputs: glob to leave it out{drop}, "
                                           "or commit its files into this repository")


def _refuse_includes(spec: ImageSpec, path: str, requirements: str) -> None:
    """A wheels file may include only another of the image's wheels files: nothing else is fingerprinted, fetched or mounted."""
    folder = posixpath.dirname(path)
    for line in requirements.splitlines():
        option, _, included = line.partition(" ")
        if option in ("--requirement", "--constraint") and posixpath.normpath(posixpath.join(folder, included)) not in spec.wheels:
            raise ConfigError(CONFIG_NAME, f"image {spec.name!r}: wheels: {path} includes another file ({line}), which is not among its wheels; "
                                           "copy those requirements into it, or list that file under wheels: too")


def requirements_id(data: bytes) -> str:
    """The content id of a wheel requirements file: its requirements as pip reads them."""
    return _requirements_id(normalize_requirements(data.decode("utf-8", "replace")))


def _requirements_id(normalized: str) -> str:
    return f"{REQUIREMENTS_ID} {hashlib.sha256(normalized.encode()).hexdigest()}"


def input_files(spec: ImageSpec, paths: Sequence[str], present: frozenset[str] | None = None, *, strict: bool = True) -> InputFiles:
    """The Dockerfile, its ignore files, the wheels' requirements and every file the input globs match.

    ``paths`` must be sorted: globs with a literal directory prefix (most of
    them, e.g. ``src/scorer/**``) only look at that slice of the tree.
    """
    present = present if present is not None else frozenset(paths)
    fixed = tuple(p for p in _fixed_paths(spec, present) if p in present)
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
    folder = _whole_folder(pattern)
    if folder is not None:  # `src/scorer/**`: the slice is the answer, no path needs a look
        lo = bisect.bisect_left(paths, folder)
        return list(paths[lo:bisect.bisect_left(paths, folder[:-1] + chr(ord(folder[-1]) + 1))])
    matcher = _compiled(pattern)
    prefix = _literal_prefix(pattern)
    if prefix:
        lo = bisect.bisect_left(paths, prefix)
        hi = bisect.bisect_left(paths, prefix[:-1] + chr(ord(prefix[-1]) + 1))
        candidates: Sequence[str] = paths[lo:hi]
    else:
        candidates = paths
    return [p for p in candidates if matcher.match_file(p)]


def matches(spec: ImageSpec, path: str, present: Collection[str] | None = None) -> bool:
    """Whether a single path is one of the image's inputs (used for paths that no longer exist, e.g. deleted).

    ``present`` are the paths of the tree now: the context's .dockerignore
    counts only for an image without its own ``<Dockerfile>.dockerignore``
    (None: not known, so it counts).
    """
    if path in _fixed_paths(spec, present):
        return True
    return any(path.startswith(folder) if (folder := _whole_folder(pattern)) is not None else _compiled(pattern).match_file(path)
               for pattern in spec.inputs)


def images_matching(specs: Sequence[ImageSpec], present: Collection[str] | None = None) -> Callable[[str], tuple[str, ...]]:
    """For many paths at once: ``which(path)`` names the images (in ``specs`` order) that :func:`matches` says take it.

    The fixed files and the whole-folder globs (``src/scorer/**``) of every
    image go into look-up tables once, so a path costs a look-up per folder
    it sits in, plus a match per other glob; not a test per image, nor a
    membership test of ``present`` per path (each image's ignore file is
    looked up once here).
    """
    order = {spec.name: index for index, spec in enumerate(specs)}
    exact: dict[str, set[str]] = {}
    folders: dict[str, set[str]] = {}
    others: list[tuple[str, str]] = []
    for spec in specs:
        for path in _fixed_paths(spec, present):
            exact.setdefault(path, set()).add(spec.name)
        for pattern in spec.inputs:
            folder = _whole_folder(pattern)
            if folder is not None:
                folders.setdefault(folder, set()).add(spec.name)
            else:
                others.append((spec.name, pattern))

    def which(path: str) -> tuple[str, ...]:
        found = set(exact.get(path, ()))
        at = path.find("/")
        while at != -1 and folders:
            found.update(folders.get(path[:at + 1], ()))
            at = path.find("/", at + 1)
        found.update(name for name, pattern in others if name not in found and _compiled(pattern).match_file(path))
        return tuple(sorted(found, key=order.__getitem__))

    return which


def _whole_folder(pattern: str) -> str | None:
    """``src/scorer/`` for ``src/scorer/**`` or ``/src/scorer/**``: a pattern that matches exactly everything below a folder.

    None for any other pattern (wildcards or escapes before the ``/**``, a
    negation, a bare ``**``): those go through the gitignore matcher.
    """
    if not pattern.endswith("/**") or pattern.startswith("!"):
        return None
    folder = pattern[:-2].removeprefix("/")  # one slash anchors; a second is a path part of its own
    if folder in ("", "/") or any(char in folder for char in "*?[]\\") or folder.startswith("#"):
        return None
    if any(part in ("", ".", "..") for part in folder[:-1].split("/")):
        return None
    return folder


_SPECS: dict[str, pathspec.GitIgnoreSpec] = {}


def _compiled(pattern: str) -> pathspec.GitIgnoreSpec:
    spec = _SPECS.get(pattern)
    if spec is None:
        import pathspec

        spec = _SPECS[pattern] = pathspec.GitIgnoreSpec.from_lines([pattern])
    return spec


def _literal_prefix(pattern: str) -> str:
    """``src/scorer/`` for ``src/scorer/**``; "" when the pattern may match at any depth (gitignore rules)."""
    body = pattern.lstrip("/")
    if "/" not in body.rstrip("/") and not pattern.startswith("/"):
        return ""  # a pattern without an inner slash matches in every directory
    literal = re.split(r"[*?\[\\]", body, maxsplit=1)[0]
    return literal[: literal.rfind("/") + 1]


def _fixed_paths(spec: ImageSpec, present: Collection[str] | None) -> tuple[str, ...]:
    """The files every image is made of whatever its globs say: Dockerfile, the ignore file, wheels' requirements.

    The image's own ignore file always counts (adding or deleting it changes
    what the builder reads); the context's only while the own one is absent.
    """
    context = () if present is not None and spec.dockerignore in present else (context_ignore(spec),)
    return (spec.dockerfile, spec.dockerignore, *context, *spec.wheels)


def ignore_file(spec: ImageSpec, present: Collection[str]) -> str:
    """The one ignore file the builder reads: ``<Dockerfile>.dockerignore`` when it exists, else the context's .dockerignore."""
    return spec.dockerignore if spec.dockerignore in present else context_ignore(spec)


def context_ignore(spec: ImageSpec) -> str:
    """The context's own .dockerignore (BuildKit uses it when <Dockerfile>.dockerignore is absent)."""
    return ".dockerignore" if spec.context == "." else f"{spec.context}/.dockerignore"


def _digest(spec: ImageSpec, files: Sequence[tuple[str, str]], parent: str, python: str) -> str:
    lines = [SCHEME, f"context {spec.context}", f"target {spec.target or ''}", f"parent {parent}"]
    if spec.wheels:
        lines.append(f"wheels python {python}")
    lines += [f"file {_one_line(path)} {digest}" for path, digest in files]
    lines += [f"arg {key}={value}" for key, value in spec.build_args]
    lines += [f"platform {platform}" for platform in sorted(spec.platforms)]
    if spec.compression.type != "gzip":
        # another type makes other layers, which not every client can pull: an image pushed as gzip is no answer to a zstd
        # one, nor the other way round. The level only trades size for time (any client reads any level): it does not count,
        # and gzip adds no line, so the fingerprints of images that say nothing stay as they were.
        lines.append(f"compression {spec.compression.type}")
    # A file name is any bytes but NUL and "/" (surrogate-escaped where they are not UTF-8, as git's listing was read).
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def _one_line(path: str) -> str:
    """A file name as one line of the digest's text: a newline in a name must not forge a line of its own
    (``a 100644 <id>\\nfile b`` would read as two files). Names without a backslash or newline are unchanged."""
    return path.replace("\\", "\\\\").replace("\n", "\\n")

