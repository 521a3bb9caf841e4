"""The few rtnetlink requests a pod's network needs, sent from the calling thread's network namespace.

Why not ``ip``: two ``ip`` processes per pod (and the fork of a large runtime process for each) were about 7% of a
busy node's CPU while pods started (perf during ``python -m bench --only kubelet``). Why not pyroute2: these are
five fixed messages of the kernel's documented rtnetlink ABI (``linux/rtnetlink.h``, ``linux/if_link.h``,
``linux/veth.h``), each a few ``struct.pack`` calls. A netlink socket belongs to the network namespace its thread
was in when it was made, which is how the pod side and the host side are configured from one thread that moves
between them (see ``network.py``).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from ipaddress import IPv4Address, IPv4Interface

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 3, 4, 10, 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst len, src len, tos, table, protocol, scope, type, flags


def attribute(kind: int, payload: bytes) -> bytes:
    """One rtattr: length, type, payload, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def name(text: str) -> bytes:
    return text.encode() + b"\0"


def u32(value: int) -> bytes:
    return struct.pack("=I", value)


def index(ifname: str) -> int:
    """The interface's index in the calling thread's network namespace."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise OSError(errno.ENODEV, f"no interface named {ifname}") from None


class Netlink:
    """An rtnetlink socket of the calling thread's network namespace; every request waits for its ack."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sequence = 0

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *_) -> None:
        self.sock.close()

    def request(self, kind: int, body: bytes, flags: int = 0, what: str = "") -> None:
        """Send one request; raise OSError with the kernel's errno if it refused."""
        self.sequence += 1
        self.sock.send(HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, self.sequence, 0)
                       + body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + HEADER.size <= len(data):
                length, message_type, _, sequence, _ = HEADER.unpack_from(data, offset)
                if message_type == NLMSG_ERROR and sequence == self.sequence:
                    (error,) = struct.unpack_from("=i", data, offset + HEADER.size)
                    if error:
                        raise OSError(-error, f"{what}: {os.strerror(-error)}")
                    return
                offset += max(length + (-length % 4), HEADER.size)

    def add_veth(self, ifname: str, peer: str, peer_netns_fd: int, mtu: int) -> None:
        """A veth pair: ``ifname`` here, ``peer`` in the namespace ``peer_netns_fd`` refers to."""
        peer_info = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attribute(IFLA_IFNAME, name(peer)) + attribute(
            IFLA_MTU, u32(mtu)) + attribute(IFLA_NET_NS_FD, u32(peer_netns_fd))
        link_info = attribute(IFLA_INFO_KIND, name("veth")) + attribute(
            IFLA_INFO_DATA, attribute(VETH_INFO_PEER, peer_info))
        body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attribute(IFLA_IFNAME, name(ifname)) + attribute(
            IFLA_MTU, u32(mtu)) + attribute(IFLA_LINKINFO, link_info)
        self.request(RTM_NEWLINK, body, NLM_F_CREATE | NLM_F_EXCL, f"add veth {ifname} (peer {peer})")

    def set_up(self, ifname: str, *, master: str | None = None, alias: str | None = None) -> None:
        """Bring ``ifname`` up, optionally enslaving it to bridge ``master`` and giving it an alias."""
        body = IFINFO.pack(socket.AF_UNSPEC, 0, index(ifname), IFF_UP, IFF_UP)
        if master is not None:
            body += attribute(IFLA_MASTER, u32(index(master)))
        if alias:
            body += attribute(IFLA_IFALIAS, alias.encode())
        self.request(RTM_NEWLINK, body, what=f"set {ifname} up")

    def add_address(self, ifname: str, address: IPv4Interface) -> None:
        packed = address.ip.packed
        body = IFADDR.pack(socket.AF_INET, address.network.prefixlen, 0, RT_SCOPE_UNIVERSE,
                           index(ifname)) + attribute(IFA_LOCAL, packed) + attribute(IFA_ADDRESS,
                                                                                                      packed)
        self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL, f"add address {address} to {ifname}")

    def add_default_route(self, gateway: IPv4Address, ifname: str) -> None:
        body = RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST,
                          0) + attribute(RTA_GATEWAY, gateway.packed) + attribute(RTA_OIF,
                                                                                  u32(index(ifname)))
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL, f"add default route via {gateway}")
