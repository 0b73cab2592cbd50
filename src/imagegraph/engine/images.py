"""Questions to the engine about images, through docker-py (queries, not builds)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import EngineError

__all__ = ["ImageInfo", "LocalImages"]


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str
    size: int
    layers: int
    platform: str


class LocalImages:
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
                raise EngineError("the Docker engine is not reachable; run `invoke engine.up` (or start Docker) and retry") from None
        return self._client

    def info(self, ref: str) -> ImageInfo | None:
        import docker

        try:
            image = self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None
        attrs = image.attrs
        platform = f"{attrs.get('Os', 'linux')}/{attrs.get('Architecture', '')}"
        return ImageInfo(ref=ref, id=image.id, size=int(attrs.get("Size", 0)),
                         layers=len(attrs.get("RootFS", {}).get("Layers", [])), platform=platform)

    def has(self, ref: str) -> bool:
        return self.info(ref) is not None
