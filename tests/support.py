"""Helpers shared by the integration and end-to-end tests (fixtures live in tests/conftest.py).

``wait_for`` is the one kubemini's harness gives its users (:func:`kubemini.testing.wait_for`): our own tests poll
the same way.
"""

from __future__ import annotations

from kubemini.testing import wait_for

__all__ = ["wait_for"]
