"""load_archive: OCI layouts (plain, multi-platform, named either way) and docker-save archives."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from kubelet.runtime.errors import InvalidArgument
from kubelet.runtime.images import ImageStore
from kubelet.runtime.images.archive import load_archive
from kubelet.runtime.images.store import host_platform
from tests.unit.runtime.imagefixtures import (
    BuiltIndex,
    build_image,
    digest_of,
    directory,
    file,
    layer_tar,
    write_archive,
)

BASE = layer_tar(directory("etc"), file("etc/hostname", "base\n"))
TOP = layer_tar(file("hello.txt", "hello\n"))
ARCH = host_platform()[1]
OTHER_ARCH = "s390x" if ARCH != "s390x" else "amd64"


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def test_oci_layout_with_containerd_names(store, tmp_path):
    built = build_image(BASE, TOP, config={"Entrypoint": ["/hello"], "WorkingDir": "/w"})
    path = write_archive(tmp_path / "img.tar", [(built, ["docker.io/library/hello:1", "example.com/x/hello:2"])])
    [image] = load_archive(store, path)
    assert image.id == built.id
    assert image.repo_tags == ["docker.io/library/hello:1", "example.com/x/hello:2"]
    assert image.repo_digests == [f"docker.io/library/hello@{built.manifest_digest}",
                                  f"example.com/x/hello@{built.manifest_digest}"]
    assert image.config == {"Entrypoint": ["/hello"], "WorkingDir": "/w"}
    assert store.get("hello:1").id == built.id
    top = store.layer_dirs(image)[-1]
    assert (top / "hello.txt").read_text() == "hello\n"
    assert store.has_blob(built.manifest_digest)


def test_oci_ref_name_forms(store, tmp_path):
    full = build_image(BASE, config={"Cmd": ["full"]})
    short = build_image(BASE, config={"Cmd": ["short"]})
    path = write_archive(tmp_path / "img.tar", [(full, ["quay.io/a/b:3"]), (short, ["latest"])], annotations="ref")
    images = {i.id: i for i in load_archive(store, path)}
    assert images[full.id].repo_tags == ["quay.io/a/b:3"]
    assert images[short.id].repo_tags == []  # a bare tag names nothing without a base name
    [again] = load_archive(store, write_archive(tmp_path / "s.tar", [(short, ["v9"])], annotations="ref"),
                           base_name="localhost:5000/short")
    assert again.repo_tags == ["localhost:5000/short:v9"]


def test_multi_platform_index_picks_this_machine(store, tmp_path):
    mine = build_image(BASE, TOP, arch=ARCH)
    other = build_image(layer_tar(file("other-arch", "x")), arch=OTHER_ARCH)
    index = BuiltIndex([other, mine])
    [image] = load_archive(store, write_archive(tmp_path / "multi.tar", [(index, ["multi:1"])]))
    assert image.id == mine.id
    assert image.repo_digests == [f"docker.io/library/multi@{index.digest}"]  # the digest the name resolves to
    assert not store.has_blob(other.layer_digests[0])  # the other platform's layers are not imported
    assert store.has_blob(index.digest)


def test_nested_index(store, tmp_path):
    mine = build_image(BASE, arch=ARCH)
    inner = BuiltIndex([mine])
    outer = BuiltIndex([], index=json.dumps({"schemaVersion": 2, "manifests": [inner.descriptor()]}).encode(),
                       extra={inner.digest: inner.index})
    outer.images = [mine]
    [image] = load_archive(store, write_archive(tmp_path / "nested.tar", [(outer, ["nested:1"])]))
    assert image.id == mine.id and image.repo_tags == ["docker.io/library/nested:1"]


def test_index_without_this_platform(store, tmp_path):
    other = build_image(BASE, arch=OTHER_ARCH)
    with pytest.raises(InvalidArgument, match=f"linux/{ARCH}"):
        load_archive(store, write_archive(tmp_path / "x.tar", [(BuiltIndex([other]), ["x:1"])]))


def test_docker_archive(store, tmp_path):
    built = build_image(BASE, TOP, config={"Cmd": ["sh"], "User": "daemon"}, compress=False)
    path = write_archive(tmp_path / "docker.tar", [(built, ["busybox:latest", "example.com/bb:1"])],
                         format="docker")
    [image] = load_archive(store, path)
    assert image.id == built.id
    assert image.repo_tags == ["docker.io/library/busybox:latest", "example.com/bb:1"]
    assert image.repo_digests == []
    assert image.username == "daemon"
    assert (store.layer_dirs(image)[0] / "etc/hostname").read_text() == "base\n"


def test_gzipped_archive(store, tmp_path):
    built = build_image(BASE)
    path = write_archive(tmp_path / "img.tar", [(built, ["gz:1"])], format="docker")
    zipped = tmp_path / "img.tar.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    assert load_archive(store, zipped)[0].id == built.id


def test_unknown_format(store, tmp_path):
    path = tmp_path / "random.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(InvalidArgument, match="neither an OCI layout nor a docker-archive tarball"):
        load_archive(store, path)
    text = tmp_path / "not-a-tar"
    text.write_text("hello")
    with pytest.raises(InvalidArgument, match="neither an OCI layout nor a docker-archive tarball"):
        load_archive(store, text)
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_archive(store, tmp_path / "missing.tar")


def test_blob_digest_mismatch_in_archive(store, tmp_path):
    built = build_image(BASE)
    path = write_archive(tmp_path / "tampered.tar", [(built, ["t:1"])])
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    members[f"blobs/sha256/{built.layer_digests[0][7:]}"] = gzip.compress(layer_tar(file("tampered", "x")))
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        load_archive(store, path)
    assert store.list() == []


def test_docker_archive_with_wrong_diff_id(store, tmp_path):
    built = build_image(BASE, compress=False, diff_ids=[digest_of(b"nope")])
    with pytest.raises(InvalidArgument, match="diff_id mismatch"):
        load_archive(store, write_archive(tmp_path / "d.tar", [(built, ["d:1"])], format="docker"))
