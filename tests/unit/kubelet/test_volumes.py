"""Pod volumes on disk: each volume type, the atomic writer, refresh, container mounts, errors and teardown.

tmpfs mounts need root; every test's manager is torn down in the fixture and the test fails if anything is still
mounted under its directory.
"""

from __future__ import annotations

import base64
import os
import socket
import stat
from pathlib import Path

import pytest

from kubelet.env import ContainerConfigError
from kubelet.volumes import VolumeError, VolumeManager, atomic
from kubelet.volumes.atomic import FileProjection, PayloadError, write_atomically
from kubelet.volumes.emptydir import pod_memory_limit
from kubelet.volumes.tmpfs import is_mount_point, mounts_under
from proto.cri import api_pb2 as cri
from tests.unit.kubelet.test_env import FakeSource

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="tmpfs mounts need root")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def make_pod(*volumes, uid="pod-1", containers=None) -> dict:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": uid, "labels": {"b": "2", "a": "1"},
                         "annotations": {"x": "y"}},
            "spec": {"volumes": list(volumes), "containers": containers or [
                {"name": "app", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}]}}


@pytest.fixture
def source() -> FakeSource:
    return FakeSource(config_maps={("ns", "cfg"): {"data": {"a.conf": "A", "b.conf": "B"},
                                                   "binaryData": {"bin": b64("\x00\x01")}}},
                      secrets={("ns", "sec"): {"data": {"user": b64("admin"), "pass": b64("s3cret")}}})


@pytest.fixture
async def manager(tmp_path, source):
    vm = VolumeManager(tmp_path / "kubelet", source, node_allocatable_memory=1 << 30,
                       node_allocatable={"cpu": "4", "memory": "1Gi"})
    try:
        yield vm
    finally:
        for uid in vm.pod_uids_on_disk():
            await vm.teardown(uid)
        assert mounts_under(tmp_path) == []


def vol_dir(vm: VolumeManager, kind: str, name: str, uid="pod-1") -> Path:
    return vm.dirs.root / "pods" / uid / "volumes" / kind / name


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def tmpfs_size(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_blocks * info.f_frsize


# --- emptyDir and hostPath -------------------------------------------------------------------------------------


@needs_root
async def test_empty_dir_on_disk_and_in_memory(manager):
    pod = make_pod({"name": "scratch", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory"}},
                   {"name": "small", "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"}})
    await manager.setup(pod)
    await manager.setup(pod)  # idempotent: nothing mounted twice
    scratch = vol_dir(manager, "kubernetes.io~empty-dir", "scratch")
    assert scratch.is_dir() and stat.S_IMODE(scratch.stat().st_mode) == 0o777 and not is_mount_point(scratch)
    mem, small = (vol_dir(manager, "kubernetes.io~empty-dir", n) for n in ("mem", "small"))
    assert is_mount_point(mem) and is_mount_point(small)
    assert len([p for p in mounts_under(mem) if p == mem]) == 1
    assert tmpfs_size(mem) == 64 << 20  # the pod's memory limit is below node allocatable
    assert tmpfs_size(small) == 4 << 20  # sizeLimit is lower still
    await manager.teardown("pod-1")
    assert not (manager.dirs.root / "pods" / "pod-1").exists()
    assert mounts_under(manager.dirs.root) == []
    await manager.teardown("pod-1")  # idempotent


def test_pod_memory_limit_peaks_over_init_containers_and_needs_every_limit():
    def limited(name: str, memory: str | None, **extra) -> dict:
        return {"name": name, "resources": {"limits": {"memory": memory}} if memory else {}, **extra}

    spec = {"containers": [limited("app", "64Mi")],
            "initContainers": [limited("side", "16Mi", restartPolicy="Always"), limited("init", "128Mi")],
            "overhead": {"memory": "1Mi"}}
    assert pod_memory_limit({"spec": spec}) == (16 + 128 + 1) << 20  # the init container beside the sidecar
    without = {**spec, "containers": [limited("app", "64Mi"), limited("free", None)]}
    assert pod_memory_limit({"spec": without}) is None  # one unlimited container: the pod is unlimited
    pod_level = {**without, "resources": {"limits": {"memory": "1Gi"}}}
    assert pod_memory_limit({"spec": pod_level}) == (1024 + 1) << 20  # a pod-level limit alone will do


async def test_empty_dir_unsupported_medium(manager):
    with pytest.raises(VolumeError, match="emptyDir medium 'HugePages' is not supported"):
        await manager.setup(make_pod({"name": "h", "emptyDir": {"medium": "HugePages"}}))


async def test_host_path_types(manager, tmp_path):
    made_dir, made_file = tmp_path / "made" / "dir", tmp_path / "made-file"
    sock_path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        pod = make_pod({"name": "a", "hostPath": {"path": str(made_dir), "type": "DirectoryOrCreate"}},
                       {"name": "b", "hostPath": {"path": str(made_file), "type": "FileOrCreate"}},
                       {"name": "c", "hostPath": {"path": str(tmp_path), "type": "Directory"}},
                       {"name": "d", "hostPath": {"path": str(sock_path), "type": "Socket"}},
                       {"name": "e", "hostPath": {"path": "/dev/null", "type": "CharDevice"}},
                       {"name": "f", "hostPath": {"path": str(tmp_path / "anything")}})
        await manager.setup(pod)
    finally:
        server.close()
    assert made_dir.is_dir() and stat.S_IMODE(made_dir.stat().st_mode) == 0o755 & ~current_umask()
    assert made_file.is_file() and made_file.read_bytes() == b""
    mounts = manager.mounts_for(pod, {"name": "app", "volumeMounts": [{"name": "a", "mountPath": "/data"}]}, {})
    assert mounts[0].host_path == str(made_dir)
    cases = [("Directory", str(made_file), f"hostPath type check failed: {made_file} is not a directory"),
             ("File", str(made_dir), f"hostPath type check failed: {made_dir} is not a file"),
             ("Socket", str(made_file), f"hostPath type check failed: {made_file} is not a socket file"),
             ("CharDevice", str(made_file), f"hostPath type check failed: {made_file} is not a character device"),
             ("BlockDevice", "/dev/null", "hostPath type check failed: /dev/null is not a block device"),
             ("Directory", str(tmp_path / "missing"), "is not a directory"),
             ("Weird", str(tmp_path), "Weird is an invalid volume type")]
    for kind, path, message in cases:
        with pytest.raises(VolumeError) as caught:
            await manager.setup(make_pod({"name": "h", "hostPath": {"path": path, "type": kind}}))
        assert str(caught.value).startswith('MountVolume.SetUp failed for volume "h" : ')
        assert message in str(caught.value)


async def test_unsupported_volume_types(manager):
    with pytest.raises(VolumeError) as caught:
        await manager.setup(make_pod({"name": "data", "persistentVolumeClaim": {"claimName": "c"}}))
    assert str(caught.value) == ('MountVolume.SetUp failed for volume "data" : persistentVolumeClaim volumes are '
                                 "not supported by kubemini")
    with pytest.raises(VolumeError, match="nfs volumes are not supported by kubemini"):
        await manager.setup(make_pod({"name": "n", "nfs": {"server": "x", "path": "/"}}))


# --- configMap, secret, downwardAPI, projected -------------------------------------------------------------------


def visible(directory: Path) -> dict[str, bytes]:
    """What a container sees: the user-visible entries (following the symlinks)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if not p.name.startswith("..")
            and p.is_file()}


async def test_config_map_volume_layout_items_and_modes(manager):
    pod = make_pod({"name": "all", "configMap": {"name": "cfg"}},
                   {"name": "some", "configMap": {"name": "cfg", "defaultMode": 0o600, "items": [
                       {"key": "a.conf", "path": "nested/dir/a"}, {"key": "b.conf", "path": "b", "mode": 0o400}]}})
    await manager.setup(pod)
    every = vol_dir(manager, "kubernetes.io~configmap", "all")
    assert visible(every) == {"a.conf": b"A", "b.conf": b"B", "bin": b"\x00\x01"}
    assert os.readlink(every / "a.conf") == "..data/a.conf"
    assert os.readlink(every / "..data").startswith("..20")
    assert stat.S_IMODE((every / "a.conf").stat().st_mode) == 0o644
    some = vol_dir(manager, "kubernetes.io~configmap", "some")
    assert os.readlink(some / "nested") == "..data/nested"  # nested paths: the top-level directory is linked
    assert (some / "nested" / "dir" / "a").read_bytes() == b"A"
    assert stat.S_IMODE((some / "nested" / "dir" / "a").stat().st_mode) == 0o600
    assert stat.S_IMODE((some / "b").stat().st_mode) == 0o400
    assert sorted(p.name for p in some.iterdir() if not p.name.startswith("..")) == ["b", "nested"]


async def test_config_map_optional_and_missing(manager):
    await manager.setup(make_pod({"name": "opt", "configMap": {"name": "gone", "optional": True}},
                                 {"name": "optkey", "configMap": {"name": "cfg", "optional": True,
                                                                  "items": [{"key": "nope", "path": "n"},
                                                                            {"key": "a.conf", "path": "a"}]}}))
    assert visible(vol_dir(manager, "kubernetes.io~configmap", "opt")) == {}
    assert visible(vol_dir(manager, "kubernetes.io~configmap", "optkey")) == {"a": b"A"}
    with pytest.raises(VolumeError) as caught:
        await manager.setup(make_pod({"name": "cm", "configMap": {"name": "gone"}}, uid="pod-2"))
    assert str(caught.value) == 'MountVolume.SetUp failed for volume "cm" : configmap "gone" not found'
    with pytest.raises(VolumeError, match="configmap references non-existent config key: nope"):
        await manager.setup(make_pod({"name": "k", "configMap": {"name": "cfg", "items": [{"key": "nope",
                                                                                             "path": "n"}]}}))
    with pytest.raises(VolumeError, match='secret "gone" not found'):
        await manager.setup(make_pod({"name": "s", "secret": {"secretName": "gone"}}))


@needs_root
async def test_secret_volume_is_on_tmpfs(manager):
    await manager.setup(make_pod({"name": "creds", "secret": {"secretName": "sec", "items": [
        {"key": "pass", "path": "password"}]}}))
    directory = vol_dir(manager, "kubernetes.io~secret", "creds")
    assert is_mount_point(directory)
    assert visible(directory) == {"password": b"s3cret"}
    with pytest.raises(VolumeError, match="references non-existent secret key: nope"):
        await manager.setup(make_pod({"name": "bad", "secret": {"secretName": "sec", "items": [
            {"key": "nope", "path": "n"}]}}, uid="pod-2"))


async def test_downward_api_volume(manager):
    await manager.setup(make_pod({"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "meta/uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o400},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}},
    ]}}))
    directory = vol_dir(manager, "kubernetes.io~downward-api", "info")
    assert visible(directory) == {"cpu": b"4", "labels": b'a="1"\nb="2"', "mem": b"64", "name": b"web"}
    assert (directory / "meta" / "uid").read_bytes() == b"pod-1"
    with pytest.raises(VolumeError, match="container nope not found"):
        await manager.setup(make_pod({"name": "bad", "downwardAPI": {"items": [
            {"path": "x", "resourceFieldRef": {"containerName": "nope", "resource": "limits.cpu"}}]}}, uid="pod-2"))


@needs_root
async def test_projected_volume_merges_sources(manager):
    await manager.setup(make_pod({"name": "all-in-one", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "config/a"}]}},
        {"secret": {"name": "sec"}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"secret": {"name": "gone", "optional": True}},
    ]}}))
    directory = vol_dir(manager, "kubernetes.io~projected", "all-in-one")
    assert is_mount_point(directory)
    assert visible(directory) == {"name": b"web", "pass": b"s3cret", "user": b"admin"}
    assert (directory / "config" / "a").read_bytes() == b"A"
    assert stat.S_IMODE((directory / "user").stat().st_mode) == 0o440


@needs_root
async def test_projected_service_account_token_is_rejected(manager):
    with pytest.raises(VolumeError) as caught:
        await manager.setup(make_pod({"name": "kube-api-access-x", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "gone"}}]}}))
    assert str(caught.value) == ('MountVolume.SetUp failed for volume "kube-api-access-x" : [projected '
                                 'serviceAccountToken volumes are not supported by kubemini yet, configmap "gone" '
                                 "not found]")


# --- refresh and the atomic writer -------------------------------------------------------------------------------


async def test_refresh_updates_in_place_only_when_changed(manager, source):
    pod = make_pod({"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "scratch", "emptyDir": {}})
    await manager.setup(pod)
    directory = vol_dir(manager, "kubernetes.io~configmap", "cfg")
    first_data = os.readlink(directory / "..data")
    assert await manager.refresh(pod) is False
    assert os.readlink(directory / "..data") == first_data
    source.config_maps[("ns", "cfg")] = {"data": {"a.conf": "A2", "c.conf": "C"}}
    assert await manager.refresh(pod) is True
    assert visible(directory) == {"a.conf": b"A2", "c.conf": b"C"}
    assert not (directory / "b.conf").is_symlink()  # a key that went away goes away
    assert not (directory / first_data).exists()  # the old timestamped directory is removed
    assert [p.name for p in directory.iterdir() if p.name.startswith("..")].count("..data_tmp") == 0
    assert await manager.refresh(pod) is False
    del source.config_maps[("ns", "cfg")]  # unreadable now: the last content stays
    assert await manager.refresh(pod) is False
    assert visible(directory) == {"a.conf": b"A2", "c.conf": b"C"}


async def test_refresh_skips_volumes_not_set_up(manager):
    assert await manager.refresh(make_pod({"name": "cfg", "configMap": {"name": "cfg"}})) is False
    assert manager.pod_uids_on_disk() == []


def test_old_files_stay_valid_until_the_swap(tmp_path, monkeypatch):
    target = tmp_path / "vol"
    write_atomically(target, {"key": FileProjection(b"old", 0o644), "gone": FileProjection(b"g", 0o644)})
    seen = []
    real_swap = atomic._swap_data_link

    def checking_swap(directory, new_dir):
        # the new content is complete on disk, yet every user-visible path still reads the old content
        assert (new_dir / "key").read_bytes() == b"new"
        seen.append(((target / "key").read_bytes(), (target / "gone").read_bytes()))
        real_swap(directory, new_dir)
        seen.append((target / "key").read_bytes())

    monkeypatch.setattr(atomic, "_swap_data_link", checking_swap)
    held = open(target / "key", "rb")  # a reader that opened the old file before the update  # noqa: SIM115
    try:
        assert write_atomically(target, {"key": FileProjection(b"new", 0o644)}) is True
        assert held.read() == b"old"
    finally:
        held.close()
    assert seen == [(b"old", b"g"), b"new"]
    assert not (target / "gone").exists()


def test_atomic_writer_rejects_bad_paths(tmp_path):
    for path, message in (("/abs", "must be relative path"), ("a/../b", "must not contain '..'"),
                          ("..data/x", "must not start with '..'"), ("", "must not be empty")):
        with pytest.raises(PayloadError, match=message):
            write_atomically(tmp_path / "v", {path: FileProjection(b"", 0o644)})
    with pytest.raises(PayloadError, match="both a file and a directory"):
        write_atomically(tmp_path / "v", {"a": FileProjection(b"", 0o644), "a/b": FileProjection(b"", 0o644)})


async def test_bad_item_path_is_a_volume_error(manager):
    with pytest.raises(VolumeError, match=r"must not contain '\.\.'"):
        await manager.setup(make_pod({"name": "cm", "configMap": {"name": "cfg", "items": [
            {"key": "a.conf", "path": "../escape"}]}}))


# --- container mounts --------------------------------------------------------------------------------------------


async def test_mounts_for(manager, tmp_path):
    pod = make_pod({"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}},
                   {"name": "host", "hostPath": {"path": str(tmp_path)}})
    await manager.setup(pod)
    scratch = vol_dir(manager, "kubernetes.io~empty-dir", "scratch")
    container = {"name": "app", "securityContext": {"privileged": True}, "volumeMounts": [
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "scratch", "mountPath": "/ro", "readOnly": True, "mountPropagation": "HostToContainer"},
        {"name": "scratch", "mountPath": "/sub", "subPath": "a/b"},
        {"name": "scratch", "mountPath": "/expr", "subPathExpr": "logs/$(POD_NAME)"},
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "cfg", "mountPath": "/etc/a.conf", "subPath": "a.conf"},
        {"name": "host", "mountPath": "/host", "mountPropagation": "Bidirectional"},
    ]}
    mounts = manager.mounts_for(pod, container, {"POD_NAME": "web"})
    assert [(m.container_path, m.readonly, m.propagation) for m in mounts] == [
        ("/scratch", False, cri.PROPAGATION_PRIVATE), ("/ro", True, cri.PROPAGATION_HOST_TO_CONTAINER),
        ("/sub", False, cri.PROPAGATION_PRIVATE), ("/expr", False, cri.PROPAGATION_PRIVATE),
        ("/etc/cfg", True, cri.PROPAGATION_PRIVATE), ("/etc/a.conf", True, cri.PROPAGATION_PRIVATE),
        ("/host", False, cri.PROPAGATION_BIDIRECTIONAL)]
    assert mounts[0].host_path == str(scratch)
    assert mounts[2].host_path == str(scratch / "a" / "b") and (scratch / "a" / "b").is_dir()
    assert stat.S_IMODE((scratch / "a" / "b").stat().st_mode) == 0o777  # the volume's permissions
    assert mounts[3].host_path == str(scratch / "logs" / "web")
    cfg = vol_dir(manager, "kubernetes.io~configmap", "cfg")
    assert mounts[4].host_path == str(cfg)
    assert read(mounts[5].host_path) == b"A"  # the subPath's resolved file
    assert mounts[6].host_path == str(tmp_path)


async def test_mounts_for_errors(manager, tmp_path):
    pod = make_pod({"name": "scratch", "emptyDir": {}})
    await manager.setup(pod)
    (vol_dir(manager, "kubernetes.io~empty-dir", "scratch") / "out").symlink_to(tmp_path)

    def mounts(*volume_mounts, env=None, privileged=False):
        container = {"name": "app", "volumeMounts": list(volume_mounts),
                     "securityContext": {"privileged": privileged}}
        return manager.mounts_for(pod, container, env or {})

    cases = [({"name": "nope", "mountPath": "/x"}, 'cannot find volume "nope" to mount into container "app"'),
             ({"name": "scratch", "mountPath": "/x", "subPath": "/abs"}, "error SubPath `/abs` must not be an "
              "absolute path"),
             ({"name": "scratch", "mountPath": "/x", "subPath": "a/../../b"}, "unable to provision SubPath "
              "`a/../../b`: must not contain '..'"),
             ({"name": "scratch", "mountPath": "/x", "subPathExpr": "$(A)/$(B)"}, "missing value for A, B"),
             ({"name": "scratch", "mountPath": "/x", "mountPropagation": "Bidirectional"},
              "Bidirectional mount propagation is available only to privileged containers"),
             ({"name": "scratch", "mountPath": "/x", "subPath": "out"}, "not within volume path"),
             ({"name": "scratch", "mountPath": "/x", "subPath": "out/new"}, "failed to create subPath directory")]
    for mount, message in cases:
        with pytest.raises(ContainerConfigError) as caught:
            mounts(mount)
        assert message in str(caught.value)
    assert not (tmp_path / "new").exists()  # nothing was created through the escaping symlink


async def test_pod_uids_on_disk_and_teardown(manager):
    await manager.setup(make_pod({"name": "a", "emptyDir": {}}, uid="pod-a"))
    await manager.setup(make_pod({"name": "b", "configMap": {"name": "cfg"}}, uid="pod-b"))
    assert manager.pod_uids_on_disk() == ["pod-a", "pod-b"]
    await manager.teardown("pod-a")
    assert manager.pod_uids_on_disk() == ["pod-b"]
