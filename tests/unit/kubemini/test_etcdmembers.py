"""How a data dir's etcd members are laid out and which ports they keep from one ``up`` to the next."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kubemini import clusterstate as state
from kubemini import etcdmembers
from kubemini.ports import free_port, port_in_use


def make_data(data_dir: Path, count: int) -> None:
    for name in etcdmembers.member_names(count):
        (etcdmembers.member_dir(data_dir, name) / "member").mkdir(parents=True)


def test_a_new_data_dir_gets_one_member_named_default_in_etcd(tmp_path: Path) -> None:
    [member] = etcdmembers.plan(tmp_path, None, [], api_port=free_port())
    assert (member.name, member.data_dir) == ("default", str(tmp_path / "etcd"))
    assert etcdmembers.component_name(member.name) == "etcd"


def test_three_members_live_side_by_side_with_client_ports_after_the_api_port(tmp_path: Path) -> None:
    api_port = next(p for p in range(20000, 50000, 7) if not any(port_in_use(p + 10000 + i) for i in range(3)))
    members = etcdmembers.plan(tmp_path, 3, [], api_port=api_port)
    assert [m.name for m in members] == ["etcd-1", "etcd-2", "etcd-3"]
    assert [m.data_dir for m in members] == [str(tmp_path / f"etcd-{i}") for i in (1, 2, 3)]
    assert [m.client_port for m in members] == [api_port + 10000 + i for i in range(3)]
    assert len({m.peer_port for m in members} | {m.client_port for m in members}) == 6


def test_the_data_decides_the_member_count_when_none_is_asked(tmp_path: Path) -> None:
    make_data(tmp_path, 3)
    recorded = etcdmembers.restore_plan(tmp_path, 3)
    assert etcdmembers.existing_size(tmp_path) == 3
    members = etcdmembers.plan(tmp_path, None, recorded, api_port=free_port())
    assert [m.peer_port for m in members] == [m.peer_port for m in recorded]  # the membership dials these


def test_a_different_member_count_than_the_data_is_refused(tmp_path: Path) -> None:
    make_data(tmp_path, 1)
    with pytest.raises(etcdmembers.EtcdLayoutError, match="1-member cluster; start it with --etcd-members 1"):
        etcdmembers.plan(tmp_path, 3, [], api_port=free_port())


def test_three_member_data_without_recorded_ports_is_refused(tmp_path: Path) -> None:
    make_data(tmp_path, 3)
    with pytest.raises(etcdmembers.EtcdLayoutError, match="no recorded peer ports"):
        etcdmembers.plan(tmp_path, 3, [], api_port=free_port())


def test_a_taken_peer_port_is_refused_and_a_taken_client_port_replaced(tmp_path: Path) -> None:
    make_data(tmp_path, 3)
    recorded = etcdmembers.restore_plan(tmp_path, 3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        recorded[0] = state.EtcdMemberRecord("etcd-1", recorded[0].data_dir, taken, recorded[0].peer_port)
        members = etcdmembers.plan(tmp_path, 3, recorded, api_port=free_port())
        assert members[0].client_port != taken
        recorded[1] = state.EtcdMemberRecord("etcd-2", recorded[1].data_dir, 0, taken)
        with pytest.raises(etcdmembers.EtcdLayoutError, match=f"peer port {taken} .* is in use"):
            etcdmembers.plan(tmp_path, 3, recorded, api_port=free_port())


def test_restore_flags_make_each_member_part_of_one_new_cluster(tmp_path: Path) -> None:
    members = etcdmembers.restore_plan(tmp_path, 3)
    flags = [etcdmembers.restore_flags(m, members) for m in members]
    everyone = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in members)
    for member, member_flags in zip(members, flags, strict=True):
        assert f"--name={member.name}" in member_flags
        assert f"--initial-cluster={everyone}" in member_flags
        assert f"--initial-advertise-peer-urls=http://127.0.0.1:{member.peer_port}" in member_flags
    assert len({f[-1] for f in flags}) == 1  # one cluster token


def test_the_leader_stops_last(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    members = etcdmembers.plan(tmp_path, 3, [], api_port=free_port())
    leader_endpoint = members[2].endpoint
    monkeypatch.setattr(etcdmembers, "is_leader", lambda endpoint: endpoint == leader_endpoint)
    names = ["apiserver", "etcd-3", "etcd-2", "etcd-1"]
    assert etcdmembers.leader_last(names, members) == ["apiserver", "etcd-2", "etcd-1", "etcd-3"]
