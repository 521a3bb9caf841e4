"""One image store, several users: two ImageStore instances on one root, and a second real process.

The runtime keeps its store open while ``python -m kubelet.runtime.images load`` imports into it from another
process; these tests check the index never loses an update, readers see other writers' changes without reopening,
pins and container users are honoured across instances, and a layer unpacked twice at once ends up once.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kubelet.runtime.errors import FailedPrecondition, NotFound
from kubelet.runtime.images import ImageStore
from kubelet.runtime.images.layers import install_layer
from tests.unit.runtime.imagefixtures import BuiltImage, build_image, digest_of, file, layer_tar, write_archive

BASE = layer_tar(file("etc/os-release", "ID=shared\n"), file("bin/tool", b"\x7fELF", 0o755))
REPO = Path(__file__).resolve().parents[3]


def commit(store: ImageStore, image: BuiltImage, tag: str):
    for data in [image.config, *image.layer_blobs]:
        store.add_blob(data)
    return store.commit_image(image.config_digest, image.layer_digests, repo_tags=[tag])


def image_with(n: int) -> BuiltImage:
    return build_image(BASE, layer_tar(file(f"n{n}", str(n))))


@pytest.fixture
def stores(tmp_path):
    a, b = ImageStore(tmp_path / "images"), ImageStore(tmp_path / "images")
    yield a, b
    a.close()
    b.close()


def test_each_instance_sees_the_others_changes_without_reopening(stores):
    a, b = stores
    assert b.list() == []
    image = commit(a, image_with(1), "one:1")
    assert b.get("one:1") == image
    b.tag(image.id, "alias:2")
    assert a.get("alias:2").id == image.id
    b.remove("one:1")
    assert a.resolve(image.id) is None and a.list() == []


def test_quick_same_size_rewrites_are_noticed(stores):
    a, b = stores
    image = commit(a, image_with(1), "one:1")
    for n in range(20):  # same length each time, often the same inode: the mtime must tell versions apart
        a.add_user(image.id, f"container {n:02d}")
        assert b.users(image.id) == [f"container {n:02d}"]
        a.remove_user(f"container {n:02d}")


def test_concurrent_writers_lose_no_update(stores):
    a, b = stores
    images = [image_with(n) for n in range(8)]
    errors = []

    def run(store, built, n):
        try:
            commit(store, built, f"img:{n}")
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=((a, b)[n % 2], built, n)) for n, built in enumerate(images)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(i.repo_tags[0] for i in ImageStore(a.root).list()) == [f"docker.io/library/img:{n}" for n in range(8)]
    assert len(list((a.root / "layers").iterdir())) == 9  # BASE once, whichever instance unpacked it first


def test_pins_of_another_instance_are_honoured(stores):
    a, b = stores
    one, two = image_with(1), image_with(2)
    commit(a, one, "one:1")
    with b.hold(one.layer_digests[0], one.diff_ids[0]):  # b is about to commit `two`, which shares BASE
        a.remove("one:1")
        assert b.has_blob(one.layer_digests[0]) and (a.root / "layers" / one.diff_ids[0][7:]).is_dir()
        assert not a.has_blob(one.layer_digests[1])  # not pinned: gone
        commit(b, two, "two:1")
    assert a.get("two:1").layers[0] == one.diff_ids[0]


def test_users_block_removal_from_every_instance(stores):
    a, b = stores
    image = commit(a, image_with(1), "one:1")
    a.add_user("one:1", "container abc123")
    with pytest.raises(FailedPrecondition, match="in use by container abc123"):
        b.remove("one:1")
    assert b.get("one:1").id == image.id
    a.retain_users({"container abc123"})
    assert b.users("one:1") == ["container abc123"]
    a.retain_users(set())
    b.remove("one:1")
    with pytest.raises(NotFound):
        a.add_user(image.id, "container late")


def test_losing_the_unpack_race_keeps_the_winners_layer(tmp_path):
    blob = tmp_path / "layer.tar"
    blob.write_bytes(BASE)
    final, temp = tmp_path / "final", tmp_path / ".tmp-x"
    assert install_layer(blob, final, tmp_path / ".tmp-first", digest_of(BASE)) == len("ID=shared\n") + 4
    inode = final.stat().st_ino
    assert install_layer(blob, final, temp, digest_of(BASE)) == len("ID=shared\n") + 4
    assert final.stat().st_ino == inode and not temp.exists()


def test_two_instances_unpacking_one_layer_at_once(stores):
    a, b = stores
    built = image_with(1)
    for data in built.layer_blobs:
        a.add_blob(data)
    barrier = threading.Barrier(2)
    sizes = []

    def run(store):
        barrier.wait()
        sizes.append(store.ensure_layer(built.layer_digests[0], built.diff_ids[0]))

    threads = [threading.Thread(target=run, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sizes == [len("ID=shared\n") + 4] * 2
    assert [p.name for p in (a.root / "layers").iterdir()] == [built.diff_ids[0][7:]]


def test_cleanup_spares_live_instances_temp_files(stores, tmp_path):
    a, _ = stores
    in_progress = a.new_temp_path()
    in_progress.write_bytes(b"downloading")
    dead = a.temp_dir / "ingest-0123456789abcdef-00000000"  # an owner whose file is gone: it died
    dead.write_bytes(b"x")
    ImageStore(a.root).close()
    assert in_progress.exists() and not dead.exists()


HOLDER = """
import sys
from kubelet.runtime.images import ImageStore
store = ImageStore(sys.argv[1])
with store.hold(*sys.argv[2:]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_another_process_pins_and_loads(tmp_path):
    store = ImageStore(tmp_path / "images")
    one = image_with(1)
    commit(store, one, "one:1")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.root), one.layer_digests[0], one.diff_ids[0]],
                              cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        store.remove("one:1")
        assert store.has_blob(one.layer_digests[0]) and not store.has_blob(one.config_digest)
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0

    two = image_with(2)
    archive = write_archive(tmp_path / "two.tar", [(two, ["two:2"])], format="docker")
    loaded = subprocess.run([sys.executable, "-m", "kubelet.runtime.images", "--root", str(store.root), "load",
                             str(archive)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert store.get("two:2").id == two.id  # the open store sees the other process's import
    assert len(list((store.root / "owners").iterdir())) == 1  # only ours: the holder (dead) and the CLI are gone
    store.close()
