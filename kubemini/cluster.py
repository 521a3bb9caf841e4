"""``kubemini up`` / ``kubemini down``: a whole cluster on this machine, started and stopped as one.

``up`` starts etcd, the API server, the controller-manager, the scheduler, optionally hollow nodes, and — as root
with runc — N real nodes (a CRI runtime + a kubelet each), as detached child processes, each in its own session
with its log under ``<data-dir>/logs``. Every started component is recorded in ``pids.json`` at once (see
:mod:`kubemini.clusterstate`), so any failure or Ctrl-C midway is undone by the same :func:`stop_cluster` that
``down`` uses. ``down`` stops components in reverse start order and drains each runtime through CRI (every pod
sandbox stopped and removed) before stopping it — like containerd, the runtime leaves containers running when it
stops — then removes the bridges and, as a safety net, unmounts whatever is still mounted under the data dir
(the kubelet's volume mounts when it stopped before its pods were removed).

Errors the user can act on raise :class:`UpError` with a one-line message (plus a log tail for a dead component).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc

from kubemini import clusterstate as state
from kubemini import etcdmembers, node
from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.containerd import ContainerdRuntime, missing_containerd
from kubemini.etcdserver import EtcdNotInstalledError, EtcdStartError, etcd_binary
from kubemini.ports import port_in_use
from kubemini.process import (
    ComponentStartError,
    ControllerManagerProcess,
    HollowNodesProcess,
    KubeletProcess,
    RuntimeProcess,
    SchedulerProcess,
)
from kubemini.progress import PlainProgress, Progress

NODE_START_TIMEOUT = 60.0
PARALLEL_STOP = frozenset({"hollow-nodes", "scheduler", "controller-manager"})
Say = Callable[[str], None]


class UpError(RuntimeError):
    """``up`` cannot proceed; the message says why and what to do. Nothing is left running."""


@dataclass
class UpOptions:
    data_dir: Path
    port: int = 6443
    nodes: int | None = None  # None: one node if this machine can run one, else none (with a note)
    hollow_nodes: int = 0
    etcd_members: int | None = None  # None: as many as the data dir's etcd data has, else 1
    runtime: str = "runc"  # each node's CRI runtime: kubemini's own (runc or its process backend) or containerd
    bridge_prefix: str = "kubemini"
    pod_cidr_prefix: str = "10.88"


@dataclass
class NodePlan:
    """Where one real node keeps its things; node 1 keeps the paths ``make up`` always used."""

    index: int
    name: str
    runtime_root: Path
    kubelet_root: Path
    pod_logs: Path
    bridge: str
    pod_cidr: str

    @property
    def runtime_socket(self) -> Path:
        return self.runtime_root / "cri.sock"

    @property
    def suffix(self) -> str:
        return node_suffix(self.index)


def node_suffix(index: int) -> str:
    """``""`` for the first node, ``-2``, ``-3``, … after: its components are ``runtime-2``, ``kubelet-2``, …"""
    return "" if index == 0 else f"-{index + 1}"


def plan_nodes(opts: UpOptions, count: int, host: str | None = None) -> list[NodePlan]:
    """Names ``<host>``, ``<host>-2``, …; pod CIDRs ``<prefix>.<i>.0/24``; bridges ``<prefix><i>``."""
    host = host or socket.gethostname().lower()
    plans = []
    for i in range(count):
        name = host if i == 0 else f"{host}-{i + 1}"
        base = opts.data_dir if i == 0 else opts.data_dir / "nodes" / name
        plans.append(NodePlan(i, name, runtime_root=base / "runtime", kubelet_root=base / "kubelet",
                              pod_logs=base / "pod-logs", bridge=f"{opts.bridge_prefix}{i}",
                              pod_cidr=f"{opts.pod_cidr_prefix}.{i}.0/24"))
    return plans


RUNTIMES = ("runc", "process", "containerd")


def node_runtime(plan: NodePlan, log_dir: Path, kind: str) -> RuntimeProcess | ContainerdRuntime:
    """The CRI runtime of one node — kubemini's (with runc, or its process backend) or containerd — logging to
    ``runtime.log``, ``runtime-2.log``, …"""
    runtime: RuntimeProcess | ContainerdRuntime
    if kind == "containerd":
        runtime = ContainerdRuntime(log_dir, plan.runtime_root, bridge=plan.bridge, pod_cidr=plan.pod_cidr,
                                    socket=plan.runtime_socket)
    else:
        runtime = RuntimeProcess(log_dir, plan.runtime_root, pod_cidr=plan.pod_cidr, bridge=plan.bridge,
                                 socket=plan.runtime_socket, extra_args=["--backend", kind])
    runtime.name = f"runtime{plan.suffix}"
    return runtime


class Startable(Protocol):
    """What :class:`ClusterStarter` needs of a component: an etcd member or a :class:`ComponentProcess`."""

    @property
    def pid(self) -> int | None: ...

    @property
    def log_path(self) -> Path: ...

    def launch(self) -> None: ...

    def wait_ready(self, timeout: float) -> None: ...


@dataclass
class _Launched:
    component: Startable
    name: str
    detail: str
    timeout: float


class ClusterStarter:
    """Launches every component, recording each in ``pids.json`` and ``cluster.json``, then waits for each."""

    def __init__(self, opts: UpOptions, progress: Progress) -> None:
        self.opts = opts
        self.progress = progress
        self.say = progress.say
        self.data_dir = opts.data_dir
        self.logs = opts.data_dir / "logs"
        self.record = state.ClusterRecord()
        self.pids: dict[str, int] = {}
        self.started = time.monotonic()

    def check(self) -> int:
        """Refuse early (nothing started yet); plans etcd; returns how many real nodes to start."""
        if state.running_pids(self.data_dir):
            raise UpError(f"kubemini is already running from {self.data_dir}; "
                          f"`kubemini down --data-dir {self.data_dir}` stops it")
        if port_in_use(self.opts.port):
            raise UpError(f"port {self.opts.port} is in use; choose another API server port with --port N")
        try:
            etcd_binary()
        except EtcdNotInstalledError:
            raise UpError("etcd is not installed: apt-get install -y etcd-server etcd-client "
                          "(or `make deps`)") from None
        previous = state.read_cluster(self.data_dir)
        try:
            self.record.etcd_members = etcdmembers.plan(self.data_dir, self.opts.etcd_members,
                                                        previous.etcd_members if previous else [], self.opts.port)
        except etcdmembers.EtcdLayoutError as exc:
            raise UpError(str(exc)) from None
        why_not = node.node_prerequisites(runc=self.opts.runtime != "process") or (
            missing_containerd() if self.opts.runtime == "containerd" else None)
        if why_not is None:
            return 1 if self.opts.nodes is None else self.opts.nodes
        if self.opts.nodes:
            raise UpError(f"cannot start {self.opts.nodes} node(s): {why_not}")
        if self.opts.nodes is None:
            self.say(f"no node: {why_not} (pods will stay Pending)")
        return 0

    def run(self) -> state.ClusterRecord:
        count = self.check()
        self.say(f"starting kubemini from {self.data_dir} ...")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        state.remove_pids(self.data_dir)  # stale: nothing in it is alive (checked above)
        try:
            plans = plan_nodes(self.opts, count)
            launched = self.launch_all(plans)
            for plan in plans:
                self.progress.waiting(f"node {plan.name}", "Ready")
            for item in launched:
                self.wait_ready(item)
            for plan in plans:
                self.wait_node_ready(plan)
        except BaseException:
            self.progress.close(failed=True)
            stop_cluster(self.data_dir, lambda _line: None)
            raise
        self.progress.close()
        return self.record

    def launch_all(self, plans: list[NodePlan]) -> list[_Launched]:
        """Spawn every component at once, in dependency order; each waits for what it needs (the API server for
        etcd, clients for the API server, the kubelet for its runtime), so the start-up costs overlap."""
        launched = [self.launch(server, etcdmembers.component_name(server.name), server.endpoint, timeout=20)
                    for server in etcdmembers.servers(self.record.etcd_members)]
        api = ApiServerProcess(self.record.etcd_endpoints, self.logs, port=self.opts.port)
        self.record.api_url = api.url
        kubeconfig = write_kubeconfig(self.data_dir / "kubeconfig", api.url)
        self.record.kubeconfig = str(kubeconfig)
        launched.append(self.launch(api, "apiserver", api.url, timeout=30))
        for component in (ControllerManagerProcess(kubeconfig, self.logs), SchedulerProcess(kubeconfig, self.logs)):
            launched.append(self.launch(component, component.name, f"/metrics at {component.url}"))
        for plan in plans:
            runtime = node_runtime(plan, self.logs, self.opts.runtime)
            # recorded (by launch) before the runtime can make its bridge, so a failed start still has it removed
            self.record.nodes.append(state.NodeRecord(plan.name, str(plan.runtime_root), str(plan.runtime_socket),
                                                      plan.bridge, plan.pod_cidr, self.opts.runtime))
            launched.append(self.launch(runtime, runtime.name, f"{runtime.endpoint}, bridge {plan.bridge}, "
                                        f"pods {plan.pod_cidr}", timeout=NODE_START_TIMEOUT))
            kubelet = KubeletProcess(kubeconfig, self.logs, node_name=plan.name, runtime_endpoint=runtime.endpoint,
                                     root_dir=plan.kubelet_root, pod_logs_dir=plan.pod_logs, pod_cidr=plan.pod_cidr)
            launched.append(self.launch(kubelet, f"kubelet{plan.suffix}", f"node {plan.name}, server {kubelet.url}",
                                        timeout=NODE_START_TIMEOUT))
        if self.opts.hollow_nodes:
            hollow = HollowNodesProcess(kubeconfig, self.logs, extra_args=["--nodes", str(self.opts.hollow_nodes)])
            launched.append(self.launch(hollow, hollow.name, f"{self.opts.hollow_nodes} hollow node(s) registered",
                                        timeout=120))
        return launched

    def launch(self, component: Startable, name: str, detail: str, *, timeout: float = 20.0) -> _Launched:
        """Spawn ``component`` and record it at once (pids first: a crash right now must still be cleanable)."""
        component.launch()
        assert component.pid is not None
        self.pids = {name: component.pid, **self.pids}
        state.write_pids(self.data_dir, self.pids)
        url = getattr(component, "url", None) or getattr(component, "endpoint", "")
        self.record.components.append(state.ComponentRecord(name, str(component.log_path), url))
        state.write_cluster(self.data_dir, self.record)
        self.progress.waiting(name, detail)
        return _Launched(component, name, detail, timeout)

    def wait_ready(self, item: _Launched) -> None:
        try:
            item.component.wait_ready(item.timeout)
        except (ComponentStartError, EtcdStartError) as exc:
            raise UpError(f"the {item.name} failed to start: {exc}") from None
        self.progress.ready(item.name, self.elapsed(), item.detail)

    def wait_node_ready(self, plan: NodePlan) -> None:
        if not node.wait_node_ready(self.record.api_url, plan.name, timeout=NODE_START_TIMEOUT):
            log = self.record.component(f"kubelet{plan.suffix}")
            tail = _tail(Path(log.log)) if log else ""
            raise UpError(f"node {plan.name} did not become Ready within {NODE_START_TIMEOUT:.0f}s; "
                          f"the kubelet's log ends with:\n{tail}")
        self.progress.ready(f"node {plan.name}", self.elapsed(), "Ready")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def up(opts: UpOptions, progress: Progress | None = None) -> state.ClusterRecord:
    """Start the cluster (see the module docstring); UpError (everything stopped) when it cannot."""
    return ClusterStarter(opts, progress or PlainProgress(print)).run()


def stop_cluster(data_dir: Path, say: Say = print) -> bool:
    """Stop what ``up`` recorded, in reverse start order; False if nothing was recorded. Idempotent."""
    pids = state.read_pids(data_dir)
    if not pids:
        return False
    record = state.read_cluster(data_dir) or state.ClusterRecord()
    sockets = {f"runtime{node_suffix(i)}": n.runtime_socket for i, n in enumerate(record.nodes)}
    for stage in _stop_stages(etcdmembers.leader_last(list(pids), record.etcd_members)):
        for name in stage:
            if name in sockets and state.alive(pids[name]):
                try:
                    removed = node.drain_runtime(f"unix://{sockets[name]}")
                except grpc.RpcError as err:  # keep going: the rest must still stop
                    say(f"  could not remove every pod sandbox from {name}: {err.details()}")  # type: ignore[attr-defined]
                else:
                    say(f"  removed {removed} pod sandbox(es) from {name}")
        live = [name for name in stage if state.alive(pids[name])]
        state.stop_pids([pids[name] for name in live])
        for name in live:
            say(f"  stopped {name} (pid {pids[name]})")
    for n in record.nodes:
        if n.runtime == "containerd":  # what containerd keeps outside its directory: shims, netns, CNI caches
            ContainerdRuntime(data_dir / "logs", Path(n.runtime_root), bridge=n.bridge, pod_cidr=n.pod_cidr,
                              socket=Path(n.runtime_socket)).sweep()
        node.remove_bridge(n.bridge)
    unmounted = unmount_under(data_dir)
    if unmounted:
        say(f"  unmounted {unmounted} leftover mount(s) under {data_dir}")
    state.remove_pids(data_dir)
    return True


def _stop_stages(names: list[str]) -> list[list[str]]:
    """Reverse-start-order names in stop stages: API clients that need nothing of each other stop together."""
    stages: list[list[str]] = []
    for name in names:
        if name in PARALLEL_STOP and stages and all(n in PARALLEL_STOP for n in stages[-1]):
            stages[-1].append(name)
        else:
            stages.append([name])
    return stages


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (from /proc/self/mountinfo), deepest first."""
    root = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        point = line.split()[4].encode().decode("unicode_escape")  # \040 etc.
        if point == root or point.startswith(root + "/"):
            points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def unmount_under(path: Path) -> int:
    """Unmount everything below ``path`` (lazily if busy); how many were unmounted. Only as root."""
    if os.geteuid() != 0 or shutil.which("umount") is None:
        return 0
    count = 0
    for point in mounts_under(path):
        done = subprocess.run(["umount", point], capture_output=True).returncode == 0
        done = done or subprocess.run(["umount", "-l", point], capture_output=True).returncode == 0
        count += done
    return count


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
