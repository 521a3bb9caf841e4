"""Debian's containerd with its CRI plugin, as the wire-compatibility reference for the CRI client suite.

The suite in this package drives a runtime.v1 endpoint; pointed at containerd (configured as in the reference
notes on this machine: ``restrict_oom_score_adj``, overlayfs, runc v2 with cgroupfs, a local pause image, a CNI
bridge) the same tests say where kubemini answers differently from the runtime the kubelet is written against.

:class:`ContainerdProcess` runs containerd in the foreground with everything it owns under one temp directory
(root, state, sockets, CNI config and IPAM data) and imports kubemini's two built-in images (busybox and the
catatonit pause image) as an OCI archive. It has the same surface as ``RuntimeProcess`` (``runtime_name``, ``endpoint``,
``cidr``, ``bridge``, ``start``/``stop``), so the fixtures treat both alike.

Cleaning up is the delicate part, because containerd keeps things outside its directories: shims (which outlive
it), runc state and shim sockets under /run/containerd, network namespaces under /run/netns, CNI result caches
under /var/lib/cni, the ``/k8s.io/<id>`` cgroups, the bridge. :meth:`ContainerdProcess.stop` first lets
containerd remove every pod itself (restarting it if it crashed), then sweeps whatever is still there, touching
only what it can attribute to this instance: tasks whose state lives under our directory, shims serving our
socket, our bridge, and directories that are empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import grpc

from kubelet.runtime import cgroups
from kubelet.runtime.images.builtin import BUSYBOX_IMAGE, PAUSE_IMAGE, busybox_layer, pause_layer
from proto.cri import api_pb2 as cri
from tests.runtime.cri import CriClient, missing_prerequisites
from tests.support import wait_for
from tests.unit.runtime.imagefixtures import build_image, write_archive

CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback")
NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin works in
RUNC_ROOT = Path("/run/containerd/runc") / NAMESPACE  # the shim keeps runc state here whatever ``state`` says
CNI_RESULTS = Path("/var/lib/cni/results")
# Directories outside the temp dir that containerd, its shims or the CNI plugins create on demand.
SHARED_DIRS = (Path("/run/containerd"), Path("/var/lib/cni"))
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def missing_containerd() -> str | None:
    """Why containerd cannot be the reference here, or None."""
    reason = missing_prerequisites()
    if reason:
        return reason
    for binary in ("containerd", "ctr", "containerd-shim-runc-v2"):
        if shutil.which(binary) is None:
            return f"{binary} is missing: apt-get install -y containerd (make deps installs it)"
    for plugin in CNI_PLUGINS:
        if not (CNI_BIN_DIR / plugin).is_file():
            return (f"CNI plugin {CNI_BIN_DIR / plugin} is missing: apt-get install -y containernetworking-plugins"
                    " (make deps installs it)")
    return None


@dataclass
class ContainerdProcess:
    """``containerd --config <tmp>/config.toml`` with a private root, state, socket, bridge and pod CIDR."""

    runtime_name: ClassVar[str] = "containerd"  # what Version reports
    base: Path
    bridge: str = field(default_factory=lambda: f"kmc{secrets.token_hex(3)}")
    cidr: str = field(default_factory=lambda: f"10.213.{secrets.randbelow(200) + 20}.0/24")
    pause_image: str = PAUSE_IMAGE
    proc: subprocess.Popen | None = None
    _netns: set[str] = field(default_factory=set)
    _cgroups: set[str] = field(default_factory=set)
    _ip_forward: str | None = None

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def socket(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.base / "containerd.log"

    def start(self) -> None:
        """Write the config, start containerd, import the images; AssertionError saying why if it fails."""
        self._ip_forward = IP_FORWARD.read_text()
        self._write_config()
        self._launch()
        self._import_images()
        client = CriClient(self.endpoint, timeout=2)
        try:
            wait_for(lambda: _network_ready(client), timeout=10, message="containerd's CNI network to be ready")
        finally:
            client.close()

    def stop(self) -> None:
        """Remove every pod, stop containerd and clean up what it left on the host (idempotent)."""
        if self.proc is not None and self.proc.poll() is not None:  # it crashed: let it clean up after itself
            with contextlib.suppress(AssertionError, OSError):
                self._launch()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(grpc.RpcError):
                self._remove_all_pods()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._sweep()

    # -- start --------------------------------------------------------------------------------------------

    def _write_config(self) -> None:
        conf_dir = self.base / "cni-conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        (self.base / "config.toml").write_text(f"""\
version = 2
root = "{self.root}"
state = "{self.state}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{self.pause_image}"
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{CNI_BIN_DIR}"
      conf_dir = "{conf_dir}"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.internal.v1.opt"]
    path = "{self.base / 'opt'}"
""")
        conflist = {
            "cniVersion": "1.0.0", "name": f"net-{self.bridge}",
            "plugins": [
                {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": self.cidr}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.base / "cni-ipam")}},
                {"type": "loopback"},
            ],
        }
        (conf_dir / "10-kubemini-test.conflist").write_text(json.dumps(conflist, indent=2))

    def _launch(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(self.base / "config.toml")],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        client = CriClient(self.endpoint, timeout=2)
        try:
            wait_for(lambda: self._answers(client), timeout=30, message="containerd's CRI plugin to answer Version")
        finally:
            client.close()

    def _answers(self, client: CriClient) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"containerd exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            return client.Version(cri.VersionRequest()).runtime_name
        except grpc.RpcError:
            return None

    def _import_images(self) -> None:
        """kubemini's built-in busybox and pause images, as one OCI archive naming them as the suite does."""
        archive = self.base / "images.tar"
        (busybox_tar, busybox_config), (pause_tar, pause_config) = busybox_layer(), pause_layer()
        busybox = build_image(busybox_tar, config=busybox_config, compress=False)
        pause = build_image(pause_tar, config=pause_config, compress=False)
        write_archive(archive, [(busybox, [BUSYBOX_IMAGE]), (pause, [self.pause_image])])
        result = subprocess.run(["ctr", "-a", str(self.socket), "-n", NAMESPACE, "images", "import", str(archive)],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"ctr images import failed: {result.stderr.strip()}")

    # -- stop ---------------------------------------------------------------------------------------------

    def _remove_all_pods(self) -> None:
        """Stop and remove every sandbox over CRI, remembering its netns and cgroup to check afterwards."""
        client = CriClient(self.endpoint, timeout=30)
        try:
            for sandbox in client.ListPodSandbox(cri.ListPodSandboxRequest()).items:
                with contextlib.suppress(grpc.RpcError, KeyError, ValueError):
                    info = json.loads(client.PodSandboxStatus(cri.PodSandboxStatusRequest(
                        pod_sandbox_id=sandbox.id, verbose=True)).info["info"])
                    self._remember(info.get("runtimeSpec", {}).get("linux", {}))
                client.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox.id))
                client.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))
        finally:
            client.close()

    def _remember(self, linux: dict) -> None:
        """Note the netns and cgroup of an OCI spec's ``linux`` section (or runc's state ``config``)."""
        for ns in linux.get("namespaces", []):
            path = ns.get("path", "")
            if ns.get("type") in ("network", "NEWNET") and path.startswith(("/var/run/netns/", "/run/netns/")):
                self._netns.add(path)
        path = linux.get("cgroupsPath") or linux.get("cgroups", {}).get("path")
        if path:
            self._cgroups.add(path)

    def _sweep(self) -> None:
        """Remove what containerd could not: leftover tasks' shims, processes, mounts, state, netns; then ours."""
        leftovers = self._leftover_tasks()
        shims = _pids_with(b"containerd-shim", str(self.socket).encode())
        # The pod's processes first, so their shim (their subreaper) reaps them; then the shims.
        for group in ([child for shim in shims for child in _children(shim)], shims):
            for pid in group:
                _kill(pid)
            wait_for(lambda group=group: not any(_alive(pid) for pid in group), timeout=10,
                     message="killed processes to exit")
        for mountpoint in sorted(_mountpoints_under(self.base), key=len, reverse=True):
            if subprocess.run(["umount", mountpoint], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        for task_id, shim_socket in leftovers.items():
            shutil.rmtree(RUNC_ROOT / task_id, ignore_errors=True)
            for cached in [*CNI_RESULTS.glob(f"*-{task_id}-*"), *([shim_socket] if shim_socket else [])]:
                with contextlib.suppress(OSError):
                    cached.unlink()
        for netns in sorted(self._netns):
            subprocess.run(["ip", "netns", "del", Path(netns).name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for path in sorted(self._cgroups, key=len, reverse=True):
            for hierarchy in _cgroup_hierarchies():
                _remove_empty_dirs(hierarchy / path.lstrip("/"))
        for directory in _shared_dirs():  # empty ones only: whatever creates them makes them again on demand
            _remove_empty_dirs(directory)
        if self._ip_forward is not None:  # the CNI bridge plugin turns forwarding on for a gateway bridge
            IP_FORWARD.write_text(self._ip_forward)

    def _leftover_tasks(self) -> dict[str, Path | None]:
        """Tasks whose shim state is still under our state dir: id → shim socket file; netns/cgroups remembered."""
        tasks: dict[str, Path | None] = {}
        task_dir = self.state / "io.containerd.runtime.v2.task" / NAMESPACE
        for task in task_dir.iterdir() if task_dir.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                self._remember(json.loads((RUNC_ROOT / task.name / "state.json").read_text()).get("config", {}))
            shim_socket = None
            with contextlib.suppress(OSError):
                address = (task / "address").read_text().strip()
                shim_socket = Path(address.removeprefix("unix://")) if address.startswith("unix:///") else None
            tasks[task.name] = shim_socket
        return tasks


def _network_ready(client: CriClient) -> bool:
    conditions = {c.type: c.status for c in client.Status(cri.StatusRequest()).status.conditions}
    return conditions.get("NetworkReady", False)


def _shared_dirs() -> list[Path]:
    """Where containerd makes directories outside its own: runc state, shim sockets, CNI caches, and the
    ``/k8s.io`` cgroup in every hierarchy (the cgroupsPath is ``/k8s.io/<id>`` when a pod has no parent)."""
    return [*SHARED_DIRS, *(hierarchy / NAMESPACE for hierarchy in _cgroup_hierarchies())]


def _cgroup_hierarchies() -> list[Path]:
    return [p for p in cgroups.CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]


def _pids_with(*needles: bytes) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                if all(needle in cmdline for needle in needles):
                    found.append(int(entry))
    return found


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running or stopped, not a zombie (a zombie has left its cgroups already)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _mountpoints_under(base: Path) -> list[str]:
    prefix = str(base).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return points


def _remove_empty_dirs(top: Path) -> None:
    """Remove ``top`` and its subdirectories bottom-up where they are empty.

    Contract: removes only empty directories (a cgroup without tasks or children counts as empty), so what a
    live runtime (another containerd on the machine) keeps there stays."""
    if not top.is_dir():
        return
    for dirpath, _, _ in sorted(os.walk(top), key=lambda walked: len(walked[0]), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)
