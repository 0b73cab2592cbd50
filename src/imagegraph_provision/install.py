"""Which engine packages a machine gets, and from where: a pure decision from the distribution.

imagegraph builds with a current Docker (23 or newer) and the buildx plugin.
Where ``engine.up`` may install (root on Debian or Ubuntu) it takes them
from the distribution when the distribution's own are recent enough
(Debian 13 and later, Ubuntu 24.04 and later). Debian 12 ships dockerd 20.10
(out of support, no buildx); there the four engine packages come from
Debian 13 through an apt pin that leaves everything else on Debian 12:
Debian 13's docker.io, docker-cli, containerd and docker-buildx install on
Debian 12 without touching its libc.

The registry, emulation and seed tools (docker-registry, qemu-user-static,
binfmt-support, debootstrap) always come from the distribution itself.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from imagegraph.core.errors import EngineError

__all__ = [
    "MIN_ENGINE_MAJOR",
    "SUPPORT_PACKAGES",
    "AptSource",
    "Distribution",
    "EnginePackages",
    "engine_packages",
    "engine_too_old",
    "parse_docker_version",
    "parse_os_release",
    "version_major",
]

#: The oldest engine imagegraph reuses: clients from 23 on need buildx to build with BuildKit at all.
MIN_ENGINE_MAJOR = 23

#: The registry, emulation and the offline seed: the distribution's own packages everywhere.
SUPPORT_PACKAGES = ("docker-registry", "qemu-user-static", "binfmt-support", "debootstrap")

#: Debian 13's engine packages, installed on Debian 12 by an apt pin.
TRIXIE_ENGINE = ("docker.io", "docker-cli", "containerd", "docker-buildx")


@dataclass(frozen=True)
class Distribution:
    """What /etc/os-release says: ``debian`` 12 ``bookworm``, ``ubuntu`` 24.04 ``noble``..."""

    id: str
    version_id: str = ""
    codename: str = ""
    id_like: tuple[str, ...] = ()

    @property
    def family(self) -> str | None:
        for name in (self.id, *self.id_like):
            if name in ("debian", "ubuntu"):
                return name
        return None

    def describe(self) -> str:
        return " ".join(part for part in (self.id.capitalize() or "unknown", self.version_id, f"({self.codename})" if self.codename else "") if part)


def parse_os_release(text: str) -> Distribution:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip("\"'")
    return Distribution(
        id=fields.get("ID", "").lower(),
        version_id=fields.get("VERSION_ID", ""),
        codename=fields.get("VERSION_CODENAME", "").lower(),
        id_like=tuple(fields.get("ID_LIKE", "").lower().split()),
    )


@dataclass(frozen=True)
class AptSource:
    """An extra apt source, pinned so that only ``packages`` come from it."""

    #: The suite (and pin release name), e.g. ``trixie``.
    suite: str
    uri: str
    components: str
    #: The only packages apt may take from this source (the pin gives everything else a low priority).
    packages: tuple[str, ...]

    @property
    def list_name(self) -> str:
        return f"imagegraph-{self.suite}.list"

    def list_text(self) -> str:
        return f"# imagegraph: the Docker engine packages only (see {self.preferences_name})\ndeb {self.uri} {self.suite} {self.components}\n"

    @property
    def preferences_name(self) -> str:
        return f"imagegraph-{self.suite}"

    def preferences_text(self) -> str:
        # 100: installed only when asked for by release (pkg/suite); never an upgrade of anything else.
        return (
            f"# imagegraph: from {self.suite}, only {' '.join(self.packages)}\n"
            f"Package: *\nPin: release n={self.suite}\nPin-Priority: 100\n\n"
            f"Package: {' '.join(self.packages)}\nPin: release n={self.suite}\nPin-Priority: 500\n"
        )


@dataclass(frozen=True)
class EnginePackages:
    """What apt installs for the engine: the packages, and the pinned source some of them come from."""

    engine: tuple[str, ...]
    support: tuple[str, ...] = SUPPORT_PACKAGES
    source: AptSource | None = None

    def apt_arguments(self) -> tuple[str, ...]:
        """``apt-get install`` arguments: pinned packages as ``name/suite`` (their dependencies follow only where needed)."""
        pinned = self.source.packages if self.source else ()
        suite = self.source.suite if self.source else ""
        engine = tuple(f"{p}/{suite}" if p in pinned else p for p in self.engine)
        return (*engine, *self.support)

    def describe(self) -> str:
        origin = f" ({', '.join(self.source.packages)} from Debian {self.source.suite}, pinned)" if self.source else ""
        return f"{' '.join((*self.engine, *self.support))}{origin}"


def _numeric(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def engine_packages(distro: Distribution) -> EnginePackages:
    """The packages that give this distribution Docker 23+ with buildx; an error naming the fix where none do."""
    version = _numeric(distro.version_id)
    if distro.id == "debian":
        if distro.codename == "bookworm" or version[:1] == (12,):
            source = AptSource("trixie", "http://deb.debian.org/debian", "main", TRIXIE_ENGINE)
            return EnginePackages(TRIXIE_ENGINE, source=source)
        # testing and unstable carry no VERSION_ID
        if (version and version[0] >= 13) or distro.codename in ("trixie", "forky", "sid"):
            return EnginePackages(TRIXIE_ENGINE)
    if distro.id == "ubuntu" and version >= (24, 4):
        # Ubuntu's docker.io carries the client too; its buildx is a package of its own.
        return EnginePackages(("docker.io", "docker-buildx"))
    raise EngineError(
        f"{distro.describe()} has no Docker 23+ with buildx that imagegraph knows how to install; install Docker Engine "
        f"and its buildx plugin (https://docs.docker.com/engine/install/), then rerun `invoke engine.up`"
    )


def version_major(version: str | None) -> int | None:
    """``26.1.5+dfsg1`` -> 26; None when there is no version."""
    numbers = _numeric(version or "")
    return numbers[0] if numbers else None


def engine_too_old(version: str | None) -> bool:
    major = version_major(version)
    return major is not None and major < MIN_ENGINE_MAJOR


def parse_docker_version(output: str) -> str | None:
    """``Docker version 26.1.5+dfsg1, build a72d7cd`` -> ``26.1.5+dfsg1`` (as `dockerd --version` and `docker --version` print it)."""
    words = output.replace(",", " ").split()
    for before, word in itertools.pairwise(words):
        if before.lower() == "version":
            return word
    return None
