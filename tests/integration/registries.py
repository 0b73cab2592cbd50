"""Private registries for tests: a real docker-registry (distribution) process per test, on its own port and storage.

The shared registry at 127.0.0.1:5000 is for builds; a test that deletes,
garbage-collects or needs auth gets one of these, so it never disturbs others.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from imagegraph_provision.state import registry_config

__all__ = ["PrivateRegistry", "start_registry"]


@dataclass
class PrivateRegistry:
    address: str
    config: Path
    data: Path
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def start(self) -> None:
        """(Re)start the server on the same address and storage, e.g. after an offline garbage collection."""
        self.stop()
        self.process = _spawn(self.config, self.log)
        _wait(self.address, self.process, self.log)

    def garbage_collect(self, *extra: str) -> str:
        """Offline garbage collection, as an operator runs it: stop, collect, start again."""
        self.stop()
        try:
            result = subprocess.run([_binary(), "garbage-collect", *extra, str(self.config)], capture_output=True, text=True, check=True)
        finally:
            self.start()
        return result.stdout


def _binary() -> str:
    found = shutil.which("docker-registry") or shutil.which("registry")
    if found is None:
        raise RuntimeError("docker-registry is not installed; run `invoke engine.up`")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([_binary(), "serve", str(config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-500:]}")
        try:
            requests.get(f"http://{address}/v2/", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"docker-registry did not answer at {address}: {log.read_text()[-500:]}")


def start_registry(directory: Path, *, htpasswd: Path | None = None) -> PrivateRegistry:
    """A registry on a free loopback port with deletes enabled, storing under ``directory``; basic auth when ``htpasswd`` is given."""
    address = f"127.0.0.1:{_free_port()}"
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    text = registry_config(address, data)
    if htpasswd is not None:
        text += f"auth:\n  htpasswd:\n    realm: imagegraph-test\n    path: {htpasswd}\n"
    config = directory / "config.yml"
    config.write_text(text)
    log = directory / "registry.log"
    process = _spawn(config, log)
    _wait(address, process, log)
    return PrivateRegistry(address, config, data, process, log)
