"""Push small but complete images straight through the distribution API, to seed a registry fast.

Each image is real: a gzipped layer holding one file, an image config with
labels and a creation time, a manifest; indexes list platform manifests. The
engine can pull any of them, which is how the tests prove nothing kept broke.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import requests

__all__ = ["Seeder"]

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX = "application/vnd.docker.distribution.manifest.list.v2+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Seeder:
    def __init__(self, address: str, session: requests.Session | None = None) -> None:
        self.base = f"http://{address}/v2"
        self.address = address
        self.http = session or requests.Session()

    def blob(self, name: str, data: bytes) -> str:
        digest = _sha(data)
        if self.http.head(f"{self.base}/{name}/blobs/{digest}").status_code == 200:
            return digest
        start = self.http.post(f"{self.base}/{name}/blobs/uploads/")
        start.raise_for_status()
        location = start.headers["Location"]
        url = location if location.startswith("http") else f"http://{self.address}{location}"
        put = self.http.put(url, params={"digest": digest}, data=data, headers={"Content-Type": "application/octet-stream"})
        put.raise_for_status()
        return digest

    def put_manifest(self, name: str, reference: str, body: dict, media_type: str) -> str:
        data = json.dumps(body, sort_keys=True).encode()
        response = self.http.put(f"{self.base}/{name}/manifests/{reference}", data=data, headers={"Content-Type": media_type})
        response.raise_for_status()
        return _sha(data)

    def image(self, name: str, tag: str | None, *, text: str, created: str, labels: dict[str, str] | None = None,
              arch: str = "amd64") -> str:
        """An image holding /seed.txt = ``text``; tagged ``tag``, or pushed by digest alone when ``tag`` is None."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            payload = text.encode()
            info = tarfile.TarInfo("seed.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        layer = gzip.compress(raw.getvalue(), mtime=0)
        config = json.dumps({
            "architecture": arch, "os": "linux", "created": created,
            "config": {"Labels": labels or {}, "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [_sha(raw.getvalue())]},
        }, sort_keys=True).encode()
        body = {
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": self.blob(name, config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": self.blob(name, layer)}],
        }
        data = json.dumps(body, sort_keys=True).encode()
        return self.put_manifest(name, tag or _sha(data), body, MANIFEST)

    def index(self, name: str, tag: str, children: dict[str, str]) -> str:
        """A manifest list of ``{platform: digest}``, whose platform manifests are already in ``name``."""
        entries = []
        for platform, digest in children.items():
            size = len(self.http.get(f"{self.base}/{name}/manifests/{digest}", headers={"Accept": MANIFEST}).content)
            os_, arch = platform.split("/")[:2]
            entries.append({"mediaType": MANIFEST, "digest": digest, "size": size, "platform": {"os": os_, "architecture": arch}})
        return self.put_manifest(name, tag, {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}, INDEX)

    def exists(self, name: str, reference: str) -> bool:
        return self.http.head(f"{self.base}/{name}/manifests/{reference}", headers={"Accept": f"{MANIFEST}, {INDEX}"}).status_code == 200

    def digest(self, name: str, reference: str) -> str | None:
        """The digest ``reference`` names in ``name``; None when the registry does not have it."""
        response = self.http.head(f"{self.base}/{name}/manifests/{reference}", headers={"Accept": f"{MANIFEST}, {INDEX}"})
        return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None

    def raw(self, name: str, reference: str) -> bytes:
        """A manifest's bytes, as the registry stores them."""
        response = self.http.get(f"{self.base}/{name}/manifests/{reference}", headers={"Accept": f"{MANIFEST}, {INDEX}"})
        response.raise_for_status()
        return response.content

    def tags(self, name: str) -> set[str]:
        response = self.http.get(f"{self.base}/{name}/tags/list")
        return set(response.json().get("tags") or ()) if response.status_code == 200 else set()

    def walk(self, name: str, reference: str) -> int:
        """Fetch a manifest and everything it needs (platform manifests, config, layers), as a pull would; the blob count."""
        response = self.http.get(f"{self.base}/{name}/manifests/{reference}", headers={"Accept": f"{MANIFEST}, {INDEX}"})
        assert response.status_code == 200, f"{name}@{reference}: {response.status_code}"
        body = response.json()
        if "manifests" in body:
            return sum(self.walk(name, entry["digest"]) for entry in body["manifests"])
        fetched = 0
        for blob in (body["config"], *body["layers"]):
            got = self.http.get(f"{self.base}/{name}/blobs/{blob['digest']}")
            assert got.status_code == 200 and _sha(got.content) == blob["digest"], f"{name} blob {blob['digest']}: {got.status_code}"
            fetched += 1
        return fetched
