"""The CRI ImageService of a running runtime: archives loaded from outside, registry pulls, removal, usage.

Images are tiny and built per test (the built-in busybox layer plus one file, command ``cat`` of that file), so
every test knows each byte it runs. Archives go into the running runtime's store with kubemini's own CLI
(``python -m kubelet.runtime.images load``) from a separate process, as an operator would; pulls come from a
local docker-registry (tests/runtime/registry.py).
"""

from __future__ import annotations

import functools
import secrets
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from kubelet.runtime.images.builtin import PATH_ENV, busybox_layer
from kubemini.ports import free_port
from proto.cri import api_pb2 as cri
from tests.runtime.cri import container_config, sandbox_config
from tests.runtime.registry import MISSING, registry_available
from tests.unit.runtime.imagefixtures import BuiltImage, build_image, file, layer_tar, write_archive

REPO = Path(__file__).resolve().parents[2]
needs_registry = pytest.mark.skipif(not registry_available(), reason=MISSING)
uses_cli = pytest.mark.kubemini_only("loads archives with kubemini's CLI into kubemini's own image store")


@functools.cache
def busybox_tar() -> bytes:
    return busybox_layer()[0]


def tiny_image(text: str) -> BuiltImage:
    """busybox + /hello.txt holding ``text``; its command prints the file."""
    return build_image(busybox_tar(), layer_tar(file("hello.txt", text)),
                       config={"Cmd": ["cat", "/hello.txt"], "Env": [PATH_ENV]})


def unique(name: str) -> str:
    return f"kubemini.test/{name}:{secrets.token_hex(4)}"


def cli(runtime_process, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubelet.runtime.images", "--root",
                           str(runtime_process.root / "images"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def image_status(cri_client, ref: str) -> cri.Image:
    return cri_client.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref))).image


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def run_to_exit(pods, sandbox, name: str, image: str) -> tuple[cri.ContainerStatus, str]:
    """Run the image's own command (no command given) to its exit; return its status and its stdout."""
    container = pods.run(sandbox, container_config(name, [], image=image, log_path=f"{name}.log"))
    status = pods.wait_exited(container)
    lines = Path(status.log_path).read_text().splitlines()
    return status, "".join(line.split(" ", 3)[3] + "\n" for line in lines if " stdout " in line)


@uses_cli
def test_archives_loaded_by_the_cli_are_seen_and_run(cri_client, pods, runtime_process, tmp_path):
    docker, oci = tiny_image("from a docker archive\n"), tiny_image("from an OCI layout\n")
    docker_name, oci_name = unique("docker-archive"), unique("oci-layout")
    docker_tar = write_archive(tmp_path / "docker.tar", [(docker, [docker_name])], format="docker")
    oci_tar = write_archive(tmp_path / "oci.tar", [(oci, [oci_name])], format="oci")

    loaded = cli(runtime_process, "load", str(docker_tar), str(oci_tar))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines() == [f"Loaded image: {docker_name}", f"Loaded image: {oci_name}"]

    for name, built in ((docker_name, docker), (oci_name, oci)):
        status = image_status(cri_client, name)
        assert (status.id, list(status.repo_tags)) == (built.id, [name])
        assert status.size > len(busybox_tar()) // 2  # unpacked busybox + the file
    listed = {image.id for image in cri_client.ListImages(cri.ListImagesRequest()).images}
    assert {docker.id, oci.id} <= listed

    sandbox = pods.run_sandbox(sandbox_config(log_directory=str(tmp_path / "logs")))
    for name, ref, text in (("docker", docker_name, "from a docker archive\n"),
                            ("oci", oci.id, "from an OCI layout\n")):  # by name and by id, as the kubelet does
        status, out = run_to_exit(pods, sandbox, name, ref)
        assert (status.exit_code, out) == (0, text)
        assert status.image_id == (docker.id if name == "docker" else oci.id)


@needs_registry
def test_pull_from_a_local_registry_and_run(cri_client, pods, pusher, registry, tmp_path):
    built = tiny_image("pulled over the registry API\n")
    repo = f"kubemini/pulled-{secrets.token_hex(3)}"
    pusher.image(repo, "v1", built)
    ref = f"{registry}/{repo}:v1"
    response = cri_client.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=ref)))
    assert response.image_ref in (built.id, f"{registry}/{repo}@{built.manifest_digest}")
    status = image_status(cri_client, ref)
    assert status.id == built.id and ref in status.repo_tags
    assert f"{registry}/{repo}@{built.manifest_digest}" in status.repo_digests

    sandbox = pods.run_sandbox(sandbox_config(log_directory=str(tmp_path)))
    container_status, out = run_to_exit(pods, sandbox, "pulled", ref)
    assert (container_status.exit_code, out) == (0, "pulled over the registry API\n")


@needs_registry
def test_pulling_a_missing_image_is_not_found(cri_client, registry):
    missing = f"{registry}/kubemini/never-pushed-{secrets.token_hex(3)}:v1"
    assert code_of(lambda: cri_client.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=missing)))) == \
        grpc.StatusCode.NOT_FOUND
    assert not image_status(cri_client, missing).id


@pytest.mark.kubemini_only(
    "containerd 1.6 answers a closed registry port with UNKNOWN ('failed to pull and unpack image ...: connect: "
    "connection refused'); kubemini says UNAVAILABLE, which tells a retry may help")
def test_pulling_from_a_closed_port_is_unavailable(cri_client):
    closed = f"127.0.0.1:{free_port()}/kubemini/app:v1"
    assert code_of(lambda: cri_client.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=closed)))) == \
        grpc.StatusCode.UNAVAILABLE


@uses_cli
def test_an_image_in_use_is_kept_until_its_pod_is_gone(cri_client, pods, runtime_process, tmp_path):
    """containerd 1.6 removes an image its containers use (they keep their own snapshots); kubemini refuses with
    FAILED_PRECONDITION, in any container state: a container's rootfs is stacked on the image's layer dirs."""
    built = tiny_image("in use\n")
    name = unique("in-use")
    assert cli(runtime_process, "load", str(write_archive(tmp_path / "a.tar", [(built, [name])]))).returncode == 0
    store = runtime_process.root / "images"
    top_layer = store / "layers" / built.diff_ids[1].removeprefix("sha256:")
    busybox_layer_dir = store / "layers" / built.diff_ids[0].removeprefix("sha256:")

    sandbox = pods.run_sandbox(sandbox_config(log_directory=str(tmp_path)))
    status, _ = run_to_exit(pods, sandbox, "user", name)  # exited, not removed: still a user
    with pytest.raises(grpc.RpcError) as refused:
        cri_client.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=name)))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert status.id in refused.value.details()
    rm = cli(runtime_process, "rm", name)  # another process is refused too
    assert rm.returncode == 1 and status.id in rm.stderr
    assert image_status(cri_client, name).id == built.id and top_layer.is_dir()

    cri_client.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox[0]))
    cri_client.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox[0]))
    pods.sandboxes.remove(sandbox[0])
    cri_client.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=name)))
    cri_client.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=name)))  # idempotent
    assert not image_status(cri_client, name).id
    assert not top_layer.exists()
    assert not (store / "blobs" / "sha256" / built.config_digest.removeprefix("sha256:")).exists()
    assert busybox_layer_dir.is_dir()  # shared with the built-in busybox image


def test_image_fs_info_names_the_image_filesystem(cri_client):
    filesystems = cri_client.ImageFsInfo(cri.ImageFsInfoRequest()).image_filesystems
    assert len(filesystems) == 1 and filesystems[0].fs_id.mountpoint and filesystems[0].timestamp > 0


@pytest.mark.kubemini_only(
    "containerd 1.6 samples its snapshotter's usage every stats_collect_period (10s): a fresh containerd reports 0")
def test_image_fs_info_reports_usage(cri_client, runtime_process):
    usage = cri_client.ImageFsInfo(cri.ImageFsInfoRequest()).image_filesystems[0]
    assert usage.used_bytes.value > 0 and usage.inodes_used.value > 0
    assert usage.fs_id.mountpoint == str(runtime_process.root / "images")


@pytest.mark.kubemini_only("containerd would go to Docker Hub; kubemini's built-in images are pinned")
def test_pulling_a_builtin_image_needs_no_registry(cri_client):
    """``image: busybox`` defaults to imagePullPolicy Always; the pull answers from the built-in image offline."""
    before = cri_client.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image="busybox"))).image
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest"):
        pulled = cri_client.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=ref)))
        assert pulled.image_ref == before.id
    assert before.pinned
