"""Server-side Table printing (`kubectl get` columns) for every built-in kind.

kubectl asks for ``application/json;as=Table;g=meta.k8s.io;v=v1`` and prints the cells it gets
back verbatim, so the API server decides what ``kubectl get pods`` shows: the columns, their
order, which ones only ``-o wide`` shows (``priority: 1``), and every formatted cell (``1/2``,
``CrashLoopBackOff``, ``3 (5m ago)``, ``80:30080/TCP``, ages like ``5m10s``). The columns and the
cell logic follow kube-apiserver's printers (``pkg/printers/internalversion``) for v1.35, written
here from their documented behaviour.

Like the real server, a printer always renders the wide cells too; kubectl hides priority-1
columns unless asked for ``-o wide``.

Entry points:

* :func:`printer_for` (group, kind) → :class:`Printer`; unknown kinds get the default convertor's
  ``Name`` / ``Created At`` (raw RFC 3339) columns.
* :func:`table` builds the ``meta.k8s.io/v1`` Table dict (rows carry PartialObjectMetadata, the
  full object, or nothing, per ``includeObject``).
* :func:`column_definitions` gives the JSON column list alone (watch sends it on the first event
  only).

The package is split by job: ``base`` (Column, Printer, shared helpers, Table assembly),
``selectors`` (label and selector text), one module per family of kinds (``pods``, ``core``,
``events``, ``workloads``, ``cluster``) and ``kinds`` (the lookup). This module only re-exports
their public names, so ``from apiserver.registry.printers import ...`` is the one import to use.
"""

from __future__ import annotations

from apiserver.registry.printers.base import (
    INCLUDE_OBJECT_VALUES,
    NONE,
    UNSET,
    Column,
    ConditionsFunc,
    Printer,
    RowFunc,
    column_definitions,
    table,
)
from apiserver.registry.printers.cluster import (
    ENDPOINTSLICE_COLUMNS,
    LEASE_COLUMNS,
    PDB_COLUMNS,
    PRIORITYCLASS_COLUMNS,
)
from apiserver.registry.printers.core import (
    CONFIGMAP_COLUMNS,
    ENDPOINTS_COLUMNS,
    NAMESPACE_COLUMNS,
    NODE_COLUMNS,
    PV_COLUMNS,
    PVC_COLUMNS,
    RESOURCEQUOTA_COLUMNS,
    SECRET_COLUMNS,
    SERVICE_COLUMNS,
    SERVICEACCOUNT_COLUMNS,
    access_modes,
    format_endpoints,
    node_roles,
    service_ports,
)
from apiserver.registry.printers.events import EVENT_COLUMNS
from apiserver.registry.printers.kinds import DEFAULT_COLUMNS, DEFAULT_PRINTER, printer_for
from apiserver.registry.printers.pods import POD_COLUMNS, pod_status_reason
from apiserver.registry.printers.selectors import (
    InvalidSelector,
    format_label_selector,
    format_labels,
    selector_string,
)
from apiserver.registry.printers.workloads import (
    CONTROLLERREVISION_COLUMNS,
    CRONJOB_COLUMNS,
    DAEMONSET_COLUMNS,
    DEPLOYMENT_COLUMNS,
    JOB_COLUMNS,
    REPLICASET_COLUMNS,
    STATEFULSET_COLUMNS,
    controller_name,
    job_status,
)

__all__ = [
    "CONFIGMAP_COLUMNS",
    "CONTROLLERREVISION_COLUMNS",
    "CRONJOB_COLUMNS",
    "DAEMONSET_COLUMNS",
    "DEFAULT_COLUMNS",
    "DEFAULT_PRINTER",
    "DEPLOYMENT_COLUMNS",
    "ENDPOINTSLICE_COLUMNS",
    "ENDPOINTS_COLUMNS",
    "EVENT_COLUMNS",
    "INCLUDE_OBJECT_VALUES",
    "JOB_COLUMNS",
    "LEASE_COLUMNS",
    "NAMESPACE_COLUMNS",
    "NODE_COLUMNS",
    "NONE",
    "PDB_COLUMNS",
    "POD_COLUMNS",
    "PRIORITYCLASS_COLUMNS",
    "PVC_COLUMNS",
    "PV_COLUMNS",
    "REPLICASET_COLUMNS",
    "RESOURCEQUOTA_COLUMNS",
    "SECRET_COLUMNS",
    "SERVICEACCOUNT_COLUMNS",
    "SERVICE_COLUMNS",
    "STATEFULSET_COLUMNS",
    "UNSET",
    "Column",
    "ConditionsFunc",
    "InvalidSelector",
    "Printer",
    "RowFunc",
    "access_modes",
    "column_definitions",
    "controller_name",
    "format_endpoints",
    "format_label_selector",
    "format_labels",
    "job_status",
    "node_roles",
    "pod_status_reason",
    "printer_for",
    "selector_string",
    "service_ports",
    "table",
]
