"""Label maps and label selectors as kubectl's columns print them (``a=1,b=2``, ``app in (a,b)``).

Services, workloads and jobs all print selectors, and the text must be exactly what apimachinery's
``labels.FormatLabels`` / ``LabelSelectorAsSelector(...).String()`` produce, including which selectors
are invalid; one implementation serves every printer.
"""

from __future__ import annotations

from apiserver.registry.printers.base import NONE


def format_labels(labels: dict | None) -> str:
    """``labels.FormatLabels``: ``a=1,b=2`` sorted by key, ``<none>`` when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


class InvalidSelector(ValueError):
    """A LabelSelector that cannot be turned into a selector (bad operator or values)."""


def selector_string(selector: dict | None) -> str:
    """``LabelSelectorAsSelector(sel).String()``: ``app=web,tier in (a,b),!legacy``.

    Requirements are sorted by key; ``In``/``NotIn`` values are sorted. A nil or empty selector
    prints as ``""``. Raises :class:`InvalidSelector` for what the Kubernetes conversion rejects.
    """
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or ():
        key = expr.get("key", "")
        op = expr.get("operator")
        values = expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                raise InvalidSelector(f"{key}: values must be non-empty for operator {op}")
            word = "in" if op == "In" else "notin"
            reqs.append((key, f"{key} {word} ({','.join(sorted(values))})"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise InvalidSelector(f"{key}: values must be empty for operator {op}")
            reqs.append((key, key if op == "Exists" else "!" + key))
        else:
            raise InvalidSelector(f"{op!r} is not a valid label selector operator")
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def format_label_selector(selector: dict | None) -> str:
    """``metav1.FormatLabelSelector``: the selector string, ``<none>`` if empty, ``<error>`` if invalid."""
    try:
        text = selector_string(selector)
    except InvalidSelector:
        return "<error>"
    return text or NONE
