"""The ``ocirun`` executable the runtime points its ``--runc`` at when started with ``--backend process``.

The shim runs "runc" with posix_spawn and the runtime with asyncio subprocesses, so the backend must be a real
executable file. Rather than rely on a ``python3`` on PATH with this repository importable, the runtime writes a
two-line script at start-up whose shebang is its own interpreter in ``-S`` mode (only the standard library,
nothing from site-packages, fast to start) and which puts this checkout first on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[3]  # the directory holding the ``kubelet`` package
MAX_SHEBANG = 255  # the kernel's limit (BINPRM_BUF_SIZE 256, Linux >= 5.1)


def script(python: str = sys.executable) -> str:
    body = (f"import sys\nsys.path.insert(0, {str(SOURCE_ROOT)!r})\n"
            "from kubelet.runtime.process.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    shebang = f"#!{python} -S"
    if len(shebang) < MAX_SHEBANG and " " not in python:
        return f"{shebang}\n{body}"
    quoted = body.replace("'", "'\"'\"'")
    return f"#!/bin/sh\nexec '{python}' -S -c '{quoted}' \"$@\"\n"


def install(directory: Path, python: str = sys.executable) -> str:
    """Write ``directory/ocirun`` (atomically, mode 0755) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ocirun"
    tmp = directory / f".ocirun.{os.getpid()}"
    tmp.write_text(script(python))
    tmp.chmod(0o755)
    os.replace(tmp, path)
    return str(path)
