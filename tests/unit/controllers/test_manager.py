"""Choosing controllers the way kube-controller-manager's --controllers flag does."""

from __future__ import annotations

import pytest

from controllers.manager import CONTROLLERS, select_controllers


def names(spec):
    return sorted(cls.NAME for cls in select_controllers(spec))


def test_star_enables_all_and_minus_disables():
    assert names(["*"]) == sorted(CONTROLLERS)
    assert names([]) == sorted(CONTROLLERS)
    assert "garbagecollector" not in names(["*", "-garbagecollector"])
    assert names(["replicaset", "deployment"]) == ["deployment", "replicaset"]


def test_kubernetes_names_are_accepted():
    assert names(["replicaset-controller", "garbage-collector-controller"]) == ["garbagecollector", "replicaset"]
    assert "namespace" not in names(["*", "-namespace-controller"])


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown controller\(s\): nope; known: .*deployment, .*replicaset"):
        select_controllers(["nope"])
