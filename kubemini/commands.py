"""``kubemini status | logs | image load | etcd snapshot``: the commands that look at (or feed) a cluster.

Each works from what ``up`` recorded in the data dir (:mod:`kubemini.clusterstate`). A condition the user must
fix raises :class:`CommandError` (one line; the CLI prints ``error: …`` and exits 1).

``etcd snapshot`` uses ``etcdctl`` (Debian's etcd-client). ``restore`` is offline only, as with kubeadm clusters:
each member is restored from the same snapshot into a new membership (:mod:`kubemini.etcdmembers` lays them out and
records their ports for the next ``up``); the old member directories are moved aside, never deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from kubemini import clusterstate as state
from kubemini import etcdmembers


class CommandError(RuntimeError):
    """A one-line, user-actionable failure."""


def _record(data_dir: Path) -> state.ClusterRecord:
    record = state.read_cluster(data_dir)
    if record is None:
        raise CommandError(f"no kubemini cluster in {data_dir} (start one with `kubemini up --data-dir {data_dir}`)")
    return record


# --- status -------------------------------------------------------------------------------------------------

def node_ready(api_url: str, name: str) -> str:
    """``True``/``False``/``Unknown`` from the Node's Ready condition, or why it cannot be told."""
    try:
        with urllib.request.urlopen(f"{api_url}/api/v1/nodes/{name}", timeout=2) as resp:
            conditions = json.loads(resp.read()).get("status", {}).get("conditions") or []
    except urllib.error.HTTPError as err:
        return "not registered" if err.code == 404 else f"HTTP {err.code}"
    except (urllib.error.URLError, OSError, ValueError):
        return "API server unreachable"
    return next((c.get("status", "Unknown") for c in conditions if c.get("type") == "Ready"), "Unknown")


def status(data_dir: Path, out: TextIO | None = None) -> int:
    """Print every component (pid, alive, URL) and node (Ready); 0 if all components run, else 1."""
    out = out or sys.stdout
    record = _record(data_dir)
    pids = state.read_pids(data_dir)
    if not pids:
        out.write(f"kubemini is not running from {data_dir}\n")
        return 1
    out.write(f"{'COMPONENT':<24} {'PID':>8}  {'ALIVE':<5}  URL\n")
    all_alive = True
    for comp in record.components:
        pid = pids.get(comp.name)
        alive = pid is not None and state.alive(pid)
        all_alive &= alive
        out.write(f"{comp.name:<24} {pid or '-':>8}  {'yes' if alive else 'no':<5}  {comp.url}\n")
    if record.nodes:
        out.write(f"\n{'NODE':<32} READY\n")
        for n in record.nodes:
            out.write(f"{n.name:<32} {node_ready(record.api_url, n.name)}\n")
    out.write(f"\nexport KUBECONFIG={record.kubeconfig}\n")
    return 0 if all_alive else 1


# --- logs ---------------------------------------------------------------------------------------------------

def log_path(data_dir: Path, component: str) -> Path:
    record = _record(data_dir)
    comp = record.component(component)
    if comp is None:
        known = ", ".join(c.name for c in record.components)
        raise CommandError(f"unknown component {component!r}; known: {known}")
    return Path(comp.log)


def logs(data_dir: Path, component: str, *, follow: bool = False, lines: int = 100,
         out: TextIO | None = None) -> int:
    """Print the last ``lines`` of the component's log; with ``follow``, keep printing until interrupted."""
    out = out or sys.stdout
    path = log_path(data_dir, component)
    if not path.exists():
        raise CommandError(f"{component} has no log yet ({path})")
    with open(path, errors="replace") as f:
        for line in f.read().splitlines()[-lines:]:
            out.write(line + "\n")
        out.flush()
        if follow:
            for chunk in _follow(f):
                out.write(chunk)
                out.flush()
    return 0


def _follow(f: TextIO, interval: float = 0.2) -> Iterator[str]:
    while True:
        chunk = f.read()
        if chunk:
            yield chunk
        else:
            time.sleep(interval)


# --- image load ---------------------------------------------------------------------------------------------

def image_load(data_dir: Path, file: Path) -> int:
    """Load an image tarball into every node's runtime image store (``python -m kubelet.runtime.images``)."""
    if not file.is_file():
        raise CommandError(f"{file}: no such file")
    record = state.read_cluster(data_dir)
    roots = [Path(n.runtime_root) for n in record.nodes] if record and record.nodes else [data_dir / "runtime"]
    for root in roots:
        done = subprocess.run([sys.executable, "-m", "kubelet.runtime.images", "--root", str(root / "images"),
                               "load", str(file)])
        if done.returncode != 0:
            raise CommandError(f"loading {file} into {root} failed (exit status {done.returncode})")
    return 0


# --- etcd snapshot ------------------------------------------------------------------------------------------

def etcdctl() -> str:
    found = shutil.which("etcdctl") or ("/usr/bin/etcdctl" if os.access("/usr/bin/etcdctl", os.X_OK) else None)
    if not found:
        raise CommandError("etcdctl is not installed: apt-get install -y etcd-client (or `make deps`)")
    return found


def _etcdctl(*args: str) -> None:
    done = subprocess.run([etcdctl(), *args], capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise CommandError(f"etcdctl {args[0]} {args[1]} failed: {message[-1] if message else done.returncode}")


def snapshot_save(data_dir: Path, file: Path, out: TextIO | None = None) -> int:
    """``etcdctl snapshot save`` from the first running member (any member holds all the data)."""
    out = out or sys.stdout
    record = _record(data_dir)
    pids = state.read_pids(data_dir)
    running = [m for m in record.etcd_members
               if (pid := pids.get(etcdmembers.component_name(m.name))) is not None and state.alive(pid)]
    if not running:
        raise CommandError(f"etcd is not running from {data_dir}; start the cluster with `kubemini up -d`")
    _etcdctl("snapshot", "save", str(file), f"--endpoints={running[0].endpoint}")
    out.write(f"saved etcd snapshot to {file}\n")
    return 0


def snapshot_restore(data_dir: Path, file: Path, members: int | None = None, out: TextIO | None = None) -> int:
    """Replace the data dir's etcd data with ``members`` members restored from ``file`` (default: as many as
    the cluster had, else 1); refused while the cluster runs. Old member directories are moved aside."""
    out = out or sys.stdout
    if state.running_pids(data_dir):
        raise CommandError(f"kubemini is running from {data_dir}; stop it first with `kubemini down`")
    if not file.is_file():
        raise CommandError(f"{file}: no such file")
    record = state.read_cluster(data_dir) or state.ClusterRecord()
    count = members or len(record.etcd_members) or etcdmembers.existing_size(data_dir) or 1
    new = etcdmembers.restore_plan(data_dir, count)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    staged = []
    for member in new:
        staging = Path(member.data_dir + ".restoring")
        shutil.rmtree(staging, ignore_errors=True)
        _etcdctl("snapshot", "restore", str(file), f"--data-dir={staging}",
                 *etcdmembers.restore_flags(member, new))
        staged.append((staging, Path(member.data_dir)))
    for size in etcdmembers.SIZES:  # whatever layout was there goes aside, so only the restored one is found
        for name in etcdmembers.member_names(size):
            old = etcdmembers.member_dir(data_dir, name)
            if old.exists():
                aside = old.with_name(f"{old.name}.before-restore-{stamp}")
                old.rename(aside)
                out.write(f"moved the old etcd data {old} to {aside}\n")
    for staging, target in staged:
        staging.rename(target)
    record.etcd_members = new
    state.write_cluster(data_dir, record)
    out.write(f"restored {file} into {count} etcd member(s) under {data_dir}; start the cluster with "
              f"`kubemini up --data-dir {data_dir}`\n")
    return 0
