"""Who the container's process is and what it may do: rlimits, oom_score_adj, capabilities, user and groups.

The order matters and is runc's: the bounding set is reduced while still root (it needs CAP_SETPCAP), the
inheritable set is set while CAP_SETPCAP is still effective, ``PR_SET_KEEPCAPS`` keeps the permitted set across
the switch to a non-root uid, then the effective/permitted/inheritable sets are set with capset(2) and the ambient
ones raised. no_new_privs comes last. Capability names and numbers are those of linux/capability.h.
"""

from __future__ import annotations

import os
import resource

from kubelet.runtime.capabilities import CAPABILITY_NAMES
from kubelet.runtime.process import linux
from kubelet.runtime.process.errors import Failure

CAP_SETPCAP = CAPABILITY_NAMES.index("SETPCAP")


def last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(CAPABILITY_NAMES) - 1


def mask(names: list[str] | None) -> int:
    bits = 0
    for name in names or []:
        key = name.upper().removeprefix("CAP_")
        if key not in CAPABILITY_NAMES:
            raise Failure(f"unknown capability {name!r}")
        bits |= 1 << CAPABILITY_NAMES.index(key)
    return bits


def _current_permitted() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapPrm:"):
                return int(line.split()[1], 16)
    return 0


def _within(value: int, hard_now: int) -> int:
    return value if hard_now == resource.RLIM_INFINITY else min(value, hard_now)


def set_rlimits(rlimits: list[dict]) -> None:
    """Apply ``process.rlimits``; values above this process's hard limit are lowered to it (no CAP_SYS_RESOURCE)."""
    for item in rlimits or []:
        name = item["type"]
        number = getattr(resource, name, None)
        if number is None:
            raise Failure(f"unknown rlimit {name}")
        _, hard_now = resource.getrlimit(number)
        hard = _within(item.get("hard", hard_now), hard_now)
        soft = min(_within(item.get("soft", hard), hard_now), hard)
        try:
            resource.setrlimit(number, (soft, hard))
        except (OSError, ValueError) as e:
            raise Failure(f"error setting rlimit {name}: {e}") from None


def set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise Failure(f"failed to update /proc/self/oom_score_adj: {e.strerror}") from None


def switch(process: dict, last_cap: int) -> None:
    """Become the process's user with its capabilities (see the module docstring for the order)."""
    caps = process.get("capabilities")
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    os.umask(int(user.get("umask", 0o022)))  # runc's default, whatever the caller's was
    if caps is not None:
        bounding = mask(caps.get("bounding"))
        for cap in range(last_cap + 1):
            if not bounding >> cap & 1:
                linux.prctl(linux.PR_CAPBSET_DROP, cap, what=f"drop capability {cap} from the bounding set")
        inheritable = mask(caps.get("inheritable"))
        permitted_now = _current_permitted()
        linux.capset(permitted_now, permitted_now, inheritable)
    linux.prctl(linux.PR_SET_KEEPCAPS, 1, what="prctl(PR_SET_KEEPCAPS)")
    try:
        os.setgroups([int(g) for g in user.get("additionalGids") or []])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise Failure(f"unable to set user {uid}:{gid}: {e.strerror}") from None
    linux.prctl(linux.PR_SET_KEEPCAPS, 0, what="prctl(PR_SET_KEEPCAPS)")
    if caps is not None:
        try:
            linux.capset(mask(caps.get("effective")), mask(caps.get("permitted")), mask(caps.get("inheritable")))
            for name in caps.get("ambient") or []:
                linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, mask([name]).bit_length() - 1,
                            what=f"raise ambient capability {name}")
        except OSError as e:
            raise Failure(f"unable to apply caps: {e.strerror}") from None
    if process.get("noNewPrivileges"):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1, what="prctl(PR_SET_NO_NEW_PRIVS)")
