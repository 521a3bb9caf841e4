"""Translating a CRI container (or sandbox) request into an OCI runtime spec (runc's config.json).

Everything the kernel enforces is decided here: the command line (CRI command/args over the image's
Entrypoint/Cmd, as Kubernetes documents), environment, user, working directory, mounts, namespaces joined from
the pod's pause process, capabilities, sysctls and cgroup resources. The machine's limits are applied here too
(reference notes): capabilities are intersected with the host's bounding set, ``oom_score_adj`` is clamped to
≥ 0 because this host has no CAP_SYS_RESOURCE, and no rlimits are set (the container inherits the runtime's,
which are within the host's hard limits).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from kubelet.runtime.capabilities import CAPABILITY_NAMES
from kubelet.runtime.errors import InvalidArgument
from proto.cri import api_pb2 as cri

OCI_VERSION = "1.0.2"
PATH_DEFAULT = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The capabilities every container runtime grants by default (Docker's and containerd's set).
DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)
DEFAULT_MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# Sysctls that are isolated by a namespace the pod owns, so setting them cannot affect the node.
NAMESPACED_SYSCTL_PREFIXES = ("kernel.shm", "kernel.msg", "fs.mqueue.", "net.")
NAMESPACED_SYSCTLS = ("kernel.sem",)

PROPAGATION = {
    cri.PROPAGATION_PRIVATE: "rprivate",
    cri.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    cri.PROPAGATION_BIDIRECTIONAL: "rshared",
}


def host_capabilities() -> frozenset[str]:
    """The capabilities in this process's bounding set: nothing outside it can be granted to a container."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return frozenset(name for bit, name in enumerate(CAPABILITY_NAMES) if mask >> bit & 1)
    return frozenset(DEFAULT_CAPABILITIES)


def _cap_name(name: str) -> str:
    upper = name.upper()
    return upper.removeprefix("CAP_")


def capabilities(sc: cri.LinuxContainerSecurityContext, host: frozenset[str], uid: int) -> dict:
    """Default set ± the pod's add/drop ("ALL" allowed on either side), limited to the host's bounding set."""
    if sc.privileged:
        caps = set(host)
    else:
        caps = set(DEFAULT_CAPABILITIES)
        added = {_cap_name(c) for c in sc.capabilities.add_capabilities}
        dropped = {_cap_name(c) for c in sc.capabilities.drop_capabilities}
        unknown = (added | dropped) - set(CAPABILITY_NAMES) - {"ALL"}
        if unknown:
            raise InvalidArgument(f"unknown capabilities: {', '.join(sorted(unknown))}")
        caps = set(CAPABILITY_NAMES) if "ALL" in added else caps | added
        caps = set() if "ALL" in dropped else caps - dropped
    names = sorted(f"CAP_{c}" for c in caps & host)
    ambient = sorted(f"CAP_{_cap_name(c)}" for c in sc.capabilities.add_ambient_capabilities if _cap_name(c) in caps)
    # A non-root process starts with empty effective/permitted sets unless it asked for ambient ones.
    running = names if uid == 0 else ambient
    return {"bounding": names, "effective": running, "permitted": running, "inheritable": ambient if uid else [],
            "ambient": ambient}


def validate_sysctls(sysctls: dict[str, str], host_network: bool) -> dict[str, str]:
    for key in sysctls:
        namespaced = key in NAMESPACED_SYSCTLS or key.startswith(NAMESPACED_SYSCTL_PREFIXES)
        if not namespaced:
            raise InvalidArgument(f"sysctl {key!r} is not namespaced and cannot be set for a pod")
        if host_network and key.startswith("net."):
            raise InvalidArgument(f"sysctl {key!r} cannot be set for a pod that uses the host's network")
    return dict(sysctls)


def resources(res: cri.LinuxContainerResources, pids_limit: int = 0) -> dict:
    """OCI LinuxResources from CRI's; zero means "not set". With no swap here, memsw equals the memory limit."""
    out: dict = {"devices": [{"allow": False, "access": "rwm"}]}
    memory: dict = {}
    if res.memory_limit_in_bytes > 0:
        memory["limit"] = res.memory_limit_in_bytes
        memory["swap"] = res.memory_swap_limit_in_bytes or res.memory_limit_in_bytes
    if memory:
        out["memory"] = memory
    cpu = {key: value for key, value in (("shares", res.cpu_shares), ("quota", res.cpu_quota),
                                         ("period", res.cpu_period)) if value > 0}
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpu["mems"] = res.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    if pids_limit > 0:
        out["pids"] = {"limit": pids_limit}
    return out


def merge_resources(old: cri.LinuxContainerResources, new: cri.LinuxContainerResources) -> cri.LinuxContainerResources:
    """UpdateContainerResources semantics: fields left at zero keep their old values."""
    merged = cri.LinuxContainerResources()
    merged.CopyFrom(old)
    for desc, value in new.ListFields():
        if desc.name in ("hugepage_limits", "unified"):
            continue
        if value:
            setattr(merged, desc.name, value)
    return merged


@dataclass
class User:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)


def _passwd_lookup(rootfs: Path, file: str, key: str, by_name: bool) -> list[str] | None:
    try:
        text = (rootfs / "etc" / file).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and (parts[0] == key if by_name else parts[2] == key):
            return parts
    return None


def resolve_user(sc: cri.LinuxContainerSecurityContext, image_user: str, rootfs: Path) -> User:
    """Who the process runs as: runAsUser/runAsUsername, else the image's User; groups from the image's files."""
    if sc.HasField("run_as_user"):
        spec_user, spec_group = str(sc.run_as_user.value), None
    elif sc.run_as_username:
        spec_user, spec_group = sc.run_as_username, None
    else:
        spec_user, _, spec_group = (image_user or "0").partition(":")
    if spec_user.isdigit():
        uid = int(spec_user)
        entry = _passwd_lookup(rootfs, "passwd", spec_user, by_name=False)
    else:
        entry = _passwd_lookup(rootfs, "passwd", spec_user, by_name=True)
        if entry is None:
            raise InvalidArgument(f"user {spec_user!r} is not in the image's /etc/passwd")
        uid = int(entry[2])
    gid = int(entry[3]) if entry else 0
    if spec_group:
        if spec_group.isdigit():
            gid = int(spec_group)
        else:
            group = _passwd_lookup(rootfs, "group", spec_group, by_name=True)
            if group is None:
                raise InvalidArgument(f"group {spec_group!r} is not in the image's /etc/group")
            gid = int(group[2])
    if sc.HasField("run_as_group"):
        gid = sc.run_as_group.value
    extra = list(sc.supplemental_groups)
    if sc.supplemental_groups_policy != cri.Strict and entry is not None:
        extra.extend(_member_groups(rootfs, entry[0]))
    return User(uid=uid, gid=gid, additional_gids=sorted(set(extra) - {gid}))


def _member_groups(rootfs: Path, username: str) -> list[int]:
    try:
        text = (rootfs / "etc" / "group").read_text(errors="replace")
    except OSError:
        return []
    groups = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and username in parts[3].split(","):
            groups.append(int(parts[2]))
    return groups


def process_args(config: cri.ContainerConfig, image_config: dict) -> list[str]:
    """CRI command replaces the image Entrypoint (and then drops its Cmd); CRI args replace the image Cmd."""
    entrypoint = list(config.command) or list(image_config.get("Entrypoint") or [])
    if config.args:
        cmd = list(config.args)
    elif config.command:
        cmd = []
    else:
        cmd = list(image_config.get("Cmd") or [])
    argv = entrypoint + cmd
    if not argv:
        raise InvalidArgument("no command specified: the container has no command or args and the image none")
    return argv


def environment(config: cri.ContainerConfig, image_config: dict) -> list[str]:
    env: dict[str, str] = {}
    for item in image_config.get("Env") or [PATH_DEFAULT]:
        key, _, value = item.partition("=")
        env[key] = value
    for kv in config.envs:
        env[kv.key] = kv.value
    env.setdefault("PATH", PATH_DEFAULT.partition("=")[2])
    return [f"{key}={value}" for key, value in env.items()]


def bind_mount(destination: str, source: str, readonly: bool, propagation: str = "rprivate") -> dict:
    return {"destination": destination, "type": "bind", "source": source,
            "options": ["rbind", propagation, "ro" if readonly else "rw"]}


def base_mounts(privileged: bool) -> list[dict]:
    sys_options = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def cri_mounts(mounts: list[cri.Mount]) -> list[dict]:
    out = []
    for m in mounts:
        if not m.container_path.startswith("/"):
            raise InvalidArgument(f"mount path {m.container_path!r} must be absolute")
        if m.image.image:
            raise InvalidArgument("image volume mounts are not supported by this runtime")
        if not os.path.exists(m.host_path):
            raise InvalidArgument(f"mount source {m.host_path!r} (for {m.container_path}) does not exist")
        out.append(bind_mount(m.container_path, m.host_path, m.readonly, PROPAGATION.get(m.propagation, "rprivate")))
    return out


def devices(devs: list[cri.Device], privileged: bool) -> tuple[list[dict], list[dict]]:
    """OCI device nodes and the device-cgroup rules that allow them (privileged: every device allowed)."""
    nodes, rules = [], []
    for dev in devs:
        try:
            st = os.stat(dev.host_path)
        except OSError as e:
            raise InvalidArgument(f"device {dev.host_path!r}: {e.strerror}") from e
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InvalidArgument(f"{dev.host_path!r} is not a device")
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        nodes.append({"path": dev.container_path or dev.host_path, "type": kind, "major": major, "minor": minor,
                      "fileMode": stat.S_IMODE(st.st_mode), "uid": 0, "gid": 0})
        rules.append({"allow": True, "type": kind, "major": major, "minor": minor,
                      "access": dev.permissions or "rwm"})
    if privileged:
        rules.append({"allow": True, "access": "rwm"})
    return nodes, rules


def namespaces(entries: dict[str, str | None]) -> list[dict]:
    """``{"pid": None, "network": "/run/netns/x"}`` → OCI entries; a None path means a new namespace."""
    return [{"type": kind} if path is None else {"type": kind, "path": path} for kind, path in entries.items()]


def spec(*, args: list[str], env: list[str], cwd: str, user: User, rootfs: str, readonly_rootfs: bool, tty: bool,
         caps: dict, no_new_privileges: bool, oom_score_adj: int | None, mounts: list[dict], ns: list[dict],
         cgroups_path: str, res: dict, sysctls: dict[str, str], privileged: bool, hostname: str | None = None,
         device_nodes: list[dict] | None = None, masked: list[str] | None = None,
         readonly_paths: list[str] | None = None, annotations: dict[str, str] | None = None) -> dict:
    """The whole config.json."""
    process: dict = {
        "terminal": tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": args,
        "env": env,
        "cwd": cwd or "/",
        "capabilities": caps,
        "noNewPrivileges": no_new_privileges,
    }
    if oom_score_adj is not None:
        process["oomScoreAdj"] = max(0, oom_score_adj)  # no CAP_SYS_RESOURCE here: negative values fail
    linux: dict = {
        "namespaces": ns,
        "cgroupsPath": cgroups_path,
        "resources": res,
        "sysctl": sysctls,
        "devices": device_nodes or [],
    }
    if not privileged:
        linux["maskedPaths"] = list(masked) if masked else list(DEFAULT_MASKED_PATHS)
        linux["readonlyPaths"] = list(readonly_paths) if readonly_paths else list(DEFAULT_READONLY_PATHS)
    config = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations or {},
    }
    if hostname is not None:
        config["hostname"] = hostname
    return config
