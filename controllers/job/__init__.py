"""The Job controller package: :class:`JobController` (controller.py), its status rules (status.py), pod
building and create/delete plans (pods.py) and pure Job/Pod facts (util.py)."""

from controllers.job.controller import JobController

__all__ = ["JobController"]
