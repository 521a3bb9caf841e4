"""kubemini's controller-manager: the reconcile loops that make workloads real (``python -m controllers``)."""
