"""A finished container's termination message: the file it wrote, or the tail of its log.

The kubelet mounts a per-instance host file at ``terminationMessagePath``. With the policy
``FallbackToLogsOnError``, an empty file and a failed container mean the last lines of its log (at most 80
lines and 2,048 bytes, as the kubelet does). Messages are capped at 4,096 bytes.
"""

from __future__ import annotations

from pathlib import Path

from kubelet.pods.runtimestate import ContainerRecord

MAX_MESSAGE = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


def read_termination_message(path: Path, record: ContainerRecord, policy: str) -> str:
    try:
        with open(path, "rb") as file:
            message = file.read(MAX_MESSAGE).decode(errors="replace")
    except OSError:
        message = ""
    if message or policy != "FallbackToLogsOnError" or record.exit_code == 0 or not record.log_path:
        return message
    return log_tail(Path(record.log_path))


def log_tail(path: Path) -> str:
    """The messages of the last lines of a CRI-format log file (partial lines joined)."""
    try:
        with open(path, "rb") as file:
            file.seek(0, 2)
            size = file.tell()
            file.seek(max(0, size - 64 * 1024))
            raw = file.read()
    except OSError:
        return ""
    lines: list[str] = []
    partial = ""
    for line in raw.decode(errors="replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4:
            continue
        partial += parts[3]
        if parts[2] == "F":
            lines.append(partial)
            partial = ""
    text = "\n".join(lines[-FALLBACK_LINES:])
    return text[-FALLBACK_BYTES:]
