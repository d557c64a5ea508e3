"""Graph worlds: hop distances, the ball index, moves, generators, and a run on a social graph."""

from __future__ import annotations

import math

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metropolis.agents import RandomWalker
from metropolis.engine import Simulation
from metropolis.kernel import Environment
from metropolis.runtime.virtual import VirtualRuntime
from metropolis.world import World, make_metric
from metropolis.world.graph import HopIndex, HopMetric, social_graph
from metropolis.world.spatial import Pos


def path_plus_island() -> nx.Graph:
    g = nx.path_graph(5)  # 0-1-2-3-4
    g.add_edge(1, 5)
    g.add_node(9)  # alone
    return g


def test_hops_count_edges_and_islands_are_infinitely_far() -> None:
    m = HopMetric(path_plus_island())
    assert m.distance((0, 0), (4, 0)) == 4.0
    assert m.distance((5, 0), (4, 0)) == 4.0
    assert m.distance((5, 0), (5, 0)) == 0.0
    assert m.distance((0, 0), (9, 0)) == math.inf
    assert m.distance_within((0, 0), (3, 0), 3) and not m.distance_within((0, 0), (3, 0), 2.9)


def test_positions_must_be_nodes_and_nodes_ints() -> None:
    m = HopMetric(path_plus_island())
    with pytest.raises(ValueError, match=r"position \(7, 0\) is not \(node, 0\)"):
        m.distance((0, 0), (7, 0))
    with pytest.raises(ValueError, match=r"position \(1, 1\) is not \(node, 0\)"):
        m.distance((0, 0), (1, 1))
    with pytest.raises(ValueError, match="graph nodes must be ints"):
        HopMetric(nx.Graph([("a", "b")]))
    with pytest.raises(ValueError, match="hop metric needs the world's graph"):
        make_metric("hops")


def test_the_index_returns_the_exact_ball_and_follows_moves() -> None:
    m = HopMetric(path_plus_island())
    index = m.make_index()
    assert isinstance(index, HopIndex)
    for key, node in enumerate([0, 2, 4, 5, 9]):
        index.add(key, (node, 0))
    assert sorted(index.near((1, 0), 1)) == [0, 1, 3]
    assert sorted(index.near((1, 0), 1.9)) == [0, 1, 3]
    assert sorted(index.near((1, 0), 3)) == [0, 1, 2, 3]
    assert sorted(index.near((1, 0), math.inf)) == [0, 1, 2, 3, 4]
    assert list(index.near((1, 0), -1)) == []
    index.move(2, (4, 0), (1, 0))
    assert sorted(index.near((1, 0), 0)) == [2]
    index.remove(2, (1, 0))
    assert len(index) == 4


GRAPH = social_graph(60, seed=3, kind="scale_free", degree=4)
HOPS = HopMetric(GRAPH)
nodes = st.sampled_from(sorted(GRAPH.nodes))


@settings(max_examples=100, deadline=None)
@given(st.lists(nodes, min_size=1, max_size=40), nodes, st.floats(0, 6))
def test_index_superset_property_for_hops(spots: list[int], center: int, radius: float) -> None:
    index = HOPS.make_index()
    for key, node in enumerate(spots):
        index.add(key, (node, 0))
    within = {k for k, n in enumerate(spots) if HOPS.distance((center, 0), (n, 0)) <= radius}
    assert within <= set(index.near((center, 0), radius))


@settings(max_examples=150, deadline=None)
@given(nodes, nodes, nodes)
def test_hops_are_a_metric_matching_networkx(a: int, b: int, c: int) -> None:
    d = HOPS.distance
    pa, pb, pc = (a, 0), (b, 0), (c, 0)
    assert d(pa, pc) <= d(pa, pb) + d(pb, pc)
    assert d(pa, pb) == d(pb, pa) == nx.shortest_path_length(GRAPH, a, b)


def test_graph_worlds_move_to_neighbouring_nodes() -> None:
    g = path_plus_island()
    world = World(metric=HopMetric(g), graph=g)
    assert world.moves((1, 0)) == [(0, 0), (2, 0), (5, 0)]
    assert world.moves((9, 0)) == []
    assert world.check_move((1, 0), (5, 0)) is None
    assert "more than V" in (world.check_move((1, 0), (3, 0)) or "")
    assert "not (node, 0)" in (world.check_move((1, 0), (8, 0)) or "")


@pytest.mark.parametrize("kind", ["small_world", "scale_free"])
def test_social_graphs_are_connected_seeded_and_int_labelled(kind: str) -> None:
    g = social_graph(200, seed=11, kind=kind)
    assert sorted(g.nodes) == list(range(200))
    assert nx.is_connected(g)
    assert nx.utils.graphs_equal(g, social_graph(200, seed=11, kind=kind))
    assert not nx.utils.graphs_equal(g, social_graph(200, seed=12, kind=kind))


def test_social_graph_rejects_bad_requests() -> None:
    with pytest.raises(ValueError, match="unknown social graph kind 'ring'; choose one of: small_world"):
        social_graph(10, 0, kind="ring")
    with pytest.raises(ValueError, match="more nodes than that"):
        social_graph(6, 0, degree=6)


def _walk_graph(scheduler: str) -> Simulation:
    g = social_graph(120, seed=2, kind="small_world", degree=4)
    world = World(metric=HopMetric(g), perception_radius=1.0, max_velocity=1.0, graph=g)
    agents = [RandomWalker(f"a{i}", (node, 0)) for i, node in enumerate(range(0, 120, 6))]
    sim = Simulation(world, agents, until=40, scheduler=scheduler, seed=1, check_causality=True, keep_history=True)
    VirtualRuntime(sim, Environment()).run()
    return sim


def test_random_walkers_on_a_social_graph_agree_between_metropolis_and_serial() -> None:
    ooo, serial = _walk_graph("metropolis"), _walk_graph("serial")
    for i in range(len(ooo.agents)):
        assert ooo.history(i) == serial.history(i)
    assert sum(len(s.events) for i in range(len(ooo.agents)) for s in ooo.history(i)) > 0
    visited: set[Pos] = {s.pos for i in range(len(ooo.agents)) for s in ooo.history(i)}
    assert len(visited) > len(ooo.agents)  # they walked
    assert all(y == 0 and 0 <= node < 120 for node, y in visited)
