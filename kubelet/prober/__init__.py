"""Container probes (liveness, readiness, startup) for the kubelet, and the handler runner hooks share.

``ProbeManager`` runs the workers and answers the kubelet's sync; ``run_action`` runs one exec / httpGet /
tcpSocket / grpc / sleep handler (also used by :mod:`kubelet.lifecycle`).
"""

from kubelet.prober.handlers import run_action
from kubelet.prober.manager import ProbeManager
from kubelet.prober.results import ProbeKind, ProbeSpec, Result

__all__ = ["ProbeKind", "ProbeManager", "ProbeSpec", "Result", "run_action"]
