"""ImageStore: registering, resolving in every spelling, tagging, removal with shared layers, persistence."""

from __future__ import annotations

import json
import threading

import pytest

from kubelet.runtime.errors import InvalidArgument, NotFound
from kubelet.runtime.images import Image, ImageStore
from tests.unit.runtime.imagefixtures import BuiltImage, build_image, digest_of, directory, file, layer_tar

BASE = layer_tar(directory("etc"), file("etc/os-release", "ID=test\n"), file("bin/tool", b"\x7fELF", 0o755))
APP = layer_tar(file("app/run.sh", "#!/bin/sh\necho hi\n", 0o755))
OTHER = layer_tar(file("app/other.txt", "other"))


def commit(store: ImageStore, image: BuiltImage, tags=(), digests=()) -> Image:
    for data in [image.config, *image.layer_blobs, image.manifest]:
        store.add_blob(data)
    return store.commit_image(image.config_digest, image.layer_digests, repo_tags=tags, repo_digests=digests,
                              blobs=[image.manifest_digest])


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def test_commit_records_the_image(store):
    built = build_image(BASE, APP, config={"Cmd": ["/app/run.sh"], "User": "1000:1000", "Env": ["A=1"]})
    image = commit(store, built, tags=["app:1"], digests=[f"app@{built.manifest_digest}"])
    assert image.id == built.config_digest
    assert image.repo_tags == ["docker.io/library/app:1"]
    assert image.repo_digests == [f"docker.io/library/app@{built.manifest_digest}"]
    assert image.layers == built.diff_ids
    assert image.config == {"Cmd": ["/app/run.sh"], "User": "1000:1000", "Env": ["A=1"]}
    assert image.size == len("ID=test\n") + 4 + len("#!/bin/sh\necho hi\n")  # unpacked file bytes
    assert (image.uid, image.username) == (1000, "")
    dirs = store.layer_dirs(image)
    assert [d.name for d in dirs] == [d[7:] for d in built.diff_ids]
    assert (dirs[0] / "etc/os-release").read_text() == "ID=test\n"
    assert store.lowerdir(image) == f"{dirs[1]}:{dirs[0]}"  # overlayfs order: top layer first


@pytest.mark.parametrize("spelling", ["app:1", "docker.io/library/app:1", "library/app:1", "index.docker.io/app:1"])
def test_resolve_tag_in_any_spelling(store, spelling):
    built = build_image(BASE)
    commit(store, built, tags=["app:1"])
    assert store.resolve(spelling).id == built.id


def test_resolve_by_id_digest_and_prefix(store):
    built = build_image(BASE)
    commit(store, built, tags=["app:1"], digests=[f"app@{built.manifest_digest}"])
    assert store.resolve(built.id).id == built.id
    assert store.resolve(built.id[7:]).id == built.id
    assert store.resolve(built.id[7:19]).id == built.id
    assert store.resolve(f"docker.io/library/app@{built.manifest_digest}").id == built.id
    assert store.resolve(f"app:other@{built.manifest_digest}").id == built.id  # the digest wins over the tag
    assert store.resolve(f"other@{built.manifest_digest}") is None
    assert store.resolve("app:2") is None
    assert store.resolve("app") is None  # app:latest
    assert store.resolve("Not A Ref!") is None
    assert store.resolve("sha256:" + "0" * 64) is None


def test_get_raises_not_found_with_the_name(store):
    with pytest.raises(NotFound, match='image "foo:1" not found'):
        store.get("foo:1")


def test_username_and_uid_helpers():
    def image(user):
        return Image("sha256:" + "0" * 64, [], [], 0, {"User": user} if user is not None else {}, [])

    assert (image("nginx").username, image("nginx").uid) == ("nginx", None)
    assert (image("nginx:web").username, image("nginx:web").uid) == ("nginx", None)
    assert (image("0").username, image("0").uid) == ("", 0)
    assert (image("65535:65535").username, image("65535:65535").uid) == ("", 65535)
    assert (image("").username, image("").uid) == ("", None)
    assert (image(None).username, image(None).uid) == ("", None)


def test_tag_moves_from_the_previous_owner(store):
    old = commit(store, build_image(BASE), tags=["app:latest", "app:1"])
    new = commit(store, build_image(BASE, APP), tags=["app:latest"])
    assert store.get(old.id).repo_tags == ["docker.io/library/app:1"]
    assert store.get("app").id == new.id
    store.tag(old.id, "docker.io/library/app:latest")
    assert store.get("app").id == old.id
    assert store.get(new.id).repo_tags == []
    with pytest.raises(InvalidArgument):
        store.tag(old.id, f"app@{old.id}")
    with pytest.raises(NotFound):
        store.tag("sha256:" + "1" * 64, "x:1")


def test_list(store):
    a = commit(store, build_image(BASE), tags=["a:1"])
    b = commit(store, build_image(BASE, APP), tags=["b:1"])
    assert sorted(i.id for i in store.list()) == sorted([a.id, b.id])


def test_shared_layers_are_unpacked_once_and_removed_last(store):
    one = build_image(BASE, APP)
    two = build_image(BASE, OTHER)
    image_one = commit(store, one, tags=["one:1"])
    image_two = commit(store, two, tags=["two:1"])
    base_dir = store.layer_dirs(image_one)[0]
    assert store.layer_dirs(image_two)[0] == base_dir
    marker = base_dir / "etc/os-release"
    inode = marker.stat().st_ino

    store.remove("one:1")
    assert store.resolve(image_one.id) is None
    assert marker.stat().st_ino == inode  # still used by two: untouched
    assert not store.layer_dirs(image_one)[1].exists()  # APP was only one's
    assert not store.has_blob(one.layer_digests[1]) and not store.has_blob(one.config_digest)
    assert not store.has_blob(one.manifest_digest)
    assert store.has_blob(one.layer_digests[0])  # BASE's blob is shared

    store.remove(image_two.id)
    assert not base_dir.exists()
    assert list((store.root / "blobs/sha256").iterdir()) == []
    assert [p for p in (store.root / "layers").iterdir()] == []
    assert store.list() == []


def test_remove_unknown_is_a_noop(store):
    store.remove("nothing:here")
    store.remove("sha256:" + "2" * 64)
    store.remove("!!invalid!!")


def test_remove_deletes_the_image_with_all_its_names(store):
    built = build_image(BASE)
    commit(store, built, tags=["a:1", "b:2"], digests=[f"a@{built.manifest_digest}"])
    store.remove("b:2")
    assert store.resolve("a:1") is None and store.resolve(f"a@{built.manifest_digest}") is None


def test_duplicate_layer_is_stacked_once(store):
    empty = layer_tar()
    built = build_image(empty, BASE, empty)
    image = commit(store, built, tags=["dup:1"])
    dirs = store.layer_dirs(image)
    assert len(dirs) == 2 and dirs[1].name == digest_of(empty)[7:]
    assert store.lowerdir(image).count(":") == 1


def test_index_survives_reopening(tmp_path, store):
    built = build_image(BASE, APP, config={"User": "web"})
    image = commit(store, built, tags=["app:1"])
    again = ImageStore(store.root)
    assert again.get("app:1") == image
    assert again.get("app:1").username == "web"
    doc = json.loads((store.root / "images.json").read_text())
    record = doc["images"][image.id]
    assert record["config_digest"] == built.config_digest and record["layers"] == built.diff_ids
    assert not list(store.root.glob(".images.json.*"))  # no temp files left behind


def test_leftover_temp_files_are_cleaned_on_open(store):
    (store.temp_dir / "ingest-stale").write_bytes(b"x")
    (store.root / "layers" / ".tmp-abc").mkdir()
    again = ImageStore(store.root)
    assert list(again.temp_dir.iterdir()) == [] and not (store.root / "layers" / ".tmp-abc").exists()


def test_blob_digest_is_verified(store, tmp_path):
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.add_blob(b"content", digest_of(b"other"))
    path = tmp_path / "blob"
    path.write_bytes(b"content")
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.add_blob_file(path, digest_of(b"other"))
    assert not path.exists() and not store.has_blob(digest_of(b"content"))
    path.write_bytes(b"content")
    assert store.add_blob_file(path, digest_of(b"content")) == digest_of(b"content")
    assert store.read_blob(digest_of(b"content")) == b"content"
    with pytest.raises(InvalidArgument):
        store.add_blob(b"x", "sha256:nothex")
    with pytest.raises(NotFound):
        store.read_blob(digest_of(b"missing"))


def test_config_diff_id_mismatch_is_invalid(store):
    wrong = build_image(BASE, diff_ids=[digest_of(b"not the layer")])
    with pytest.raises(InvalidArgument, match="diff_id mismatch"):
        commit(store, wrong, tags=["bad:1"])
    assert store.list() == []
    assert [p for p in (store.root / "layers").iterdir()] == []  # the half-unpacked dir is gone


def test_config_layer_count_mismatch_is_invalid(store):
    built = build_image(BASE, APP)
    for data in [built.config, *built.layer_blobs]:
        store.add_blob(data)
    with pytest.raises(InvalidArgument, match="2 diff_ids for 1 layers"):
        store.commit_image(built.config_digest, built.layer_digests[:1])


def test_concurrent_commits_share_one_unpack(store):
    images = [build_image(BASE, layer_tar(file(f"n{i}", str(i)))) for i in range(6)]
    for built in images:
        for data in [built.config, *built.layer_blobs]:
            store.add_blob(data)
    errors = []

    def run(built):
        try:
            store.commit_image(built.config_digest, built.layer_digests, repo_tags=[f"img:{built.id[7:15]}"])
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(b,)) for b in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list()) == 6
    assert len([p for p in (store.root / "layers").iterdir()]) == 7  # BASE once + six tops


def test_fs_info_counts_blobs_and_layers(store):
    used0, inodes0, mount = store.fs_info()
    commit(store, build_image(BASE, APP), tags=["a:1"])
    used1, inodes1, _ = store.fs_info()
    assert mount == str(store.root)
    assert used1 > used0 and inodes1 >= inodes0 + 8
