"""The Deployment controller package (see :mod:`controllers.deployment.controller`).

Modules: ``controller`` (informers, event handlers, ``reconcile``), ``sync`` (one sync's shared
operations: new/old ReplicaSets, scaling, history cleanup, status writes), ``rolling`` and
``recreate`` (the two strategies), ``progress`` (status and conditions), ``util`` (pure arithmetic:
template hash, revisions, fenceposts).
"""

from controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
