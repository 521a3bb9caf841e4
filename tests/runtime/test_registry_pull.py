"""pull() against a real registry: Debian's docker-registry (distribution 2.8) on a random port of 127.0.0.1.

The images are pushed with raw HTTP (monolithic blob uploads and manifest PUTs, the same API ``docker push``
uses), then pulled into a fresh store; nothing is run.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from urllib.parse import urljoin

import httpx
import pytest

from kubelet.runtime.errors import NotFound, Unavailable
from kubelet.runtime.images import ImageStore
from kubelet.runtime.images.registry import pull
from kubelet.runtime.images.store import host_platform
from tests.unit.runtime.imagefixtures import (
    OCI_INDEX,
    OCI_MANIFEST,
    BuiltImage,
    BuiltIndex,
    build_image,
    digest_of,
    directory,
    file,
    layer_tar,
    symlink,
)

REGISTRY_BINARY = "/usr/bin/docker-registry"
pytestmark = pytest.mark.skipif(not os.path.exists(REGISTRY_BINARY),
                                reason=f"{REGISTRY_BINARY} is absent (apt-get install -y docker-registry)")

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """``127.0.0.1:<port>`` of a running registry, stopped after the module."""
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(CONFIG.format(root=root / "data", port=port))
    log_path = root / "registry.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/v2/", log_path)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen, url: str, log_path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited with {proc.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # a separate process: nothing to await but its port
    pytest.fail(f"docker-registry did not answer on {url}: {log_path.read_text()}")


class Pusher:
    """Just enough of the push side of the distribution API: blob upload (POST then monolithic PUT), manifest PUT."""

    def __init__(self, host: str) -> None:
        self.base = f"http://{host}"
        self.client = httpx.Client(timeout=10)

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


@pytest.fixture(scope="module")
def pusher(registry):
    pusher = Pusher(registry)
    yield pusher
    pusher.client.close()


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "images")


BASE = layer_tar(directory("bin"), file("bin/tool", b"#!/bin/sh\necho tool\n", 0o755), symlink("bin/t", "tool"),
                 directory("etc"), file("etc/passwd", "root:x:0:0::/:/bin/sh\n"))
APP = layer_tar(directory("srv", uid=1000, gid=1000), file("srv/index.html", "<h1>hi</h1>\n", uid=1000, gid=1000),
                file("etc/.wh.passwd"))


async def test_pull_tagged_image(registry, pusher, store):
    built = build_image(BASE, APP, config={"Entrypoint": ["/bin/tool"], "User": "1000", "WorkingDir": "/srv",
                                           "Env": ["PATH=/bin"], "ExposedPorts": {"8080/tcp": {}}})
    pusher.image("kubemini/web", "v1", built)
    image = await pull(store, f"{registry}/kubemini/web:v1")
    assert image.id == built.id
    assert image.layers == built.diff_ids
    assert image.repo_tags == [f"{registry}/kubemini/web:v1"]
    assert image.repo_digests == [f"{registry}/kubemini/web@{built.manifest_digest}"]
    assert image.config["Entrypoint"] == ["/bin/tool"] and image.uid == 1000
    assert image.size == len(b"#!/bin/sh\necho tool\n") + len("root:x:0:0::/:/bin/sh\n") + len("<h1>hi</h1>\n")
    base_dir, app_dir = store.layer_dirs(image)
    assert (base_dir / "bin/tool").read_bytes().startswith(b"#!/bin/sh")
    assert os.readlink(base_dir / "bin/t") == "tool"
    assert (app_dir / "srv/index.html").stat().st_uid == 1000
    assert store.lowerdir(image) == f"{app_dir}:{base_dir}"
    for digest in [built.config_digest, *built.layer_digests, built.manifest_digest]:
        assert store.has_blob(digest)
    assert store.get(f"{registry}/kubemini/web@{built.manifest_digest}").id == image.id
    assert store.get(f"{registry}/kubemini/web:v1").id == image.id


async def test_pull_multi_platform_index(registry, pusher, store):
    arch = host_platform()[1]
    mine = build_image(BASE, config={"Cmd": ["mine"]}, arch=arch)
    other = build_image(layer_tar(file("other", "x")), config={"Cmd": ["other"]},
                        arch="s390x" if arch != "s390x" else "amd64")
    index = BuiltIndex([other, mine])
    pusher.index("kubemini/multi", "latest", index)
    image = await pull(store, f"{registry}/kubemini/multi")
    assert image.id == mine.id and image.config == {"Cmd": ["mine"]}
    assert image.repo_tags == [f"{registry}/kubemini/multi:latest"]
    assert image.repo_digests == [f"{registry}/kubemini/multi@{index.digest}"]
    assert not store.has_blob(other.layer_digests[0])


async def test_pull_by_digest(registry, pusher, store):
    built = build_image(BASE, config={"Cmd": ["by-digest"]})
    pusher.image("kubemini/pinned", "v1", built)
    image = await pull(store, f"{registry}/kubemini/pinned@{built.manifest_digest}")
    assert image.id == built.id and image.repo_tags == []
    assert image.repo_digests == [f"{registry}/kubemini/pinned@{built.manifest_digest}"]


async def test_missing_tag_and_repository_are_not_found(registry, pusher, store):
    pusher.image("kubemini/web2", "v1", build_image(BASE))
    with pytest.raises(NotFound, match=re.escape(f'failed to pull image "{registry}/kubemini/web2:nope": not found')):
        await pull(store, f"{registry}/kubemini/web2:nope")
    with pytest.raises(NotFound):
        await pull(store, f"{registry}/kubemini/never-pushed:v1")
    assert store.list() == []


async def test_closed_port_is_unavailable(store):
    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable, match=re.escape(host)):
        await pull(store, f"{host}/kubemini/web:v1")
