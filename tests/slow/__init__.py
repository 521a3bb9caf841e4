"""Slow tests (minutes each): skipped unless KUBEMINI_SLOW=1, marked ``slow``."""
