"""Layer unpacking: overlayfs whiteouts, preserved metadata, and tarballs that try to escape the layer."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess

import pytest

from kubelet.runtime.errors import InvalidArgument
from kubelet.runtime.images.layers import unpack_layer
from tests.unit.runtime.imagefixtures import (
    char_device,
    digest_of,
    directory,
    file,
    hardlink,
    layer_tar,
    symlink,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod and trusted.* xattrs need root")


def unpack(tmp_path, data: bytes, *, name="layer", diff_id=None, compress=None):
    blob = tmp_path / f"{name}.blob"
    blob.write_bytes(gzip.compress(data) if compress == "gzip" else data)
    dest = tmp_path / name
    size = unpack_layer(blob, dest, diff_id if diff_id is not None else digest_of(data))
    return dest, size


@needs_root
def test_whiteouts_become_overlayfs_whiteouts(tmp_path):
    data = layer_tar(directory("etc"), file("etc/.wh.passwd"), directory("var/cache"),
                     file("var/cache/.wh..wh..opq"), file("var/cache/new", "n"), file(".wh..wh.plnk"))
    dest, _ = unpack(tmp_path, data)
    st = os.lstat(dest / "etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert (dest / "var/cache/new").read_text() == "n"
    assert sorted(os.listdir(dest)) == ["etc", "var"]  # no .wh.* names left


@needs_root
def test_whiteouts_hide_lower_files_in_a_real_overlay_mount(tmp_path):
    lower, _ = unpack(tmp_path, layer_tar(file("keep", "k"), file("gone", "g"), directory("d"), file("d/old", "o")),
                      name="lower")
    upper, _ = unpack(tmp_path, layer_tar(file(".wh.gone"), directory("d"), file("d/.wh..wh..opq"),
                                          file("d/new", "n")), name="upper")
    for name in ("rw", "work", "merged"):
        (tmp_path / name).mkdir()
    merged = tmp_path / "merged"
    options = f"lowerdir={upper}:{lower},upperdir={tmp_path / 'rw'},workdir={tmp_path / 'work'}"
    mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"overlayfs mount not possible here: {mounted.stderr.decode().strip()}")
    try:
        assert sorted(os.listdir(merged)) == ["d", "keep"]
        assert os.listdir(merged / "d") == ["new"]
    finally:
        subprocess.run(["umount", str(merged)], check=True)


@needs_root
def test_metadata_is_preserved(tmp_path):
    data = layer_tar(
        directory("srv", mode=0o750, uid=33, gid=34),
        file("srv/tool", "x", mode=0o4755, uid=0, gid=0),
        file("srv/owned", "y", mode=0o600, uid=1000, gid=2000),
        symlink("srv/link", "/srv/owned"),
        hardlink("srv/hard", "srv/owned"),
        file("srv/cap", "z", xattrs={"user.note": "hello"}),
        char_device("dev/null"),
        directory("ro", mode=0o555),
        file("ro/inside", "r"),
    )
    dest, size = unpack(tmp_path, data, compress="gzip")
    srv = os.lstat(dest / "srv")
    assert (stat.S_IMODE(srv.st_mode), srv.st_uid, srv.st_gid) == (0o750, 33, 34)
    assert srv.st_mtime == 1_700_000_000  # directory times are set after their contents
    assert stat.S_IMODE(os.lstat(dest / "srv/tool").st_mode) == 0o4755  # set-uid survives chown
    owned = os.lstat(dest / "srv/owned")
    assert (stat.S_IMODE(owned.st_mode), owned.st_uid, owned.st_gid) == (0o600, 1000, 2000)
    assert os.readlink(dest / "srv/link") == "/srv/owned"
    assert os.lstat(dest / "srv/hard").st_ino == owned.st_ino
    assert os.getxattr(dest / "srv/cap", "user.note") == b"hello"
    assert not (dest / "dev/null").exists()  # device nodes are never taken from images
    assert stat.S_IMODE(os.lstat(dest / "ro").st_mode) == 0o555 and (dest / "ro/inside").read_text() == "r"
    assert size == 4  # x, y, z, r: hard links and symlinks add nothing


def test_later_entries_replace_earlier_ones(tmp_path):
    data = layer_tar(file("a", "first"), file("a", "second"), directory("b"), file("b/x"), file("b", "now a file"))
    dest, _ = unpack(tmp_path, data)
    assert (dest / "a").read_text() == "second"
    assert (dest / "b").read_text() == "now a file"


def test_missing_parents_are_created(tmp_path):
    dest, _ = unpack(tmp_path, layer_tar(file("deep/er/file", "f"), file("./dot/slash", "d")))
    assert (dest / "deep/er/file").read_text() == "f" and (dest / "dot/slash").read_text() == "d"


@pytest.mark.parametrize(("entries", "message"), [
    ([file("../evil", "x")], "escapes the layer"),
    ([file("a/../../evil", "x")], "escapes the layer"),
    ([file("/etc/evil", "x")], "absolute path"),
    ([file("ok", "x"), hardlink("h", "../../outside")], "escapes the layer"),
    ([hardlink("h", "does/not/exist")], "does not exist|bad hard link"),
])
def test_escaping_entries_are_rejected(tmp_path, entries, message):
    with pytest.raises(InvalidArgument, match=message):
        unpack(tmp_path, layer_tar(*entries))
    assert not (tmp_path / "evil").exists()


def test_writes_through_symlinks_stay_inside_the_layer(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    data = layer_tar(symlink("abs", str(outside)), file("abs/planted", "a"),
                     symlink("rel", "../../../.."), file("rel/planted2", "b"),
                     symlink("file-link", str(outside / "target")), file("file-link", "replaced"))
    dest, _ = unpack(tmp_path, data)
    assert list(outside.iterdir()) == []
    assert (dest / str(outside).lstrip("/") / "planted").read_text() == "a"  # as if the layer were /
    assert (dest / "planted2").read_text() == "b"
    assert not os.path.islink(dest / "file-link") and (dest / "file-link").read_text() == "replaced"


def test_directory_replaced_by_a_symlink_keeps_its_attributes_inside(tmp_path):
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    os.chmod(outside / "sub", 0o700)
    before = os.stat(outside / "sub")
    data = layer_tar(directory("d", mode=0o777), directory("p"), directory("p/sub", mode=0o777, uid=4242),
                     symlink("d", str(outside / "sub")), symlink("p", str(outside)))
    unpack(tmp_path, data)
    after = os.stat(outside / "sub")
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (before.st_mode, before.st_uid, before.st_mtime_ns)


def test_diff_id_mismatch_is_invalid(tmp_path):
    with pytest.raises(InvalidArgument, match="diff_id mismatch"):
        unpack(tmp_path, layer_tar(file("a", "x")), diff_id=digest_of(b"something else"))


def test_diff_id_covers_the_whole_uncompressed_stream(tmp_path):
    data = layer_tar(file("a", "x")) + b"\0" * 10240  # extra padding after the end-of-archive marker
    _, size = unpack(tmp_path, data, compress="gzip")
    assert size == 1


def test_corrupt_layers_are_invalid(tmp_path):
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        unpack(tmp_path, b"\x1f\x8b this is not gzip at all", name="badgz")
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        unpack(tmp_path, layer_tar(file("a", "x" * 5000))[:1500], name="truncated")


@pytest.mark.skipif(shutil.which("zstd") is None, reason="the zstd binary is not installed")
def test_zstd_layers(tmp_path):
    data = layer_tar(file("z", "zstd!"))
    plain = tmp_path / "plain.tar"
    plain.write_bytes(data)
    subprocess.run(["zstd", "-q", str(plain), "-o", str(tmp_path / "layer.zst")], check=True)
    dest = tmp_path / "out"
    unpack_layer(tmp_path / "layer.zst", dest, digest_of(data))
    assert (dest / "z").read_text() == "zstd!"
