"""The values a user gives imagegraph, parsed once at the edge into typed values.

Every parser takes the text and where it came from (``--registry``,
``$IMAGEGRAPH_PLATFORMS``, ``images.yaml:12``) and either returns a typed
value or raises :class:`~imagegraph.core.errors.InputError`: one line that names
the value, its origin and the fix. Code past the edge takes these values and
never parses the text again.

Names follow the OCI distribution spec's reference grammar (the one the
``docker`` CLI and every registry apply); platforms are the ones BuildKit
builds for.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from .errors import InputError

__all__ = [
    "KNOWN_PLATFORMS",
    "ImageRef",
    "Platform",
    "RegistryAddress",
    "closest",
    "did_you_mean",
    "escaped",
    "image_name_of",
    "is_digest",
    "is_loopback",
    "is_tag",
    "login_domain",
    "parse_build_arg_name",
    "parse_builder_name",
    "parse_count",
    "parse_duration",
    "parse_image_name",
    "parse_namespace",
    "parse_platform",
    "parse_platforms",
    "parse_python_version",
    "parse_reference",
    "parse_registry",
    "parse_runner_label",
    "parse_tag",
    "redact_url",
    "redact_urls",
    "shown",
    "split_list",
]

# distribution/reference grammar: path components are lowercase; a domain is DNS-like, an IPv4 or a bracketed IPv6.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# algorithm ":" hex, as the reference grammar has it; sha256 (the one registries use) is 64 lowercase hex digits, as go-digest checks.
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_NAME = 255
# buildx: builder names start with a letter; then letters, digits, '.', '-', '_'.
_BUILDER = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A CI runner's label as runs-on names it (GitHub's ubuntu-24.04-arm, a self-hosted runner's own): a letter or digit first,
# so it can never read as an option, then letters, digits, '.', '_', '-'; no blank, comma, quote, `${{` or control character.
_RUNNER_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_PYTHON = re.compile(r"3\.(0|[1-9][0-9]?)")

def is_digest(text: str) -> bool:
    """Whether ``text`` is a digest as a reference may carry it (``algorithm:hex``; a sha256 one exactly 64 lowercase hex digits)."""
    return bool(_DIGEST.fullmatch(text)) and (not text.startswith("sha256:") or bool(_SHA256.fullmatch(text)))


#: os/arch[/variant] that BuildKit builds images for.
KNOWN_PLATFORMS = (
    "linux/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/amd64/v4",
    "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5",
    "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64",
    "linux/mips64le", "linux/mips64", "linux/loong64",
    "windows/amd64", "windows/arm64",
)
#: Names other tools use for a platform, and the one BuildKit knows it by.
_PLATFORM_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "x64": "amd64", "aarch64": "arm64", "armhf": "arm/v7", "armel": "arm/v6",
    "arm": "arm/v7", "arm64/v8": "arm64", "i386": "386", "i686": "386", "x86": "386",
}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing when none is close."""
    close = closest(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word``, or None when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def escaped(text: str) -> str:
    """``text`` as a terminal may show it: every character Python does not call printable as its escape (``\\x1b``, ``\\n``, ``\\u202e``).

    That is C0 and DEL, C1 (``\\x9b`` starts a control sequence on some
    terminals, as ESC [ does), line and paragraph separators, and format
    characters (bidi overrides such as U+202E, zero-width ones): whatever
    could move the cursor, clear the screen, set a title, start a line of its
    own or reorder what a reader sees. A file name, a tag or a CI variable
    printed through this is seen, never obeyed. The same rule as :func:`shown`.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def shown(text: str, limit: int = 80) -> str:
    """A value as a message quotes it: repr (so blanks and control characters show, escaped as :func:`escaped` does), cut to ``limit``."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else f"{quoted[:limit - 4]}...{quoted[0]}"


#: ``scheme://`` at the start of a URL (any case: ``HTTPS://`` is the same scheme).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: URLs inside free text (a git or BuildKit message): from the scheme to the next blank or quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
REDACTED = "***"


def redact_url(text: str) -> str:
    """A URL, git remote or registry address with its secrets replaced by ``***``: the userinfo, the query, the fragment.

    Every form a credential travels in: ``https://user:token@host/path``,
    a userinfo holding another ``@`` (``https://u:p@x@host``: everything up
    to the last ``@`` goes), percent-encoded userinfo, a user alone
    (``http://token@host``), ``ssh://git@host/path``, the scp-like
    ``user@host:path``, a bare ``user:pass@host`` and any case of scheme;
    ``?private_token=...`` and ``#...`` are replaced whole. Text without any
    of these comes back unchanged.
    """
    scheme = _SCHEME.match(text)
    head, rest = (text[:scheme.end()], text[scheme.end():]) if scheme else ("", text)
    rest, query, fragment = _cut(rest)
    # Everything up to the last '@' goes: a password may hold a '/' or an '@' of its own, and git and curl split there too.
    at = rest.rfind("@")
    if at >= 0:
        rest = f"{REDACTED}@{rest[at + 1:]}"
    return head + rest + (f"?{REDACTED}" if query is not None else "") + (f"#{REDACTED}" if fragment is not None else "")


def _cut(text: str) -> tuple[str, str | None, str | None]:
    """(before, query, fragment) of a URL's text after its scheme; None for a part that is not there."""
    text, hash_, fragment = text.partition("#")
    text, mark, query = text.partition("?")
    return text, query if mark else None, fragment if hash_ else None


def redact_urls(text: str) -> str:
    """Free text (an error, a log line) with :func:`redact_url` applied to every ``scheme://`` URL in it."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text) if "://" in text else text


def _refuse_blank(text: str, origin: str, example: str) -> None:
    if not text.strip():
        raise InputError(origin, f"is empty; give a value, e.g. {example}")
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise InputError(origin, f"{shown(text)} contains whitespace; write it without blanks, e.g. {example}")
    if not text.isprintable():
        raise InputError(origin, f"{shown(text)} contains control characters; e.g. {example}")


@dataclass(frozen=True)
class RegistryAddress:
    """Where images are pushed: ``host[:port][/path]``, e.g. ``127.0.0.1:5000`` or ``ghcr.io/acme``."""

    host: str
    port: int | None = None
    #: Repository path prefix inside the registry (``acme`` of ``ghcr.io/acme``); "" for none.
    path: str = ""

    @property
    def domain(self) -> str:
        """``host[:port]``: what the registry's HTTP API is addressed by."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether the registry is on this machine, by :func:`is_loopback`'s rule (spoken to over plain HTTP)."""
        return is_loopback(self.host)

    def __str__(self) -> str:
        return "/".join(part for part in (self.domain, self.path) if part)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a registry's ``host[:port]``) is this machine: ``localhost``, an address in 127.0.0.0/8, or ``::1``.

    The rule containerd (and so BuildKit) applies before it speaks plain HTTP
    to a registry, and the ranges dockerd trusts for HTTP by default
    (127.0.0.0/8, and ``::1/128`` since Engine 27): ``::1`` counts bare,
    bracketed and with a port; ``localhost`` in any case, as DNS compares
    names. What only a resolver would call loopback does not count: the
    short form ``127.1``, ``0.0.0.0`` (no address of a peer), any other name.
    Saying no is the safe side: the registry is then asked over HTTPS.
    """
    text = host
    if text.startswith("["):  # [v6] or [v6]:port
        text, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit())):
            return False
    elif text.count(":") == 1:  # name:port or v4:port; two or more colons are a bare IPv6 address
        text, _, port = text.partition(":")
        if not (port.isascii() and port.isdigit()):
            return False
    if text.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if host.startswith("[") and address.version != 6:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1, as Go's net.IP sees it
    return (mapped or address).is_loopback


def login_domain(key: str) -> str:
    """The registry ``host[:port]`` a ``docker login`` entry names (a key of config.json's ``auths``), as the docker CLI reads the key; "" for none.

    The CLI writes ``host[:port]``, and once wrote ``https://host/v1/``: a
    leading ``http://`` or ``https://`` and any path are dropped, and the rest
    is read as a registry address (:func:`parse_registry`), so two keys for
    one registry give the same domain.
    """
    bare = key.removeprefix("http://").removeprefix("https://") if isinstance(key, str) else ""
    try:
        return parse_registry(bare.partition("/")[0], "docker config").domain
    except InputError:
        return ""


def parse_registry(text: str, origin: str, *, fallback: str = "images.yaml's") -> RegistryAddress:
    """``host[:port][/path]`` by the reference grammar; a URL scheme, credentials, an empty or a malformed host is refused.

    Every message quotes the value with its userinfo, query and fragment
    redacted (:func:`redact_url`): a password given in the wrong place is
    refused without being printed.
    """
    example = "127.0.0.1:5000 or ghcr.io/acme"
    safe = redact_url(text)
    scheme = _SCHEME.match(text)
    bare = _cut(text[scheme.end():] if scheme else text)[0]
    at = bare.rfind("@")
    fixed = bare[at + 1:].rstrip("/") or "127.0.0.1:5000"  # the value without scheme, userinfo, query or fragment
    if at >= 0:
        raise InputError(origin, f"{shown(safe)} has credentials in it (user:password@); give the registry alone, e.g. {shown(fixed)}, "
                                 f"and the credentials in IMAGEGRAPH_REGISTRY_USER/PASSWORD or with `docker login {fixed.partition('/')[0]}`")
    if scheme:
        raise InputError(origin, f"{shown(safe)} is a URL; give the registry without {scheme.group(0)}, e.g. {shown(fixed)} "
                                 "(loopback registries are spoken to over plain HTTP, others over HTTPS)")
    if safe != text:
        raise InputError(origin, f"{shown(safe)} has a query or fragment (? or #), which a registry address has not; e.g. {shown(fixed)}")
    if not text.strip():
        raise InputError(origin, f"is empty (an unset shell variable?); give a registry such as 127.0.0.1:5000, "
                                 f"or leave it out to use {fallback}")
    _refuse_blank(text, origin, example)
    domain, _, path = text.rstrip("/").partition("/")
    host, port = _split_port(domain, text, origin)
    if not (_IPV6.fullmatch(host) or all(_DOMAIN_LABEL.fullmatch(label) for label in host.split("."))):
        raise InputError(origin, f"{shown(text)}: {shown(host)} is not a host name or IP address; e.g. {example}")
    longest = max(host.split("."), key=len)
    if not _IPV6.fullmatch(host) and (len(longest) > 63 or len(host) > 253):
        what = f"a part of {len(longest)} characters (63 at most)" if len(longest) > 63 else f"{len(host)} characters (253 at most)"
        raise InputError(origin, f"{shown(text)}: the host name has {what}, more than DNS allows; e.g. {example}")
    if path and not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise InputError(origin, f"{shown(text)}: the path {shown(path)} must be lowercase letters, digits and . _ - between "
                                 f"them, parts split by '/'; e.g. {path.lower().strip('/._-') or 'acme'}")
    return RegistryAddress(host=host, port=port, path=path)


def _split_port(domain: str, text: str, origin: str) -> tuple[str, int | None]:
    host, colon, port_text = domain.rpartition(":") if not domain.endswith("]") else (domain, "", "")
    if not colon:
        return domain, None
    if not host:
        raise InputError(origin, f"{shown(text)} has no host before ':'; e.g. 127.0.0.1:5000")
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InputError(origin, f"{shown(text)}: port {shown(port_text)} is not a number from 1 to 65535; e.g. 127.0.0.1:5000")
    return host, int(port_text)


def parse_namespace(text: str, origin: str) -> str:
    """A repository path prefix such as ``acme`` or ``acme/images``; "" for none."""
    text = text.strip("/")
    if text and not all(_COMPONENT.fullmatch(part) for part in text.split("/")):
        fixed = "/".join(filter(None, (re.sub(r"[^a-z0-9._-]+", "-", part.lower()).strip("._-") for part in text.split("/"))))
        raise InputError(origin, f"{shown(text)} is not a registry namespace: lowercase letters, digits and . _ - between them, "
                                 f"parts split by '/'; e.g. {shown(fixed or 'acme')}")
    return text


def parse_image_name(text: str, origin: str) -> str:
    """An image's name, the last part of its repository: ``base``, ``my-app``."""
    if not _COMPONENT.fullmatch(text):
        raise InputError(origin, f"{shown(text)} is not an image name: lowercase letters and digits, with . _ - between them (a repository name)")
    return text


def check_repository(registry: RegistryAddress, namespace: str, name: str, origin: str) -> None:
    """Refuse a full repository name longer than the 255 characters registries accept."""
    full = "/".join(part for part in (registry.path, namespace, name) if part)
    if len(full) > _MAX_NAME:
        raise InputError(origin, f"repository {full[:40]}... is {len(full)} characters, registries accept {_MAX_NAME}; shorten the namespace")


def image_name_of(repository: str) -> str:
    """The image's name in a repository path (``base`` of ``acme/imagegraph/base``): its last part."""
    return repository.rpartition("/")[2]


@dataclass(frozen=True)
class ImageRef:
    """An image reference, ``[registry/]repository[:tag][@digest]``, read once by :meth:`parse` and handed on as this value.

    ``registry`` is the domain only (``host[:port]``); a registry's path
    prefix (``acme`` of ``ghcr.io/acme``) is part of ``repository``, as the
    registry's HTTP API addresses it. ``str()`` gives the reference back.
    """

    registry: RegistryAddress | None
    #: The path inside the registry: ``imagegraph/base``.
    repository: str
    tag: str = ""
    digest: str = ""

    def __post_init__(self) -> None:
        if self.registry is not None and self.registry.path:
            raise ValueError(f"an image reference's registry is a domain alone; {self.registry.path!r} belongs to the repository")

    @classmethod
    def parse(cls, text: str, origin: str = "image reference") -> ImageRef:
        """``text`` by the distribution spec's reference grammar, as ``docker pull`` reads it; one :class:`InputError` line when it is none.

        The first part is the registry when it has a ``.`` or a ``:``, is
        ``localhost`` or has a capital letter (``127.0.0.1:5000/ns/app``,
        ``[::1]:5000/app``, ``ghcr.io/acme/app``); otherwise the whole name is
        the repository (``imagegraph-devcontainer``, ``r/app``).
        """
        example = "127.0.0.1:5000/imagegraph/app:edge"
        _refuse_blank(text, origin, example)
        if "://" in text:
            raise InputError(origin, f"{shown(redact_url(text))} is a URL; an image reference has no scheme, e.g. {example}")
        name, at, digest = text.partition("@")
        if at and not is_digest(digest):
            raise InputError(origin, f"{shown(text)}: {shown(digest)} is not a digest; write algorithm:hex, "
                                     "e.g. @sha256: and 64 lowercase hex digits")
        first, slash, rest = name.partition("/")
        registry = None
        if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
            registry = parse_registry(first, origin)
            if registry.path or not rest:
                raise InputError(origin, f"{shown(text)} names a registry but no repository; e.g. {example}")
        else:
            rest = name
        repository, colon, tag = rest.rpartition(":") if ":" in rest.rpartition("/")[2] else (rest, "", "")
        if not repository or not all(_COMPONENT.fullmatch(part) for part in repository.split("/")):
            raise InputError(origin, f"{shown(text)} is not an image reference: lowercase path parts split by '/' "
                                     f"(letters, digits, . _ - between them), then an optional :tag; e.g. {example}")
        if colon:
            parse_tag(tag, origin)
        if len(name) - len(colon + tag) > _MAX_NAME:
            raise InputError(origin, f"{shown(text, 60)}: the name is longer than the {_MAX_NAME} characters registries accept")
        return cls(registry, repository, tag, digest)

    @property
    def domain(self) -> str:
        """``host[:port]`` of the registry, "" when the reference names none."""
        return self.registry.domain if self.registry is not None else ""

    @property
    def name(self) -> str:
        """The image's name: the repository's last part (``base``)."""
        return image_name_of(self.repository)

    @property
    def reference(self) -> str:
        """What a manifest is fetched by: the digest when there is one, else the tag."""
        return self.digest or self.tag

    @property
    def short(self) -> str:
        """``base:tag`` (or ``base@sha256:...``): how a table names the image."""
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag: str) -> ImageRef:
        """This repository with ``tag`` (and no digest)."""
        return ImageRef(self.registry, self.repository, tag)

    def __str__(self) -> str:
        name = "/".join(part for part in (self.domain, self.repository) if part)
        return name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str, origin: str) -> str:
    """An image reference ``[registry/]path[:tag]`` as `docker tag` takes it (a name to give, so no digest), e.g. ``imagegraph-devcontainer:local``."""
    if ImageRef.parse(text, origin).digest:
        raise InputError(origin, f"{shown(text)} has a digest (@...), which a name to tag with cannot have; e.g. imagegraph-devcontainer:local")
    return text


def is_tag(text: str) -> bool:
    """Whether ``text`` is a tag by the distribution spec's grammar."""
    return _TAG.fullmatch(text) is not None


def parse_tag(text: str, origin: str) -> str:
    """A tag: letters, digits, ``_ . -``, not starting with ``.`` or ``-``, at most 128 characters."""
    if not is_tag(text):
        raise InputError(origin, f"{shown(text)} is not a tag: up to 128 letters, digits, _ . - and not starting with . or -; e.g. edge")
    return text


@dataclass(frozen=True, order=True)
class Platform:
    """``os/arch[/variant]``, one BuildKit knows."""

    os: str
    arch: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.arch, self.variant) if part)


def parse_platform(text: str, origin: str) -> Platform:
    if text in KNOWN_PLATFORMS:
        return Platform(*text.split("/"))
    _refuse_blank(text, origin, "linux/amd64")
    os_name, _, arch = text.lower().partition("/")
    alias = _PLATFORM_ALIASES.get(arch)
    if alias and f"{os_name}/{alias}" in KNOWN_PLATFORMS:
        hint = f" (BuildKit calls it {os_name}/{alias})"
    else:
        hint = did_you_mean(text, KNOWN_PLATFORMS) or did_you_mean(text.lower(), KNOWN_PLATFORMS)
    raise InputError(origin, f"{shown(text)} is not a platform BuildKit builds for{hint}; use os/arch[/variant], "
                             "e.g. linux/amd64, linux/arm64 or linux/arm/v7")


def parse_platforms(texts: Iterable[str], origin: str) -> tuple[Platform, ...]:
    """Platforms in the order given, duplicates dropped; at least one."""
    platforms = tuple(dict.fromkeys(parse_platform(text, origin) for text in texts))
    if not platforms:
        raise InputError(origin, "names no platform; give at least one, e.g. linux/amd64")
    return platforms


def split_list(text: str, origin: str, example: str) -> tuple[str, ...]:
    """A comma list (``a,b``) of non-empty items; an empty item (``a,,b``, ``''``) is refused, not skipped."""
    items = tuple(item.strip() for item in text.split(","))
    if not all(items):
        raise InputError(origin, f"{shown(text)} has an empty item; e.g. {example}")
    return items


def parse_count(text: str | int, origin: str, *, minimum: int = 1, example: str = "2") -> int:
    """A whole number of at least ``minimum`` (jobs, reports, versions kept)."""
    value = text if isinstance(text, int) and not isinstance(text, bool) else None
    if isinstance(text, str) and text.strip().isascii() and text.strip().isdigit():
        value = int(text.strip())
    if value is None or value < minimum:
        raise InputError(origin, f"{shown(str(text))} is not a whole number of at least {minimum}; e.g. {example}")
    return value


_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, origin: str, *, example: str = "1h") -> timedelta:
    """A span of time: a whole number with s, m, h or d (``90s``, ``30m``, ``1h``, ``7d``); a bare number is seconds."""
    match = _DURATION.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if match is None:
        raise InputError(origin, f"{shown(str(text))} is not a duration; give a whole number with s, m, h or d, e.g. {example} (0 for none)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_builder_name(text: str, origin: str) -> str:
    """The form of a buildx builder name (whether it exists is the builder's to say)."""
    if not _BUILDER.fullmatch(text):
        raise InputError(origin, f"{shown(text)} is not a buildx builder name (a letter, then letters, digits, . _ -); "
                                 "`docker buildx ls` lists the builders")
    return text


def parse_runner_label(text: str, origin: str) -> str:
    """The form of a CI runner label (whether a runner carries it is the CI service's to say)."""
    if not _RUNNER_LABEL.fullmatch(text):
        raise InputError(origin, f"{shown(text)} is not a runner label (a letter or digit, then up to 99 letters, digits, . _ -); "
                                 "name the one label runs-on picks the runner by, e.g. ubuntu-24.04-arm")
    return text


def parse_build_arg_name(text: str, origin: str) -> str:
    if not _ARG_NAME.fullmatch(text):
        raise InputError(origin, f"{shown(text)} is not a build argument name (letters, digits and _, not starting with a digit), "
                                 "as `ARG NAME` declares it")
    return text


def parse_python_version(text: str, origin: str) -> str:
    """``3.<minor>``, e.g. ``3.11``."""
    if not _PYTHON.fullmatch(text):
        raise InputError(origin, f"{shown(text)} is not a major.minor Python version; e.g. \"3.11\"")
    return text
