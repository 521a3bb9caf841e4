"""How ocirun fails: one exception type, reported like runc reports it.

runc writes its errors to ``--log`` (JSON lines ``{"level":"error","msg":...}`` with ``--log-format json``) and to
stderr, and exits non-zero; the shim reads the log (``runc_error``) and the runtime reads stderr, mapping
"does not exist" to NotFound. :func:`report` does the same.
"""

from __future__ import annotations

import json
import os
import sys
import time


class Failure(Exception):
    """A command failed; the message is what runc would print (exit status 1 unless told otherwise)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error) or type(error).__name__


def report(message: str, log_path: str | None, log_format: str) -> None:
    if log_path:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if log_format == "json":
            line = json.dumps({"level": "error", "msg": message, "time": stamp})
        else:
            line = f'time="{stamp}" level=error msg="{message}"'
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError:
            pass
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
