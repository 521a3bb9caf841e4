"""The runtime's domain logic: pod sandboxes and containers, from creation to removal, and their recovery.

The gRPC servicers (``server.py``) translate CRI messages to calls here and records back to CRI messages; this
module owns the order of things. A sandbox is a network namespace on the node's bridge (unless it uses the host's
network) and IPC and UTS namespaces, each kept by a bind mount rather than by a process (as CRI-O does), which the
pod's containers join; only a pod that shares one PID namespace among its containers (shareProcessNamespace) also
gets a pause process — Debian's catatonit in its own runc container — as that namespace's PID 1. A container is an
overlayfs root over its image's layers, an OCI bundle, and a shim that created it with runc and reports its exit.
A sandbox is recorded ready only once all of it exists. Everything is written to disk as it happens so
that :meth:`Runtime.recover` can rebuild the picture after a restart and finish or undo half-done work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from kubelet.runtime import cgroups, mounts, namespaces, oci, podfiles, tasks
from kubelet.runtime.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RuntimeFailure,
)
from kubelet.runtime.runc import Runc
from kubelet.runtime.state import (
    CREATED,
    EXITED,
    RUNNING,
    SANDBOX_NOTREADY,
    SANDBOX_READY,
    ContainerRecord,
    RecordStore,
    SandboxRecord,
    to_json,
)
from proto.cri import api_pb2 as cri

log = logging.getLogger(__name__)

PAUSE_IMAGE = "kubemini.local/pause:latest"
EXEC_OUTPUT_LIMIT = 16 * 1024 * 1024  # the kubelet's own cap on exec probe output
KILL_WAIT_S = 10.0
REOPEN_WAIT_S = 2.0


def now_ns() -> int:
    return time.time_ns()


def _find(table: dict, object_id: str, kind: str):
    """Exact id or a unique prefix of one (as containerd and crictl allow)."""
    if not object_id:
        raise InvalidArgument(f"{kind} id must not be empty")
    found = table.get(object_id)
    if found is not None:
        return found
    matches = [value for key, value in table.items() if key.startswith(object_id)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InvalidArgument(f"{kind} id prefix {object_id!r} is ambiguous")
    raise NotFound(f"{kind} {object_id!r} not found")


def stop_signal_name(config: cri.ContainerConfig, image_config: dict) -> str:
    if config.stop_signal:
        return cri.Signal.Name(config.stop_signal).replace("PLUS", "+").replace("MINUS", "-")
    return image_config.get("StopSignal") or "SIGTERM"


def has_pause(sandbox: SandboxRecord) -> bool:
    """Whether the sandbox was asked for one PID namespace shared by its containers, and so a pause process."""
    return sandbox.pod_config.linux.security_context.namespace_options.pid == cri.POD


def has_pod_network(sandbox: SandboxRecord) -> bool:
    return sandbox.pod_config.linux.security_context.namespace_options.network != cri.NODE


def pod_namespace(sandbox: SandboxRecord, kind: str) -> str:
    """Where a container joins its pod's ``kind`` namespace (a sandbox made before namespaces were pinned still has
    them in its pause process)."""
    return sandbox.pinned.get(kind) or f"/proc/{sandbox.pause_pid}/ns/{kind}"


def exit_reason(exit_code: int, oom_killed: bool) -> str:
    if oom_killed:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


class Runtime:
    def __init__(self, root: Path, *, writable: Path, images, network, runc: Runc, pause_image: str = PAUSE_IMAGE,
                 pids_limit: int = 0, python: str | None = None) -> None:
        self.root = root
        self.writable = writable  # containers' upper and work directories, on disk (``root`` may be a tmpfs)
        self.images = images
        self.network = network
        self.runc = runc
        self.pause_image = pause_image
        self.pids_limit = pids_limit
        self.shims = tasks.ShimServer(root, python or sys.executable)
        self.sandbox_store = RecordStore(root / "sandboxes", SandboxRecord)
        self.container_store = RecordStore(root / "containers", ContainerRecord)
        self.sandboxes: dict[str, SandboxRecord] = {}
        self.containers: dict[str, ContainerRecord] = {}
        self.host_capabilities = oci.host_capabilities()
        self._watcher = tasks.ExitWatcher()
        self._exited: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._names: set[str] = set()
        self._cpu_samples: dict[str, tuple[int, int]] = {}

    # ---- lifecycle of the runtime itself -------------------------------------------------------------------

    async def recover(self) -> None:
        """Load what a previous runtime left: finish exits that happened meanwhile, watch what still runs."""
        for sandbox in self.sandbox_store.load_all():
            self.sandboxes[sandbox.id] = sandbox
            self._names.add(sandbox.name_key)
            if sandbox.state == SANDBOX_READY and sandbox.pause_pid:
                self._watch(sandbox.id, sandbox.shim_pid, self._sandbox_dir(sandbox.id), self._on_pause_exit)
        for container in self.container_store.load_all():
            if container.sandbox_id not in self.sandboxes:
                log.warning("dropping container %s of unknown sandbox %s", container.id, container.sandbox_id)
                continue
            self.containers[container.id] = container
            self._names.add(container.name_key)
            if container.state == RUNNING:
                self._watch(container.id, container.shim_pid, self._container_dir(container.id),
                            self._on_container_exit)
            elif container.state == CREATED and container.started_at:  # the runtime died while starting it
                await self.runc.delete(container.id)
                container.started_at = container.pid = container.shim_pid = 0
                self.container_store.save(container)
        # Writable layers whose objects were forgotten: the state lives on a tmpfs, which a reboot empties.
        known = {*self.sandboxes, *self.containers}
        if self.writable.is_dir():
            for entry in os.listdir(self.writable):
                if entry not in known:
                    await asyncio.to_thread(shutil.rmtree, self.writable / entry, True)
        # Image users of objects that were removed but not yet forgotten when a previous runtime died.
        self.images.retain_users([*(f"pod sandbox {i}" for i in self.sandboxes),
                                  *(f"container {i}" for i in self.containers)])
        log.info("recovered %d sandboxes and %d containers", len(self.sandboxes), len(self.containers))

    def close(self) -> None:
        self._watcher.close()
        self.shims.close()

    def _lock(self, object_id: str) -> asyncio.Lock:
        return self._locks.setdefault(object_id, asyncio.Lock())

    def _sandbox_dir(self, sandbox_id: str) -> Path:
        return self.sandbox_store.dir(sandbox_id)

    def _container_dir(self, container_id: str) -> Path:
        return self.container_store.dir(container_id)

    def _watch(self, object_id: str, shim_pid: int, state_dir: Path, on_exit) -> None:
        self._exited.setdefault(object_id, asyncio.Event())
        self._watcher.watch(object_id, shim_pid, state_dir, on_exit)

    # ---- exits -----------------------------------------------------------------------------------------------

    def _on_container_exit(self, container_id: str) -> None:
        container = self.containers.get(container_id)
        if container is not None and container.state == RUNNING:
            exit_info = tasks.read_exit(self._container_dir(container_id))
            if exit_info is None:
                container.exit_code = 255
                container.reason = "Error"
                container.message = "the container's monitor exited without recording how the container ended"
                container.finished_at = now_ns()
            else:
                container.exit_code = exit_info["exit_code"]
                container.finished_at = exit_info["finished_at"]
                container.reason = exit_reason(container.exit_code, exit_info.get("oom_killed", False))
            container.state = EXITED
            self.container_store.save(container)
        self._exited.setdefault(container_id, asyncio.Event()).set()

    def _on_pause_exit(self, sandbox_id: str) -> None:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is not None and sandbox.state == SANDBOX_READY:
            log.warning("pause process of sandbox %s exited; the sandbox is not ready", sandbox_id)
            sandbox.state = SANDBOX_NOTREADY
            self.sandbox_store.save(sandbox)
        self._exited.setdefault(sandbox_id, asyncio.Event()).set()

    async def _wait_exit(self, object_id: str, timeout: float) -> bool:
        event = self._exited.setdefault(object_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _kill(self, object_id: str, signal_name: str, grace: float) -> None:
        """Send ``signal_name``; after ``grace`` seconds without an exit, SIGKILL and wait for the exit."""
        if grace > 0:
            with contextlib.suppress(NotFound, RuntimeFailure):
                await self.runc.kill(object_id, signal_name)
            if await self._wait_exit(object_id, grace):
                return
        with contextlib.suppress(NotFound, RuntimeFailure):
            await self.runc.kill(object_id, "KILL", all_processes=True)
        if not await self._wait_exit(object_id, KILL_WAIT_S):
            raise RuntimeFailure(f"{object_id} did not exit {KILL_WAIT_S:.0f}s after SIGKILL")

    # ---- sandboxes ---------------------------------------------------------------------------------------------

    def get_sandbox(self, sandbox_id: str) -> SandboxRecord:
        return _find(self.sandboxes, sandbox_id, "pod sandbox")

    async def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str = "") -> str:
        meta = config.metadata
        if not (meta.name and meta.namespace and meta.uid):
            raise InvalidArgument("sandbox metadata needs name, namespace and uid")
        if runtime_handler not in ("", "runc"):
            raise NotFound(f"no runtime handler {runtime_handler!r}: this runtime has only the default (runc)")
        name_key = f"{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}"
        if name_key in self._names:
            raise AlreadyExists(f"pod sandbox name {name_key!r} is already reserved")
        sc = config.linux.security_context
        oci.validate_sysctls(dict(config.linux.sysctls), sc.namespace_options.network == cri.NODE)
        pause = self.images.get(self.pause_image) if sc.namespace_options.pid == cri.POD else None
        sandbox_id = secrets.token_hex(32)
        parent = config.linux.cgroup_parent or f"/kubepods/besteffort/pod{meta.uid}"
        sandbox = SandboxRecord(id=sandbox_id, name_key=name_key, config=to_json(config), created_at=now_ns(),
                                cgroup_parent=parent, cgroup_parent_owned=not config.linux.cgroup_parent,
                                runtime_handler=runtime_handler, state=SANDBOX_NOTREADY)
        self._names.add(name_key)
        self.sandboxes[sandbox_id] = sandbox
        self.sandbox_store.save(sandbox)
        try:
            async with self._lock(sandbox_id):
                await self._start_sandbox(sandbox, config, pause)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._destroy_sandbox(sandbox)
            raise
        return sandbox_id

    async def _start_sandbox(self, sandbox: SandboxRecord, config: cri.PodSandboxConfig, pause) -> None:
        """Network, pod files, /dev/shm, IPC and UTS namespaces; a pause process only for a shared PID namespace.
        The sandbox is ready (and so recorded) only once all of it is there."""
        directory = self._sandbox_dir(sandbox.id)
        ns_options = config.linux.security_context.namespace_options
        host_network = ns_options.network == cri.NODE
        hostname = config.hostname or (os.uname().nodename if host_network else config.metadata.name)
        if not host_network:
            attachment = await self.network.setup(sandbox.id, hostname)
            sandbox.netns = str(attachment.netns_path)
            sandbox.ip = str(attachment.ip.ip) if hasattr(attachment.ip, "ip") else str(attachment.ip)
        podfiles.write(directory / "etc", config, hostname, sandbox.ip)
        pins = {}
        if ns_options.ipc != cri.NODE:
            mounts.mount_tmpfs(directory / "shm")
            sandbox.shm_mounted = True
            pins["ipc"] = directory / "ns" / "ipc"
        if not host_network:
            pins["uts"] = directory / "ns" / "uts"
        if pins:
            await namespaces.in_fresh_thread(namespaces.pin, pins, hostname)
            sandbox.pinned = {kind: str(path) for kind, path in pins.items()}
        if pause is not None:
            await self._start_pause(sandbox, config, pause)
        sandbox.state = SANDBOX_READY
        self.sandbox_store.save(sandbox)
        if pause is not None:
            self._watch(sandbox.id, sandbox.shim_pid, directory, self._on_pause_exit)

    async def _start_pause(self, sandbox: SandboxRecord, config: cri.PodSandboxConfig, pause) -> None:
        """The pause process — Debian's catatonit in its own runc container — is PID 1 of the pod's PID namespace."""
        directory = self._sandbox_dir(sandbox.id)
        self.images.add_user(pause.id, f"pod sandbox {sandbox.id}")  # its layers stay until _destroy_sandbox
        rootfs = await asyncio.to_thread(mounts.mount_overlay, self.images.lowerdir(pause), self.writable / sandbox.id,
                                         directory / "rootfs")
        sandbox.rootfs_mounted = True
        namespaces: dict[str, str | None] = {"mount": None, "pid": None, **sandbox.pinned}
        if sandbox.netns:
            namespaces["network"] = sandbox.netns
        sc = config.linux.security_context
        spec = oci.spec(
            args=oci.process_args(cri.ContainerConfig(), pause.config),
            env=oci.environment(cri.ContainerConfig(), pause.config),
            cwd="/", user=oci.User(uid=0, gid=0), rootfs=str(rootfs), readonly_rootfs=True, tty=False,
            caps=oci.capabilities(cri.LinuxContainerSecurityContext(), self.host_capabilities, 0),
            no_new_privileges=True, oom_score_adj=None, mounts=oci.base_mounts(False),
            ns=oci.namespaces(namespaces),
            cgroups_path=sandbox.cgroup_path, res=oci.resources(cri.LinuxContainerResources()),
            sysctls=oci.validate_sysctls(dict(config.linux.sysctls), not sandbox.netns), privileged=sc.privileged,
            hostname=None)
        self._write_bundle(directory, spec)
        started = await self._spawn(sandbox.id, directory, log_path="", cgroup_path=sandbox.cgroup_path)
        sandbox.pause_pid, sandbox.shim_pid = started.pid, started.shim_pid

    @staticmethod
    def _write_bundle(directory: Path, spec: dict) -> None:
        bundle = directory / "bundle"
        bundle.mkdir(parents=True, exist_ok=True)
        (bundle / "config.json").write_text(json.dumps(spec))

    async def _spawn(self, task_id: str, directory: Path, *, log_path: str, cgroup_path: str,
                     stdin: bool = False) -> tasks.Started:
        """A shim that makes and starts the OCI container from ``directory/bundle`` (``runc run --detach``)."""
        return await tasks.spawn(self.shims, container_id=task_id, bundle=directory / "bundle", state_dir=directory,
                                 runc=self.runc.binary, runc_root=self.runc.root, log_path=log_path,
                                 cgroup_path=cgroup_path, stdin=stdin)

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        try:
            sandbox = self.get_sandbox(sandbox_id)
        except NotFound:
            return  # the kubelet may stop a sandbox the runtime has already forgotten
        for container in [c for c in self.containers.values() if c.sandbox_id == sandbox.id]:
            await self.stop_container(container.id, 0)
        async with self._lock(sandbox.id):
            sandbox.state = SANDBOX_NOTREADY  # first, so the pause exit below is expected, not a failure
            self.sandbox_store.save(sandbox)
            if sandbox.shim_pid and not self._exited.get(sandbox.id, asyncio.Event()).is_set():
                await self._kill(sandbox.id, "KILL", 0)
            if has_pod_network(sandbox):
                await self.network.teardown(sandbox.id)
            self._unpin(sandbox)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        try:
            sandbox = self.get_sandbox(sandbox_id)
        except NotFound:
            return  # idempotent, like containerd
        await self.stop_pod_sandbox(sandbox.id)
        for container in [c for c in self.containers.values() if c.sandbox_id == sandbox.id]:
            await self.remove_container(container.id, force=True)
        async with self._lock(sandbox.id):
            await self._destroy_sandbox(sandbox)

    async def _destroy_sandbox(self, sandbox: SandboxRecord) -> None:
        """Undo everything a sandbox may have made, whatever state it got to."""
        directory = self._sandbox_dir(sandbox.id)
        self._watcher.unwatch(sandbox.id)
        if has_pause(sandbox):
            await self.runc.delete(sandbox.id)  # its pause container, made or not
        if has_pod_network(sandbox):  # set up or not: the network keeps its own record of what it made
            await self.network.teardown(sandbox.id)
        self._unpin(sandbox)
        mounts.unmount(directory / "rootfs")
        mounts.unmount(directory / "shm")
        cgroups.remove_empty(sandbox.cgroup_path)
        if sandbox.cgroup_parent_owned:
            cgroups.remove_empty(sandbox.cgroup_parent)
        await asyncio.to_thread(_remove_dirs, directory, self.writable / sandbox.id)
        self.images.remove_user(f"pod sandbox {sandbox.id}")
        self.sandboxes.pop(sandbox.id, None)
        self._names.discard(sandbox.name_key)
        self._exited.pop(sandbox.id, None)
        self._locks.pop(sandbox.id, None)

    def _unpin(self, sandbox: SandboxRecord) -> None:
        """Release the pod's IPC and UTS namespaces (the kernel frees them once no container is in them either);
        also whatever a RunPodSandbox that failed half-way had pinned."""
        for kind in ("ipc", "uts"):
            mounts.unmount(self._sandbox_dir(sandbox.id) / "ns" / kind)

    def list_sandboxes(self) -> list[SandboxRecord]:
        return list(self.sandboxes.values())

    # ---- containers --------------------------------------------------------------------------------------------

    def get_container(self, container_id: str) -> ContainerRecord:
        return _find(self.containers, container_id, "container")

    async def create_container(self, sandbox_id: str, config: cri.ContainerConfig,
                               sandbox_config: cri.PodSandboxConfig | None) -> str:
        sandbox = self.get_sandbox(sandbox_id)
        if sandbox_config is None:
            raise InvalidArgument("CreateContainer needs sandbox_config (the config the sandbox was run with)")
        if sandbox.state != SANDBOX_READY:
            raise FailedPrecondition(f"pod sandbox {sandbox.id} is not ready")
        if not config.metadata.name:
            raise InvalidArgument("container metadata needs a name")
        if not config.image.image:
            raise InvalidArgument("container config needs an image")
        name_key = f"{config.metadata.name}_{sandbox.name_key}_{config.metadata.attempt}"
        if name_key in self._names:
            raise AlreadyExists(f"container name {name_key!r} is already reserved")
        image = self.images.get(config.image.image)
        container_id = secrets.token_hex(32)
        record = ContainerRecord(
            id=container_id, sandbox_id=sandbox.id, name_key=name_key, config=to_json(config), image_id=image.id,
            image_ref=(image.repo_digests or [image.id])[0], created_at=now_ns(),
            log_path=self._log_path(sandbox, config), cgroup_path=f"{sandbox.cgroup_parent.rstrip('/')}/{container_id}",
            resources=to_json(config.linux.resources))
        self._names.add(name_key)
        self.containers[container_id] = record
        self.container_store.save(record)
        try:
            async with self._lock(container_id):
                await self._create(record, sandbox, config, image)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._destroy_container(record)
            raise
        return container_id

    @staticmethod
    def _log_path(sandbox: SandboxRecord, config: cri.ContainerConfig) -> str:
        if not config.log_path:
            return ""
        log_dir = sandbox.pod_config.log_directory
        if log_dir:
            return os.path.join(log_dir, config.log_path)
        return config.log_path if os.path.isabs(config.log_path) else ""

    async def _create(self, record: ContainerRecord, sandbox: SandboxRecord, config: cri.ContainerConfig, image):
        directory = self._container_dir(record.id)
        sc = config.linux.security_context
        pod = sandbox.pod_config
        host_network = not sandbox.netns
        self.images.add_user(image.id, f"container {record.id}")  # RemoveImage refuses it until _destroy_container
        rootfs = await asyncio.to_thread(mounts.mount_overlay, self.images.lowerdir(image), self.writable / record.id,
                                         directory / "rootfs")
        record.rootfs_mounted = True  # recorded below; _destroy_container unmounts whatever was recorded
        user = oci.resolve_user(sc, image.config.get("User", ""), rootfs)
        record.user = asdict(user)
        pid_mode = sc.namespace_options.pid
        namespaces: dict[str, str | None] = {"mount": None}
        if pid_mode == cri.POD:
            if not sandbox.pause_pid:
                raise FailedPrecondition(f"pod sandbox {sandbox.id} has no shared PID namespace (its config did not "
                                         "ask for one)")
            namespaces["pid"] = f"/proc/{sandbox.pause_pid}/ns/pid"
        elif pid_mode == cri.CONTAINER:
            namespaces["pid"] = None
        elif pid_mode == cri.TARGET:
            target = self.get_container(sc.namespace_options.target_id)
            namespaces["pid"] = f"/proc/{target.pid}/ns/pid"
        if sc.namespace_options.ipc != cri.NODE:
            namespaces["ipc"] = pod_namespace(sandbox, "ipc")
        if not host_network:
            namespaces["uts"] = pod_namespace(sandbox, "uts")
            namespaces["network"] = sandbox.netns
        container_mounts = oci.base_mounts(sc.privileged) + oci.cri_mounts(list(config.mounts))
        taken = {m.container_path for m in config.mounts}
        etc = self._sandbox_dir(sandbox.id) / "etc"
        for name, target in podfiles.FILES.items():
            if target not in taken:
                container_mounts.append(oci.bind_mount(target, str(etc / name), sc.readonly_rootfs))
        if "/dev/shm" not in taken:
            shm = self._sandbox_dir(sandbox.id) / "shm" if sandbox.shm_mounted else Path("/dev/shm")
            container_mounts.append(oci.bind_mount("/dev/shm", str(shm), False))
        device_nodes, device_rules = oci.devices(list(config.devices), sc.privileged)
        resources = oci.resources(config.linux.resources, self.pids_limit)
        resources["devices"] += device_rules
        spec = oci.spec(
            args=oci.process_args(config, image.config), env=oci.environment(config, image.config),
            cwd=config.working_dir or image.config.get("WorkingDir") or "/", user=user, rootfs=str(rootfs),
            readonly_rootfs=sc.readonly_rootfs, tty=config.tty,
            caps=oci.capabilities(sc, self.host_capabilities, user.uid), no_new_privileges=sc.no_new_privs,
            oom_score_adj=config.linux.resources.oom_score_adj if config.linux.HasField("resources") else None,
            mounts=container_mounts, ns=oci.namespaces(namespaces), cgroups_path=record.cgroup_path, res=resources,
            sysctls=oci.validate_sysctls(dict(pod.linux.sysctls), host_network), privileged=sc.privileged,
            device_nodes=device_nodes, masked=list(sc.masked_paths), readonly_paths=list(sc.readonly_paths),
            annotations=dict(config.annotations))
        if record.log_path:
            Path(record.log_path).parent.mkdir(parents=True, exist_ok=True)
        self._write_bundle(directory, spec)
        self.container_store.save(record)

    async def start_container(self, container_id: str) -> None:
        """The OCI container is made and started here, in one ``runc run --detach`` under a new shim — as containerd
        makes its task at StartContainer. A failure leaves the container exited with reason StartError."""
        container = self.get_container(container_id)
        async with self._lock(container.id):
            if container.state != CREATED:
                raise FailedPrecondition(f"container {container.id} is {container.state}, not created")
            directory = self._container_dir(container.id)
            container.started_at = now_ns()
            try:
                started = await self._spawn(container.id, directory, log_path=container.log_path,
                                            cgroup_path=container.cgroup_path, stdin=container.container_config.stdin)
            except RuntimeFailure as e:
                container.state, container.exit_code, container.reason = EXITED, 128, "StartError"
                container.message, container.finished_at = str(e), now_ns()
                self.container_store.save(container)
                self._exited.setdefault(container.id, asyncio.Event()).set()
                raise
            container.pid, container.shim_pid, container.state = started.pid, started.shim_pid, RUNNING
            self.container_store.save(container)
            self._watch(container.id, started.shim_pid, directory, self._on_container_exit)

    async def stop_container(self, container_id: str, timeout: int) -> None:
        container = self.get_container(container_id)
        async with self._lock(container.id):
            if container.state != RUNNING:
                return  # exited, or created and never started: nothing runs (as containerd)
            image_config = self._image_config(container)
            await self._kill(container.id, stop_signal_name(container.container_config, image_config),
                             float(max(timeout, 0)))

    def _image_config(self, container: ContainerRecord) -> dict:
        try:
            return self.images.get(container.image_id).config
        except NotFound:
            return {}

    async def remove_container(self, container_id: str, *, force: bool = False) -> None:
        try:
            container = self.get_container(container_id)
        except NotFound:
            return  # idempotent, like containerd
        if container.state == RUNNING and not force:
            raise FailedPrecondition(f"container {container.id} is running; stop it first")
        async with self._lock(container.id):
            if container.state == RUNNING:
                await self._kill(container.id, "KILL", 0)
            await self._destroy_container(container)

    async def _destroy_container(self, container: ContainerRecord) -> None:
        self._watcher.unwatch(container.id)
        if container.started_at:  # runc knew it (or may, if a start failed half-way)
            await self.runc.delete(container.id)
        mounts.unmount(self._container_dir(container.id) / "rootfs")
        cgroups.remove_empty(container.cgroup_path)
        await asyncio.to_thread(_remove_dirs, self._container_dir(container.id), self.writable / container.id)
        self.images.remove_user(f"container {container.id}")
        self.containers.pop(container.id, None)
        self._names.discard(container.name_key)
        self._exited.pop(container.id, None)
        self._locks.pop(container.id, None)
        self._cpu_samples.pop(container.id, None)

    def list_containers(self) -> list[ContainerRecord]:
        return list(self.containers.values())

    async def update_container_resources(self, container_id: str, resources: cri.LinuxContainerResources) -> None:
        container = self.get_container(container_id)
        async with self._lock(container.id):
            if container.state not in (CREATED, RUNNING):
                raise FailedPrecondition(f"container {container.id} is {container.state}")
            merged = oci.merge_resources(container.linux_resources, resources)
            update = oci.resources(merged, self.pids_limit)
            update.pop("devices")
            if container.state == RUNNING:
                await self.runc.update(container.id, update)
            else:  # not made yet: it starts with the new resources
                config_path = self._container_dir(container.id) / "bundle" / "config.json"
                spec = json.loads(config_path.read_text())
                spec["linux"]["resources"] = {**update, "devices": spec["linux"]["resources"].get("devices", [])}
                config_path.write_text(json.dumps(spec))
            container.resources = to_json(merged)
            self.container_store.save(container)

    async def reopen_container_log(self, container_id: str) -> None:
        container = self.get_container(container_id)
        if container.state != RUNNING:
            raise FailedPrecondition(f"container {container.id} is not running")
        if not container.log_path:
            return
        os.kill(container.shim_pid, signal.SIGUSR1)
        deadline = time.monotonic() + REOPEN_WAIT_S
        while time.monotonic() < deadline:
            if _holds_open(container.shim_pid, container.log_path):
                return
            await asyncio.sleep(0.01)
        raise RuntimeFailure(f"container {container.id}'s log was not reopened within {REOPEN_WAIT_S}s")

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: int) -> tuple[bytes, bytes, int]:
        container = self.get_container(container_id)
        if container.state != RUNNING:
            raise FailedPrecondition(f"container {container.id} is not running")
        if not cmd:
            raise InvalidArgument("exec needs a command")
        pid_file = self._container_dir(container.id) / f"exec-{secrets.token_hex(4)}.pid"
        proc = await asyncio.create_subprocess_exec(
            *self.runc.exec_argv(container.id, list(cmd), pid_file=str(pid_file)),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout if timeout > 0 else None)
        except TimeoutError:
            self._kill_exec(pid_file, proc)
            await proc.wait()
            raise DeadlineExceeded(f"command {cmd!r} timed out after {timeout}s") from None
        finally:
            pid_file.unlink(missing_ok=True)
        return out[:EXEC_OUTPUT_LIMIT], err[:EXEC_OUTPUT_LIMIT], proc.returncode

    @staticmethod
    def _kill_exec(pid_file: Path, proc) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    # ---- stats -------------------------------------------------------------------------------------------------

    def cpu_nano_cores(self, key: str, cpu_ns: int | None, at: int) -> int | None:
        """Average CPU use since the previous reading of the same cgroup (what the kubelet calls usageNanoCores)."""
        if cpu_ns is None:
            return None
        previous = self._cpu_samples.get(key)
        self._cpu_samples[key] = (cpu_ns, at)
        if previous is None or at <= previous[1]:
            return None
        return max(0, (cpu_ns - previous[0]) * 1_000_000_000 // (at - previous[1]))

    def writable_layer_usage(self, container: ContainerRecord) -> tuple[int, int]:
        total, inodes = 0, 0
        for dirpath, dirnames, filenames in os.walk(self.writable / container.id / "upper"):
            inodes += len(dirnames) + len(filenames)
            for name in filenames:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
        return total, inodes


def _remove_dirs(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _holds_open(pid: int, path: str) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return False
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{name}") == path:
                return True
    return False
