"""Pod spec → CRI configs: the PodSandboxConfig and each container's ContainerConfig.

What the kubelet's kuberuntime package assembles before RunPodSandbox and CreateContainer: metadata with
attempts, labels and annotations it reads back later (:mod:`kubelet.cri.labels`), hostname and DNS,
host namespaces, the cgroup parent for the pod's QoS class, the log directory
``<pod-logs-dir>/<ns>_<name>_<uid>`` with ``<container>/<restartCount>.log`` per instance, and per container
the command with ``$(VAR)`` expanded, environment, mounts (volumes and the termination-message file),
resources and security context.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubelet.cri import labels as L
from kubelet.env import ContainerConfigError, expand
from kubelet.pods import podspec
from proto.cri import api_pb2 as cri

MAX_HOSTNAME = 63
_PROTOCOLS = {"TCP": cri.TCP, "UDP": cri.UDP, "SCTP": cri.SCTP}


def pod_log_directory(logs_root: Path, pod: Mapping[str, Any]) -> Path:
    meta = pod["metadata"]
    return logs_root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


def sandbox_config(pod: Mapping[str, Any], attempt: int, *, logs_root: Path,
                   cgroup_parent: str) -> cri.PodSandboxConfig:
    meta, spec = pod["metadata"], podspec.spec(pod)
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                                        attempt=attempt),
        hostname="" if podspec.host_network(pod) else _hostname(pod),
        log_directory=str(pod_log_directory(logs_root, pod)),
        labels={**(meta.get("labels") or {}), **L.pod_labels(pod)},
        annotations=dict(meta.get("annotations") or {}))
    dns = spec.get("dnsConfig") or {}
    if dns:
        config.dns_config.CopyFrom(cri.DNSConfig(
            servers=list(dns.get("nameservers") or []), searches=list(dns.get("searches") or []),
            options=[o["name"] + (f":{o['value']}" if o.get("value") else "") for o in dns.get("options") or []]))
    for container in podspec.all_containers(pod):
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                config.port_mappings.append(cri.PortMapping(
                    protocol=_PROTOCOLS.get(port.get("protocol") or "TCP", cri.TCP),
                    container_port=port["containerPort"], host_port=port["hostPort"], host_ip=port.get("hostIP", "")))
    linux = config.linux
    linux.cgroup_parent = cgroup_parent
    options = linux.security_context.namespace_options
    options.network = cri.NODE if podspec.host_network(pod) else cri.POD
    options.pid = cri.NODE if spec.get("hostPID") else (cri.POD if spec.get("shareProcessNamespace") else cri.CONTAINER)
    options.ipc = cri.NODE if spec.get("hostIPC") else cri.POD
    security = spec.get("securityContext") or {}
    for sysctl in security.get("sysctls") or []:
        linux.sysctls[sysctl["name"]] = str(sysctl.get("value", ""))
    if isinstance(security.get("runAsUser"), int):
        linux.security_context.run_as_user.value = security["runAsUser"]
    if isinstance(security.get("runAsGroup"), int):
        linux.security_context.run_as_group.value = security["runAsGroup"]
    linux.security_context.supplemental_groups.extend(_supplemental_groups(security))
    return config


def _hostname(pod: Mapping[str, Any]) -> str:
    spec = podspec.spec(pod)
    return (spec.get("hostname") or pod["metadata"]["name"])[:MAX_HOSTNAME].rstrip("-.")


def _supplemental_groups(pod_security: Mapping[str, Any]) -> list[int]:
    groups = [g for g in pod_security.get("supplementalGroups") or [] if isinstance(g, int)]
    if isinstance(pod_security.get("fsGroup"), int):
        groups.append(pod_security["fsGroup"])
    return groups


def container_config(pod: Mapping[str, Any], container: Mapping[str, Any], *, attempt: int, restart_count: int,
                     kind: str, image_ref: str, env: list[tuple[str, str]], mounts: list[cri.Mount],
                     resources: cri.LinuxContainerResources) -> cri.ContainerConfig:
    """The CreateContainer config; raises ContainerConfigError for a spec the runtime must not see."""
    name = container["name"]
    env_map = dict(env)
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name, attempt=attempt),
        image=cri.ImageSpec(image=image_ref, user_specified_image=container.get("image", "")),
        command=[expand(part, env_map) for part in container.get("command") or []],
        args=[expand(part, env_map) for part in container.get("args") or []],
        working_dir=container.get("workingDir") or "",
        envs=[cri.KeyValue(key=k, value=v) for k, v in env],
        mounts=mounts,
        labels=L.container_labels(pod, name),
        annotations={
            L.RESTART_COUNT: str(restart_count),
            L.CONTAINER_HASH: podspec.container_hash(container),
            L.CONTAINER_KIND: kind,
            L.TERMINATION_MESSAGE_PATH: container.get("terminationMessagePath") or "/dev/termination-log",
            L.TERMINATION_MESSAGE_POLICY: container.get("terminationMessagePolicy") or "File",
            L.TERMINATION_GRACE: str(podspec.grace_period(pod)),
        },
        log_path=f"{name}/{restart_count}.log",
        stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")))
    config.linux.resources.CopyFrom(resources)
    _security_context(pod, container, config.linux.security_context)
    return config


def _security_context(pod: Mapping[str, Any], container: Mapping[str, Any],
                      out: cri.LinuxContainerSecurityContext) -> None:
    pod_sc = podspec.spec(pod).get("securityContext") or {}
    sc = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return sc.get(key) if sc.get(key) is not None else pod_sc.get(key)

    if isinstance(pick("runAsUser"), int):
        out.run_as_user.value = pick("runAsUser")
    if isinstance(pick("runAsGroup"), int):
        out.run_as_group.value = pick("runAsGroup")
    if pick("runAsNonRoot") is True and pick("runAsUser") == 0:
        raise ContainerConfigError("container's runAsUser breaks non-root policy "
                                   f"(pod: \"{pod['metadata']['name']}\", container: {container['name']})")
    out.supplemental_groups.extend(_supplemental_groups(pod_sc))
    out.privileged = sc.get("privileged") is True
    out.readonly_rootfs = sc.get("readOnlyRootFilesystem") is True
    out.no_new_privs = sc.get("allowPrivilegeEscalation") is False
    caps = sc.get("capabilities") or {}
    out.capabilities.add_capabilities.extend(caps.get("add") or [])
    out.capabilities.drop_capabilities.extend(caps.get("drop") or [])
    options = out.namespace_options
    spec = podspec.spec(pod)
    options.network = cri.NODE if spec.get("hostNetwork") else cri.POD
    options.pid = cri.NODE if spec.get("hostPID") else (cri.POD if spec.get("shareProcessNamespace") else cri.CONTAINER)
    options.ipc = cri.NODE if spec.get("hostIPC") else cri.POD


def termination_message_mount(container: Mapping[str, Any], host_file: Path) -> cri.Mount:
    return cri.Mount(container_path=container.get("terminationMessagePath") or "/dev/termination-log",
                     host_path=str(host_file))
