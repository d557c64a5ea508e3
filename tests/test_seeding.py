"""A step's generator is `random.Random(text)` exactly, whether the C seeding built it or Python did."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metropolis import compiled
from metropolis.engine import seeding
from metropolis.engine.seeding import seeded_random


def _draws(rng: random.Random) -> list[float]:
    return [rng.random(), rng.gauss(0.0, 1.0), float(rng.randrange(10**30)), rng.gauss(0.0, 1.0), rng.uniform(2, 3)]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
def test_the_generator_is_randoms_own(text: str) -> None:
    ours, theirs = seeded_random(text), random.Random(text)
    assert type(ours) is random.Random
    assert ours.getstate() == theirs.getstate()
    assert _draws(ours) == _draws(theirs)


needs_c = pytest.mark.skipif(
    not seeding.in_c(), reason="the C seeding (engine/_seeding.c) is not built here: a pure install or METROPOLIS_PURE"
)


@needs_c
@pytest.mark.parametrize("chars", [1, 2, 3, 4])  # bytes per character: the digest's block edges fall mid-character
def test_c_seeding_across_sha512_block_edges(chars: int) -> None:
    """The seed's bytes are hashed in 128-byte blocks with a 17-byte tail: every length around one and two
    blocks, in characters of one to four UTF-8 bytes, and a seed whose first byte is zero (the integer's
    leading zeros carry no bits)."""
    from metropolis.engine._seeding import seeded

    char = {1: "a", 2: "é", 3: "€", 4: "𝄞"}[chars]
    texts = [char * n for n in range(0, 300 // chars)] + ["\x00", "\x00\x00seed", "0:12:3456"]
    for text in texts:
        assert seeded(random.Random, text).getstate() == random.Random(text).getstate(), text


@needs_c
def test_c_seeding_keeps_the_class_and_refuses_what_random_refuses() -> None:
    from metropolis.engine._seeding import seeded

    class Mine(random.Random):
        pass

    rng = seeded(Mine, "7:1:2")
    assert type(rng) is Mine and rng.getstate() == Mine("7:1:2").getstate() and rng.gauss_next is None
    with pytest.raises(UnicodeEncodeError):
        random.Random("\ud800")
    with pytest.raises(UnicodeEncodeError):
        seeded(random.Random, "\ud800")
    with pytest.raises(TypeError, match=r"subclass random\.Random"):
        seeded(dict, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a str"):
        seeded(random.Random, b"x")  # type: ignore[arg-type]


def test_the_compiled_build_seeds_in_c_and_pure_does_not() -> None:
    """CI runs the compiled build: the C seeding must be in it (a build without it would pass unseen, only
    slower). METROPOLIS_PURE=1 runs Python's own seeding."""
    if compiled.in_use():
        assert seeding.in_c(), "the compiled build has no C seeding (engine/_seeding.c did not build or load)"
    code = "from metropolis.engine import seeding; print(seeding.in_c())"
    env = {**os.environ, compiled.PURE_ENV: "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
