"""The builtin busybox and pause images: built from host binaries, deterministic, usable as a rootfs."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from kubelet.runtime.errors import RuntimeFailure
from kubelet.runtime.images import ImageStore
from kubelet.runtime.images.builtin import BUSYBOX_IMAGE, PAUSE_IMAGE, ensure_builtin_images

pytestmark = pytest.mark.skipif(not (os.path.exists("/bin/busybox") and os.path.exists("/usr/bin/catatonit")),
                                reason="needs busybox-static and catatonit (apt-get install busybox-static catatonit)")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    store = ImageStore(tmp_path_factory.mktemp("builtin") / "images")
    return store, ensure_builtin_images(store)


def test_busybox_resolves_by_short_name(built):
    store, (busybox, _) = built
    assert store.get("busybox").id == busybox.id
    assert busybox.repo_tags == [BUSYBOX_IMAGE]
    assert busybox.config == {"Cmd": ["sh"],
                              "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    assert busybox.size >= os.path.getsize("/bin/busybox")


def test_busybox_rootfs(built):
    store, (busybox, _) = built
    [root] = store.layer_dirs(busybox)
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert os.readlink(root / "usr/bin/env") == "/bin/busybox"
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777
    assert "nobody:x:65534" in (root / "etc/passwd").read_text()
    assert "nogroup:x:65534:" in (root / "etc/group").read_text()
    for placeholder in ("proc", "sys", "dev"):
        assert (root / placeholder).is_dir()
    assert (root / "etc/hosts").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_busybox_rootfs_runs_a_shell(built):
    store, (busybox, _) = built
    [root] = store.layer_dirs(busybox)
    out = subprocess.run(["chroot", str(root), "/bin/sh", "-c", "echo $((6*7)) && ls /bin | grep -c ."],
                         capture_output=True, text=True, check=True, timeout=10).stdout.split()
    assert out[0] == "42" and int(out[1]) > 50


def test_pause_image(built):
    store, (_, pause) = built
    assert store.get(PAUSE_IMAGE).id == pause.id
    assert pause.config["Entrypoint"] == ["/catatonit", "-P"]
    assert (pause.uid, pause.username) == (65535, "")
    [root] = store.layer_dirs(pause)
    assert os.access(root / "catatonit", os.X_OK)


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_pause_waits_until_signalled(built):
    store, (_, pause) = built
    [root] = store.layer_dirs(pause)
    proc = subprocess.Popen(["chroot", "--userspec=65535:65535", str(root), "/catatonit", "-P"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_ids_are_stable_across_stores(built, tmp_path):
    _, first = built
    second = ensure_builtin_images(ImageStore(tmp_path / "other"))
    assert [i.id for i in second] == [i.id for i in first]
    assert [i.layers for i in second] == [i.layers for i in first]


def test_existing_images_are_not_rebuilt(built):
    store, first = built
    blobs_before = sorted(p.name for p in (store.root / "blobs/sha256").iterdir())
    again = ensure_builtin_images(store, busybox="/nonexistent/busybox", catatonit="/nonexistent/catatonit")
    assert [i.id for i in again] == [i.id for i in first]
    assert sorted(p.name for p in (store.root / "blobs/sha256").iterdir()) == blobs_before


def test_missing_binaries_say_what_to_install(tmp_path):
    with pytest.raises(RuntimeFailure, match="apt-get install busybox-static"):
        ensure_builtin_images(ImageStore(tmp_path / "a"), busybox=tmp_path / "no-busybox")
    with pytest.raises(RuntimeFailure, match="apt-get install catatonit"):
        ensure_builtin_images(ImageStore(tmp_path / "b"), catatonit=tmp_path / "no-catatonit")


def test_a_different_busybox_gives_a_different_id(built, tmp_path):
    _, (busybox, _) = built
    copy = tmp_path / "busybox"
    shutil.copy("/bin/busybox", copy)
    with open(copy, "ab") as f:
        f.write(b"\0")
    [other, _] = ensure_builtin_images(ImageStore(tmp_path / "c"), busybox=copy)
    assert other.id != busybox.id
