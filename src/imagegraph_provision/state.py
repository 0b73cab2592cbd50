"""Where imagegraph keeps what it starts, and the configuration files it writes there.

A dockerd or docker-registry that imagegraph starts has its pid file, log
and configuration in one state directory (:class:`StatePaths`); the
system's own configuration is never edited.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "StatePaths",
    "daemon_config",
    "default_state_dir",
    "registry_config",
    "registry_config_address",
]


def default_state_dir(environ: Mapping[str, str] | None = None, is_root: bool | None = None,
                      home: Path | None = None) -> Path:
    env = os.environ if environ is None else environ
    root = os.geteuid() == 0 if is_root is None else is_root
    if root:
        return Path("/var/lib/imagegraph")
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else (home or Path.home()) / ".local" / "state"
    return base / "imagegraph"


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def dockerd_pid(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def dockerd_log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def unrestored_images(self) -> Path:
        """Images dockerd could not restore whose build cache imagegraph already pruned (one ID per line)."""
        return self.root / "unrestored-images"

    @property
    def registry_pid(self) -> Path:
        return self.root / "registry.pid"

    @property
    def registry_log(self) -> Path:
        return self.root / "registry.log"

    @property
    def registry_config(self) -> Path:
        return self.root / "registry.yml"

    @property
    def registry_data(self) -> Path:
        return self.root / "registry-data"

    @property
    def apt_log(self) -> Path:
        return self.root / "apt.log"

    @property
    def daemon_config(self) -> Path:
        """The daemon.json of the dockerd we start (the system's /etc/docker/daemon.json is left alone)."""
        return self.root / "daemon.json"


def daemon_config(mirror: str, image_store: str) -> str:
    """dockerd's configuration: the registry mirror, and the containerd image store unless asked for the classic one."""
    return json.dumps({
        "registry-mirrors": [mirror],
        "features": {"containerd-snapshotter": image_store == "containerd"},
    }, indent=2) + "\n"


def registry_config(address: str, data_dir: Path) -> str:
    """Our own config: the packaged one listens on all interfaces with htpasswd auth."""
    return "\n".join((
        "version: 0.1",
        "log:",
        "  level: info",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {json.dumps(str(data_dir))}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {json.dumps(address)}",
        "",
    ))


def registry_config_address(text: str) -> str | None:
    """``http.addr`` of a config written by :func:`registry_config`."""
    in_http = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_http = line.strip() == "http:"
            continue
        key, _, value = line.strip().partition(":")
        if in_http and key == "addr":
            return value.strip().strip('"')
    return None
