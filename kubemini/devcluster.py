"""``make up`` / ``make down``: etcd, the API server, the controller-manager and the scheduler in the background.

A stand-in for ``kubemini up`` until the whole cluster (kubelet included) exists: it starts etcd,
one API server, the controller-manager and the scheduler as detached processes, writes
``<data-dir>/kubeconfig`` and prints how to use it. State (pids, logs, etcd data) lives in the data dir.
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

from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdNotInstalledError, EtcdServer, EtcdStartError
from kubemini.process import ComponentStartError, ControllerManagerProcess, SchedulerProcess


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
    state_file.write_text(json.dumps(pids))
    print("\nkubemini is up (etcd, API server, controller-manager, scheduler; no kubelet yet, so pods stay "
          f"Pending). Use it with:\n  export KUBECONFIG={kubeconfig}\n"
          f"  kubectl get namespaces\nLogs: {data_dir}/logs, {data_dir}/etcd/etcd.log. Stop with `make down`.")
    return 0


def down(data_dir: Path) -> int:
    state_file = data_dir / "pids.json"
    if not state_file.exists():
        print(f"nothing is running from {data_dir}")
        return 0
    pids = json.loads(state_file.read_text())
    for name, pid in pids.items():  # written in reverse start order
        if pid and _alive(pid):
            _stop(pid)
            print(f"stopped {name} (pid {pid})")
    state_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubemini.devcluster",
                                     description="Run etcd, the API server, the controller-manager and "
                                                 "the scheduler in the background.")
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start etcd, the API server, the controller-manager and the scheduler")
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
