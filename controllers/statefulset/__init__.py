"""The StatefulSet controller package (see :mod:`controllers.statefulset.controller`)."""

from controllers.statefulset.controller import StatefulSetController

__all__ = ["StatefulSetController"]
