"""The conservative rules of AI Metropolis as three small formulas: the policies, the causality checker and the
engine's neighbour query all use these, so the rules are written down once.

With R the perception radius, V the maximum velocity and d a distance between latest known positions:
- coupled (symmetric): same step and d <= R + V;
- blocked (asymmetric): A, at a step `gap` > 0 ahead of B, is blocked by B while d <= (gap + 1) V + R;
- the invariant the two keep: for s_A != s_B, d > R + (|s_A - s_B| - 1) V.
"""

from __future__ import annotations


def couple_radius(R: float, V: float) -> float:
    """Agents at the same step within this distance are coupled: they form one cluster."""
    return R + V


def block_radius(gap: int, R: float, V: float) -> float:
    """An agent `gap` steps behind blocks one ahead of it while within this distance."""
    return (gap + 1) * V + R


def invariant_radius(gap: int, R: float, V: float) -> float:
    """Agents `gap` != 0 steps apart are always farther apart than this."""
    return R + (gap - 1) * V


def may_have_reached(d: float, behind: int, radius: float, V: float) -> bool:
    """Could an agent now `d` away, still `behind` steps back, be within `radius` once it has caught up?"""
    return d - behind * V <= radius
