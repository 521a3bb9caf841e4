"""What the node agent is told about its node: the kubelet flags that shape the Node object.

:class:`NodeConfig` is validated when it is built, so a bad ``--node-labels`` value, taint or quantity is
reported as one clear :class:`ValueError` at start-up instead of a 422 from the API server (or a traceback)
minutes later. The flag syntax (:func:`parse_node_labels`, :func:`parse_taints`) and the label and taint checks
(:func:`label_problems`, :func:`taint_problems`) are pure functions the hollow nodes reuse.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from machinery.quantity import QuantityError, parse_quantity
from machinery.validation import (
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_cidr,
    is_valid_label_value,
    validate_labels,
)

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class NodeConfig:
    """The node agent's settings (defaults are the kubelet's)."""

    node_name: str
    root_dir: Path
    kubelet_port: int = 10250
    node_ip: str | None = None  # None: the address of the default route's interface, else 127.0.0.1
    pod_cidr: str | None = None  # spec.podCIDR / podCIDRs at registration (and on adoption when empty)
    labels: Mapping[str, str] = field(default_factory=dict)  # --node-labels (applied when the Node is created)
    taints: tuple[dict, ...] = ()  # --register-with-taints (applied when the Node is created)
    capacity_overrides: Mapping[str, str] = field(default_factory=dict)  # e.g. {"cpu": "4", "memory": "8Gi"}
    system_reserved: Mapping[str, str] = field(default_factory=dict)  # subtracted from capacity → allocatable
    max_pods: int = 110
    lease_duration: int = 40  # seconds; the lease is renewed every quarter of it
    status_update_frequency: float = 10.0  # seconds between status computations
    status_report_frequency: float = 300.0  # an unchanged status is still re-posted this often
    pressure_transition_period: float = 300.0  # a pressure condition stays True this long after the signal clears

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ValueError("invalid node configuration: " + "; ".join(problems))

    @property
    def lease_renew_interval(self) -> float:
        """The kubelet renews its lease every quarter of the lease duration (10 s for 40 s)."""
        return self.lease_duration / 4


def config_problems(config: NodeConfig) -> list[str]:
    """Everything wrong with ``config`` (empty when it is valid); must not mutate."""
    problems = [f"node name {config.node_name!r}: {m}" for m in is_dns1123_subdomain(config.node_name or "")]
    if not 0 < config.kubelet_port < 65536:
        problems.append(f"kubelet port {config.kubelet_port}: must be between 1 and 65535")
    if config.node_ip is not None and not _is_ip(config.node_ip):
        problems.append(f"node IP {config.node_ip!r}: not an IP address")
    if config.pod_cidr is not None:
        problems += [f"pod CIDR {config.pod_cidr!r}: {m}" for m in is_valid_cidr(config.pod_cidr)]
    problems += label_problems(config.labels)
    for taint in config.taints:
        problems += taint_problems(taint)
    for what, resources in (("capacity override", config.capacity_overrides),
                            ("system-reserved", config.system_reserved)):
        problems += _quantity_problems(what, resources)
    if config.max_pods <= 0:
        problems.append(f"max pods {config.max_pods}: must be positive")
    if config.lease_duration <= 0:
        problems.append(f"lease duration {config.lease_duration}: must be positive")
    for name in ("status_update_frequency", "status_report_frequency"):
        if getattr(config, name) <= 0:
            problems.append(f"{name.replace('_', ' ')} {getattr(config, name)}: must be positive")
    if config.pressure_transition_period < 0:
        problems.append("pressure transition period: must not be negative")
    return problems


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def label_problems(labels: Mapping[str, str]) -> list[str]:
    """What is wrong with the labels a node registers with (keys qualified names, values label values)."""
    return [f"node {e}" for e in validate_labels(labels, "labels")]


def taint_problems(taint: object) -> list[str]:
    """What is wrong with one taint to register with: key a qualified name, value a label value, a known effect."""
    if not isinstance(taint, Mapping):
        return [f"taint {taint!r}: must be a mapping with key, value and effect"]
    key, effect = taint.get("key") or "", taint.get("effect") or ""
    problems = [f"taint key {key!r}: {m}" for m in is_qualified_name(str(key))]
    problems += [f"taint {key}: value {taint.get('value')!r}: {m}"
                 for m in is_valid_label_value(str(taint.get("value") or ""))]
    if effect not in TAINT_EFFECTS:
        problems.append(f"taint {key}: effect {effect!r} is not one of {', '.join(TAINT_EFFECTS)}")
    return problems


def _quantity_problems(what: str, resources: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    for name, value in resources.items():
        try:
            quantity = parse_quantity(value)
        except (QuantityError, TypeError, ValueError) as err:
            problems.append(f"{what} {name}={value!r}: {err}")
            continue
        if quantity.sign() < 0:
            problems.append(f"{what} {name}={value!r}: must not be negative")
    return problems


# --- flag syntax ------------------------------------------------------------------------------------------


def parse_node_labels(text: str) -> dict[str, str]:
    """``--node-labels``: ``key=value,key2=value2`` (validated when the NodeConfig is built)."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"node label {item!r}: expected key=value")
        labels[key] = value
    return labels


def parse_taints(text: str) -> tuple[dict, ...]:
    """``--register-with-taints``: ``key=value:Effect,key:Effect`` as Taint objects."""
    taints = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        spec, sep, effect = item.rpartition(":")
        if not sep or not spec:
            raise ValueError(f"taint {item!r}: expected key[=value]:Effect")
        key, has_value, value = spec.partition("=")
        taint = {"key": key, "effect": effect}
        if has_value:
            taint["value"] = value
        taints.append(taint)
    return tuple(taints)
