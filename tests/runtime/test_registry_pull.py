"""pull() against a real registry: Debian's docker-registry (distribution 2.8) on a random port of 127.0.0.1.

The images are pushed with raw HTTP (tests/runtime/registry.py), then pulled into a fresh store; nothing is run.
"""

from __future__ import annotations

import os
import re

import pytest

from kubelet.runtime.errors import NotFound, Unavailable
from kubelet.runtime.images import ImageStore
from kubelet.runtime.images.registry import pull
from kubelet.runtime.images.store import host_platform
from kubemini.ports import free_port
from tests.runtime.registry import MISSING, registry_available
from tests.unit.runtime.imagefixtures import BuiltIndex, build_image, directory, file, layer_tar, symlink

pytestmark = pytest.mark.skipif(not registry_available(), reason=MISSING)


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
