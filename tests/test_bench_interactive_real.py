"""`metropolis bench interactive --real`'s runs, against the loopback server instead of llama-server: every mode
runs the same simulation (the same replies, the same background work), only the timing differs."""

from __future__ import annotations

import pytest

from metropolis.bench.interactive_real import FAMILY, REAL_MODES, bench_interactive_real, talk_script, walkers_of
from metropolis.llm.endpoints import endpoint
from metropolis.paths import shared_data_dir
from metropolis.world.smallville import load_smallville
from tests.fault_server import FaultServer

pytestmark = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data is absent")


def test_every_mode_runs_the_same_simulation_against_a_server_without_priority() -> None:
    town = load_smallville()
    with FaultServer(delay=0.01) as server:
        cfg = endpoint("llama.cpp", server.base_url, "m", api_key_env=None, read_timeout=5.0)
        setting = bench_interactive_real(town, cfg, walkers=4, minutes=1.0, talk_every=2, cap=0)
    rows = setting.rows
    assert list(rows) == list(REAL_MODES) and setting.steps == 6
    assert all(r.background_steps == 4 * 6 for r in rows.values())
    replies = {mode: len(r.replies) for mode, r in rows.items()}
    assert replies["no player"] == 0 and len({n for mode, n in replies.items() if mode != "no player"}) == 1
    assert replies["priority"] == 3  # steps 0, 2, 4: the family is in view
    assert len({r.background_calls for mode, r in rows.items() if mode != "no player"}) == 1
    assert rows["no priority"].held == 0 and setting.p95_ratio("priority") is not None


def test_the_family_walks_beside_the_player_and_the_script_talks() -> None:
    town = load_smallville()
    assert sorted(a.name for a in walkers_of(town, 4)[:3]) == sorted(FAMILY)
    assert sorted(talk_script(7, 3)) == [0, 3, 6]
    with pytest.raises(ValueError, match="talk_every must be >= 1"):
        talk_script(5, 0)
