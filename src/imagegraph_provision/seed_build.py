"""Making the seed: the commands (debootstrap, tar, build, manifest list), the cached build contexts, the registry probes,
and :class:`SeedSteps`, which performs the actions :func:`~imagegraph_provision.seed.decide_seed` chose.

Every external command goes through the runner; the registry is asked over
:class:`~imagegraph.adapters.registry_http.RegistryHTTP` with its bounded retries.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from imagegraph.adapters.engine.builders import Builder
from imagegraph.adapters.registry_http import RegistryHTTP
from imagegraph.adapters.runner import Command, Runner
from imagegraph.core.errors import EngineError, RegistryError
from imagegraph.core.media_types import ANY_MANIFEST, IMAGE_MANIFESTS
from imagegraph.core.request import BuildRequest, platform_suffix

from .seed import (
    BASE_REPOSITORY,
    BASE_TAG,
    PACKAGES,
    SEED_PLATFORMS,
    SUITE,
    BuildImage,
    BuildRootfs,
    PushManifestList,
    SeedAction,
    SeedPresent,
    SkipSeed,
    recipe_key,
)

__all__ = [
    "SeedSteps",
    "build_request",
    "cached_platforms",
    "context_dir",
    "debootstrap_command",
    "dockerfile",
    "host_ca_bundle",
    "make_official_like",
    "manifest_commands",
    "probe_base_platforms",
    "probe_pushed_platforms",
    "registry_platforms",
    "tar_command",
]

#: The host bundle carries the TLS proxy's CA; pip inside builds needs it.
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")

# --- commands --------------------------------------------------------------

def debootstrap_command(platform: str, target: Path, program: str = "debootstrap") -> Command:
    return Command.of(
        program,
        f"--arch={SEED_PLATFORMS[platform]}",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(target),
        hint="check that deb.debian.org is reachable; for foreign platforms, that QEMU emulation is registered",
    )


def tar_command(rootfs: Path, tarball: Path) -> Command:
    # Numeric owners: the image must not depend on the host's passwd names.
    return Command.of("tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), ".")


def build_request(cache_dir: Path, platform: str, tag: str) -> BuildRequest:
    context = context_dir(cache_dir, platform)
    return BuildRequest(
        image="python", dockerfile=context / "Dockerfile", context=context, ref=tag,
        platforms=(platform,), push=True, insecure_registry=True, provenance=False,
    )


def manifest_commands(docker: str, tag: str, members: Sequence[str]) -> tuple[Command, ...]:
    """Replace the manifest list ``tag`` by one of ``members``.

    ``rm`` first (its failure is expected and ignored): a list left locally by
    an interrupted run would make ``create`` refuse. ``--purge`` leaves none.
    """
    return (
        Command.of(docker, "manifest", "rm", tag),
        Command.of(docker, "manifest", "create", "--insecure", tag, *members),
        Command.of(docker, "manifest", "push", "--insecure", "--purge", tag),
    )


def dockerfile(with_ca_bundle: bool) -> str:
    # No `# syntax=` line: that would pull the frontend image from Docker Hub.
    lines = ["FROM scratch", "ADD rootfs.tar /"]
    if with_ca_bundle:
        lines.append("COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt")
    lines += [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8",
        'CMD ["python3"]',
    ]
    return "\n".join(lines) + "\n"


def make_official_like(rootfs: Path) -> None:
    """Make a debootstrapped tree behave like the official python image."""
    local_bin = rootfs / "usr/local/bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        link = local_bin / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    # The official image installs into the system interpreter with plain `pip install`.
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/archives/*.deb", "var/cache/apt/*.bin"):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


# --- registry probes -------------------------------------------------------

def _platform_of(entry: Mapping[str, Any]) -> str:
    os_name = entry.get("os", "linux")
    arch = entry.get("architecture", "")
    variant = entry.get("variant") or ""
    if arch == "arm64" or not variant:
        return f"{os_name}/{arch}"
    return f"{os_name}/{arch}/{variant}"


def registry_platforms(index: Mapping[str, Any]) -> tuple[str, ...]:
    """Platforms of a manifest list / OCI index document (attestations left out)."""
    found = []
    for entry in index.get("manifests", ()):
        plat = entry.get("platform") or {}
        if plat.get("os") == "unknown" or not plat.get("architecture"):
            continue
        found.append(_platform_of(plat))
    return tuple(sorted(set(found)))


def probe_base_platforms(registry: str, session: requests.Session | None = None, timeout: float = 5.0) -> tuple[str, ...]:
    """Platforms the registry serves for library/python:3.11-slim; () when absent or unreachable."""
    http = RegistryHTTP(registry, scheme="http", session=session, timeout=timeout)
    try:
        response = http.request("GET", f"/{BASE_REPOSITORY}/manifests/{BASE_TAG}",
                                headers={"Accept": ", ".join(ANY_MANIFEST)})
        if response.status_code != 200:
            return ()
        document = response.json()
        if document.get("manifests") is not None:
            return registry_platforms(document)
        # A single-platform image: its config blob says which platform.
        digest = document.get("config", {}).get("digest")
        if not digest:
            return ()
        config = http.request("GET", f"/{BASE_REPOSITORY}/blobs/{digest}")
        if config.status_code != 200:
            return ()
        return (_platform_of(config.json()),)
    except (RegistryError, ValueError):
        return ()


def probe_pushed_platforms(registry: str, candidates: Iterable[str], session: requests.Session | None = None,
                           timeout: float = 5.0) -> tuple[str, ...]:
    http = RegistryHTTP(registry, scheme="http", session=session, timeout=timeout)
    present = []
    for platform in candidates:
        try:
            response = http.request("HEAD", f"/{BASE_REPOSITORY}/manifests/{BASE_TAG}-{platform_suffix(platform)}",
                                    headers={"Accept": ", ".join(IMAGE_MANIFESTS)})
        except RegistryError:
            continue
        if response.status_code == 200:
            present.append(platform)
    return tuple(present)


def context_dir(cache_dir: Path, platform: str) -> Path:
    """Build context of one platform: rootfs.tar (cached), Dockerfile and CA bundle (rewritten each build)."""
    return cache_dir / f"{recipe_key()}-{platform_suffix(platform)}"


def cached_platforms(cache_dir: Path) -> tuple[str, ...]:
    return tuple(p for p in SEED_PLATFORMS if (context_dir(cache_dir, p) / "rootfs.tar").is_file())


def host_ca_bundle() -> Path | None:
    for candidate in HOST_CA_BUNDLES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


# --- execution -------------------------------------------------------------

def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


class SeedSteps:
    """Takes the seed's steps that :func:`~imagegraph_provision.seed.decide_seed` chose (:meth:`perform`), saying each.

    Every external command goes through ``runner``; :attr:`timings` keeps what each step cost.
    """

    def __init__(self, runner: Runner, builder: Builder, docker: str, cache_dir: Path, log_dir: Path,
                 say: Callable[[str], None], debootstrap: str = "debootstrap") -> None:
        self.runner = runner
        self.builder = builder
        #: The client that runs `docker manifest` (any client from 20.10 on has it).
        self.docker = docker
        self.debootstrap = debootstrap
        self.cache_dir = cache_dir
        self.log_dir = log_dir
        self.say = say
        #: Seconds spent per step, e.g. {"rootfs linux/arm64": 190.2}, for reports.
        self.timings: dict[str, float] = {}

    def perform(self, action: SeedAction) -> None:
        self.say(action.describe())
        started = time.monotonic()
        match action:
            case SkipSeed() | SeedPresent():
                return
            case BuildRootfs(platform=platform):
                self._build_rootfs(platform)
                key = f"rootfs {platform}"
            case BuildImage(platform=platform, tag=tag):
                self._build_image(platform, tag)
                key = f"build+push {platform}"
            case PushManifestList(tag=tag, members=members):
                remove, *steps = manifest_commands(self.docker, tag, members)
                self.runner.run(remove, check=False)
                for step in steps:
                    self.runner.run(step, log_path=self.log_dir / "seed-push.log")
                key = "manifest list"
        spent = self.timings[key] = time.monotonic() - started
        self.say(f"engine: {key} done in {spent:.0f} s")

    def _build_rootfs(self, platform: str) -> None:
        context = context_dir(self.cache_dir, platform)
        context.mkdir(parents=True, exist_ok=True)
        rootfs = self.cache_dir / f"{context.name}.rootfs"
        partial = self.cache_dir / f"{context.name}.tar.partial"
        log = self.log_dir / f"seed-{platform_suffix(platform)}.log"
        self._remove_tree(rootfs)
        try:
            self.runner.run(debootstrap_command(platform, rootfs, self.debootstrap), log_path=log)
            make_official_like(rootfs)
            self.runner.run(tar_command(rootfs, partial), log_path=log)
            partial.replace(context / "rootfs.tar")
        finally:
            self._remove_tree(rootfs)
            partial.unlink(missing_ok=True)

    def _remove_tree(self, path: Path) -> None:
        if not path.exists():
            return
        # debootstrap mounts /proc, /sys and binds /dev nodes inside the
        # target; a failed run can leave them, and rmtree would descend into
        # the host's /dev.
        for point in _mounts_below(path):
            self.runner.run(Command.of("umount", "-l", point), check=False)
        if _mounts_below(path):
            raise EngineError(f"{path} still has mounts below it; unmount them (see /proc/self/mounts) and delete it")
        shutil.rmtree(path)

    def _build_image(self, platform: str, tag: str) -> None:
        context = context_dir(self.cache_dir, platform)
        bundle = host_ca_bundle()
        if bundle is not None:
            shutil.copyfile(bundle, context / "ca-certificates.crt")
        (context / "Dockerfile").write_text(dockerfile(bundle is not None))
        for command in self.builder.commands(build_request(self.cache_dir, platform, tag)):
            self.runner.run(command, log_path=self.log_dir / f"seed-{platform_suffix(platform)}.log")

    def verify(self, registry: str, platforms: Sequence[str]) -> tuple[str, ...]:
        found = probe_base_platforms(registry)
        missing = sorted(set(platforms) - set(found))
        if missing:
            raise RegistryError(
                f"{registry}/{BASE_REPOSITORY}:{BASE_TAG} lacks {', '.join(missing)} after the push; "
                f"see {self.log_dir / 'seed-push.log'}"
            )
        return found
