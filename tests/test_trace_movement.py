"""The movement log: dense carry-forward, who observed whom, conversations, and one-line errors naming the
record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metropolis.paths import shared_data_dir
from metropolis.trace.movement import import_movement


def state(x: int, y: int, description: str, chat: list[list[str]] | None = None) -> dict:
    return {"movement": [x, y], "pronunciatio": "*", "description": description, "chat": chat}


HOME = "sleeping @ the Ville:home:bedroom:bed"
CHAT = [["Ann", "Hi Bob"], ["Bob", "Hi Ann"]]
LOG = {
    "0": {"Ann": state(0, 0, HOME), "Bob": state(10, 0, HOME), "Cy": state(2, 2, HOME)},
    "1": {"Bob": state(9, 0, "walking @ the Ville:park:lawn:grass")},
    "2": {},
    "3": {
        "Ann": state(0, 0, "conversing about hello @ <persona> Bob", CHAT),
        "Bob": state(5, 0, "conversing about hello @ <persona> Ann", CHAT),
    },
    "4": {"Bob": state(4, 0, "conversing about hello @ <persona> Ann", CHAT)},
    "6": {"Ann": state(1, 0, HOME), "Bob": state(4, 0, HOME)},
}


def write(tmp_path: Path, data: dict | str, meta: dict | None = None) -> Path:
    path = tmp_path / "master_movement.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    if meta is not None:
        (tmp_path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return path


def test_dense_states_carry_forward(tmp_path: Path) -> None:
    trace = import_movement(write(tmp_path, LOG, {"persona_names": ["Bob", "Ann", "Cy"], "sec_per_step": 5}))
    steps = trace.steps
    assert trace.meta.agent_names == ["Bob", "Ann", "Cy"] and trace.meta.seconds_per_step == 5.0
    assert len(steps) == 7 * 3 and steps["step"].tolist() == [s for s in range(7) for _ in range(3)]
    bob = trace.steps_of("Bob")
    assert bob["x"].tolist() == [10, 9, 9, 5, 4, 4, 4]
    assert bob["action"].tolist()[:3] == [HOME, "walking @ the Ville:park:lawn:grass"] * 1 + [
        "walking @ the Ville:park:lawn:grass"
    ]
    assert trace.steps_of("Cy")["x"].tolist() == [2] * 7
    assert steps["llm_calls"].isna().all() and steps["start"].isna().all()


def test_observed_within_radius(tmp_path: Path) -> None:
    trace = import_movement(write(tmp_path, LOG), radius=4)  # no meta.json: names sorted
    assert trace.meta.agent_names == ["Ann", "Bob", "Cy"]
    observed = {(r.step, r.name): list(r.observed) for r in trace.steps.itertuples()}
    assert observed[(0, "Ann")] == [2]  # Cy at distance sqrt(8)
    assert observed[(3, "Ann")] == [2] and observed[(4, "Ann")] == [1, 2]  # Bob at 5, then at 4
    assert observed[(4, "Bob")] == [0, 2]  # Ann at exactly 4 counts
    assert [len(observed[(s, "Cy")]) for s in range(7)] == [1, 1, 1, 2, 2, 2, 2]  # Bob at (5, 0): 3.6
    wide = import_movement(write(tmp_path, LOG), radius=10)
    assert all(len(o) == 2 for o in wide.steps["observed"])


def test_conversations_and_partners(tmp_path: Path) -> None:
    trace = import_movement(write(tmp_path, LOG))
    conv = trace.conversations
    assert len(conv) == 1
    row = conv.iloc[0]
    assert (row["start"], row["end"]) == (3, 5)
    assert list(row["participants"]) == [0, 1] and list(row["speakers"]) == [0, 1]
    assert list(row["utterances"]) == ["Hi Bob", "Hi Ann"]
    partners = {(r.step, r.name): list(r.partners) for r in trace.steps.itertuples()}
    assert [partners[(s, "Ann")] for s in range(7)] == [[], [], [], [1], [1], [1], []]
    assert [partners[(s, "Cy")] for s in range(7)] == [[]] * 7
    assert len(trace.conversations_of("Cy")) == 0 and len(trace.conversations_of("Bob")) == 1
    back = type(trace).read(trace.write(tmp_path / "t"))
    assert list(back.conversations.iloc[0]["utterances"]) == ["Hi Bob", "Hi Ann"]


def bad(tmp_path: Path, data: dict | str) -> str:
    with pytest.raises(ValueError) as error:
        import_movement(write(tmp_path, data))
    message = str(error.value)
    prefix = f"{tmp_path / 'master_movement.json'}: "
    assert "\n" not in message and message.startswith(prefix)
    return message[len(prefix) :]


def test_errors_name_the_record(tmp_path: Path) -> None:
    no_move = json.loads(json.dumps(LOG))
    del no_move["3"]["Bob"]["movement"]
    assert bad(tmp_path, no_move) == "step 3, persona 'Bob': missing field 'movement'"
    bad_step = {**LOG, "4b": {}}
    assert bad(tmp_path, bad_step) == "step '4b': key '4b' is not an integer"
    bad_pos = json.loads(json.dumps(LOG))
    bad_pos["1"]["Bob"]["movement"] = [9.5, 0]
    assert bad(tmp_path, bad_pos) == "step 1, persona 'Bob': movement x 9.5 is not an integer"
    bad_chat = json.loads(json.dumps(LOG))
    bad_chat["4"]["Bob"]["chat"] = [["Bob"]]
    assert bad(tmp_path, bad_chat) == "step 4, persona 'Bob': chat line 0 should be [speaker, utterance], found ['Bob']"
    stranger = json.loads(json.dumps(LOG))
    stranger["4"]["Bob"]["chat"] = [["Zed", "hi"]]
    assert bad(tmp_path, stranger) == "step 4, persona 'Bob': chat speaker 'Zed' is not a persona of this log"
    late = {"0": {"Ann": state(0, 0, HOME)}, "1": {"Bob": state(0, 0, HOME)}}
    assert bad(tmp_path, late) == "persona 'Bob' first appears at step 1; its state at step 0 is unknown"


def test_malformed_and_truncated_files_name_the_step(tmp_path: Path) -> None:
    text = json.dumps(LOG)
    cut = text[: text.index('"4"') + 30]
    assert bad(tmp_path, cut).endswith(
        f"step '4' is malformed or truncated (Expecting value at line 1, column {len(cut) + 1})"
    )
    assert "after step '6': expected ',' or '}', found the end of the file" in bad(tmp_path, text[:-1])
    broken = text.replace('"2": {}', '"2": {,}')
    assert "step '2' is malformed or truncated (Expecting property name" in bad(tmp_path, broken)
    assert bad(tmp_path, "{}").endswith("no steps")
    assert bad(tmp_path, "[1, 2]").endswith("expected a JSON object of steps, found '[1, 2]'")


def real_day() -> Path:
    data = shared_data_dir(required=False)
    path = None if data is None else data / "smallville" / "day_n3" / "master_movement.json"
    if path is None or not path.exists():
        pytest.skip("shared/data/smallville/day_n3/master_movement.json is missing")
    return path


def test_real_day_agrees_with_a_naive_replay() -> None:
    path = real_day()
    trace = import_movement(path)
    log = json.loads(path.read_text())
    names = json.loads((path.parent / "meta.json").read_text())["persona_names"]
    assert trace.meta.agent_names == names and len(trace.steps) == len(log) * len(names)
    last: dict[str, dict] = {}
    pos = trace.steps[["x", "y"]].to_numpy().reshape(len(log), len(names), 2)
    actions = trace.steps["action"].astype(str).to_numpy().reshape(len(log), len(names))
    for step in range(len(log)):
        last.update(log[str(step)])
        for a, name in enumerate(names):
            assert tuple(pos[step, a]) == tuple(last[name]["movement"])
            assert actions[step, a] == last[name]["description"]
    assert np.abs(np.diff(pos, axis=0)).max() <= 1  # one tile per step at most
    talking = trace.steps[trace.steps["partners"].map(len) > 0]
    assert talking["action"].astype(str).str.startswith("conversing").all()
    assert (trace.conversations["participants"].map(len) == 2).all()
