"""What a pod sync decides to change (kubelet.pods.actions.compute_pod_actions), fed exact runtime views."""

from __future__ import annotations

from kubelet.pods.actions import KEEP_DEAD_INSTANCES, PodActions, Verdicts, compute_pod_actions
from tests.unit.kubelet.podfixtures import container, pod, rec, sidecar, view


def started(actions: PodActions) -> list[tuple[str, str, int, int]]:
    return [(s.container["name"], s.kind, s.attempt, s.restart_count) for s in actions.start]


def killed(actions: PodActions) -> list[str]:
    return [k.record.name for k in actions.kill]


def in_backoff(seconds: float) -> Verdicts:
    return Verdicts(backoff=lambda name, record: seconds)


# --- sandbox -----------------------------------------------------------------------------------------


def test_a_new_pod_gets_a_sandbox_first_and_nothing_else():
    actions = compute_pod_actions(pod(), view(sandbox=False), Verdicts())
    assert actions.create_sandbox and actions.sandbox_attempt == 0
    assert not actions.kill_pod and not actions.start
    assert actions.changes


def test_a_dead_sandbox_is_replaced_with_the_next_attempt_after_killing_the_pod():
    runtime = view(rec("app", "running"), ready=False, sandbox_attempt=2)
    actions = compute_pod_actions(pod(), runtime, Verdicts())
    assert actions.create_sandbox and actions.sandbox_attempt == 3
    assert actions.kill_pod
    assert not actions.start


def test_a_ready_sandbox_with_everything_running_needs_nothing():
    app = container("app")
    actions = compute_pod_actions(pod(app), view(rec("app", spec=app)), Verdicts())
    assert not actions.changes and not actions.remove and not actions.backoff and not actions.done


# --- regular containers ------------------------------------------------------------------------------


def test_all_regular_containers_start_together():
    actions = compute_pod_actions(pod(container("a"), container("b")), view(), Verdicts())
    assert started(actions) == [("a", "regular", 0, 0), ("b", "regular", 0, 0)]


def test_restart_policy_always_restarts_any_exit_with_the_next_attempt():
    for code in (0, 1):
        actions = compute_pod_actions(pod(), view(rec("app", "exited", attempt=3, exit_code=code)), Verdicts())
        assert started(actions) == [("app", "regular", 4, 4)]


def test_on_failure_restarts_only_failures():
    failed = compute_pod_actions(pod(restart_policy="OnFailure"), view(rec("app", "exited", exit_code=2)),
                                 Verdicts())
    assert started(failed) == [("app", "regular", 1, 1)] and not failed.done
    succeeded = compute_pod_actions(pod(restart_policy="OnFailure"), view(rec("app", "exited")), Verdicts())
    assert not succeeded.start and succeeded.done


def test_never_restarts_nothing_and_the_pod_is_done_once_every_container_exited():
    two = pod(container("a"), container("b"), restart_policy="Never")
    one_left = compute_pod_actions(two, view(rec("a", "exited", exit_code=1), rec("b", "running")), Verdicts())
    assert not one_left.start and not one_left.done
    both = compute_pod_actions(two, view(rec("a", "exited", exit_code=1), rec("b", "exited")), Verdicts())
    assert both.done and not both.start


def test_a_restart_in_backoff_waits_and_says_how_long():
    actions = compute_pod_actions(pod(), view(rec("app", "exited", exit_code=1)), in_backoff(7.5))
    assert not actions.start
    assert actions.backoff == {"app": 7.5}


def test_a_created_but_never_started_instance_is_replaced():
    actions = compute_pod_actions(pod(), view(rec("app", "created", attempt=0)), Verdicts())
    assert started(actions) == [("app", "regular", 1, 1)]


def test_failed_liveness_kills_the_container():
    app = container("app")
    actions = compute_pod_actions(pod(app), view(rec("app", spec=app)),
                                  Verdicts(liveness_failed=lambda name: name == "app"))
    assert killed(actions) == ["app"]
    assert actions.kill[0].message == "Container app failed liveness probe, will be restarted"
    assert not actions.start


def test_failed_startup_probe_kills_the_container():
    actions = compute_pod_actions(pod(), view(rec("app")), Verdicts(startup_failed=lambda name: True))
    assert actions.kill[0].message == "Container app failed startup probe, will be restarted"


def test_a_changed_container_spec_is_restarted_whatever_the_restart_policy():
    old = container("app", "busybox:1.35")
    new = container("app", "busybox:1.36")
    for policy in ("Always", "Never"):
        actions = compute_pod_actions(pod(new, restart_policy=policy), view(rec("app", spec=old)), Verdicts())
        assert killed(actions) == ["app"]
        assert actions.kill[0].message == "Container app definition changed, will be restarted"
        assert started(actions) == [("app", "regular", 1, 1)], policy


def test_records_without_a_hash_are_not_treated_as_changed():
    actions = compute_pod_actions(pod(), view(rec("app")), Verdicts())
    assert not actions.kill


# --- init containers and sidecars --------------------------------------------------------------------


def with_inits(**kw) -> dict:
    return pod(container("main"), init=[container("init1"), container("init2")], **kw)


def test_init_containers_run_one_at_a_time_in_order():
    first = compute_pod_actions(with_inits(), view(), Verdicts())
    assert started(first) == [("init1", "init", 0, 0)]
    waiting = compute_pod_actions(with_inits(), view(rec("init1", "running")), Verdicts())
    assert not waiting.start
    second = compute_pod_actions(with_inits(), view(rec("init1", "exited")), Verdicts())
    assert started(second) == [("init2", "init", 0, 0)]
    main = compute_pod_actions(with_inits(), view(rec("init1", "exited"), rec("init2", "exited")), Verdicts())
    assert started(main) == [("main", "regular", 0, 0)]


def test_a_failed_init_container_is_retried_with_backoff_unless_the_policy_is_never():
    runtime = view(rec("init1", "exited", exit_code=1))
    assert started(compute_pod_actions(with_inits(), runtime, Verdicts())) == [("init1", "init", 1, 1)]
    waiting = compute_pod_actions(with_inits(), runtime, in_backoff(3))
    assert not waiting.start and waiting.backoff == {"init1": 3}
    never = compute_pod_actions(with_inits(restart_policy="Never"), runtime, Verdicts())
    assert never.done and not never.start


def test_once_a_regular_container_exists_init_containers_are_not_run_again():
    runtime = view(rec("main", "exited", exit_code=1))  # e.g. after the init containers were garbage-collected
    actions = compute_pod_actions(with_inits(), runtime, Verdicts())
    assert started(actions) == [("main", "regular", 1, 1)]


def test_a_sidecar_starts_before_the_main_containers_and_must_have_started():
    spec = pod(container("main"), init=[sidecar("proxy"), container("setup")])
    assert started(compute_pod_actions(spec, view(), Verdicts())) == [("proxy", "sidecar", 0, 0)]
    not_started = compute_pod_actions(spec, view(rec("proxy")), Verdicts(started=lambda name: False))
    assert not not_started.start
    ready = compute_pod_actions(spec, view(rec("proxy")), Verdicts())
    assert started(ready) == [("setup", "init", 0, 0)]
    done = compute_pod_actions(spec, view(rec("proxy"), rec("setup", "exited")), Verdicts())
    assert started(done) == [("main", "regular", 0, 0)]


def test_a_sidecar_is_restarted_even_under_restart_policy_never():
    spec = pod(container("main"), init=[sidecar("proxy")], restart_policy="Never")
    runtime = view(rec("proxy", "exited", exit_code=137), rec("main"))
    assert started(compute_pod_actions(spec, runtime, Verdicts())) == [("proxy", "sidecar", 1, 1)]
    assert compute_pod_actions(spec, runtime, in_backoff(5)).backoff == {"proxy": 5}


def test_a_sidecar_failing_liveness_during_initialization_is_killed():
    spec = pod(container("main"), init=[sidecar("proxy"), container("setup")])
    actions = compute_pod_actions(spec, view(rec("proxy")), Verdicts(liveness_failed=lambda name: True))
    assert killed(actions) == ["proxy"] and not actions.start


def test_sidecars_do_not_keep_a_finished_pod_alive():
    spec = pod(container("main"), init=[sidecar("proxy")], restart_policy="OnFailure")
    actions = compute_pod_actions(spec, view(rec("proxy"), rec("main", "exited")), Verdicts())
    assert actions.done


# --- garbage -----------------------------------------------------------------------------------------


def test_dead_instances_beyond_the_newest_two_are_removed():
    records = [rec("app", "exited", attempt=n, exit_code=1) for n in range(4)] + [rec("app", attempt=4)]
    actions = compute_pod_actions(pod(), view(*records), Verdicts())
    kept = KEEP_DEAD_INSTANCES
    assert sorted(r.attempt for r in actions.remove) == list(range(5 - kept))
    assert not actions.start


def test_containers_the_spec_no_longer_has_are_killed_or_removed():
    actions = compute_pod_actions(pod(), view(rec("app"), rec("gone"), rec("old", "exited")), Verdicts())
    assert killed(actions) == ["gone"]
    assert actions.kill[0].container is None
    assert [r.name for r in actions.remove] == ["old"]
