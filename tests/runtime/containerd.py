"""Debian's containerd with its CRI plugin, as the wire-compatibility reference for the CRI client suite.

The suite in this package drives a runtime.v1 endpoint; pointed at containerd (configured as
:class:`kubemini.containerd.ContainerdRuntime` does for ``kubemini up --runtime containerd``) the same tests say
where kubemini answers differently from the runtime the kubelet is written against. This adapter gives it the
surface the fixtures expect of ``RuntimeProcess`` (``start``/``stop``, ``log``, a private bridge and pod CIDR) and
turns a failed start into an AssertionError saying why.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from kubemini.containerd import ContainerdRuntime
from kubemini.containerd import missing_containerd as _missing_containerd
from kubemini.process import ComponentStartError
from tests.runtime.cri import missing_prerequisites


def missing_containerd() -> str | None:
    """Why containerd cannot be the reference here, or None."""
    return missing_prerequisites() or _missing_containerd()


class ContainerdProcess(ContainerdRuntime):
    """containerd under one temp directory, with a random bridge name and pod CIDR of its own."""

    def __init__(self, base: Path) -> None:
        super().__init__(base, base, bridge=f"kmc{secrets.token_hex(3)}",
                         pod_cidr=f"10.213.{secrets.randbelow(200) + 20}.0/24")

    @property
    def log(self) -> Path:
        return self.log_path

    def start(self, timeout: float = 40.0) -> ContainerdProcess:
        try:
            return super().start(timeout)
        except ComponentStartError as err:
            raise AssertionError(str(err)) from None
