"""``make up`` / ``make down``: a one-machine cluster in the background.

A stand-in for ``kubemini up``: it starts etcd, one API server, the controller-manager and the scheduler
and — when run as root on a machine with runc — kubemini's CRI runtime and a kubelet for this host, as
detached processes; writes ``<data-dir>/kubeconfig`` and prints how to use it. State (pids, logs, etcd data,
the runtime's root) lives in the data dir. ``down`` removes every pod sandbox before stopping the runtime,
so no container, mount or veth outlives the cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

from kubemini import node
from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdNotInstalledError, EtcdServer, EtcdStartError
from kubemini.process import (
    ComponentStartError,
    ControllerManagerProcess,
    KubeletProcess,
    RuntimeProcess,
    SchedulerProcess,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``grace`` seconds."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def up(data_dir: Path, port: int) -> int:
    state_file = data_dir / "pids.json"
    if state_file.exists():
        pids = json.loads(state_file.read_text())
        if any(_alive(pid) for pid in pids.values()):
            print(f"kubemini is already running from {data_dir} (pids {pids}); `make down` stops it", file=sys.stderr)
            return 1
    if not _port_free(port):
        print(f"port {port} is in use; choose another with `make up PORT=N`", file=sys.stderr)
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print("starting etcd ...", flush=True)
    try:
        etcd = EtcdServer(data_dir / "etcd", client_port=port + 10000 if port + 10000 < 65536 else None).start()
    except (EtcdNotInstalledError, EtcdStartError) as exc:
        print(f"etcd failed: {exc}", file=sys.stderr)
        return 1
    print(f"  etcd ready at {etcd.endpoint} ({time.monotonic() - started:.1f}s)")
    print("starting the API server ...", flush=True)
    api = ApiServerProcess([etcd.endpoint], data_dir / "logs", port=port)
    try:
        api.start()
    except ComponentStartError as exc:
        etcd.stop()
        print(f"the API server failed: {exc}", file=sys.stderr)
        return 1
    print(f"  API server ready at {api.url} ({time.monotonic() - started:.1f}s)")
    kubeconfig = write_kubeconfig(data_dir / "kubeconfig", api.url)
    pids = {"apiserver": api.pid, "etcd": etcd.pid}
    for component in (ControllerManagerProcess(kubeconfig, data_dir / "logs"),
                      SchedulerProcess(kubeconfig, data_dir / "logs")):
        print(f"starting the {component.name} ...", flush=True)
        try:
            component.start()
        except ComponentStartError as exc:
            for pid in pids.values():
                _stop(pid)
            print(f"the {component.name} failed: {exc}", file=sys.stderr)
            return 1
        pids = {component.name: component.pid, **pids}
        print(f"  {component.name} ready, /metrics at {component.url} ({time.monotonic() - started:.1f}s)")
    why_not = node.node_prerequisites()
    if why_not is None:
        pids = _start_node(data_dir, kubeconfig, api.url, pids, started)
        if pids is None:
            return 1
        what = "etcd, API server, controller-manager, scheduler, CRI runtime and kubelet (node " \
               f"{socket.gethostname().lower()})"
    else:
        what = f"etcd, API server, controller-manager, scheduler; no node: {why_not}"
    state_file.write_text(json.dumps(pids))
    print(f"\nkubemini is up ({what}). Use it with:\n  export KUBECONFIG={kubeconfig}\n"
          f"  kubectl get nodes\nLogs: {data_dir}/logs, {data_dir}/etcd/etcd.log. Stop with `make down`.")
    return 0


def _start_node(data_dir: Path, kubeconfig: Path, api_url: str, pids: dict, started: float) -> dict | None:
    """The CRI runtime and a kubelet named after this host; None (everything stopped) if either fails."""
    logs = data_dir / "logs"
    name = socket.gethostname().lower()
    runtime = RuntimeProcess(logs, node.runtime_root(data_dir), pod_cidr=node.POD_CIDR, bridge=node.BRIDGE,
                             socket=node.runtime_socket(data_dir))
    kubelet = KubeletProcess(kubeconfig, logs, node_name=name, runtime_endpoint=runtime.endpoint,
                             root_dir=node.kubelet_root(data_dir), pod_logs_dir=data_dir / "pod-logs",
                             pod_cidr=node.POD_CIDR)
    for component in (runtime, kubelet):
        print(f"starting the {component.name} ...", flush=True)
        try:
            component.start(timeout=60)
        except ComponentStartError as exc:
            for pid in pids.values():
                _stop(pid)
            print(f"the {component.name} failed: {exc}", file=sys.stderr)
            return None
        pids = {component.name: component.pid, **pids}
    if not node.wait_node_ready(api_url, name):
        print(f"  node {name} is not Ready yet; see {kubelet.log_path}", file=sys.stderr)
    else:
        print(f"  node {name} Ready ({time.monotonic() - started:.1f}s)")
    return pids


def down(data_dir: Path) -> int:
    state_file = data_dir / "pids.json"
    if not state_file.exists():
        print(f"nothing is running from {data_dir}")
        return 0
    pids = json.loads(state_file.read_text())
    for name, pid in pids.items():  # written in reverse start order
        if name == "runtime" and pid and _alive(pid):
            removed = node.drain_runtime(f"unix://{node.runtime_socket(data_dir)}")
            print(f"removed {removed} pod sandbox(es) and their containers")
        if pid and _alive(pid):
            _stop(pid)
            print(f"stopped {name} (pid {pid})")
    if "runtime" in pids:
        node.remove_bridge()
    state_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubemini.devcluster",
                                     description="Run etcd, the API server, the controller-manager, the "
                                                 "scheduler and (as root) a node in the background.")
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start etcd, the API server, the controller-manager, the scheduler and, "
                                          "as root, the CRI runtime and a kubelet")
    up_parser.add_argument("--data-dir", type=Path, default=Path.home() / ".kubemini")
    up_parser.add_argument("--port", type=int, default=6443, help="API server port (default: %(default)s)")
    down_parser = sub.add_parser("down", help="stop what `up` started")
    down_parser.add_argument("--data-dir", type=Path, default=Path.home() / ".kubemini")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.data_dir, args.port)
    return down(args.data_dir)


if __name__ == "__main__":
    sys.exit(main())
