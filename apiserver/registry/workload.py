"""Helpers shared by the workload-like strategies (apps, batch, policy, discovery).

Kubernetes' validators for these kinds share a handful of rules — int-or-percent fields, a label
selector that must match a pod template, non-negative counters, immutable selectors — and they
print offending values the way Go's ``%#v`` does (``map[string]string{"app":"x"}``,
``v1.LabelSelector{...}``, ``intstr.IntOrString{...}``), which users paste into searches. Keeping
those rules and renderings in one place keeps the per-kind modules short and the texts identical.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from apiserver.registry.core.podspec import default_pod_spec
from apiserver.registry.strategy import Obj, Strategy
from machinery import errors as api
from machinery.errors import FieldError
from machinery.labels import SelectorError, selector_from_label_selector, validate_label_selector
from machinery.validation import regex_error, validate_nonnegative_field

SELECTOR_MISMATCH = "`selector` does not match template `labels`"
NOT_MORE_THAN = "cannot be greater than status.replicas"

# --- Go's %#v rendering of field-error values ------------------------------------------------------


class GoValue:
    """A field-error value whose text is given verbatim (``FieldError`` renders it with ``str``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"GoValue({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoValue) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _quote(value: Any) -> str:
    return orjson.dumps(value if isinstance(value, str) else str(value)).decode()


def _go_string_map(labels: dict | None) -> str:
    if labels is None:
        return "map[string]string(nil)"
    pairs = ", ".join(f"{_quote(k)}:{_quote(v)}" for k, v in sorted(labels.items()))
    return "map[string]string{" + pairs + "}"


def go_labels(labels: dict | None) -> GoValue:
    """``map[string]string{"app":"x"}`` (keys sorted, as fmt prints maps)."""
    return GoValue(_go_string_map(labels))


def go_selector(selector: dict | None) -> GoValue | None:
    """``v1.LabelSelector{MatchLabels:..., MatchExpressions:...}``; None renders as ``null``."""
    if selector is None:
        return None
    expressions = selector.get("matchExpressions")
    if expressions is None:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    else:
        items = []
        for expr in expressions:
            values = expr.get("values")
            values_text = "[]string(nil)" if values is None else (
                "[]string{" + ", ".join(_quote(v) for v in values) + "}")
            items.append(f'v1.LabelSelectorRequirement{{Key:{_quote(expr.get("key") or "")}, '
                         f'Operator:{_quote(expr.get("operator") or "")}, Values:{values_text}}}')
        rendered = "[]v1.LabelSelectorRequirement{" + ", ".join(items) + "}"
    return GoValue(f"v1.LabelSelector{{MatchLabels:{_go_string_map(selector.get('matchLabels'))}, "
                   f"MatchExpressions:{rendered}}}")


def go_int_or_string(value: Any) -> GoValue:
    """``intstr.IntOrString{Type:1, IntVal:0, StrVal:"25%"}``."""
    if isinstance(value, str):
        return GoValue(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{_quote(value)}}}")
    return GoValue(f'intstr.IntOrString{{Type:0, IntVal:{int(value or 0)}, StrVal:""}}')


def json_value(value: Any) -> GoValue | None:
    """Larger structs: compact JSON is far more readable than Go's struct dump."""
    return None if value is None else GoValue(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())


# --- defaulting and validation helpers -------------------------------------------------------------


def child(parent: Obj, key: str) -> Obj:
    """``parent[key]`` as a dict, created when missing or null (Go's zero-valued struct)."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def set_default(obj: Obj, key: str, value: Any) -> None:
    """Set ``key`` unless it holds a value (JSON null counts as unset, like a nil pointer)."""
    if obj.get(key) is None:
        obj[key] = value


def default_template(spec: Obj, key: str = "template") -> None:
    template = spec.get(key)
    if isinstance(template, dict):
        default_pod_spec(child(template, "spec"))


def nonneg(obj: Obj, key: str, path: str) -> list[FieldError]:
    return validate_nonnegative_field(obj.get(key), path)


PERCENT_MSG = regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                          "[0-9]+%", "1%", "93%")


def percent_of(value: Any) -> int | None:
    if isinstance(value, str) and len(value) > 1 and value.endswith("%") and value[:-1].isascii() \
            and value[:-1].isdigit():
        return int(value[:-1])
    return None


def int_or_percent_value(value: Any) -> int:
    """getIntOrPercentValue: the number of a percentage, an int as is, anything else 0."""
    percent = percent_of(value)
    if percent is not None:
        return percent
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("+-").isdigit():
        return int(value)
    return 0


def validate_int_or_percent(value: Any, path: str, *, max_100: bool = True) -> list[FieldError]:
    """ValidatePositiveIntOrPercent (+ IsNotMoreThan100Percent when ``max_100``)."""
    if value is None:
        return []
    if isinstance(value, str):
        if percent_of(value) is None:
            return [api.invalid_value(path, go_int_or_string(value), PERCENT_MSG)]
        if max_100 and (percent_of(value) or 0) > 100:
            return [api.invalid_value(path, go_int_or_string(value), "must not be greater than 100%")]
        return []
    return validate_nonnegative_field(value, path)


def validate_selector(spec: Obj, path: str, kind_word: str) -> tuple[list[FieldError], Any]:
    """The selector checks every workload shares; returns the errors and the compiled selector.

    The compiled selector is None when the selector does not convert (Kubernetes then skips the
    template match); a missing selector compiles to "nothing", which matches no template.
    """
    selector = spec.get("selector")
    errs: list[FieldError] = []
    if selector is None:
        errs.append(api.required(f"{path}.selector"))
    else:
        errs += validate_label_selector(selector, f"{path}.selector")
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errs.append(api.invalid_value(f"{path}.selector", go_selector(selector),
                                          f"empty selector is invalid for {kind_word}"))
    try:
        return errs, selector_from_label_selector(selector)
    except (SelectorError, ValueError):
        return errs, None


def template_labels(template: Obj | None) -> dict | None:
    return ((template or {}).get("metadata") or {}).get("labels")


def check_template_labels(compiled: Any, template: Obj | None, path: str) -> list[FieldError]:
    """``selector`` must match the template's labels (an empty selector matches anything)."""
    if compiled is None or compiled.empty:
        return []
    labels = template_labels(template)
    if compiled.matches(labels or {}):
        return []
    return [api.invalid_value(f"{path}.metadata.labels", go_labels(labels), SELECTOR_MISMATCH)]


def check_always_restart(template: Obj | None, path: str, kind: str) -> list[FieldError]:
    pod_spec = (template or {}).get("spec") or {}
    errs = []
    policy = pod_spec.get("restartPolicy") or ""
    if policy != "Always":
        errs.append(api.not_supported(f"{path}.spec.restartPolicy", policy, ["Always"]))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        errs.append(api.forbidden(f"{path}.spec.activeDeadlineSeconds",
                                  f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def semantic(value: Any) -> Any:
    """Drop nulls and empty strings/lists/maps so equality reads like Go's Semantic.DeepEqual."""
    if isinstance(value, dict):
        cleaned = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def immutable_selector(new: Obj, old: Obj, path: str = "spec.selector") -> list[FieldError]:
    new_sel, old_sel = (new.get("spec") or {}).get("selector"), (old.get("spec") or {}).get("selector")
    if semantic(new_sel) == semantic(old_sel):
        return []
    return [api.invalid_value(path, go_selector(new_sel), "field is immutable")]


def status_counters(status: Obj, fields: tuple[str, ...], path: str = "status") -> list[FieldError]:
    errs: list[FieldError] = []
    for name in fields:
        errs += nonneg(status, name, f"{path}.{name}")
    return errs


def not_above(status: Obj, name: str, limit: str, message: str, path: str = "status") -> list[FieldError]:
    value = status.get(name) or 0  # Go's counters are plain int32s: absent means 0
    if value > (status.get(limit) or 0):
        return [api.invalid_value(f"{path}.{name}", value, message)]
    return []


def collision_count_decrement(new: Obj, old: Obj) -> list[FieldError]:
    new_count = (new.get("status") or {}).get("collisionCount")
    old_count = (old.get("status") or {}).get("collisionCount")
    if old_count is not None and (new_count is None or new_count < old_count):
        return [api.invalid_value("status.collisionCount", new_count or 0, "cannot be decremented")]
    return []


# --- shared base -----------------------------------------------------------------------------------


class WorkloadStrategy(Strategy):
    """A workload: generation counts spec changes; a new object starts with Go's zero status."""

    tracks_generation = True
    zero_status: Obj = {}

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = copy.deepcopy(self.zero_status)
