"""The runtime with ``--backend process``: ocirun (kubemini's OCI runtime in Python) in place of runc.

The whole CRI client suite of ``test_cri.py`` and the container scenarios of ``test_streaming.py`` run again here
against a runtime started with the process backend (their test functions are collected into this module, where
``runtime_process`` is that runtime), followed by checks of what only this backend does: the containers'
isolation as ocirun builds it, its own state directory, and that nothing of it (state, processes, mounts)
outlives the pods.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from kubelet.runtime import cgroups, tasks
from proto.cri import api_pb2 as cri
from tests.runtime import test_cri, test_streaming
from tests.runtime.cri import CriClient, Pods, RuntimeProcess, container_config, missing_prerequisites, sandbox_config
from tests.support import wait_for

# Every scenario of the CRI suite and every streaming scenario that runs containers (exec with and without a
# terminal, attach, terminal containers, port-forward), in their order, with this module's fixtures.
for _module in (test_cri, test_streaming):
    for _name, _value in vars(_module).items():
        if _name.startswith("test_") and callable(_value) and (
                _module is test_cri or "pods" in inspect.signature(_value).parameters):
            assert _name not in globals(), _name
            globals()[_name] = _value
pod_cgroup = test_cri.pod_cgroup


class ProcessBackendRuntime(RuntimeProcess):
    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.extra_args += ["--backend", "process"]


@pytest.fixture(scope="module")
def runtime_process(tmp_path_factory):
    reason = missing_prerequisites()
    if reason and "runc" not in reason:  # the process backend is for machines without runc
        pytest.skip(reason)
    process = ProcessBackendRuntime(tmp_path_factory.mktemp("cri-process"))
    process.start()
    try:
        yield process
    finally:
        process.stop()
        subprocess.run(["ip", "link", "del", process.bridge], capture_output=True)


@pytest.fixture(scope="module")
def cri_client(runtime_process):
    client = CriClient(runtime_process.endpoint)
    yield client
    client.close()


@pytest.fixture
def pods(cri_client):
    tracker = Pods(cri_client)
    yield tracker
    tracker.cleanup()


def exec_sync(pods, container_id: str, command: str) -> str:
    response = pods.client.ExecSync(cri.ExecSyncRequest(container_id=container_id, cmd=["sh", "-c", command],
                                                        timeout=10))
    assert response.exit_code == 0, response.stderr
    return response.stdout.decode()


def test_the_runtime_drives_ocirun_not_runc(runtime_process):
    wrapper = runtime_process.root / "bin" / "ocirun"
    assert os.access(wrapper, os.X_OK)
    out = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True, check=True).stdout
    assert "ocirun" in out
    state_root = runtime_process.root / "state" / "ocirun"
    assert not (runtime_process.root / "state" / "runc").exists()
    unknown = subprocess.run([str(wrapper), "--root", str(state_root), "state", "nope"], capture_output=True,
                             text=True)
    assert unknown.returncode != 0 and "does not exist" in unknown.stderr


def test_container_isolation_as_ocirun_builds_it(pods, pod_cgroup):
    """Own mount, pid, ipc, uts and net namespaces shared with the pause process; caps; /dev; read-only paths."""
    sandbox = pods.run_sandbox(sandbox_config(cgroup_parent=pod_cgroup, hostname="iso-pod"))
    container = pods.run(sandbox, container_config("app", ["sleep", "3600"], memory=48 * test_cri.MiB))
    info = test_cri.verbose_info(pods, container)
    pid = info["pid"]
    pause_pid = json.loads(pods.client.PodSandboxStatus(cri.PodSandboxStatusRequest(
        pod_sandbox_id=sandbox[0], verbose=True)).info["info"])["pid"]
    for ns in ("pid", "ipc", "uts", "net"):  # joined from the pause process
        assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{pause_pid}/ns/{ns}")
    for ns in ("pid", "ipc", "uts", "net", "mnt"):  # and none of them the host's
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
    assert exec_sync(pods, container, "hostname") == "iso-pod\n"
    assert exec_sync(pods, container, "cat /proc/1/cmdline | tr '\\0' ' '").split()[0].endswith("catatonit")
    caps = int(exec_sync(pods, container, "grep CapEff /proc/self/status").split()[1], 16)
    assert caps == 0xA80425FB  # the default container set (CHOWN ... AUDIT_WRITE), not the host's
    assert set(exec_sync(pods, container, "ls /dev").split()) >= {
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd", "ptmx"}
    assert exec_sync(pods, container, "echo ok > /dev/null && head -c 4 /dev/zero | wc -c").strip() == "4"
    assert "Read-only" in pods.client.ExecSync(cri.ExecSyncRequest(
        container_id=container, cmd=["sh", "-c", "echo 1 > /proc/sys/kernel/domainname"], timeout=10)).stderr.decode()
    assert exec_sync(pods, container, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes").strip() == \
        str(48 * test_cri.MiB)  # its own cgroup, mounted read-only
    assert pid in [int(p) for p in Path(cgroups.controller_dir("memory", info["cgroupPath"]),
                                       "cgroup.procs").read_text().split()]


def test_user_and_working_dir(pods):
    sandbox = pods.run_sandbox()
    config = container_config("nobody", ["sleep", "3600"])
    config.linux.security_context.run_as_user.value = 65534
    config.working_dir = "/tmp/work"
    container = pods.run(sandbox, config)
    assert exec_sync(pods, container, "id -u; id -g; pwd; grep CapEff /proc/self/status").split() == \
        ["65534", "65534", "/tmp/work", "CapEff:", "0000000000000000"]


def test_memory_updates_in_both_directions_and_below_usage(pods):
    """memsw is written before the limit when growing and after it when shrinking; below usage (30 MB of tmpfs,
    which cannot be reclaimed without swap) is refused with EBUSY on cgroup v1 and the process lives on."""
    sandbox = pods.run_sandbox()
    container = pods.run(sandbox, container_config(
        "holder", ["sh", "-c", "head -c 30000000 /dev/zero > /dev/shm/held && exec sleep 3600"],
        memory=64 * test_cri.MiB))
    pid, path = test_cri.pid_of(pods, container), test_cri.cgroup_of(pods, container)
    memory = Path(cgroups.controller_dir("memory", path))

    def limits() -> tuple[int, int]:
        return (int((memory / "memory.limit_in_bytes").read_text()),
                int((memory / "memory.memsw.limit_in_bytes").read_text()))

    def update(mib: int) -> None:
        pods.client.UpdateContainerResources(cri.UpdateContainerResourcesRequest(
            container_id=container, linux=cri.LinuxContainerResources(memory_limit_in_bytes=mib * test_cri.MiB)))

    wait_for(lambda: int((memory / "memory.usage_in_bytes").read_text()) > 30_000_000, message="memory in use")
    update(128)
    assert limits() == (128 * test_cri.MiB, 128 * test_cri.MiB)
    update(96)
    assert limits() == (96 * test_cri.MiB, 96 * test_cri.MiB)
    with pytest.raises(grpc.RpcError) as info:
        update(16)
    assert "unable to set memory limit to 16777216" in info.value.details()
    assert limits() == (96 * test_cri.MiB, 96 * test_cri.MiB)
    assert pods.status(container).status.state == cri.CONTAINER_RUNNING
    assert test_cri.pid_of(pods, container) == pid


def test_a_failed_start_reports_why_and_leaves_nothing(pods, runtime_process):
    """The init's error reaches the CRI caller through ``--log`` and the shim, as runc's does; nothing remains."""
    sandbox = pods.run_sandbox()
    container = pods.create(sandbox, container_config("missing", ["no-such-command"]))
    with pytest.raises(grpc.RpcError) as info:
        pods.client.StartContainer(cri.StartContainerRequest(container_id=container))
    assert 'exec: "no-such-command": executable file not found in $PATH' in info.value.details()
    assert os.listdir(runtime_process.root / "state" / "ocirun") == [sandbox[0]]  # only the pause container's state
    pods.client.RemoveContainer(cri.RemoveContainerRequest(container_id=container))
    assert [c for c in pods.client.ListContainers(cri.ListContainersRequest()).containers
            if c.pod_sandbox_id == sandbox[0]] == []


def test_create_and_start_latency(pods):
    """What a pod costs with this backend (reported; compare ``make bench`` with runc)."""
    sandbox = pods.run_sandbox()
    timings = []
    for index in range(5):
        start = time.monotonic()
        pods.run(sandbox, container_config(f"c{index}", ["sleep", "3600"]))
        timings.append(time.monotonic() - start)
    timings.sort()
    print(f"process backend CreateContainer+StartContainer: median {timings[2] * 1000:.0f} ms, "
          f"max {timings[-1] * 1000:.0f} ms")
    assert timings[2] < 2.0


def test_nothing_of_ocirun_outlives_the_pods(cri_client, runtime_process):
    """After every pod of this module is gone: no ocirun state, command, container process or mount is left."""
    for sandbox in cri_client.ListPodSandbox(cri.ListPodSandboxRequest()).items:
        cri_client.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox.id))
        cri_client.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))
    state_root = runtime_process.root / "state" / "ocirun"
    assert not state_root.exists() or os.listdir(state_root) == []
    wrapper = str(runtime_process.root / "bin" / "ocirun").encode()
    leftovers = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if wrapper in cmdline:
                leftovers.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    assert leftovers == []
    assert tasks.shim_pids(runtime_process.root) == []  # the shim server stays, for the next pod
    state = str(runtime_process.root / "state")  # the runtime's own tmpfs, which stays while it runs
    with open("/proc/self/mountinfo") as f:
        assert [line for line in f if str(runtime_process.root) in line and line.split()[4] != state] == []
    assert shutil.which("true")  # the host is still fine
