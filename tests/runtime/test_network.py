"""Pod networking against the real kernel: netns, veth and a test bridge of our own, TCP between pods.

Every test uses its own bridge (kmt<hex>), name prefix (kt<hex>) and a 10.213.x.0/24 no route on the machine uses
yet, so nothing collides with a real runtime; fixtures remove all of it even when a test fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from kubelet.runtime import network
from kubelet.runtime.errors import InvalidArgument, ResourceExhausted, RuntimeFailure
from kubelet.runtime.network import PodAttachment, PodNetwork

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="pod networking needs root and iproute2's ip (it creates netns, veth pairs and a bridge)")

# Listens on the pod's address, prints its port, greets every client with the client's address.
SERVER = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen()
print(s.getsockname()[1], flush=True)
while True:
    c, peer = s.accept()
    c.sendall(f"hello {peer[0]}\\n".encode())
    c.close()
"""
CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(s.makefile().readline().strip())
"""


def _unused_subnet() -> str:
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    free = [n for n in range(1, 255) if f"10.213.{n}." not in routes]
    return f"10.213.{secrets.choice(free)}"


def _sandbox_id() -> str:
    return secrets.token_hex(32)


def _sh(*cmd: str, check: bool = True) -> None:
    subprocess.run(cmd, capture_output=True, check=check)


def _mounted(path: str) -> bool:
    return path in Path("/proc/self/mountinfo").read_text()


def _exists(path: str) -> bool:
    return Path(path).exists()


def _ip_json(*args: str) -> list[dict]:
    return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout)


async def _remove_everything(net: PodNetwork) -> None:
    """Tear down every sandbox the network knows, the bridge, then anything with its prefix that is left."""
    for sandbox_id in set(net.ipam.allocations().values()):  # a set-up sandbox always holds an address
        try:
            await net.teardown(sandbox_id)
        except Exception:  # the brute-force pass below still runs
            pass
    await net.remove_bridge()
    for item in net.leaked():
        kind, name = item.split(" ", 1)
        if kind == "link":
            _sh("ip", "link", "del", name, check=False)
        elif kind == "mount":
            _sh("umount", "-l", name, check=False)
        else:
            _sh("ip", "netns", "del", name, check=False)


@pytest.fixture
async def make_net(tmp_path):
    """``make_net(prefixlen=24)`` → a PodNetwork on a fresh bridge and subnet; all of it is removed afterwards."""
    made: list[PodNetwork] = []

    def make(prefixlen: int = 24) -> PodNetwork:
        tag = secrets.token_hex(2)
        net = PodNetwork(tmp_path / f"net-{tag}", f"{_unused_subnet()}.0/{prefixlen}", bridge=f"kmt{tag}",
                         prefix=f"kt{tag}")
        made.append(net)
        return net

    yield make
    for net in made:
        await _remove_everything(net)


@pytest.fixture
async def net(make_net) -> PodNetwork:
    return make_net()


async def _start_server(att: PodAttachment, netns: str) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, sys.executable, "-c", SERVER, str(att.ip.ip),
        stdout=asyncio.subprocess.PIPE)
    port = int(await asyncio.wait_for(proc.stdout.readline(), 10))
    return proc, port


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def test_pods_get_distinct_addresses_and_reach_each_other_and_the_host_reaches_them(net):
    a_id, b_id = _sandbox_id(), _sandbox_id()
    a, b = await net.setup(a_id), await net.setup(b_id)
    assert a.ip != b.ip
    assert {a.ip.network, b.ip.network} == {net.ipam.network}
    assert a.gateway == b.gateway == net.ipam.gateway.ip
    server, port = await _start_server(b, net.netns_name(b_id))
    try:
        client = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", net.netns_name(a_id), sys.executable, "-c", CLIENT, str(b.ip.ip), str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(client.communicate(), 15)
        assert client.returncode == 0, err.decode()
        assert out.decode().strip() == f"hello {a.ip.ip}"  # straight over the bridge, no NAT

        reader, writer = await asyncio.wait_for(asyncio.open_connection(str(b.ip.ip), port), 5)
        assert (await reader.readline()).decode().strip() == f"hello {b.gateway}"  # the host via the bridge
        writer.close()
    finally:
        await _stop(server)


async def test_pod_side_has_eth0_lo_and_a_default_route_and_the_host_side_is_a_bridge_port(net):
    sandbox_id = _sandbox_id()
    att = await net.setup(sandbox_id, hostname="web-0")
    netns = net.netns_name(sandbox_id)
    assert att == PodAttachment(f"/run/netns/{netns}", att.ip, att.gateway, "eth0")
    assert netns == f"{net.prefix}n-{sandbox_id[:12]}"

    links = {link["ifname"]: link for link in _ip_json("-n", netns, "addr")}
    assert set(links) == {"lo", "eth0"}
    assert "UP" in links["lo"]["flags"]
    assert "UP" in links["eth0"]["flags"] and links["eth0"]["mtu"] == 1500
    assert [(i["local"], i["prefixlen"]) for i in links["eth0"]["addr_info"] if i["family"] == "inet"] == [
        (str(att.ip.ip), att.ip.network.prefixlen)]
    assert {"dst": "default", "gateway": str(att.gateway), "dev": "eth0"}.items() <= _ip_json(
        "-n", netns, "route", "show", "default")[0].items()

    veth = net.veth_name(sandbox_id)
    assert len(veth) <= 15 and veth.startswith(f"{net.prefix}v")
    [host] = _ip_json("-d", "link", "show", "dev", veth)
    assert host["master"] == net.bridge and "UP" in host["flags"] and host["ifalias"] == "web-0"
    [bridge] = _ip_json("addr", "show", "dev", net.bridge)
    assert [f"{i['local']}/{i['prefixlen']}" for i in bridge["addr_info"] if i["family"] == "inet"] == [
        str(net.ipam.gateway)]


async def test_default_names_fit_the_kernel_limit(tmp_path):
    default = PodNetwork(tmp_path, "10.88.0.0/24")
    sandbox_id = _sandbox_id()
    assert default.netns_name(sandbox_id) == f"kmn-{sandbox_id[:12]}"
    assert default.veth_name(sandbox_id) == f"kmv{sandbox_id[:11]}"


async def test_teardown_removes_netns_veth_mount_and_address_and_twice_is_fine(net):
    sandbox_id = _sandbox_id()
    att = await net.setup(sandbox_id)
    assert len(net.leaked()) == 3  # netns file, its nsfs mount, host veth
    await net.teardown(sandbox_id)
    assert net.leaked() == []
    assert not _exists(att.netns_path)
    assert not _mounted(att.netns_path)
    assert net.ipam.allocations() == {}
    assert net.status(sandbox_id) is None
    await net.teardown(sandbox_id)
    await net.teardown(_sandbox_id())  # never set up
    assert net.leaked() == []


async def test_teardown_unmounts_stacked_nsfs_mounts(net):
    # A second mount on the netns file (what propagation copies leave) makes `ip netns del` fail with EBUSY.
    sandbox_id = _sandbox_id()
    att = await net.setup(sandbox_id)
    _sh("mount", "--bind", att.netns_path, att.netns_path)
    await net.teardown(sandbox_id)
    assert net.leaked() == []
    assert not _mounted(att.netns_path)


async def test_status_survives_a_restart_and_setup_is_idempotent(net, tmp_path):
    sandbox_id = _sandbox_id()
    att = await net.setup(sandbox_id)
    assert net.status(sandbox_id) == att
    restarted = PodNetwork(net.ipam.state_dir.parent, str(net.ipam.network), bridge=net.bridge, prefix=net.prefix)
    assert restarted.status(sandbox_id) == att
    assert await restarted.setup(sandbox_id) == att
    assert len(net.leaked()) == 3
    assert restarted.status(_sandbox_id()) is None


async def test_setup_after_a_crash_midway_clears_the_leftovers(net):
    sandbox_id = _sandbox_id()
    await net.ensure_bridge()
    # What a runtime killed between the two batches leaves: netns and veth, no address, no record.
    _sh("ip", "netns", "add", net.netns_name(sandbox_id))
    _sh("ip", "link", "add", net.veth_name(sandbox_id), "type", "veth", "peer", "name", "eth0",
        "netns", net.netns_name(sandbox_id))
    att = await net.setup(sandbox_id)
    [eth0] = _ip_json("-n", net.netns_name(sandbox_id), "addr", "show", "dev", "eth0")
    assert str(att.ip.ip) in [i["local"] for i in eth0["addr_info"]]


async def test_failed_setup_undoes_everything(net):
    sandbox_id = _sandbox_id()
    await net.ensure_bridge()
    _sh("ip", "link", "del", net.bridge)  # gone behind the instance's back
    with pytest.raises(RuntimeFailure, match=net.bridge):
        await net.setup(sandbox_id)
    assert net.leaked() == []
    assert net.ipam.allocations() == {}
    assert net.status(sandbox_id) is None


async def test_exhausted_pool_fails_setup_and_leaves_nothing(make_net):
    small = make_net(prefixlen=30)  # room for one pod
    first = _sandbox_id()
    await small.setup(first)
    with pytest.raises(ResourceExhausted, match="no free IP"):
        await small.setup(_sandbox_id())
    assert len(small.leaked()) == 3
    assert set(small.ipam.allocations().values()) == {first}


async def test_concurrent_setups_get_distinct_addresses(net):
    ids = [_sandbox_id() for _ in range(6)]
    atts = await asyncio.gather(*(net.setup(i) for i in ids))
    assert len({a.ip for a in atts}) == 6
    assert len(net.leaked()) == 18
    await asyncio.gather(*(net.teardown(i) for i in ids))
    assert net.leaked() == []


async def test_ensure_bridge_is_idempotent_and_sets_ip_forward_only_when_asked(net, tmp_path, monkeypatch):
    forward = tmp_path / "ip_forward"
    forward.write_text("0\n")
    monkeypatch.setattr(network, "IP_FORWARD", forward)
    await net.ensure_bridge()
    await net.ensure_bridge()
    [bridge] = _ip_json("-d", "addr", "show", "dev", net.bridge)
    assert bridge["linkinfo"]["info_kind"] == "bridge" and "UP" in bridge["flags"]
    assert [IPv4Interface(f"{i['local']}/{i['prefixlen']}") for i in bridge["addr_info"]
            if i["family"] == "inet"] == [net.ipam.gateway]
    assert forward.read_text() == "0\n"
    await net.ensure_bridge(ip_forward=True)
    assert forward.read_text() == "1"


async def test_remove_bridge_is_idempotent(net):
    await net.ensure_bridge()
    await net.remove_bridge()
    await net.remove_bridge()
    assert not _exists(f"/sys/class/net/{net.bridge}")


@pytest.mark.parametrize("sandbox_id", ["", "short", "../../etc/passwd0000", "ABCDEF0123456789"])
async def test_bad_sandbox_id_is_invalid_argument_and_changes_nothing(net, sandbox_id):
    with pytest.raises(InvalidArgument, match="sandbox id"):
        await net.setup(sandbox_id)
    assert net.leaked() == []


async def test_bad_names_are_invalid_argument(tmp_path):
    with pytest.raises(InvalidArgument, match="bridge"):
        PodNetwork(tmp_path, "10.88.0.0/24", bridge="a-bridge-name-too-long")
    with pytest.raises(InvalidArgument, match="prefix"):
        PodNetwork(tmp_path, "10.88.0.0/24", prefix="kubemini")
    with pytest.raises(InvalidArgument, match="MTU"):
        PodNetwork(tmp_path, "10.88.0.0/24", mtu=40)
    with pytest.raises(InvalidArgument, match="CIDR"):
        PodNetwork(tmp_path, "10.88.0.0/33")
