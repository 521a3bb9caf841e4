"""The DaemonSet controller package: the controller, its pure placement/rollout planners, its revision history."""

from controllers.daemonset.controller import DaemonSetController

__all__ = ["DaemonSetController"]
