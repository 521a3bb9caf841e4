"""Scheduler configuration: profiles of plugins, as a KubeSchedulerConfiguration-like YAML file.

kubemini reads the fields of ``kubescheduler.config.k8s.io/v1`` that matter here::

    apiVersion: kubescheduler.config.k8s.io/v1
    kind: KubeSchedulerConfiguration
    percentageOfNodesToScore: 0          # 0: adaptive, as Kubernetes
    podInitialBackoffSeconds: 1
    podMaxBackoffSeconds: 10
    profiles:
    - schedulerName: default-scheduler
      plugins:
        multiPoint: {enabled: [...], disabled: [...]}   # a plugin at every extension point it implements
        score: {enabled: [{name: NodeResourcesFit, weight: 2}], disabled: [{name: ImageLocality}]}
        filter: {disabled: [{name: "*"}], enabled: [...]}
      pluginConfig:
      - name: NodeResourcesFit
        args: {scoringStrategy: {type: MostAllocated}}

As in Kubernetes, the default plugins are enabled through ``multiPoint`` with their default score
weights; a profile's lists are applied on top (``disabled: [{name: "*"}]`` removes the defaults of
that extension point). Unknown fields are ignored; what is wrong (unknown plugin, duplicate
scheduler name, a weight that is not a positive integer) is a :class:`SchedulerConfigError` with one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "kubescheduler.config.k8s.io/v1"
DEFAULT_SCHEDULER_NAME = "default-scheduler"
EXTENSION_POINTS = ("preEnqueue", "queueSort", "preFilter", "filter", "postFilter", "preScore", "score",
                    "reserve", "permit", "preBind", "bind", "postBind")

# The v1.35 default profile (without DynamicResources, which needs DRA), in order, with score weights.
DEFAULT_MULTI_POINT: tuple[tuple[str, int], ...] = (
    ("SchedulingGates", 0), ("PrioritySort", 0), ("NodeUnschedulable", 0), ("NodeName", 0),
    ("TaintToleration", 3), ("NodeAffinity", 2), ("NodePorts", 0), ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0), ("NodeVolumeLimits", 0), ("VolumeBinding", 0), ("VolumeZone", 0),
    ("PodTopologySpread", 2), ("InterPodAffinity", 2), ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1), ("ImageLocality", 1), ("GangScheduling", 0), ("DefaultBinder", 0),
)


class SchedulerConfigError(ValueError):
    """The configuration cannot be used; the message says which field and why."""


@dataclass
class PluginSet:
    enabled: list[tuple[str, int]] = field(default_factory=list)  # (name, weight: 0 = default)
    disabled: list[str] = field(default_factory=list)


@dataclass
class Profile:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    multi_point: PluginSet = field(default_factory=lambda: PluginSet(list(DEFAULT_MULTI_POINT)))
    points: dict[str, PluginSet] = field(default_factory=dict)
    plugin_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    percentage_of_nodes_to_score: int | None = None


@dataclass
class SchedulerConfig:
    profiles: list[Profile] = field(default_factory=lambda: [Profile()])
    percentage_of_nodes_to_score: int = 0
    pod_initial_backoff_seconds: float = 1.0
    pod_max_backoff_seconds: float = 10.0


def load_config(path: str | Path | None, known_plugins: set[str]) -> SchedulerConfig:
    """The configuration in ``path`` (or the default one when None)."""
    if path is None:
        return SchedulerConfig()
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise SchedulerConfigError(f"cannot read scheduler config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SchedulerConfigError(f"scheduler config {path} is not valid YAML: {exc}") from exc
    return parse_config(doc, known_plugins, source=str(path))


def parse_config(doc: Any, known_plugins: set[str], source: str = "config") -> SchedulerConfig:
    if not isinstance(doc, dict):
        raise SchedulerConfigError(f"{source}: expected a KubeSchedulerConfiguration object")
    if doc.get("kind", "KubeSchedulerConfiguration") != "KubeSchedulerConfiguration" or \
            doc.get("apiVersion", API_VERSION) != API_VERSION:
        raise SchedulerConfigError(f"{source}: want apiVersion {API_VERSION}, kind KubeSchedulerConfiguration")
    config = SchedulerConfig(
        percentage_of_nodes_to_score=_percentage(doc.get("percentageOfNodesToScore"), source) or 0,
        pod_initial_backoff_seconds=_positive(doc, "podInitialBackoffSeconds", 1, source),
        pod_max_backoff_seconds=_positive(doc, "podMaxBackoffSeconds", 10, source),
    )
    if config.pod_max_backoff_seconds < config.pod_initial_backoff_seconds:
        raise SchedulerConfigError(f"{source}: podMaxBackoffSeconds must be at least podInitialBackoffSeconds")
    raw_profiles = doc.get("profiles") or [{}]
    if not isinstance(raw_profiles, list):
        raise SchedulerConfigError(f"{source}: profiles must be a list")
    config.profiles = [_profile(raw, i, known_plugins, source) for i, raw in enumerate(raw_profiles)]
    names = [p.scheduler_name for p in config.profiles]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchedulerConfigError(f"{source}: duplicate schedulerName {duplicates[0]!r} in profiles")
    return config


def _profile(raw: Any, index: int, known: set[str], source: str) -> Profile:
    where = f"{source}: profiles[{index}]"
    if not isinstance(raw, dict):
        raise SchedulerConfigError(f"{where} must be an object")
    scheduler_name = raw.get("schedulerName") or DEFAULT_SCHEDULER_NAME
    if not isinstance(scheduler_name, str):
        raise SchedulerConfigError(f"{where}.schedulerName must be a string")
    profile = Profile(scheduler_name=scheduler_name,
                      percentage_of_nodes_to_score=_percentage(raw.get("percentageOfNodesToScore"), where))
    plugins = raw.get("plugins") or {}
    if not isinstance(plugins, dict):
        raise SchedulerConfigError(f"{where}.plugins must be an object keyed by extension point")
    for point, value in plugins.items():
        if point != "multiPoint" and point not in EXTENSION_POINTS:
            raise SchedulerConfigError(f"{where}.plugins: unknown extension point {point!r}")
        plugin_set = _plugin_set(value, f"{where}.plugins.{point}", known)
        if point == "multiPoint":
            base = [] if "*" in plugin_set.disabled else [
                (n, w) for n, w in DEFAULT_MULTI_POINT if n not in plugin_set.disabled]
            enabled_names = {n for n, _ in plugin_set.enabled}
            profile.multi_point = PluginSet([*(p for p in base if p[0] not in enabled_names), *plugin_set.enabled])
        else:
            profile.points[point] = plugin_set
    plugin_config = raw.get("pluginConfig") or []
    if not isinstance(plugin_config, list) or not all(isinstance(e, dict) for e in plugin_config):
        raise SchedulerConfigError(f"{where}.pluginConfig must be a list of {{name, args}} objects")
    for entry in plugin_config:
        name = entry.get("name")
        if name not in known:
            raise SchedulerConfigError(f"{where}.pluginConfig: unknown plugin {name!r}")
        args = entry.get("args") or {}
        if not isinstance(args, dict):
            raise SchedulerConfigError(f"{where}.pluginConfig[{name}].args must be an object")
        profile.plugin_args[name] = args
    return profile


def _plugin_set(value: Any, where: str, known: set[str]) -> PluginSet:
    if not isinstance(value, dict):
        raise SchedulerConfigError(f"{where} must be an object with enabled/disabled lists")
    result = PluginSet()
    for key in ("enabled", "disabled"):
        entries = value.get(key) or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise SchedulerConfigError(f"{where}.{key} must be a list of {{name: ...}} objects")
    for entry in value.get("enabled") or []:
        name, weight = (entry or {}).get("name"), (entry or {}).get("weight", 0)
        if name not in known:
            raise SchedulerConfigError(f"{where}.enabled: unknown plugin {name!r}; known: {', '.join(sorted(known))}")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
            raise SchedulerConfigError(f"{where}.enabled[{name}].weight must be a non-negative integer")
        result.enabled.append((name, weight))
    for entry in value.get("disabled") or []:
        name = (entry or {}).get("name")
        if name != "*" and name not in known:
            raise SchedulerConfigError(f"{where}.disabled: unknown plugin {name!r}")
        result.disabled.append(name)
    return result


def _percentage(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise SchedulerConfigError(f"{where}: percentageOfNodesToScore must be an integer from 0 to 100")
    return value


def _positive(doc: dict, key: str, default: float, where: str) -> float:
    value = doc.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise SchedulerConfigError(f"{where}: {key} must be a positive number of seconds")
    return float(value)
