"""A local registry for pull tests: Debian's docker-registry (distribution 2.8) on a random port of 127.0.0.1.

Shared by the store-level pull tests (``test_registry_pull.py``) and the CRI PullImage tests (``test_images.py``).
:class:`Registry` runs one registry process; :class:`Pusher` pushes images with raw HTTP (monolithic blob
uploads and manifest PUTs, the same API ``docker push`` uses).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx

from kubemini.ports import free_port
from tests.unit.runtime.imagefixtures import OCI_INDEX, OCI_MANIFEST, BuiltImage, BuiltIndex, digest_of

REGISTRY_BINARY = "/usr/bin/docker-registry"
MISSING = f"{REGISTRY_BINARY} is absent (apt-get install -y docker-registry)"

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: kubemini-test
"""


def registry_available() -> bool:
    return os.path.exists(REGISTRY_BINARY)


class Registry:
    """``docker-registry serve`` with its storage under ``base``; :attr:`host` is ``127.0.0.1:<port>``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = base / "registry.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        config = self.base / "config.yml"
        config.write_text(CONFIG.format(root=self.base / "data", port=self.port))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log,
                                         stderr=subprocess.STDOUT)
        url = f"http://{self.host}/v2/"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"docker-registry exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # a separate process: nothing to await but its port
        raise AssertionError(f"docker-registry did not answer on {url}: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Pusher:
    """Just enough of the push side of the distribution API: blob upload (POST then monolithic PUT), manifest PUT."""

    def __init__(self, host: str) -> None:
        self.base = f"http://{host}"
        self.client = httpx.Client(timeout=10)

    def close(self) -> None:
        self.client.close()

    def blob(self, repo: str, data: bytes) -> str:
        digest = digest_of(data)
        if self.client.head(f"{self.base}/v2/{repo}/blobs/{digest}").status_code == 200:
            return digest
        started = self.client.post(f"{self.base}/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = urljoin(self.base, started.headers["location"])
        separator = "&" if "?" in location else "?"
        done = self.client.put(f"{location}{separator}digest={digest}", content=data,
                               headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        return digest

    def manifest(self, repo: str, ref: str, data: bytes, media: str) -> None:
        response = self.client.put(f"{self.base}/v2/{repo}/manifests/{ref}", content=data,
                                   headers={"Content-Type": media})
        assert response.status_code == 201, response.text
        assert response.headers["docker-content-digest"] == digest_of(data)

    def image(self, repo: str, tag: str, image: BuiltImage) -> None:
        for data in image.blobs().values():
            self.blob(repo, data)
        self.manifest(repo, tag, image.manifest, OCI_MANIFEST)

    def index(self, repo: str, tag: str, index: BuiltIndex) -> None:
        for image in index.images:
            self.image(repo, image.manifest_digest, image)
        self.manifest(repo, tag, index.index, OCI_INDEX)
