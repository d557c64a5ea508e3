import numpy as np
import pytest

from metropolis.memory import exact_distances, simulate_hits
from metropolis.memory.tracesim import Access


def test_hand_sequence_lru_against_belady():
    accesses = [(0, 0), (0, 1), (1, 0), (1, 2), (2, 1)]
    sizes = {0: 10, 1: 10, 2: 10}
    lru = simulate_hits(accesses, "lru", 20, sizes)
    belady = simulate_hits(accesses, "belady", 20, sizes)
    assert (lru.hits, lru.bytes_in) == (1, 40)
    assert (belady.hits, belady.bytes_in, belady.hit_rate) == (2, 30, 0.4)


def test_prefetch_turns_demand_misses_into_hits():
    accesses = [(s, a) for s, a in enumerate([0, 1, 2, 0, 1, 2])]
    sizes = dict.fromkeys(range(3), 1)
    exact = exact_distances(accesses)
    demand = simulate_hits(accesses, "scalesim", 2, sizes, exact)
    ahead = simulate_hits(accesses, "scalesim", 2, sizes, exact, prefetch=1)
    assert (demand.hits, demand.bytes_in) == (2, 4)
    assert (ahead.hits, ahead.prefetch_hits, ahead.bytes_in, ahead.bytes_prefetched) == (6, 5, 0, 5)
    assert ahead.bytes_moved == 5


def test_exact_distances_in_steps_and_in_accesses():
    accesses = [(0, 0), (0, 1), (4, 0), (9, 1)]
    steps, index = exact_distances(accesses), exact_distances(accesses, unit="index")
    assert [steps(0, 1), steps(1, 1), steps(1, 3), steps(2, 0)] == [4.0, 0.0, 0.0, float("inf")]
    assert [index(0, 1), index(1, 2)] == [1.0, 1.0]
    with pytest.raises(ValueError, match="unit"):
        exact_distances(accesses, unit="seconds")


def test_simulate_validates():
    with pytest.raises(ValueError, match="no accesses"):
        simulate_hits([], "lru", 10, {})
    with pytest.raises(ValueError, match="no state size for agents \\[3\\]"):
        simulate_hits([(0, 3)], "lru", 10, {0: 1})
    with pytest.raises(ValueError, match="below the largest agent state"):
        simulate_hits([(0, 0)], "lru", 10, {0: 11})


def test_synthetic_is_repeatable_and_clustered_by_step():
    a = synthetic_accesses(30, 50, np.random.default_rng(3))
    assert a == synthetic_accesses(30, 50, np.random.default_rng(3))
    assert [s for s, _ in a] == sorted(s for s, _ in a)
    assert {x for _, x in a} <= set(range(30))


def test_invocation_distance_is_near_belady_and_beats_lru_when_memory_is_tight():
    rng = np.random.default_rng(0)
    accesses = synthetic_accesses(60, 120, rng)
    sizes = {a: int(rng.integers(500, 2001)) * 131_072 for a in range(60)}
    capacity = int(0.15 * sum(sizes.values()))
    exact = exact_distances(accesses)
    lru = simulate_hits(accesses, "lru", capacity, sizes)
    scalesim = simulate_hits(accesses, "scalesim", capacity, sizes, exact)
    ahead = simulate_hits(accesses, "scalesim", capacity, sizes, exact, prefetch=6)
    belady = simulate_hits(accesses, "belady", capacity, sizes)
    assert scalesim.hit_rate >= 0.95 * belady.hit_rate
    assert lru.hit_rate < scalesim.hit_rate and lru.bytes_in > scalesim.bytes_in
    assert ahead.hit_rate > scalesim.hit_rate and ahead.bytes_in < scalesim.bytes_in


def synthetic_accesses(
    n_agents: int,
    steps: int,
    rng: np.random.Generator,
    *,
    idle_steps: tuple[int, int] = (3, 30),
    sleepers: float = 0.2,
    chat_rate: float = 0.05,
) -> list[Access]:
    """A Smallville-like sequence for these tests (real runs replay a simulated Smallville's accesses): agents
    alternate idle stretches (walking, working, asleep) and short bursts.

    A burst is 1-3 consecutive steps of 1-4 calls each; a conversation (rate `chat_rate` per active
    agent-step) pairs the agent with a random partner for 8-16 alternating calls in that step. A fraction
    `sleepers` of agents idle ten times longer. Within a step, agents come in random order, each agent's calls
    together.
    """
    next_active = rng.integers(0, idle_steps[1], size=n_agents)
    burst_left = np.zeros(n_agents, dtype=int)
    slow = rng.random(n_agents) < sleepers
    out: list[Access] = []
    for step in range(steps):
        active = [a for a in range(n_agents) if burst_left[a] > 0 or next_active[a] == step]
        rng.shuffle(active)
        for a in active:
            if burst_left[a] == 0:
                burst_left[a] = rng.integers(1, 4)
            if rng.random() < chat_rate and n_agents > 1:
                b = int((a + rng.integers(1, n_agents)) % n_agents)
                out.extend((step, x) for _ in range(rng.integers(4, 9)) for x in (a, b))
            else:
                out.extend((step, int(a)) for _ in range(rng.integers(1, 5)))
            burst_left[a] -= 1
            if burst_left[a] == 0:
                idle = rng.integers(idle_steps[0], idle_steps[1] + 1) * (10 if slow[a] else 1)
                next_active[a] = step + 1 + idle
    return out
