"""kubemini's scheduler (``python -m scheduler``): assigns pods to nodes through the scheduling framework."""
