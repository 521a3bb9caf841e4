"""``kubectl get`` columns of the cluster-wide API groups: coordination, discovery, policy, scheduling.

Leases, EndpointSlices, PodDisruptionBudgets and PriorityClasses: small kinds, each with a few
columns straight from their spec and status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apiserver.registry.printers.base import (
    UNSET,
    Printer,
    age_cell,
    age_col,
    col,
    int_or_zero,
    join_more,
    name_cell,
    name_col,
)


def _int_or_string(value: Any) -> str:
    return str(value)


LEASE_COLUMNS = [name_col(), col("Holder", "holderIdentity contains the identity of the holder of a "
                                           "current lease."), age_col()]


def _lease_row(lease: dict, now: datetime) -> list:
    return [name_cell(lease), (lease.get("spec") or {}).get("holderIdentity") or "", age_cell(lease, now)]


ENDPOINTSLICE_COLUMNS = [
    name_col(),
    col("AddressType", "addressType specifies the type of address carried by this EndpointSlice."),
    col("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
    col("Endpoints", "endpoints is a list of unique endpoints in this slice."),
    age_col(),
]


def _endpointslice_row(es: dict, now: datetime) -> list:
    ports = es.get("ports") or ()
    port_cells = []
    for p in ports[:3]:
        if p.get("port") is not None:
            port_cells.append(str(p["port"]))
        elif p.get("name") is not None:
            port_cells.append(p["name"])
        else:
            port_cells.append("*")
    addresses: list[str] = []
    count = 0
    for ep in es.get("endpoints") or ():
        for addr in ep.get("addresses") or ():
            if len(addresses) < 3:
                addresses.append(addr)
            count += 1
    return [
        name_cell(es), es.get("addressType", ""), join_more(port_cells, len(ports), 3, UNSET),
        join_more(addresses, count, 3, UNSET), age_cell(es, now),
    ]


PDB_COLUMNS = [
    name_col(),
    col("Min Available", "The minimum number of pods that must be available."),
    col("Max Unavailable", "The maximum number of pods that may be unavailable."),
    col("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time.", "integer"),
    age_col(),
]


def _pdb_row(pdb: dict, now: datetime) -> list:
    spec = pdb.get("spec") or {}
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    return [
        name_cell(pdb), "N/A" if min_available is None else _int_or_string(min_available),
        "N/A" if max_unavailable is None else _int_or_string(max_unavailable),
        int_or_zero((pdb.get("status") or {}).get("disruptionsAllowed")), age_cell(pdb, now),
    ]


PRIORITYCLASS_COLUMNS = [
    name_col(),
    col("Value", "value represents the integer value of this priority class.", "integer"),
    col("Global-Default", "globalDefault specifies whether this PriorityClass should be considered as the "
                          "default priority for pods that do not have any priority class.", "boolean"),
    age_col(),
    col("PreemptionPolicy", "preemptionPolicy is the Policy for preempting pods with lower priority."),
]


def _priorityclass_row(pc: dict, now: datetime) -> list:
    return [name_cell(pc), int_or_zero(pc.get("value")), bool(pc.get("globalDefault")), age_cell(pc, now),
            pc.get("preemptionPolicy") or ""]


WORKLOAD_COLUMNS = [name_col(), age_col()]


def _workload_row(workload: dict, now: datetime) -> list:
    return [name_cell(workload), age_cell(workload, now)]


PRINTERS = {
    ("coordination.k8s.io", "Lease"): Printer(LEASE_COLUMNS, _lease_row),
    ("discovery.k8s.io", "EndpointSlice"): Printer(ENDPOINTSLICE_COLUMNS, _endpointslice_row),
    ("policy", "PodDisruptionBudget"): Printer(PDB_COLUMNS, _pdb_row),
    ("scheduling.k8s.io", "PriorityClass"): Printer(PRIORITYCLASS_COLUMNS, _priorityclass_row),
    ("scheduling.k8s.io", "Workload"): Printer(WORKLOAD_COLUMNS, _workload_row),
}
