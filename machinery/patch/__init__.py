"""The patch algorithms the API server applies to PATCH requests, as pure functions on JSON values.

Kubernetes clients send three patch formats (reference/kubectl-requests.md §7): JSON merge patch
(RFC 7386, ``merge.py``), JSON patch (RFC 6902, ``json_patch.py``) and strategic merge patch
(``strategic.py``, which reads per-field metadata through the ``PatchSchema`` of ``schema.py``).
They live here, free of I/O and of the API server, so they can be property-tested and reused by any
component. Import the functions from their modules; this package only defines the one error they share.
"""

from __future__ import annotations


class PatchError(ValueError):
    """The patch is malformed or cannot be applied to the object; ``message`` says why, for the user.

    ``code`` is the HTTP status kube-apiserver answers for the failure: 400 (Bad Request) for a patch
    that is malformed, 422 (Unprocessable Entity) for a well-formed JSON patch whose operations fail
    against the object (a ``test`` that does not hold, a path that does not exist).
    """

    def __init__(self, message: str, *, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
