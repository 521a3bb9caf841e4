"""What the runtime remembers about sandboxes and containers, persisted so a restarted runtime knows them again.

One JSON file per object (``<root>/sandboxes/<id>/record.json``, ``<root>/containers/<id>/record.json``),
replaced atomically on every change. The CRI configs are kept as protobuf JSON so status answers echo exactly
what was asked for. Live facts (is the shim still there, has it written ``exit.json``) are re-read from the
system, not trusted from here.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from google.protobuf import json_format

from proto.cri import api_pb2 as cri

SANDBOX_READY, SANDBOX_NOTREADY = "ready", "notready"
CREATED, RUNNING, EXITED, UNKNOWN = "created", "running", "exited", "unknown"


def to_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def from_json(cls, value: dict):
    return json_format.ParseDict(value, cls(), ignore_unknown_fields=True)


def write_atomic(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


@dataclass
class SandboxRecord:
    id: str
    name_key: str
    config: dict  # PodSandboxConfig as protobuf JSON
    created_at: int
    cgroup_parent: str
    cgroup_parent_owned: bool  # we made the parent up (no cgroup_parent asked), so we remove it
    runtime_handler: str = ""
    state: str = SANDBOX_READY
    ip: str = ""
    netns: str = ""  # empty: the host's network
    pinned: dict[str, str] = field(default_factory=dict)  # namespace kind → the file a bind mount keeps it on
    pause_pid: int = 0  # 0: no pause process (only a pod sharing one PID namespace has one)
    shim_pid: int = 0
    rootfs_mounted: bool = False
    shm_mounted: bool = False

    @functools.cached_property
    def pod_config(self) -> cri.PodSandboxConfig:
        """The config, parsed once (it never changes; parsing protobuf JSON is slow). Read-only."""
        return from_json(cri.PodSandboxConfig, self.config)

    @property
    def cgroup_path(self) -> str:
        return f"{self.cgroup_parent.rstrip('/')}/{self.id}"


@dataclass
class ContainerRecord:
    id: str
    sandbox_id: str
    name_key: str
    config: dict  # ContainerConfig as protobuf JSON
    image_id: str
    image_ref: str
    created_at: int
    log_path: str  # absolute, "" when no log was asked for
    cgroup_path: str
    resources: dict = field(default_factory=dict)  # LinuxContainerResources as protobuf JSON (after updates)
    user: dict = field(default_factory=dict)
    state: str = CREATED
    pid: int = 0
    shim_pid: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    rootfs_mounted: bool = False

    @functools.cached_property
    def container_config(self) -> cri.ContainerConfig:
        """The config, parsed once (it never changes; ListContainers reads it for every container). Read-only."""
        return from_json(cri.ContainerConfig, self.config)

    @property
    def linux_resources(self) -> cri.LinuxContainerResources:
        return from_json(cri.LinuxContainerResources, self.resources)


class RecordStore:
    """Directories and record files for one kind of object under ``root``."""

    def __init__(self, root: Path, record_type: type) -> None:
        self.root = root
        self.record_type = record_type
        root.mkdir(parents=True, exist_ok=True)

    def dir(self, object_id: str) -> Path:
        return self.root / object_id

    def save(self, record) -> None:
        directory = self.dir(record.id)
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / "record.json", asdict(record))

    def load_all(self) -> list:
        records = []
        for directory in sorted(self.root.iterdir()):
            try:
                value = json.loads((directory / "record.json").read_text())
            except (OSError, ValueError):
                continue  # a half-created object: removed by the runtime's recovery
            records.append(self.record_type(**value))
        return records
