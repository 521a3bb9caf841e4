"""batch/v1 strategies: Job defaults and generated selectors, Job and CronJob validation, update rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apiserver.registry.batch import CronJobStrategy, JobStrategy
from tests.unit.apiserver.helpers import INFO, errors, strategy, update_errors

UID = "0e5c7a4e-1111-2222-3333-444455556666"


def jobs() -> JobStrategy:
    s = strategy("batch", "jobs")
    assert isinstance(s, JobStrategy)
    return s


def cronjobs() -> CronJobStrategy:
    s = strategy("batch", "cronjobs")
    assert isinstance(s, CronJobStrategy)
    return s


def pod_template(**spec: Any) -> dict:
    body = {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}
    body.update(spec)
    return {"spec": body}


def job(name: str = "pi", **spec: Any) -> dict:
    body: dict[str, Any] = {"template": pod_template()}
    body.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": body}


def created(s, obj: dict, uid: str = UID) -> dict:
    """As the generic store will do it: defaults, system fields (uid) and then prepare_for_create."""
    obj = copy.deepcopy(obj)
    s.default(obj)
    obj["metadata"].update(uid=uid, creationTimestamp="2025-01-01T00:00:00Z", generation=1)
    s.prepare_for_create(obj)
    return obj


# --- Job defaults and the generated selector -------------------------------------------------------------


def test_job_defaults_and_generated_selector() -> None:
    obj = created(jobs(), job())
    spec = obj["spec"]
    assert {k: v for k, v in spec.items() if k != "template"} == {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "suspend": False,
        "podReplacementPolicy": "TerminatingOrFailed",
        "manualSelector": False,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}},
    }
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": UID, "batch.kubernetes.io/job-name": "pi",
        "controller-uid": UID, "job-name": "pi"}
    assert spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"  # pod-template defaults applied
    assert obj["status"] == {}
    assert errors(jobs(), obj) == []


@pytest.mark.parametrize(("given", "completions", "parallelism"), [
    ({}, 1, 1),
    ({"parallelism": 3}, None, 3),  # a work queue: completions stays unset
    ({"completions": 5}, 5, 1),
    ({"completions": 5, "parallelism": 2}, 5, 2),
])
def test_job_completions_and_parallelism_defaults(given: dict, completions, parallelism) -> None:
    spec = created(jobs(), job(**given))["spec"]
    assert spec.get("completions") == completions
    assert spec["parallelism"] == parallelism


def test_job_backoff_and_replacement_defaults_follow_other_fields() -> None:
    spec = created(jobs(), job(completionMode="Indexed", completions=3, backoffLimitPerIndex=1))["spec"]
    assert spec["backoffLimit"] == 2**31 - 1
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    spec = created(jobs(), job(podFailurePolicy=policy))["spec"]
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]


def test_job_labels_default_from_the_template() -> None:
    obj = job()
    obj["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    assert created(jobs(), obj)["metadata"]["labels"] == {"app": "pi"}
    obj["metadata"]["labels"] = {"own": "x"}
    assert created(jobs(), obj)["metadata"]["labels"] == {"own": "x"}


def test_manual_selector_is_left_alone() -> None:
    obj = job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    obj["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    made = created(jobs(), obj)
    assert made["spec"]["selector"] == {"matchLabels": {"app": "pi"}}
    assert made["spec"]["template"]["metadata"]["labels"] == {"app": "pi"}
    assert errors(jobs(), made) == []


def test_a_user_selector_without_manual_selector_is_rejected() -> None:
    obj = created(jobs(), job(selector={"matchLabels": {"app": "pi"}}))
    assert ('spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"pi", '
            f'"batch.kubernetes.io/controller-uid":"{UID}"}}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}: '
            "`selector` not auto-generated") in errors(jobs(), obj)


def test_a_user_label_with_another_uid_is_rejected() -> None:
    obj = job()
    obj["spec"]["template"]["metadata"] = {"labels": {"batch.kubernetes.io/controller-uid": "someone-else"}}
    errs = errors(jobs(), created(jobs(), obj))
    assert any(e.startswith("spec.template.metadata.labels: Invalid value: ") and
               e.endswith("`selector` does not match template `labels`") for e in errs)


# --- Job validation --------------------------------------------------------------------------------------

JOB_CASES = [
    ({"parallelism": -1}, "spec.parallelism: Invalid value: -1: must be greater than or equal to 0"),
    ({"completions": -1}, "spec.completions: Invalid value: -1: must be greater than or equal to 0"),
    ({"backoffLimit": -1}, "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"),
    ({"activeDeadlineSeconds": -1},
     "spec.activeDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0"),
    ({"ttlSecondsAfterFinished": -1},
     "spec.ttlSecondsAfterFinished: Invalid value: -1: must be greater than or equal to 0"),
    ({"completionMode": "Sometimes"},
     'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"'),
    ({"completionMode": "Indexed", "parallelism": 2},
     "spec.completions: Required value: when completion mode is Indexed"),
    ({"completionMode": "Indexed", "completions": 200_000, "parallelism": 100_001},
     "spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed"),
    ({"backoffLimitPerIndex": 1}, "spec.backoffLimitPerIndex: Forbidden: requires indexed completion mode"),
    ({"completionMode": "Indexed", "completions": 2, "maxFailedIndexes": 1},
     "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified"),
    ({"podReplacementPolicy": "Sometimes"},
     'spec.podReplacementPolicy: Unsupported value: "Sometimes": supported values: "Failed", "TerminatingOrFailed"'),
    ({"template": pod_template(restartPolicy="Always")},
     'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
    ({"template": pod_template(restartPolicy=None)},  # defaulted to Always, then rejected
     'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
]


@pytest.mark.parametrize(("spec", "expected"), JOB_CASES)
def test_job_validation(spec: dict, expected: str) -> None:
    assert expected in errors(jobs(), created(jobs(), job(**spec)))


def test_indexed_job_names_must_leave_room_for_the_index() -> None:
    name = "x" * 62
    obj = created(jobs(), job(name, completionMode="Indexed", completions=10, parallelism=1))
    assert (f'metadata.name: Invalid value: "{name}": will not able to create pod with invalid DNS label: {name}-9'
            ) in errors(jobs(), obj)


POD_FAILURE_CASES = [
    ([{"action": "Panic", "onExitCodes": {"operator": "In", "values": [1]}}],
     'spec.podFailurePolicy.rules[0].action: Unsupported value: "Panic": supported values: "Count", "FailIndex", '
     '"FailJob", "Ignore"'),
    ([{"action": "FailJob", "onExitCodes": {"operator": "Maybe", "values": [1]}}],
     'spec.podFailurePolicy.rules[0].onExitCodes.operator: Unsupported value: "Maybe": supported values: "In", '
     '"NotIn"'),
    ([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 1]}}],
     "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator"),
    ([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3, 1]}}],
     "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: [3,1]: must be ordered"),
    ([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 1]}}],
     "spec.podFailurePolicy.rules[0].onExitCodes.values[1]: Duplicate value: 1"),
    ([{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": []}}],
     "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []: at least one value is required"),
    ([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1], "containerName": "ghost"}}],
     'spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: "ghost": must be one of the '
     "container or initContainer names in the pod template"),
    ([{"action": "Ignore"}],
     "spec.podFailurePolicy.rules[0]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required"),
    ([{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]},
       "onPodConditions": [{"type": "DisruptionTarget"}]}],
     "spec.podFailurePolicy.rules[0]: Invalid value: specifying both OnExitCodes and OnPodConditions is not "
     "supported"),
    ([{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "Maybe"}]}],
     'spec.podFailurePolicy.rules[0].onPodConditions[0].status: Unsupported value: "Maybe": supported values: '
     '"False", "True", "Unknown"'),
    ([{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}}],
     'spec.podFailurePolicy.rules[0].action: Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set'),
    ([{"action": "Count", "onExitCodes": {"operator": "In", "values": [1]}}] * 21,
     "spec.podFailurePolicy.rules: Too many: 21: must have at most 20 items"),
]


@pytest.mark.parametrize(("rules", "expected"), POD_FAILURE_CASES)
def test_pod_failure_policy_rules(rules: list, expected: str) -> None:
    obj = created(jobs(), job(podFailurePolicy={"rules": rules}))
    assert expected in errors(jobs(), obj)


def test_pod_failure_policy_needs_never_restart() -> None:
    rules = [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}, "containerName": "c"}]
    good = created(jobs(), job(podFailurePolicy={"rules": rules}))
    assert errors(jobs(), good) == []
    bad = created(jobs(), job(podFailurePolicy={"rules": rules}, template=pod_template(restartPolicy="OnFailure")))
    assert ('spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when '
            "podFailurePolicy is specified") in errors(jobs(), bad)
    wrong = created(jobs(), job(podFailurePolicy={"rules": rules}, podReplacementPolicy="TerminatingOrFailed"))
    assert ('spec.podReplacementPolicy: Unsupported value: "TerminatingOrFailed": supported values: "Failed"'
            ) in errors(jobs(), wrong)


# --- Job updates -----------------------------------------------------------------------------------------


def test_job_generation_counts_spec_changes_only() -> None:
    s = jobs()
    old = created(s, job())
    labeled = copy.deepcopy(old)
    labeled["metadata"]["labels"] = {"x": "y"}
    assert not s.spec_changed(labeled, old)
    suspended = copy.deepcopy(old)
    suspended["spec"]["suspend"] = True
    assert s.spec_changed(suspended, old)
    assert update_errors(s, suspended, old) == []


def test_job_immutable_fields() -> None:
    s = jobs()
    old = created(s, job())
    new = copy.deepcopy(old)
    new["spec"]["completions"] = 3
    assert update_errors(s, new, old) == ["spec.completions: Invalid value: 3: field is immutable"]
    new = copy.deepcopy(old)
    new["spec"]["selector"]["matchLabels"]["extra"] = "x"
    new["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    errs = update_errors(s, new, old)
    assert any(e.startswith("spec.selector: Invalid value: v1.LabelSelector{") and e.endswith("field is immutable")
               for e in errs)
    new = copy.deepcopy(old)
    new["spec"]["completionMode"] = "Indexed"
    assert 'spec.completionMode: Invalid value: "Indexed": field is immutable' in update_errors(s, new, old)


def test_elastic_indexed_jobs_may_scale_completions_with_parallelism() -> None:
    s = jobs()
    old = created(s, job(completionMode="Indexed", completions=3, parallelism=3))
    new = copy.deepcopy(old)
    new["spec"].update(completions=5, parallelism=5)
    assert update_errors(s, new, old) == []


def test_job_template_is_immutable_unless_suspended_and_not_started() -> None:
    s = jobs()
    old = created(s, job())
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    errs = update_errors(s, new, old)
    assert len(errs) == 1 and errs[0].startswith("spec.template: Invalid value: {") and errs[0].endswith(
        ": field is immutable")
    suspended = created(s, job(suspend=True))
    new = copy.deepcopy(suspended)
    new["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    new["spec"]["template"]["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    new["spec"]["template"]["metadata"]["annotations"] = {"note": "x"}
    assert update_errors(s, new, suspended) == []
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    assert update_errors(s, new, suspended)[0].startswith("spec.template: Invalid value")
    started = copy.deepcopy(suspended)
    started["status"] = {"startTime": "2025-01-01T00:00:00Z"}
    moved = copy.deepcopy(started)
    moved["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "b"}
    assert update_errors(s, moved, started)[0].startswith("spec.template: Invalid value")


def test_job_status_and_field_selector() -> None:
    s = jobs()
    obj = created(s, job())
    new = copy.deepcopy(obj)
    new["status"] = {"active": -1, "succeeded": 2}
    assert [str(e) for e in s.validate_status_update(new, obj)] == [
        "status.active: Invalid value: -1: must be greater than or equal to 0"]
    assert s.field_values(obj)["status.successful"] == "0"
    assert s.field_values(new)["status.successful"] == "2"


# --- CronJobs --------------------------------------------------------------------------------------------


def cronjob(name: str = "tick", **spec: Any) -> dict:
    body: dict[str, Any] = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": pod_template()}}}
    body.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": "default"},
            "spec": body}


def test_cronjob_defaults() -> None:
    obj = created(cronjobs(), cronjob())
    spec = obj["spec"]
    assert {k: v for k, v in spec.items() if k != "jobTemplate"} == {
        "schedule": "*/5 * * * *", "concurrencyPolicy": "Allow", "suspend": False,
        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1}
    job_spec = spec["jobTemplate"]["spec"]
    assert set(job_spec) == {"template"}  # the Job defaults apply when the Job is created, not here
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert obj["status"] == {} and obj["metadata"]["generation"] == 1
    assert errors(cronjobs(), obj) == []


CRONJOB_CASES = [
    ({"schedule": ""}, "spec.schedule: Required value"),
    ({"schedule": "* * * *"}, 'spec.schedule: Invalid value: "* * * *": expected exactly 5 fields, found 4: [* * * *]'),
    ({"schedule": "61 * * * *"},
     'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61'),
    ({"schedule": "TZ=UTC 0 * * * *"},
     'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field '
     "instead"),
    ({"timeZone": "Mars/Olympus"}, 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'),
    ({"timeZone": ""}, 'spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string'),
    ({"timeZone": "../etc"}, 'spec.timeZone: Invalid value: "../etc": unknown time zone ../etc'),
    ({"timeZone": "Local"},
     'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in '
     "https://www.iana.org/time-zones"),
    ({"concurrencyPolicy": "Sometimes"},
     'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"'),
    ({"startingDeadlineSeconds": -1},
     "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0"),
    ({"successfulJobsHistoryLimit": -1},
     "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0"),
    ({"jobTemplate": {"spec": {"template": pod_template(restartPolicy="Always")}}},
     'spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
    ({"jobTemplate": {"spec": {"template": pod_template(), "backoffLimit": -1}}},
     "spec.jobTemplate.spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"),
    ({"jobTemplate": {"spec": {"template": pod_template(), "manualSelector": True}}},
     'spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: "nil", "false"'),
    ({"jobTemplate": {"spec": {"template": pod_template(), "selector": {"matchLabels": {"a": "b"}}}}},
     'spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"a":"b"}, '
     "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated"),
]


@pytest.mark.parametrize(("spec", "expected"), CRONJOB_CASES)
def test_cronjob_validation(spec: dict, expected: str) -> None:
    assert expected in errors(cronjobs(), created(cronjobs(), cronjob(**spec)))


@pytest.mark.parametrize("schedule", ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually",
                                      "@midnight", "0 9 * * MON-FRI", "*/10 0-6,18-23 1,15 jan-jun ?"])
def test_cronjob_accepts_standard_schedules(schedule: str) -> None:
    assert errors(cronjobs(), created(cronjobs(), cronjob(schedule=schedule, timeZone="Europe/Berlin"))) == []


def test_cronjob_name_limit() -> None:
    long_name = "c" * 53
    assert errors(cronjobs(), created(cronjobs(), cronjob(long_name))) == [
        f'metadata.name: Invalid value: "{long_name}": must be no more than 52 characters']
    assert errors(cronjobs(), created(cronjobs(), cronjob("c" * 52))) == []
    old = created(cronjobs(), cronjob(long_name))
    assert update_errors(cronjobs(), old, old) == []  # not re-checked on update


def test_cronjob_updates_tolerate_an_existing_tz_schedule() -> None:
    s = cronjobs()
    old = created(s, cronjob(schedule="TZ=UTC 0 * * * *"))
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    assert update_errors(s, new, old) == []
    new["spec"]["timeZone"] = "UTC"
    assert update_errors(s, new, old) == [
        'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use both timeZone field and TZ or CRON_TZ in '
        "schedule"]
    assert s.spec_changed(new, old)


async def test_generic_store_fills_the_uid_before_the_selector_is_generated() -> None:
    """The contract with the generic store: system fields (uid) exist when prepare_for_create runs."""
    from apiserver.registry.generic import ResourceStore
    from apiserver.registry.options import WriteOptions
    from apiserver.storage.errors import NotFound

    class EmptyStorage:  # a dry run only asks whether the name is taken
        async def get(self, key):
            raise NotFound(key)

    info = INFO[("batch", "jobs")]
    store = ResourceStore(info, jobs(), EmptyStorage(), None, None)
    out = await store.create("default", job(), WriteOptions(dry_run=True))
    uid = out["metadata"]["uid"]
    assert uid and out["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert out["spec"]["template"]["metadata"]["labels"]["controller-uid"] == uid
