"""The process backend: ``ocirun``, an OCI runtime command line written in Python, for machines without runc.

It implements exactly the part of runc's interface that kubemini's runtime uses (``create``, ``start``, ``state``,
``kill``, ``delete``, ``update``, ``exec``; see ``kubelet/runtime/runc.py`` and ``shim.py``), with the same
arguments, state semantics and error reporting, so the runtime selects it just by pointing its ``--runc`` at it:
``python -m kubelet.runtime --backend process``. Containers are made with namespaces (unshare/setns), cgroup v1
directories written directly, bind/proc/tmpfs mounts and pivot_root, all from the bundle's ``config.json``.
Only the standard library and ctypes are used, so it runs under ``python -S`` like the shim.
What differs from runc is listed in ``docs/process-backend.md``.
"""
