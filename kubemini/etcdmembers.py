"""Where a data dir's etcd members live and which ports they keep, for ``up`` and ``etcd snapshot restore``.

One member lives in ``<data-dir>/etcd`` and is named ``default`` (what :class:`EtcdServer` calls a lone member,
and what a snapshot restored into that directory must be called). Three members live in ``<data-dir>/etcd-1``,
``etcd-2`` and ``etcd-3``, named likewise. A member's peer URL is written into the cluster's membership when the
cluster is created, and the other members dial exactly that URL from then on: a 3-member cluster must listen on
the same peer ports at every ``up``. So the ports are recorded in ``cluster.json`` and reused; ``restore``, which
creates the membership anew, chooses them and records them for the next ``up``.

A data dir whose etcd data has one member cannot be started with three (or the other way round): etcd would
refuse or, worse, start a new empty cluster beside the old data. That is an :class:`EtcdLayoutError` telling
the user which ``--etcd-members`` their data needs.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubemini import clusterstate as state
from kubemini.etcdserver import EtcdServer, MemberSpec, cluster_members, initial_cluster, is_leader
from kubemini.ports import free_port, port_in_use

SIZES = (1, 3)
CLIENT_PORT_OFFSET = 10000  # member i listens for clients on the API server's port + 10000 + i when free


class EtcdLayoutError(RuntimeError):
    """The data dir's etcd data and the requested member count disagree, or a recorded port is taken."""


def member_names(count: int) -> list[str]:
    return ["default"] if count == 1 else [f"etcd-{i + 1}" for i in range(count)]


def member_dir(data_dir: Path, name: str) -> Path:
    return data_dir / ("etcd" if name == "default" else name)


def component_name(name: str) -> str:
    """The component name ``status``/``logs`` show: ``etcd`` for a lone member, else the member's name."""
    return "etcd" if name == "default" else name


def existing_size(data_dir: Path) -> int | None:
    """How many members the etcd data under ``data_dir`` was made for; None if there is none."""
    for count in SIZES:
        if all((member_dir(data_dir, n) / "member").is_dir() for n in member_names(count)):
            return count
    return None


def plan(data_dir: Path, requested: int | None, recorded: list[state.EtcdMemberRecord],
         api_port: int) -> list[state.EtcdMemberRecord]:
    """The members ``up`` starts: the data dir's own (recorded ports), or ``requested`` new ones (default 1)."""
    existing = existing_size(data_dir)
    count = requested or existing or 1
    if existing is not None and existing != count:
        raise EtcdLayoutError(
            f"the etcd data in {data_dir} belongs to a {existing}-member cluster; start it with "
            f"--etcd-members {existing} (or use another --data-dir)")
    names = member_names(count)
    preferred = [api_port + CLIENT_PORT_OFFSET + i for i in range(count)]
    if existing is not None and [m.name for m in recorded] == names:
        return [_keep_ports(m, port) for m, port in zip(recorded, preferred, strict=True)]
    if existing is not None and count > 1:
        raise EtcdLayoutError(
            f"the {count}-member etcd data in {data_dir} has no recorded peer ports ({state.CLUSTER_FILE} is "
            "missing or from another cluster); restore it from a snapshot with `kubemini etcd snapshot restore`")
    return [state.EtcdMemberRecord(name, str(member_dir(data_dir, name)), _client_port(0, port), free_port())
            for name, port in zip(names, preferred, strict=True)]


def _client_port(*candidates: int) -> int:
    """The first candidate that is a free port; else any free port (clients are told the port anew)."""
    return next((p for p in candidates if 0 < p <= 65535 and not port_in_use(p)), None) or free_port()


def _keep_ports(member: state.EtcdMemberRecord, preferred_client_port: int) -> state.EtcdMemberRecord:
    """The recorded member; a taken client port is replaced, a taken peer port is fatal (peers dial it)."""
    if member.name == "default":  # a lone member dials no peer: any port will do
        peer = free_port()
    elif port_in_use(member.peer_port):
        raise EtcdLayoutError(f"etcd member {member.name} must listen on its peer port {member.peer_port} "
                              "(recorded in its cluster's membership), but that port is in use")
    else:
        peer = member.peer_port
    client = _client_port(member.client_port, preferred_client_port)
    return state.EtcdMemberRecord(member.name, member.data_dir, client, peer)


def servers(members: list[state.EtcdMemberRecord]) -> list[EtcdServer]:
    """The processes for ``members``; their initial-cluster flags only matter when the data is new."""
    specs = [_spec(m) for m in members]
    return cluster_members(specs, token=f"kubemini-{os.getpid()}-{specs[0].peer_port}")


def leader_last(names: list[str], members: list[state.EtcdMemberRecord]) -> list[str]:
    """``names`` with the etcd leader's component moved to the end: followers stop first, so the leader's
    stop does not wait on a leadership transfer to a member that is stopping too."""
    leader = next((component_name(m.name) for m in members if len(members) > 1 and is_leader(m.endpoint)), None)
    return [n for n in names if n != leader] + ([leader] if leader in names else [])


def restore_plan(data_dir: Path, count: int) -> list[state.EtcdMemberRecord]:
    """Fresh members (new peer ports; client ports are chosen by ``up``) for a cluster rebuilt from a snapshot."""
    return [state.EtcdMemberRecord(n, str(member_dir(data_dir, n)), 0, free_port()) for n in member_names(count)]


def restore_flags(member: state.EtcdMemberRecord, members: list[state.EtcdMemberRecord]) -> list[str]:
    """``etcdctl snapshot restore`` flags that make ``member`` one of ``members``' new cluster."""
    specs = [_spec(m) for m in members]
    return [f"--name={member.name}", f"--initial-cluster={initial_cluster(specs)}",
            f"--initial-advertise-peer-urls={_spec(member).peer_url}",
            f"--initial-cluster-token=kubemini-restore-{specs[0].peer_port}"]


def _spec(member: state.EtcdMemberRecord) -> MemberSpec:
    return MemberSpec(member.name, Path(member.data_dir), member.client_port, member.peer_port)
