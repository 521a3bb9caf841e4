"""Host-local IPAM: allocation order, stickiness, round-robin reuse, exhaustion, persistence and races."""

from __future__ import annotations

import tempfile
import threading
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelet.runtime.errors import InvalidArgument, ResourceExhausted
from kubelet.runtime.ipam import Ipam


def ip_files(state_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in state_dir.iterdir() if p.name[0].isdigit()}


def test_allocates_in_order_after_the_gateway(tmp_path):
    ipam = Ipam(tmp_path, "10.88.0.0/24")
    assert ipam.gateway == IPv4Interface("10.88.0.1/24")
    assert [ipam.allocate(f"pod{i}") for i in range(3)] == [
        IPv4Interface("10.88.0.2/24"), IPv4Interface("10.88.0.3/24"), IPv4Interface("10.88.0.4/24")]
    # One file per address holding the owner, and the round-robin pointer, as host-local keeps them.
    assert ip_files(tmp_path) == {"10.88.0.2": "pod0", "10.88.0.3": "pod1", "10.88.0.4": "pod2"}
    assert (tmp_path / "last_reserved_ip").read_text() == "10.88.0.4"


def test_same_owner_gets_the_same_address(tmp_path):
    ipam = Ipam(tmp_path, "10.88.0.0/24")
    first = ipam.allocate("pod-a")
    ipam.allocate("pod-b")
    assert ipam.allocate("pod-a") == first
    assert ipam.lookup("pod-a") == first
    assert len(ip_files(tmp_path)) == 2


def test_freed_address_is_reused_only_after_the_pool_wraps(tmp_path):
    ipam = Ipam(tmp_path, "10.88.0.0/29")  # pool .2-.6
    for owner in "abcde":
        ipam.allocate(owner)
    ipam.release("b")
    assert ipam.lookup("b") is None
    assert ipam.allocate("f") == IPv4Interface("10.88.0.3/29")  # the only free one, reached by wrapping
    ipam.release("a")
    ipam.release("c")
    # .2 and .4 are free; the pointer is at .3, so .4 comes first and the older .2 after it.
    assert ipam.allocate("g") == IPv4Interface("10.88.0.4/29")
    assert ipam.allocate("h") == IPv4Interface("10.88.0.2/29")


def test_just_released_address_is_not_handed_out_next(tmp_path):
    ipam = Ipam(tmp_path, "10.88.0.0/24")
    ip = ipam.allocate("pod-a")
    ipam.release("pod-a")
    assert ipam.allocate("pod-b") != ip


def test_release_is_idempotent(tmp_path):
    ipam = Ipam(tmp_path, "10.88.0.0/24")
    ipam.allocate("pod-a")
    ipam.release("pod-a")
    ipam.release("pod-a")
    ipam.release("never-allocated")
    assert ip_files(tmp_path) == {}


def test_exhaustion_raises_and_writes_nothing(tmp_path):
    ipam = Ipam(tmp_path, "10.88.0.0/30")  # network .0, gateway .1, pod .2, broadcast .3
    assert ipam.allocate("pod-a") == IPv4Interface("10.88.0.2/30")
    with pytest.raises(ResourceExhausted, match=r"no free IP in 10\.88\.0\.0/30"):
        ipam.allocate("pod-b")
    assert ip_files(tmp_path) == {"10.88.0.2": "pod-a"}
    ipam.release("pod-a")
    assert ipam.allocate("pod-b") == IPv4Interface("10.88.0.2/30")


def test_state_survives_a_new_instance(tmp_path):
    Ipam(tmp_path, "10.88.0.0/24").allocate("pod-a")
    Ipam(tmp_path, "10.88.0.0/24").allocate("pod-b")
    again = Ipam(tmp_path, "10.88.0.0/24")
    assert again.lookup("pod-a") == IPv4Interface("10.88.0.2/24")
    assert again.allocations() == {IPv4Address("10.88.0.2"): "pod-a", IPv4Address("10.88.0.3"): "pod-b"}
    assert again.allocate("pod-c") == IPv4Interface("10.88.0.4/24")


def test_reads_host_local_files_with_an_interface_line(tmp_path):
    (tmp_path / "10.88.0.7").write_text("pod-a\neth0")
    assert Ipam(tmp_path, "10.88.0.0/24").lookup("pod-a") == IPv4Interface("10.88.0.7/24")


def test_an_instance_with_a_stale_pointer_skips_an_address_taken_meanwhile(tmp_path):
    # The race O_EXCL exists for: B reads last_reserved_ip before A writes its new file and pointer.
    a, b = Ipam(tmp_path, "10.88.0.0/24"), Ipam(tmp_path, "10.88.0.0/24")
    a.allocate("pod-a")
    (tmp_path / "last_reserved_ip").unlink()  # B now starts where A started
    assert b.allocate("pod-b") == IPv4Interface("10.88.0.3/24")
    assert ip_files(tmp_path) == {"10.88.0.2": "pod-a", "10.88.0.3": "pod-b"}


def test_two_instances_racing_never_share_an_address(tmp_path):
    instances = [Ipam(tmp_path, "10.88.0.0/24") for _ in range(2)]
    barrier = threading.Barrier(4)
    got: dict[str, IPv4Interface] = {}

    def worker(n: int) -> None:
        ipam = instances[n % 2]
        barrier.wait()
        for i in range(50):
            owner = f"w{n}-{i}"
            got[owner] = ipam.allocate(owner)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 200
    assert len(set(got.values())) == 200
    assert {IPv4Interface(f"{ip}/24"): owner for ip, owner in ip_files(tmp_path).items()} == {
        ip: owner for owner, ip in got.items()}


@pytest.mark.parametrize("cidr", ["nonsense", "10.88.0.0/33", "10.88.0.5/24", "fd00::/64", "10.88.0.0/31", ""])
def test_invalid_cidr_is_invalid_argument(tmp_path, cidr):
    with pytest.raises(InvalidArgument, match="CIDR"):
        Ipam(tmp_path / "state", cidr)
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("owner", ["", " pod", "pod\n", "a\nb"])
def test_invalid_owner_is_invalid_argument(tmp_path, owner):
    with pytest.raises(InvalidArgument, match="owner"):
        Ipam(tmp_path, "10.88.0.0/24").allocate(owner)
    assert ip_files(tmp_path) == {}


_ops = st.lists(st.tuples(st.sampled_from(["allocate", "release"]), st.integers(0, 9)), max_size=40)


@given(_ops)
def test_matches_a_round_robin_model(ops):
    """Against a model of host-local: sticky per owner, unique, in the pool, next free after the last reserved."""
    pool = [IPv4Address(f"10.88.0.{i}") for i in range(2, 7)]  # /29
    held: dict[str, IPv4Address] = {}
    last: int | None = None
    with tempfile.TemporaryDirectory() as state:
        ipam = Ipam(Path(state), "10.88.0.0/29")
        for op, n in ops:
            owner = f"pod{n}"
            if op == "release":
                ipam.release(owner)
                held.pop(owner, None)
                continue
            if owner not in held:
                start = 0 if last is None else last + 1
                free = [i % len(pool) for i in range(start, start + len(pool))
                        if pool[i % len(pool)] not in held.values()]
                if not free:
                    with pytest.raises(ResourceExhausted):
                        ipam.allocate(owner)
                    continue
                last = free[0]
                held[owner] = pool[last]
            assert ipam.allocate(owner) == IPv4Interface((held[owner], 29))
        assert ipam.allocations() == {ip: owner for owner, ip in held.items()}
