"""The Namespace strategy: DNS-label names, the ``kubernetes`` finalizer, Active → Terminating.

Kubernetes keeps a deleted namespace until its namespace controller has emptied it and removed
``kubernetes`` from ``spec.finalizers`` (through the ``finalize`` subresource). The generic store
knows only ``metadata.finalizers``, so this strategy exposes hooks for the store to call:

- :meth:`NamespaceStrategy.on_delete_mark` — called when the store sets ``deletionTimestamp``:
  sets ``status.phase: Terminating`` (mutates the object it is given);
- :meth:`NamespaceStrategy.blocks_deletion` — True while ``spec.finalizers`` is non-empty: the
  store must keep the object (as it does for ``metadata.finalizers``);
- :meth:`NamespaceStrategy.prepare_for_finalize` / :meth:`NamespaceStrategy.validate_finalize` —
  the ``namespaces/{name}/finalize`` update: only ``spec.finalizers`` may change.

Every namespace also carries the immutable label ``kubernetes.io/metadata.name: <name>``.
"""

from __future__ import annotations

import copy

from apiserver.registry.builtin import register
from apiserver.registry.core.common import as_list, as_str, meta_of, qualified_name, spec_of, status_of
from apiserver.registry.strategy import Obj, Strategy
from machinery.errors import FieldError, invalid_value

FINALIZER_KUBERNETES = "kubernetes"
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
NAME_LABEL = "kubernetes.io/metadata.name"


@register("", "namespaces")
class NamespaceStrategy(Strategy):
    name_rule = "label"
    selectable_fields = ("status.phase",)

    def default(self, obj: Obj) -> None:
        meta = obj.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta["name"]:
            labels = meta.get("labels")
            if not isinstance(labels, dict):
                labels = meta["labels"] = {}
            labels[NAME_LABEL] = meta["name"]

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        finalizers = list(as_list(spec.get("finalizers")))
        if FINALIZER_KUBERNETES not in finalizers:
            finalizers.append(FINALIZER_KUBERNETES)
        spec["finalizers"] = finalizers
        super().prepare_for_create(obj)

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """spec.finalizers change only through ``finalize``; status only through ``status``."""
        super().prepare_for_update(new, old)
        old_spec = spec_of(old)
        if "finalizers" in old_spec:
            new.setdefault("spec", {})
            if isinstance(new["spec"], dict):
                new["spec"]["finalizers"] = copy.deepcopy(old_spec["finalizers"])
        elif isinstance(new.get("spec"), dict):
            new["spec"].pop("finalizers", None)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_spec_finalizers(spec_of(obj).get("finalizers"))

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        phase = status_of(new).get("phase")
        if not meta_of(new).get("deletionTimestamp"):
            if phase != "Active":
                return [invalid_value("status.Phase", phase or "",
                                      "may only be 'Active' if `deletionTimestamp` is empty")]
        elif phase != "Terminating":
            return [invalid_value("status.Phase", phase or "",
                                  "may only be 'Terminating' if `deletionTimestamp` is not empty")]
        return []

    # --- deletion hooks (wired by the generic store) -------------------------------------------

    def on_delete_mark(self, obj: Obj) -> None:
        """The store is setting ``deletionTimestamp``: the namespace is now Terminating."""
        status = obj.get("status")
        if not isinstance(status, dict):
            status = obj["status"] = {}
        status["phase"] = "Terminating"

    def blocks_deletion(self, obj: Obj) -> bool:
        """Kept while ``spec.finalizers`` is non-empty (the namespace controller empties it)."""
        return bool(as_list(spec_of(obj).get("finalizers")))

    def prepare_for_finalize(self, new: Obj, old: Obj) -> None:
        """``finalize`` subresource: everything but ``spec.finalizers`` comes from the stored object."""
        finalizers = copy.deepcopy(as_list(spec_of(new).get("finalizers")))
        new.clear()
        new.update(copy.deepcopy(old))
        spec = new.get("spec")
        if not isinstance(spec, dict):
            spec = new["spec"] = {}
        if finalizers:
            spec["finalizers"] = finalizers
        else:
            spec.pop("finalizers", None)

    def validate_finalize(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_spec_finalizers(spec_of(new).get("finalizers"))


def validate_spec_finalizers(finalizers: object) -> list[FieldError]:
    errs: list[FieldError] = []
    for value in as_list(finalizers):
        name = as_str(value)
        errs += qualified_name(name, "spec.finalizers")
        if "/" not in name and name not in STANDARD_FINALIZERS:
            errs.append(invalid_value("spec.finalizers", name,
                                      "name is neither a standard finalizer name nor is it fully qualified"))
    return errs
