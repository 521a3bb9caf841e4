"""The files a pod's containers share: /etc/hostname, /etc/resolv.conf and /etc/hosts.

Written once per sandbox from its config (DNSConfig from the kubelet, the host's resolv.conf when none was
given) and bind-mounted into every container of the pod, unless the container mounts that path itself (the
kubelet mounts its own /etc/hosts for most pods).
"""

from __future__ import annotations

from pathlib import Path

from proto.cri import api_pb2 as cri

HOST_RESOLV_CONF = Path("/etc/resolv.conf")
FILES = {"hostname": "/etc/hostname", "resolv.conf": "/etc/resolv.conf", "hosts": "/etc/hosts"}


def resolv_conf(dns: cri.DNSConfig) -> str:
    if not (dns.servers or dns.searches or dns.options):
        try:
            return HOST_RESOLV_CONF.read_text()
        except OSError:
            return ""
    lines = [f"nameserver {server}" for server in dns.servers]
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "\n".join(lines) + "\n"


def hosts(hostname: str, ip: str) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if ip and hostname:
        lines.append(f"{ip}\t{hostname}")
    return "\n".join(lines) + "\n"


def write(directory: Path, config: cri.PodSandboxConfig, hostname: str, ip: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hostname").write_text(hostname + "\n")
    (directory / "resolv.conf").write_text(resolv_conf(config.dns_config))
    (directory / "hosts").write_text(hosts(hostname, ip))
