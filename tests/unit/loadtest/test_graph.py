"""The generated social graph: deterministic, symmetric, heavy-tailed."""

from __future__ import annotations

import statistics

import pytest

from loadtest.graph import GraphShape, build_graph


def test_same_seed_gives_the_same_graph() -> None:
    assert build_graph(200, seed=3) == build_graph(200, seed=3)
    assert build_graph(200, seed=3).users != build_graph(200, seed=4).users


def test_connections_are_symmetric_and_never_self() -> None:
    graph = build_graph(300, seed=1)
    for user, friends in graph.adjacency.items():
        assert user not in friends
        for friend in friends:
            assert user in graph.adjacency[friend]
    assert sum(graph.degrees()) == 2 * len(graph.edges)


def test_degrees_are_heavy_tailed_with_a_hub() -> None:
    # GIVEN a few hundred users with the default shape
    graph = build_graph(300, seed=11)
    degrees = sorted(graph.degrees())
    # THEN most have a handful of connections and the hub reaches about half of everyone
    assert 3 <= statistics.median(degrees) <= 12
    assert degrees[-1] >= 140
    assert degrees[-1] > 10 * statistics.median(degrees)


def test_hubs_can_be_turned_off() -> None:
    graph = build_graph(300, seed=11, shape=GraphShape(hubs=0))
    assert max(graph.degrees()) < 150


def test_a_graph_needs_two_people() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        build_graph(1)
