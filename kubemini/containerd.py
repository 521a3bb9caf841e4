"""Debian's containerd with its CRI plugin as a node's runtime: ``kubemini up --runtime containerd`` and the tests.

The kubelet speaks only CRI, so containerd can stand where kubemini's own runtime stands; the CRI client suite
also uses it as the wire-compatibility reference. :class:`ContainerdRuntime` runs ``containerd --config`` with
everything it owns under one directory (root, state, sockets, CNI config and IPAM data), configured as measured
on this machine kind: ``restrict_oom_score_adj`` (no CAP_SYS_RESOURCE), overlayfs, runc v2 with cgroupfs, a CNI
bridge with host-local IPAM for the node's pod CIDR, and kubemini's pause image. It is ready once CRI answers,
kubemini's two built-in images (busybox and pause, built from Debian packages: no registry is reachable) are
imported with ``ctr``, and the CNI network reports ready.

Stopping is the delicate part, because containerd keeps things outside its directories: shims (which outlive
it), runc state and shim sockets under /run/containerd, network namespaces under /run/netns, CNI result caches
under /var/lib/cni, the ``/k8s.io/<id>`` cgroups, the bridge. :meth:`ContainerdRuntime.stop` first lets
containerd remove every pod itself (restarting it if it crashed), then :meth:`sweep` removes whatever is still
there, touching only what it can attribute to this instance: tasks whose state lives under its directory, shims
serving its socket, its bridge, and directories that are empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import grpc

from kubelet.runtime import cgroups
from kubelet.runtime.images.builtin import PAUSE_IMAGE, write_builtin_archive
from kubemini.process import ComponentProcess, ComponentStartError
from proto.cri import api_pb2 as cri
from proto.cri import api_pb2_grpc as cri_grpc

CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback")
NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin works in
RUNC_ROOT = Path("/run/containerd/runc") / NAMESPACE  # the shim keeps runc state here whatever ``state`` says
CNI_RESULTS = Path("/var/lib/cni/results")
# Directories outside its own that containerd, its shims or the CNI plugins create on demand.
SHARED_DIRS = (Path("/run/containerd"), Path("/var/lib/cni"))
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"


def missing_containerd() -> str | None:
    """Why containerd cannot run a node here (one line saying what to install), or None."""
    for binary in ("containerd", "ctr", "containerd-shim-runc-v2", "runc"):
        if shutil.which(binary, path=SBIN) is None:
            package = "runc" if binary == "runc" else "containerd"
            return f"{binary} is missing: apt-get install -y {package} (make deps installs it)"
    for plugin in CNI_PLUGINS:
        if not (CNI_BIN_DIR / plugin).is_file():
            return (f"CNI plugin {CNI_BIN_DIR / plugin} is missing: apt-get install -y containernetworking-plugins"
                    " (make deps installs it)")
    return None


class ContainerdRuntime(ComponentProcess):
    """``containerd --config <base>/config.toml`` with a private root, state, socket, bridge and pod CIDR."""

    name = "containerd"
    runtime_name = "containerd"  # what CRI Version reports

    def __init__(self, log_dir: Path, base: Path, *, bridge: str, pod_cidr: str, socket: Path | None = None,
                 pause_image: str = PAUSE_IMAGE) -> None:
        super().__init__(log_dir)
        self.base = Path(base)
        self.bridge = bridge
        self.cidr = pod_cidr
        self.socket = Path(socket) if socket else self.base / "containerd.sock"
        self.pause_image = pause_image
        self._images_imported = False
        self._netns: set[str] = set()
        self._cgroups: set[str] = set()

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def config_path(self) -> Path:
        return self.base / "config.toml"

    def command(self) -> list[str]:
        return [shutil.which("containerd", path=SBIN) or "containerd", "--config", str(self.config_path)]

    def launch(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        saved = self.base / "ip_forward.before"  # the CNI bridge plugin turns forwarding on; the sweep restores it
        if not saved.exists():
            saved.write_text(IP_FORWARD.read_text())
        self.write_config()
        super().launch()

    def ready(self) -> bool:
        """CRI answers; then (once) the built-in images are imported; then the CNI network is ready."""
        try:
            with grpc.insecure_channel(self.endpoint) as channel:
                stub = cri_grpc.RuntimeServiceStub(channel)
                stub.Version(cri.VersionRequest(), timeout=2)
                if not self._images_imported:
                    self.import_images()
                    self._images_imported = True
                status = stub.Status(cri.StatusRequest(), timeout=2).status
        except grpc.RpcError:
            return False
        return any(c.type == "NetworkReady" and c.status for c in status.conditions)

    def import_images(self) -> None:
        archive = write_builtin_archive(self.base / "builtin-images.tar")
        result = subprocess.run(["ctr", "-a", str(self.socket), "-n", NAMESPACE, "images", "import", str(archive)],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise ComponentStartError(f"ctr images import failed: {result.stderr.strip()}")

    def stop(self, grace: float = 20.0) -> None:
        """Remove every pod, stop containerd and clean up what it left on the host (idempotent)."""
        if self._proc is not None and self._proc.poll() is not None:  # it crashed: let it clean up after itself
            with contextlib.suppress(ComponentStartError, OSError):
                self.launch()
                self.wait_ready(timeout=30)
        if self.running():
            with contextlib.suppress(grpc.RpcError):
                self.remove_all_pods()
        super().stop(grace)
        self.sweep()

    def write_config(self) -> None:
        conf_dir = self.base / "cni-conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(f"""\
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
        (conf_dir / "10-kubemini.conflist").write_text(json.dumps(conflist, indent=2))

    # -- stop ---------------------------------------------------------------------------------------------

    def remove_all_pods(self) -> None:
        """Stop and remove every sandbox over CRI, remembering its netns and cgroup for the sweep."""
        with grpc.insecure_channel(self.endpoint) as channel:
            stub = cri_grpc.RuntimeServiceStub(channel)
            for sandbox in stub.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=30).items:
                with contextlib.suppress(grpc.RpcError, KeyError, ValueError):
                    info = json.loads(stub.PodSandboxStatus(cri.PodSandboxStatusRequest(
                        pod_sandbox_id=sandbox.id, verbose=True), timeout=30).info["info"])
                    self._remember(info.get("runtimeSpec", {}).get("linux", {}))
                stub.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=60)
                stub.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=60)

    def _remember(self, linux: dict) -> None:
        """Note the netns and cgroup of an OCI spec's ``linux`` section (or runc's state ``config``)."""
        for ns in linux.get("namespaces", []):
            path = ns.get("path", "")
            if ns.get("type") in ("network", "NEWNET") and path.startswith(("/var/run/netns/", "/run/netns/")):
                self._netns.add(path)
        path = linux.get("cgroupsPath") or linux.get("cgroups", {}).get("path")
        if path:
            self._cgroups.add(path)

    def sweep(self) -> None:
        """Remove what containerd could not: leftover tasks' shims, processes, mounts, state, netns; then ours."""
        leftovers = self._leftover_tasks()
        shims = _pids_with(b"containerd-shim", str(self.socket).encode())
        # The pod's processes first, so their shim (their subreaper) reaps them; then the shims.
        for group in ([child for shim in shims for child in _children(shim)], shims):
            for pid in group:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while any(_alive(pid) for pid in group) and time.monotonic() < deadline:
                time.sleep(0.05)
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
        saved = self.base / "ip_forward.before"
        with contextlib.suppress(OSError):
            IP_FORWARD.write_text(saved.read_text())
            saved.unlink()

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
