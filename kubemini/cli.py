"""The ``kubemini`` command: run a whole cluster on this machine and look after it.

``kubemini up`` (foreground, Ctrl-C stops everything; ``-d`` returns once the nodes are Ready), ``down``,
``status``, ``logs``, ``image load`` and ``etcd snapshot save|restore``. ``make up`` / ``make down`` call this
same code (``python -m kubemini up -d`` / ``down``). Exit status: 0 success, 1 a failure the message explains,
2 a usage mistake (one ``error:`` line), 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from kubemini import cluster, commands, etcdmembers
from kubemini import clusterstate as state
from kubemini.progress import LiveProgress, PlainProgress

DEFAULT_DATA_DIR = Path.home() / ".kubemini"
MAX_NODES = 200  # node i gets <prefix>.<i>.0/24 and bridge <prefix><i>


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A usage mistake: one ``error:`` line (not the whole usage) and exit status 2."""
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _int_in(low: int, high: int) -> type[int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value
    parse.__name__ = "number"
    return parse  # type: ignore[return-value]


def _cidr_prefix(text: str) -> str:
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not two octets like 10.88")
    return text


def _bridge_prefix(text: str) -> str:
    if not text.isalnum() or len(text) > 12:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1-12 letters/digits (bridge names are ≤ 15 chars)")
    return text


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="where state, logs and etcd data live (default: %(default)s)")


def _etcd_members(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--etcd-members", type=int, choices=etcdmembers.SIZES, default=None, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kubemini", description="Run a small, real Kubernetes cluster on this machine.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    up = sub.add_parser("up", help="start etcd, the API server, controller-manager, scheduler and node(s)",
                        description="Start the cluster. In the foreground Ctrl-C (or SIGTERM) stops everything "
                                    "like `kubemini down`; with -d it returns once the node(s) are Ready.")
    up.add_argument("-d", "--detach", action="store_true", help="run in the background and return when Ready")
    _data_dir(up)
    up.add_argument("--port", type=_int_in(1, 65535), default=6443, help="API server port (default: %(default)s)")
    up.add_argument("--nodes", type=_int_in(0, MAX_NODES), default=None,
                    help="real nodes (CRI runtime + kubelet; needs root, and runc unless --runtime process). "
                         "Default: 1 when possible, "
                         "else 0 with a note")
    up.add_argument("--hollow-nodes", type=_int_in(0, 100000), default=0,
                    help="fake nodes (python -m kubelet.hollow) for scale tests (default: 0)")
    up.add_argument("--runtime", choices=cluster.RUNTIMES, default="runc",
                    help="each node's CRI runtime: kubemini's own with runc, kubemini's own with its process "
                         "backend (no runc needed), or Debian's containerd (default: %(default)s)")
    _etcd_members(up, "etcd members, each a child process (default: as many as the data dir's etcd data has, "
                       "else 1)")
    up.add_argument("--bridge-prefix", type=_bridge_prefix, default="kubemini",
                    help="node i's pod bridge is PREFIX<i> (default: %(default)s)")
    up.add_argument("--pod-cidr-prefix", type=_cidr_prefix, default="10.88",
                    help="node i's pod CIDR is PREFIX.<i>.0/24 (default: %(default)s)")

    down = sub.add_parser("down", help="stop everything `up` started, removing every pod's containers",
                          description="Stop the cluster: pods' containers, mounts and bridges are removed.")
    _data_dir(down)
    status = sub.add_parser("status", help="each component's pid, liveness and URL; nodes' readiness",
                            description="Show each component (pid, alive, URL) and whether nodes are Ready.")
    _data_dir(status)
    logs = sub.add_parser("logs", help="print (or follow) a component's log",
                          description="Print the end of a component's log file; -f keeps following it.")
    logs.add_argument("component", metavar="COMPONENT", help="etcd, apiserver, controller-manager, scheduler, "
                                                              "runtime, kubelet, runtime-2, ...")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    logs.add_argument("-n", "--lines", type=_int_in(0, 10**7), default=100, help="lines to show (default: 100)")
    _data_dir(logs)

    image = sub.add_parser("image", help="manage node images", description="Manage the nodes' image stores.")
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND", parser_class=_Parser)
    load = image_sub.add_parser("load", help="load an image tarball into every node's runtime",
                                description="Load an OCI/docker-archive tarball into every node's image store.")
    load.add_argument("file", type=Path, metavar="FILE")
    _data_dir(load)

    etcd = sub.add_parser("etcd", help="etcd snapshots", description="Save and restore etcd snapshots.")
    etcd_sub = etcd.add_subparsers(dest="etcd_command", required=True, metavar="COMMAND", parser_class=_Parser)
    snapshot = etcd_sub.add_parser("snapshot", help="save or restore a snapshot", description="etcd snapshots.")
    snap_sub = snapshot.add_subparsers(dest="snapshot_command", required=True, metavar="COMMAND",
                                       parser_class=_Parser)
    save = snap_sub.add_parser("save", help="snapshot the running etcd into FILE",
                               description="Snapshot the running cluster's etcd into FILE (etcdctl snapshot save).")
    save.add_argument("file", type=Path, metavar="FILE")
    _data_dir(save)
    restore = snap_sub.add_parser("restore", help="replace the stopped cluster's etcd data with FILE",
                                  description="Restore FILE into the data dir's etcd member(s) (the old data is "
                                              "moved aside). Only while the cluster is down.")
    restore.add_argument("file", type=Path, metavar="FILE")
    _etcd_members(restore, "how many members to restore (default: as many as the cluster had, else 1)")
    _data_dir(restore)
    return parser


def _say(line: str) -> None:
    print(line, flush=True)


def _raise_interrupt(*_: object) -> NoReturn:
    raise KeyboardInterrupt


def run_up(args: argparse.Namespace) -> int:
    opts = cluster.UpOptions(data_dir=args.data_dir.expanduser(), port=args.port, nodes=args.nodes,
                             hollow_nodes=args.hollow_nodes, etcd_members=args.etcd_members, runtime=args.runtime,
                             bridge_prefix=args.bridge_prefix, pod_cidr_prefix=args.pod_cidr_prefix)
    stop = threading.Event()
    if not args.detach:  # SIGTERM must stop the cluster as Ctrl-C does, also while starting
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        record = cluster.up(opts, LiveProgress() if sys.stdout.isatty() else PlainProgress(_say))
    except cluster.UpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; stopped what had started", file=sys.stderr)
        return 130
    nodes = ", ".join(n.name for n in record.nodes) or "none"
    _say(f"\nkubemini is up (nodes: {nodes}). Use it with:\n  export KUBECONFIG={record.kubeconfig}\n"
         f"  kubectl get nodes\nLogs: `kubemini logs COMPONENT --data-dir {opts.data_dir}`.")
    if args.detach:
        _say(f"Stop with `kubemini down --data-dir {opts.data_dir}`.")
        return 0
    _say("Press Ctrl-C to stop.")
    return _foreground(opts.data_dir, stop)


def _foreground(data_dir: Path, stop: threading.Event) -> int:
    """Wait for Ctrl-C/SIGTERM (then stop everything); a component that dies stops the cluster too (exit 1),
    except an etcd member of a cluster that keeps its quorum: that is reported once and the cluster runs on."""
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    record = state.read_cluster(data_dir) or state.ClusterRecord()
    members = {etcdmembers.component_name(m.name) for m in record.etcd_members}
    dead: str | None = None
    reported: set[str] = set()
    try:
        while not stop.wait(1.0):
            pids = state.read_pids(data_dir)
            gone = [name for name, pid in pids.items() if not state.alive(pid)]
            lost_etcd = [name for name in gone if name in members]
            dead = next((name for name in gone if name not in members), None)
            if len(lost_etcd) * 2 >= len(members) > 0:
                dead = lost_etcd[0]
            if dead or not pids:
                break
            for name in set(lost_etcd) - reported:
                print(f"warning: {name} exited; etcd keeps its quorum ({len(members) - len(lost_etcd)} of "
                      f"{len(members)} members) and the cluster goes on", file=sys.stderr, flush=True)
                reported.add(name)
    except KeyboardInterrupt:
        pass
    if dead:
        print(f"error: the {dead} exited; its log ends with:", file=sys.stderr)
        try:
            commands.logs(data_dir, dead, lines=20, out=sys.stderr)
        except commands.CommandError:
            pass
    _say("stopping kubemini ...")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave half a cluster
    cluster.stop_cluster(data_dir, _say)
    return 1 if dead else 0


def run_down(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.expanduser()
    if not cluster.stop_cluster(data_dir, _say):
        _say(f"nothing is running from {data_dir}")
    return 0


def dispatch(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.expanduser()
    match args.command:
        case "up":
            return run_up(args)
        case "down":
            return run_down(args)
        case "status":
            return commands.status(data_dir)
        case "logs":
            return commands.logs(data_dir, args.component, follow=args.follow, lines=args.lines)
        case "image":
            return commands.image_load(data_dir, args.file)
        case "etcd" if args.snapshot_command == "save":
            return commands.snapshot_save(data_dir, args.file)
        case _:
            return commands.snapshot_restore(data_dir, args.file, args.etcd_members)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except commands.CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubemini logs x | head`
        return 0
