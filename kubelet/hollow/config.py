"""What a fleet of hollow nodes looks like: sizes, labels, taints, timings, and each node's fake network.

:class:`HollowConfig` is built once from the command line (the real node agent's
:func:`kubelet.node.config.parse_node_labels` and :func:`~kubelet.node.config.parse_taints` turn
``--node-labels`` / ``--node-taints`` text into objects, and its label and taint checks validate them), raising
``ValueError`` with a one-line message naming the flag on bad input. Every node gets a deterministic identity from its
index: name ``<prefix><index>``, InternalIP ``10.128.0.0 + index + 1`` (inside 10.128.0.0/9) and pod CIDR
the index-th /24 of 10.0.0.0/9 — fake addresses nothing routes to, distinct per node so pods across the
fleet get distinct podIPs (two fleets with different prefixes reuse the same ranges; nothing cares).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubelet.node.config import label_problems, taint_problems
from machinery.quantity import QuantityError, parse_quantity
from machinery.validation import is_dns1123_subdomain

HOLLOW_LABEL = "kubemini.io/hollow"
POD_NETWORK = ipaddress.IPv4Network("10.0.0.0/9")  # /24 per node: 32,768 nodes
NODE_NETWORK = ipaddress.IPv4Network("10.128.0.0/9")
MAX_NODES = 2 ** (24 - POD_NETWORK.prefixlen)


@dataclass(frozen=True)
class HollowConfig:
    nodes: int = 1
    name_prefix: str = "hollow-node-"
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()
    pod_ready_delay: float = 0.0
    lease_duration: int = 40  # seconds, the kubelet's default nodeLeaseDurationSeconds
    status_report_interval: float = 300.0  # nodeStatusReportFrequency: 5 minutes
    concurrency: int = 16  # writes in flight at once (registration, renewals, pod status)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (one line, naming the flag) when the configuration cannot work."""
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValueError(f"--nodes must be between 1 and {MAX_NODES} (got {self.nodes})")
        width = len(str(self.nodes - 1))
        problems = is_dns1123_subdomain(f"{self.name_prefix}{'0' * width}")
        if problems:
            raise ValueError(f"--name-prefix {self.name_prefix!r} does not make valid node names: {problems[0]}")
        for flag, value in (("--cpu", self.cpu), ("--memory", self.memory),
                            ("--ephemeral-storage", self.ephemeral_storage)):
            try:
                quantity = parse_quantity(value)
            except QuantityError as exc:
                raise ValueError(f"{flag} {value!r} is not a quantity: {exc}") from None
            if quantity.sign() < 0:
                raise ValueError(f"{flag} must not be negative (got {value})")
        for flag, problems in (("--node-labels", label_problems(self.labels)),
                               ("--node-taints", [p for taint in self.taints for p in taint_problems(taint)])):
            if problems:
                raise ValueError(f"{flag}: {problems[0]}")
        if not 1 <= self.pods <= 250:
            raise ValueError(f"--pods must be between 1 and 250, the addresses of one /24 pod CIDR (got {self.pods})")
        if self.pod_ready_delay < 0:
            raise ValueError(f"--pod-ready-delay must not be negative (got {self.pod_ready_delay})")
        if self.lease_duration < 1:
            raise ValueError(f"--node-lease-duration-seconds must be at least 1 (got {self.lease_duration})")
        if self.status_report_interval <= 0:
            raise ValueError(f"--node-status-report-frequency must be positive (got {self.status_report_interval})")
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1 (got {self.concurrency})")

    @property
    def lease_renew_interval(self) -> float:
        """A quarter of the lease duration, as the kubelet's lease controller renews (10 s by default)."""
        return self.lease_duration / 4

    def node_name(self, index: int) -> str:
        return f"{self.name_prefix}{index}"

    def node_labels(self, index: int) -> dict[str, str]:
        """Well-known labels first; ``--node-labels`` may add more but not rename the node."""
        return {**self.labels, "kubernetes.io/hostname": self.node_name(index), "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", HOLLOW_LABEL: "true"}


def node_ip(index: int) -> str:
    """The fake InternalIP of node ``index``."""
    return str(NODE_NETWORK.network_address + index + 1)


def pod_cidr(index: int) -> str:
    """The fake pod CIDR (a /24) of node ``index``."""
    return str(ipaddress.IPv4Network((int(POD_NETWORK.network_address) + (index << 8), 24)))
