import math
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metropolis.memory import (
    BeladyPolicy,
    InvocationDistancePolicy,
    LRUPolicy,
    MemoryManager,
    Place,
    StateKind,
    StateSpec,
    TierConfig,
    eviction_policy_names,
    exact_distances,
    make_eviction_policy,
    simulate_hits,
)
from metropolis.memory.tiers import Entry


def entry(agent: int, last_access: float) -> Entry:
    return Entry(StateSpec(agent, StateKind.LORA, 1), last_access=last_access)


def evictions(policy_name: str, sequence: list[int], capacity: int) -> list[tuple[int, ...]]:
    """Admit `sequence` (unit-sized agents, `capacity` slots); the agents each admission evicted."""
    accesses = [(i, a) for i, a in enumerate(sequence)]
    clock = [0]
    exact = exact_distances(accesses, unit="index")
    policy = make_eviction_policy(
        policy_name, distance=lambda a: exact(a, clock[0]), future=[(i, a) for i, a in enumerate(sequence)]
    )
    mm = MemoryManager(TierConfig(gpu_bytes=capacity, host_bytes=100), policy, recompute=lambda t: math.inf)
    for a in set(sequence):
        mm.register([StateSpec(a, StateKind.LORA, 1)], Place.HOST)
    out = []
    for i, a in enumerate(sequence):
        clock[0] = i
        out.append(tuple(agent for agent, _ in mm.admit(a, i).evicted))
        mm.release(a, i)
    return out


def test_convention_smallest_key_is_evicted_first():
    lru = LRUPolicy()
    assert lru.eviction_key(entry(0, 1.0), 5.0) < lru.eviction_key(entry(1, 2.0), 5.0)
    distance = {0: 3.0, 1: 7.0, 2: 7.0}.__getitem__
    idp = InvocationDistancePolicy(distance)
    keys = sorted([entry(0, 0.0), entry(1, 4.0), entry(2, 2.0)], key=lambda e: idp.eviction_key(e, 5.0))
    assert [e.agent for e in keys] == [2, 1, 0]  # furthest first; the tie 1/2 goes to the less recent


def test_lru_evicts_the_least_recently_used():
    # A B A C B with two slots: C evicts B (A was used since), then B evicts A.
    assert evictions("lru", [0, 1, 0, 2, 1], 2) == [(), (), (), (1,), (0,)]


def test_belady_evicts_the_agent_used_furthest_in_the_future():
    # C evicts A (never used again) so that B hits.
    assert evictions("belady", [0, 1, 0, 2, 1], 2) == [(), (), (), (0,), ()]
    # the last access finds two agents never used again: the tie goes to the less recent (1)
    assert evictions("belady", [0, 1, 2, 0, 1, 2, 0], 2) == [(), (), (1,), (), (0,), (), (1,)]


def test_invocation_distance_with_exact_distances_evicts_like_belady():
    seq = [0, 1, 2, 0, 1, 2, 0, 3, 1, 3, 2]
    assert evictions("invocation-distance", seq, 2) == evictions("belady", seq, 2)
    assert evictions("lru", seq, 2) != evictions("belady", seq, 2)


def test_belady_next_use_walks_a_time_keyed_future():
    b = BeladyPolicy([(1.0, 0), (3.0, 0), (3.0, 1), (9.0, 0)])
    assert b.next_use(0, 0.0) == 1.0 and b.next_use(1, 0.0) == 3.0
    b.observe(0, 1.0)
    assert b.next_use(0, 1.0) == 3.0
    assert b.next_use(0, 3.0) == 3.0  # due now: the access at 3 has not happened yet
    b.observe(0, 3.0)
    assert b.next_use(0, 3.0) == 9.0 and b.next_need(0, 4.0) == 5.0
    assert b.next_use(2, 0.0) == math.inf


def test_registry_and_aliases():
    assert eviction_policy_names() == ["lru", "invocation-distance", "scalesim", "belady"]
    assert make_eviction_policy("scalesim", distance=lambda a: 0.0).name == "invocation-distance"
    valid = "choose one of: lru, invocation-distance, scalesim, belady"
    with pytest.raises(ValueError, match=f"unknown eviction policy 'fifo'; {valid}"):
        make_eviction_policy("fifo")
    with pytest.raises(ValueError, match="needs an invocation-distance estimator"):
        make_eviction_policy("invocation-distance")
    with pytest.raises(ValueError, match="needs the recorded future"):
        make_eviction_policy("belady")


def optimal_hits(sequence: tuple[int, ...], capacity: int) -> int:
    """Brute force over every eviction choice of demand paging with unit-sized entries."""

    @cache
    def best(i: int, cached: frozenset[int]) -> int:
        if i == len(sequence):
            return 0
        a = sequence[i]
        if a in cached:
            return 1 + best(i + 1, cached)
        if len(cached) < capacity:
            return best(i + 1, cached | {a})
        return max(best(i + 1, (cached - {v}) | {a}) for v in cached)

    return best(0, frozenset())


sequences = st.lists(st.integers(0, 4), min_size=1, max_size=11)


@settings(max_examples=150, deadline=None)
@given(sequences, st.integers(1, 3))
def test_belady_is_optimal_on_tiny_sequences(seq, capacity):
    accesses = [(i, a) for i, a in enumerate(seq)]
    sizes = dict.fromkeys(set(seq), 1)
    assert simulate_hits(accesses, "belady", capacity, sizes).hits == optimal_hits(tuple(seq), capacity)
    assert simulate_hits(accesses, "lru", capacity, sizes).hits <= optimal_hits(tuple(seq), capacity)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=30),
    st.integers(2, 12),
    st.randoms(use_true_random=False),
)
def test_exact_invocation_distance_matches_belady(seq, capacity, rnd):
    accesses = [(i, a) for i, a in enumerate(seq)]
    sizes = {a: rnd.randint(1, 2) for a in set(seq)}
    exact = exact_distances(accesses, unit="index")
    belady = simulate_hits(accesses, "belady", capacity, sizes)
    scalesim = simulate_hits(accesses, "scalesim", capacity, sizes, exact)
    assert (scalesim.hits, scalesim.bytes_in) == (belady.hits, belady.bytes_in)
