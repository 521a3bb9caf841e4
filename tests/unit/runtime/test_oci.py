"""The CRI → OCI translation: command line, environment, user, capabilities, sysctls, resources."""

from __future__ import annotations

import pytest

from kubelet.runtime import oci
from kubelet.runtime.errors import InvalidArgument
from proto.cri import api_pb2 as cri

IMAGE = {"Entrypoint": ["/entry"], "Cmd": ["default-arg"], "Env": ["PATH=/bin", "A=image"]}


@pytest.mark.parametrize(("command", "args", "expected"), [
    ([], [], ["/entry", "default-arg"]),
    (["/cmd"], [], ["/cmd"]),  # a command drops the image's Cmd too
    ([], ["x"], ["/entry", "x"]),
    (["/cmd"], ["x"], ["/cmd", "x"]),
])
def test_command_and_args_follow_kubernetes_rules(command, args, expected):
    assert oci.process_args(cri.ContainerConfig(command=command, args=args), IMAGE) == expected


def test_no_command_at_all_is_invalid():
    with pytest.raises(InvalidArgument, match="no command"):
        oci.process_args(cri.ContainerConfig(), {})


def test_environment_overrides_image_values_and_keeps_a_path():
    config = cri.ContainerConfig(envs=[cri.KeyValue(key="A", value="pod"), cri.KeyValue(key="B", value="1")])
    assert oci.environment(config, IMAGE) == ["PATH=/bin", "A=pod", "B=1"]
    assert oci.environment(cri.ContainerConfig(), {})[0].startswith("PATH=/usr/local/sbin")


def test_capabilities_default_add_drop_and_host_limit():
    host = frozenset(oci.CAPABILITY_NAMES) - {"SYS_RESOURCE"}
    sc = cri.LinuxContainerSecurityContext()
    sc.capabilities.add_capabilities.extend(["NET_ADMIN", "CAP_SYS_RESOURCE"])
    sc.capabilities.drop_capabilities.append("MKNOD")
    caps = oci.capabilities(sc, host, uid=0)
    assert "CAP_NET_ADMIN" in caps["bounding"] and "CAP_CHOWN" in caps["effective"]
    assert "CAP_MKNOD" not in caps["bounding"]
    assert "CAP_SYS_RESOURCE" not in caps["bounding"]  # the host cannot grant it
    non_root = oci.capabilities(cri.LinuxContainerSecurityContext(), host, uid=1000)
    assert non_root["effective"] == [] and non_root["bounding"]
    drop_all = cri.LinuxContainerSecurityContext()
    drop_all.capabilities.drop_capabilities.append("ALL")
    assert oci.capabilities(drop_all, host, uid=0)["bounding"] == []
    privileged = oci.capabilities(cri.LinuxContainerSecurityContext(privileged=True), host, uid=0)
    assert len(privileged["bounding"]) == len(host)


def test_unknown_capability_is_invalid():
    sc = cri.LinuxContainerSecurityContext()
    sc.capabilities.add_capabilities.append("FLY")
    with pytest.raises(InvalidArgument, match="FLY"):
        oci.capabilities(sc, frozenset(oci.CAPABILITY_NAMES), uid=0)


def test_sysctls_must_be_namespaced():
    assert oci.validate_sysctls({"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}, False)
    with pytest.raises(InvalidArgument, match="not namespaced"):
        oci.validate_sysctls({"kernel.panic": "1"}, False)
    with pytest.raises(InvalidArgument, match="host"):
        oci.validate_sysctls({"net.ipv4.ip_forward": "1"}, True)


def test_resources_and_merge():
    res = cri.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_quota=50000, cpu_period=100000,
                                      cpu_shares=512)
    out = oci.resources(res, pids_limit=100)
    assert out["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert out["cpu"] == {"shares": 512, "quota": 50000, "period": 100000}
    assert out["pids"] == {"limit": 100}
    merged = oci.merge_resources(res, cri.LinuxContainerResources(memory_limit_in_bytes=128 << 20))
    assert (merged.memory_limit_in_bytes, merged.cpu_quota, merged.cpu_shares) == (128 << 20, 50000, 512)
    assert "memory" not in oci.resources(cri.LinuxContainerResources())


def test_user_resolution(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1001:\nextra:x:2000:app\n")
    sc = cri.LinuxContainerSecurityContext()
    assert oci.resolve_user(sc, "", tmp_path) == oci.User(uid=0, gid=0, additional_gids=[])
    assert oci.resolve_user(sc, "app", tmp_path) == oci.User(uid=1000, gid=1001, additional_gids=[2000])
    assert oci.resolve_user(sc, "app:root", tmp_path).gid == 0
    by_uid = cri.LinuxContainerSecurityContext()
    by_uid.run_as_user.value = 1000
    by_uid.run_as_group.value = 5
    by_uid.supplemental_groups.append(7)
    assert oci.resolve_user(by_uid, "", tmp_path) == oci.User(uid=1000, gid=5, additional_gids=[7, 2000])
    unknown_uid = cri.LinuxContainerSecurityContext()
    unknown_uid.run_as_user.value = 4242
    assert oci.resolve_user(unknown_uid, "", tmp_path) == oci.User(uid=4242, gid=0, additional_gids=[])
    with pytest.raises(InvalidArgument, match="nobody-here"):
        oci.resolve_user(cri.LinuxContainerSecurityContext(run_as_username="nobody-here"), "", tmp_path)


def test_oom_score_adj_is_clamped_for_this_host():
    spec = oci.spec(args=["sh"], env=[], cwd="", user=oci.User(0, 0), rootfs="/r", readonly_rootfs=False, tty=False,
                    caps={}, no_new_privileges=False, oom_score_adj=-997, mounts=[], ns=[], cgroups_path="/x",
                    res={}, sysctls={}, privileged=False)
    assert spec["process"]["oomScoreAdj"] == 0
    assert spec["process"]["cwd"] == "/"
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
