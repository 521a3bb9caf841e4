"""Carrying out a pod's sync through CRI: sandbox, containers, hooks, termination and cleanup.

:class:`PodSyncer` is stateless about pods beyond small per-pod notes (:class:`PodNotes`: the waiting
reason the last attempt left for each container); everything else it reads back from the runtime each
time, which is what makes a restarted kubelet pick up where it left off. One sync: read the pod's runtime
view, make its volumes, decide (:func:`~kubelet.pods.actions.compute_pod_actions`), act, read again,
compute the status. Termination stops containers with the grace period (preStop first, regular
containers before sidecars, sidecars in reverse order), then the sandbox; cleanup removes every trace.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelet.cri import CriError, RuntimeClient, is_not_found
from kubelet.env import ContainerConfigError, make_environment
from kubelet.lifecycle import HookError, run_post_start, run_pre_stop
from kubelet.objects import ObjectSource
from kubelet.pods import criconfig, podspec
from kubelet.pods.actions import Kill, PodActions, Start, Verdicts, compute_pod_actions
from kubelet.pods.backoff import Backoff
from kubelet.pods.cgroups import remove_pod_cgroups
from kubelet.pods.images import ImagePuller, ImagePullError
from kubelet.pods.resizing import PodResizer
from kubelet.pods.runtimestate import NANO, ContainerRecord, PodRuntime, RuntimeCache, SandboxRecord
from kubelet.pods.status import StatusInputs, compute_pod_status
from kubelet.pods.termination import read_termination_message
from kubelet.prober import ProbeManager, Result
from kubelet.resources import container_resources, pod_cgroup_parent, qos_class
from kubelet.volumes import VolumeError, VolumeManager
from machinery.clock import REAL_CLOCK, Clock
from machinery.meta import parse_rfc3339

log = logging.getLogger(__name__)

EventSink = Callable[[Mapping[str, Any], str, str, str], None]
RESYNC = 10.0  # seconds between syncs of a quiet pod (runtime changes wake it sooner)
MIN_STOP_GRACE = 2


@dataclass
class PodNotes:
    """What one pod's worker remembers between syncs."""

    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (reason, message)
    messages: dict[str, str] = field(default_factory=dict)             # container id → termination message
    allocated: dict[str, dict] = field(default_factory=dict)           # name → admitted {requests, limits}
    reported: dict[str, dict] = field(default_factory=dict)            # name → containerStatuses[].resources
    extra_conditions: list[dict] = field(default_factory=list)         # PodResizePending / PodResizeInProgress
    last_status: dict[str, Any] | None = None                          # the status the last sync computed
    failure: tuple[str, str] | None = None                             # (reason, message): failed for good
    sandbox_failed_at: float | None = None                             # epoch seconds of the last failed RunPodSandbox

    def forget_messages_except(self, container_ids: set[str]) -> None:
        """Drop the termination messages of container instances the runtime no longer has."""
        self.messages = {cid: message for cid, message in self.messages.items() if cid in container_ids}


@dataclass
class SyncResult:
    status: dict[str, Any]
    requeue_after: float = RESYNC
    done: bool = False  # the pod reached a terminal phase: terminate it


@dataclass(frozen=True)
class NodeFacts:
    node_name: str
    host_ip: str
    memory_capacity: int
    allocatable: Mapping[str, str]
    runtime_name: str = "kubemini"


class PodSyncer:
    def __init__(self, runtime: RuntimeClient, cache: RuntimeCache, *, volumes: VolumeManager, objects: ObjectSource,
                 prober: ProbeManager, root_dir: Path, logs_root: Path, node: Callable[[], NodeFacts],
                 event: EventSink, resizer: PodResizer | None = None, clock: Clock = REAL_CLOCK) -> None:
        self.runtime = runtime
        self.cache = cache
        self.volumes = volumes
        self.objects = objects
        self.prober = prober
        self.root_dir = root_dir
        self.logs_root = logs_root
        self.node = node
        self.event = event
        self.resizer = resizer
        self.clock = clock
        self.backoff = Backoff(clock=clock)
        self.images = ImagePuller(runtime, self.backoff, event)

    # --- syncing ---------------------------------------------------------------------------------

    async def sync(self, pod: dict[str, Any], notes: PodNotes) -> SyncResult:
        uid = pod["metadata"]["uid"]
        runtime = await self.cache.pod_runtime(uid)
        left = self._deadline_left(pod, notes)
        if left is not None and left <= 0:
            notes.failure = ("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
            self.event(pod, "Normal", "DeadlineExceeded", notes.failure[1])
            return SyncResult(self.status(pod, runtime, notes), done=True)
        volumes_ready = await self._setup_volumes(pod)
        actions = compute_pod_actions(pod, runtime, self._verdicts(pod))
        if self.resizer is not None and not actions.done:
            await self._resize(pod, runtime, actions, notes)
        if actions.done:
            return SyncResult(self.status(pod, runtime, notes), done=True)
        if not volumes_ready:  # kills and removals go ahead; nothing new starts without its volumes
            actions.create_sandbox, actions.start = False, []
        sandbox_failed = not await self._act(pod, runtime, actions, notes)
        if actions.changes or actions.remove:
            runtime = await self.cache.pod_runtime(uid)
        self._tell_prober(pod, runtime)
        notes.forget_messages_except({record.id for record in runtime.all_containers()})
        requeue = min([RESYNC, *[left + 0.05 for left in actions.backoff.values()],
                       *([left] if left is not None else [])])
        if sandbox_failed:
            requeue = min(requeue, self.backoff.remaining(f"{uid}/sandbox", notes.sandbox_failed_at or 0.0))
        elif not volumes_ready:
            requeue = 2.0
        elif actions.create_sandbox or (actions.kill and not actions.start):
            requeue = 0.0  # the next pass starts what this one made room for
        if actions.create_sandbox and not sandbox_failed:
            self.backoff.reset(f"{uid}/sandbox")
            notes.sandbox_failed_at = None
        return SyncResult(self.status(pod, runtime, notes), requeue_after=requeue)

    def _deadline_left(self, pod: Mapping[str, Any], notes: PodNotes) -> float | None:
        """Seconds left of ``spec.activeDeadlineSeconds``, counted from the pod's startTime; None: no deadline."""
        deadline = podspec.spec(pod).get("activeDeadlineSeconds")
        started = (notes.last_status or {}).get("startTime") or (pod.get("status") or {}).get("startTime")
        if not isinstance(deadline, int) or not started:
            return None
        try:
            begun = parse_rfc3339(started)
        except ValueError:
            return None
        return deadline - (self.clock.now() - begun).total_seconds()

    async def _setup_volumes(self, pod: dict[str, Any]) -> bool:
        try:
            await self.volumes.setup(pod)
        except VolumeError as err:
            self.event(pod, "Warning", "FailedMount", str(err))
            return False
        return True

    async def _resize(self, pod: dict[str, Any], runtime: PodRuntime, actions: PodActions, notes: PodNotes) -> None:
        """Admit and apply a resize; containers whose resizePolicy asks for it are restarted in this pass."""
        assert self.resizer is not None
        facts = self.node()
        notes.allocated, restarts, notes.extra_conditions, notes.reported = await self.resizer.sync(
            pod, runtime, allocatable=facts.allocatable, memory_capacity=facts.memory_capacity)
        killed = {k.record.id for k in actions.kill}
        for kill in restarts:
            if kill.record.id in killed or kill.container is None:
                continue
            actions.kill.append(kill)
            kind = "sidecar" if podspec.is_sidecar(kill.container) else "regular"
            actions.start.append(Start(kill.container, kind, kill.record.attempt + 1, kill.record.restart_count + 1))

    def _verdicts(self, pod: Mapping[str, Any]) -> Verdicts:
        uid = pod["metadata"]["uid"]

        def backoff(name: str, record: ContainerRecord) -> float:
            return self.backoff.remaining(f"{uid}/{name}", record.finished_at / NANO)

        return Verdicts(
            liveness_failed=lambda name: self.prober.liveness(uid, name) == Result.FAILURE,
            startup_failed=lambda name: self.prober.started(uid, name) == Result.FAILURE,
            started=lambda name: self.prober.started(uid, name) in (None, Result.SUCCESS),
            backoff=backoff)

    async def _act(self, pod: dict[str, Any], runtime: PodRuntime, actions: PodActions, notes: PodNotes) -> bool:
        """Carry ``actions`` out; False when a needed sandbox could not be created."""
        uid = pod["metadata"]["uid"]
        if actions.kill_pod:
            await self._stop_all(pod, runtime, podspec.grace_period(pod))
        if actions.create_sandbox:
            key = f"{uid}/sandbox"
            if notes.sandbox_failed_at is not None and self.backoff.remaining(key, notes.sandbox_failed_at) > 0:
                return False  # still backing off from the last failure (a wake-up is no reason to retry)
            if not await self._run_sandbox(pod, actions.sandbox_attempt):
                notes.sandbox_failed_at = self.clock.now().timestamp()
                self.backoff.next(key)
                return False
            runtime = await self.cache.pod_runtime(uid)
        await asyncio.gather(*(self._kill(pod, kill, podspec.grace_period(pod)) for kill in actions.kill))
        for record in actions.remove:
            await self._remove_container(record.id)
        notes.waiting = {name: reason for name, reason in notes.waiting.items()
                         if name in {s.container["name"] for s in actions.start}}
        for name in actions.backoff:
            delay = self.backoff.delay(f"{uid}/{name}")
            notes.waiting[name] = ("CrashLoopBackOff", f"back-off {int(delay)}s restarting failed container={name} "
                                                       f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}"
                                                       f"({uid})")
        sandbox = runtime.sandbox
        if sandbox is None or not sandbox.ready:
            return True
        for old in runtime.sandboxes[1:]:
            if not old.ready:
                await self._remove_sandbox(old.id)
        for start in actions.start:
            started = await self._start_container(pod, sandbox, start, notes)
            if not started and start.kind in ("init", "sidecar"):
                break  # the ones after it wait for it
        return True

    async def _run_sandbox(self, pod: dict[str, Any], attempt: int) -> bool:
        config = self._sandbox_config(pod, attempt)
        try:
            await self.runtime.run_pod_sandbox(config)
        except CriError as err:
            self.event(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {err.details}")
            return False
        return True

    def _sandbox_config(self, pod: Mapping[str, Any], attempt: int):
        return criconfig.sandbox_config(pod, attempt, logs_root=self.logs_root, cgroup_parent=pod_cgroup_parent(pod))

    async def _start_container(self, pod: dict[str, Any], sandbox: SandboxRecord, start: Start,
                               notes: PodNotes) -> bool:
        """Pull, configure, create and start one container; a failure becomes its waiting reason."""
        container, name = start.container, start.container["name"]
        facts = self.node()
        try:
            image_ref = await self.images.ensure(pod, container)
            pod_ip = facts.host_ip if podspec.host_network(pod) else sandbox.ip
            env = await make_environment(pod, container, self.objects, host_ip=facts.host_ip, pod_ip=pod_ip,
                                         pod_ips=[pod_ip] if pod_ip else [], node_allocatable=facts.allocatable)
            mounts = self.volumes.mounts_for(pod, container, dict(env))
            mounts.append(criconfig.termination_message_mount(container, self._termination_file(pod, start)))
            resources = container_resources(pod, container, node_memory_capacity=facts.memory_capacity,
                                            resources=notes.allocated.get(name))
            config = criconfig.container_config(pod, container, attempt=start.attempt,
                                                restart_count=start.restart_count, kind=start.kind,
                                                image_ref=image_ref, env=env, mounts=mounts, resources=resources)
        except ImagePullError as err:
            notes.waiting[name] = (err.reason, err.message)
            return False
        except (ContainerConfigError, VolumeError) as err:
            notes.waiting[name] = ("CreateContainerConfigError", str(err))
            self.event(pod, "Warning", "Failed", f"Error: {err}")
            return False
        try:
            container_id = await self.runtime.create_container(sandbox.id, config,
                                                               self._sandbox_config(pod, sandbox.attempt))
        except CriError as err:
            notes.waiting[name] = ("CreateContainerError", err.details)
            self.event(pod, "Warning", "Failed", f"Error: {err.details}")
            return False
        self.event(pod, "Normal", "Created", f"Created container: {name}")
        try:
            await self.runtime.start_container(container_id)
        except CriError as err:
            notes.waiting[name] = ("RunContainerError", err.details)
            self.event(pod, "Warning", "Failed", f"Error: {err.details}")
            return False
        self.event(pod, "Normal", "Started", f"Started container {name}")
        notes.waiting.pop(name, None)
        if start.after_exit:  # a restart the kubelet chose (spec change, resize) is no crash
            self.backoff.next(f"{pod['metadata']['uid']}/{name}")
        return await self._post_start(with_pod_ip(pod, pod_ip), container, container_id)

    async def _post_start(self, pod: dict[str, Any], container: Mapping[str, Any], container_id: str) -> bool:
        if not (container.get("lifecycle") or {}).get("postStart"):
            return True
        try:
            await run_post_start(pod, container, container_id, self.runtime, clock=self.clock)
        except HookError as err:
            self.event(pod, "Warning", "FailedPostStartHook", str(err))
            await self._stop_container(container_id, podspec.grace_period(pod))
            return False
        return True

    def _termination_file(self, pod: Mapping[str, Any], start: Start) -> Path:
        directory = self.root_dir / "pods" / pod["metadata"]["uid"] / "containers" / start.container["name"]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / str(start.restart_count)
        path.write_bytes(b"")
        path.chmod(0o666)
        return path

    def _tell_prober(self, pod: Mapping[str, Any], runtime: PodRuntime) -> None:
        """Probe workers follow the pod as this kubelet sees it: with the sandbox's IP even before the status
        carrying it has reached the API server (a first readiness probe would otherwise find no IP)."""
        uid = pod["metadata"]["uid"]
        status = pod.get("status") or {}
        if not status.get("podIP"):
            ip = self.node().host_ip if podspec.host_network(pod) else (runtime.sandbox.ip if runtime.sandbox else "")
            if ip:
                pod = {**pod, "status": {**status, "podIP": ip, "podIPs": [{"ip": ip}]}}
        self.prober.update_pod(pod)
        for container in podspec.all_containers(pod):
            latest = runtime.latest(container["name"])
            if latest is not None and latest.running:
                started = self.clock.monotonic() - max(0.0, self.clock.now().timestamp() - latest.started_at / NANO)
                self.prober.set_container(uid, container["name"], latest.id, started)
            else:
                self.prober.set_container(uid, container["name"], None, None)

    # --- status ----------------------------------------------------------------------------------

    def status(self, pod: Mapping[str, Any], runtime: PodRuntime, notes: PodNotes, *,
               terminal: bool = False) -> dict[str, Any]:
        uid = pod["metadata"]["uid"]
        facts = self.node()
        for record in runtime.all_containers():
            if record.exited and record.id not in notes.messages:
                spec = podspec.container_named(pod, record.name) or {}
                notes.messages[record.id] = read_termination_message(
                    self.root_dir / "pods" / uid / "containers" / record.name / str(record.restart_count),
                    record, spec.get("terminationMessagePolicy") or "File")
        inputs = StatusInputs(
            runtime_name=facts.runtime_name, host_ip=facts.host_ip, now=self.clock.now(),
            ready=lambda name: self.prober.readiness(uid, name) in (None, Result.SUCCESS),
            started=lambda name: self.prober.started(uid, name) in (None, Result.SUCCESS),
            waiting=notes.waiting, termination_messages=notes.messages, qos_class=qos_class(pod),
            resources=notes.reported, allocated=notes.allocated, extra_conditions=list(notes.extra_conditions),
            previous=notes.last_status, failure=notes.failure)
        notes.last_status = compute_pod_status(pod, runtime, inputs, terminal=terminal)
        return notes.last_status

    # --- stopping --------------------------------------------------------------------------------

    async def terminate(self, pod: dict[str, Any], notes: PodNotes, grace: int) -> dict[str, Any]:
        """Stop everything the pod runs (regular containers, then sidecars in reverse order), then its
        sandbox; returns the final status."""
        uid = pod["metadata"]["uid"]
        runtime = await self.cache.pod_runtime(uid)
        await self._stop_all(pod, runtime, grace)
        for sandbox_id in self.cache.sandbox_ids(uid):
            await self._stop_sandbox(sandbox_id)
        self.prober.remove_pod(uid)
        runtime = await self.cache.pod_runtime(uid)
        notes.waiting.clear()
        return self.status(pod, runtime, notes, terminal=True)

    async def _stop_all(self, pod: dict[str, Any], runtime: PodRuntime, grace: int) -> None:
        sidecar_names = [c["name"] for c in podspec.sidecars(pod)]
        first = [r for r in runtime.running() if r.name not in sidecar_names]
        deadline = self.clock.monotonic() + grace
        await asyncio.gather(*(self._kill(pod, Kill(r, podspec.container_named(pod, r.name), "Killing",
                                                    f"Stopping container {r.name}"), grace) for r in first))
        for name in reversed(sidecar_names):
            record = runtime.latest(name)
            if record is not None and record.running:
                left = max(MIN_STOP_GRACE, int(deadline - self.clock.monotonic()))
                await self._kill(pod, Kill(record, podspec.container_named(pod, name), "Killing",
                                           f"Stopping container {name}"), left)
        for sandbox in runtime.sandboxes:
            if sandbox.ready:
                await self._stop_sandbox(sandbox.id)

    async def _kill(self, pod: dict[str, Any], kill: Kill, grace: int) -> None:
        grace = max(grace, MIN_STOP_GRACE)  # as the kubelet: even a zero grace gets the minimum
        self.event(pod, "Normal", kill.reason, kill.message)
        if kill.container is not None and (kill.container.get("lifecycle") or {}).get("preStop"):
            grace = int(await run_pre_stop(pod, kill.container, kill.record.id, self.runtime, grace,
                                           clock=self.clock, on_event=self.event))
        await self._stop_container(kill.record.id, grace)
        self.prober.set_container(pod["metadata"]["uid"], kill.record.name, None, None)

    async def _stop_container(self, container_id: str, grace: int) -> None:
        try:
            await self.runtime.stop_container(container_id, grace)
        except CriError as err:
            if not is_not_found(err):
                raise

    async def _stop_sandbox(self, sandbox_id: str) -> None:
        try:
            await self.runtime.stop_pod_sandbox(sandbox_id)
        except CriError as err:
            if not is_not_found(err):
                raise

    async def _remove_sandbox(self, sandbox_id: str) -> None:
        try:
            await self.runtime.remove_pod_sandbox(sandbox_id)
        except CriError as err:
            if not is_not_found(err):
                raise
        self.cache.forget_sandbox(sandbox_id)

    async def _remove_container(self, container_id: str) -> None:
        try:
            await self.runtime.remove_container(container_id)
        except CriError as err:
            if not is_not_found(err):
                raise

    async def cleanup(self, uid: str) -> None:
        """Remove every container and sandbox of pod ``uid`` and its volumes and files (idempotent)."""
        await self.cache.pod_runtime(uid)
        for container_id in self.cache.container_ids(uid):
            await self._stop_container(container_id, 0)
            await self._remove_container(container_id)
        for sandbox_id in self.cache.sandbox_ids(uid):
            await self._stop_sandbox(sandbox_id)
            await self._remove_sandbox(sandbox_id)
        await self.volumes.teardown(uid)
        await asyncio.to_thread(shutil.rmtree, self.root_dir / "pods" / uid, ignore_errors=True)
        self.backoff.forget_prefix(f"{uid}/")
        self.images.forget(uid)
        self.prober.remove_pod(uid)
        if self.resizer is not None:
            self.resizer.checkpoint.remove(uid)
        remove_pod_cgroups(uid)


def with_pod_ip(pod: dict[str, Any], pod_ip: str) -> dict[str, Any]:
    """``pod`` as hooks need it: a new pod's API object has no IP yet, the sandbox has (shallow copy)."""
    status = pod.get("status") or {}
    if not pod_ip or status.get("podIP") == pod_ip:
        return pod
    return {**pod, "status": {**status, "podIP": pod_ip, "podIPs": [{"ip": pod_ip}]}}
