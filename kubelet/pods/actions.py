"""What a pod sync must change in the runtime (pure): the kubelet's computePodActions.

Given the pod, its runtime view and the probe verdicts, :func:`compute_pod_actions` answers: is a new
sandbox needed (then everything else waits for the next pass), which containers to kill (failed liveness,
changed spec, leftovers), which to start — init containers one at a time in order, sidecars in order and
restarted whenever they exit, regular containers per the restart policy — and which restarts must wait
out their crash-loop backoff. It decides only; :mod:`kubelet.pods.sync` acts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubelet.pods import podspec
from kubelet.pods.runtimestate import ContainerRecord, PodRuntime

KEEP_DEAD_INSTANCES = 2  # per container name: the current one and the previous (for `logs --previous`)


@dataclass(frozen=True)
class Verdicts:
    """Probe results the decisions need; each takes a container name."""

    liveness_failed: Callable[[str], bool] = lambda name: False
    startup_failed: Callable[[str], bool] = lambda name: False
    started: Callable[[str], bool] = lambda name: True
    backoff: Callable[[str, ContainerRecord], float] = lambda name, record: 0.0  # seconds left, 0 = may restart


@dataclass(frozen=True)
class Start:
    container: dict[str, Any]
    kind: str  # "init", "sidecar" or "regular"
    attempt: int
    restart_count: int
    after_exit: bool = False  # the previous instance exited (a crash-loop restart, counted by the backoff)


@dataclass(frozen=True)
class Kill:
    record: ContainerRecord
    container: dict[str, Any] | None
    reason: str  # event reason (Killing)
    message: str


@dataclass
class PodActions:
    create_sandbox: bool = False
    sandbox_attempt: int = 0
    kill_pod: bool = False          # stop every container and the old sandbox first
    kill: list[Kill] = field(default_factory=list)
    start: list[Start] = field(default_factory=list)
    remove: list[ContainerRecord] = field(default_factory=list)  # dead instances beyond the kept ones
    backoff: dict[str, float] = field(default_factory=dict)      # name → seconds until it may restart
    done: bool = False              # nothing will ever run again (terminal phase): terminate the pod

    @property
    def changes(self) -> bool:
        return bool(self.create_sandbox or self.kill_pod or self.kill or self.start)


def _start(container: Any, kind: str, latest: ContainerRecord | None) -> Start:
    if latest is None:
        return Start(dict(container), kind, 0, 0)
    return Start(dict(container), kind, latest.attempt + 1, latest.restart_count + 1, after_exit=latest.exited)


def compute_pod_actions(pod: Any, runtime: PodRuntime, verdicts: Verdicts) -> PodActions:
    actions = PodActions()
    _collect_garbage(pod, runtime, actions)
    if _pod_finished(pod, runtime):
        actions.done = True
        return actions
    sandbox = runtime.sandbox
    if sandbox is None or not sandbox.ready:
        actions.create_sandbox = True
        actions.sandbox_attempt = sandbox.attempt + 1 if sandbox is not None else 0
        actions.kill_pod = sandbox is not None or bool(runtime.running())
        return actions
    initialized = any(runtime.latest(c["name"]) is not None for c in podspec.regular_containers(pod))
    if not initialized and not _init_actions(pod, runtime, verdicts, actions):
        return actions
    if initialized:
        for container in podspec.sidecars(pod):
            _keep_running(container, "sidecar", runtime, verdicts, actions, always=True)
    for container in podspec.regular_containers(pod):
        _keep_running(container, "regular", runtime, verdicts, actions, always=False, pod=pod)
    return actions


def _init_actions(pod: Any, runtime: PodRuntime, verdicts: Verdicts, actions: PodActions) -> bool:
    """Walk the init containers in order; True once every one is done (regular ones succeeded, sidecars
    running and started). Starts at most one at a time."""
    for container in podspec.init_containers(pod):
        name = container["name"]
        latest = runtime.latest(name)
        if podspec.is_sidecar(container):
            if latest is not None and latest.running:
                if verdicts.liveness_failed(name):
                    actions.kill.append(Kill(latest, dict(container), "Killing",
                                             f"Container {name} failed liveness probe, will be restarted"))
                    return False
                if not verdicts.started(name):
                    return False
                continue
        elif latest is not None and latest.exited and latest.exit_code == 0:
            continue
        elif latest is not None and latest.running:
            return False
        elif latest is not None and latest.exited and podspec.restart_policy(pod) == "Never":
            return False  # the pod has failed: _pod_finished reports it
        if latest is not None and latest.exited:
            left = verdicts.backoff(name, latest)
            if left > 0:
                actions.backoff[name] = left
                return False
        actions.start.append(_start(container, "sidecar" if podspec.is_sidecar(container) else "init", latest))
        return False
    return True


def _keep_running(container: Any, kind: str, runtime: PodRuntime, verdicts: Verdicts, actions: PodActions, *,
                  always: bool, pod: Any = None) -> None:
    name = container["name"]
    latest = runtime.latest(name)
    if latest is not None and latest.running:
        if latest.spec_hash and latest.spec_hash != podspec.container_hash(container):
            actions.kill.append(Kill(latest, dict(container), "Killing",
                                     f"Container {name} definition changed, will be restarted"))
            # Restarted in the same pass whatever the restart policy: the spec changed, it did not fail.
            actions.start.append(_start(container, kind, latest))
        elif verdicts.liveness_failed(name):
            actions.kill.append(Kill(latest, dict(container), "Killing",
                                     f"Container {name} failed liveness probe, will be restarted"))
        elif verdicts.startup_failed(name):
            actions.kill.append(Kill(latest, dict(container), "Killing",
                                     f"Container {name} failed startup probe, will be restarted"))
        return
    if latest is not None and latest.exited:
        if not always and not podspec.should_restart(pod, latest.exit_code):
            return
        left = verdicts.backoff(name, latest)
        if left > 0:
            actions.backoff[name] = left
            return
    actions.start.append(_start(container, kind, latest))


def _pod_finished(pod: Any, runtime: PodRuntime) -> bool:
    """No container will run again: a regular init container failed under restartPolicy Never, or every
    regular container has exited and the restart policy restarts none of them."""
    policy = podspec.restart_policy(pod)
    if policy == "Never":
        for container in podspec.init_containers(pod):
            latest = runtime.latest(container["name"])
            if not podspec.is_sidecar(container) and latest is not None and latest.exited and latest.exit_code != 0:
                return True
    if policy == "Always":
        return False
    regular = podspec.regular_containers(pod)
    records = [runtime.latest(c["name"]) for c in regular]
    return bool(regular) and all(r is not None and r.exited and not podspec.should_restart(pod, r.exit_code)
                                 for r in records)


def _collect_garbage(pod: Any, runtime: PodRuntime, actions: PodActions) -> None:
    """Dead instances beyond the newest two per name, and any instance of a name the spec does not have."""
    names = {c["name"] for c in podspec.all_containers(pod)}
    for name, instances in runtime.containers.items():
        if name not in names:
            for record in instances:
                if record.running:
                    actions.kill.append(Kill(record, None, "Killing", f"Container {name} is not in the pod spec"))
                else:
                    actions.remove.append(record)
            continue
        actions.remove += [r for r in instances[KEEP_DEAD_INSTANCES:] if not r.running]
