"""Questions to the engine about images, through docker-py (queries, not builds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...core.errors import EngineError

__all__ = ["CONTAINERD_SNAPSHOTTER", "ImageInfo", "LocalImages", "image_store_of"]

#: What `docker info` reports as the storage driver's driver-type on the containerd image store.
CONTAINERD_SNAPSHOTTER = "io.containerd.snapshotter.v1"


def image_store_of(info: Mapping[str, Any]) -> str:
    """``containerd`` when `docker info` shows the containerd snapshotter as its storage driver's type, else ``classic``."""
    for pair in info.get("DriverStatus") or ():
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[0] == "driver-type":
            return "containerd" if pair[1] == CONTAINERD_SNAPSHOTTER else "classic"
    return "classic"


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str
    size: int
    layers: int
    platform: str


UNREACHABLE = "the Docker engine is not reachable; run `invoke engine.up` (or start Docker) and retry"


class LocalImages:
    """An engine that stops answering, at any call, is one :class:`EngineError`: never a connection error's own text."""

    def __init__(self, client: object | None = None) -> None:
        self._client = client

    @property
    def client(self):  # docker.DockerClient, typed loosely so the pure core never imports docker
        if self._client is None:
            import docker

            try:
                self._client = docker.from_env()
                self._client.ping()
            except docker.errors.DockerException:
                raise EngineError(UNREACHABLE) from None
        return self._client

    def answers(self) -> bool:
        """Whether the engine answers now (after a command failed as if it had gone)."""
        try:
            self._ask(lambda client: client.ping())
        except EngineError:
            return False
        return True

    def _ask(self, question):
        """``question(client)``, with a lost connection (refused, reset, cut mid-answer) as one EngineError."""
        import docker
        import requests

        try:
            return question(self.client)
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as err:
            said = " ".join(str(err.explanation or "").split())[:200]
            raise EngineError(f"the Docker engine refused a query ({err.status_code}: {said}); check it with `invoke engine.status`") from None
        except (requests.RequestException, docker.errors.DockerException):
            raise EngineError(UNREACHABLE) from None

    def info(self, ref: str) -> ImageInfo | None:
        import docker

        try:
            image = self._ask(lambda client: client.images.get(ref))
        except docker.errors.ImageNotFound:
            return None
        attrs = image.attrs
        platform = f"{attrs.get('Os', 'linux')}/{attrs.get('Architecture', '')}"
        return ImageInfo(ref=ref, id=image.id, size=int(attrs.get("Size", 0)),
                         layers=len(attrs.get("RootFS", {}).get("Layers", [])), platform=platform)

    def image_store(self) -> str:
        """``containerd`` or ``classic``: where the engine keeps images."""
        return image_store_of(self._ask(lambda client: client.info()))

    def has(self, ref: str) -> bool:
        return self.info(ref) is not None
