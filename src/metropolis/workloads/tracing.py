"""A workload as a trace (`metropolis.trace.Trace`) and back, so that recorded runs and generated days are one thing.

A trace's call row names the agent it was made for, not the step that issued it: a partner's turn in a
conversation runs inside the initiator's step. A recorded run tells them apart by time (the call starts within
the issuing agent-step's span), so `to_trace` writes a serial timeline (agent-steps one after another, one time
unit per call) that `from_trace` reads back the same way. The trace's step rows hold the position each step
reached; where the run started is kept in `meta.extra["initial_positions"]` (else the first row's position).
The workload's plans (`plan_next`) go in the steps' `plan_next` column, null where none is known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metropolis.trace import Trace, TraceMeta
from metropolis.workloads.format import PLAN_UNKNOWN, Workload


def to_trace(workload: Workload, source: str = "metropolis-workload") -> Trace:
    n, steps = workload.agents, workload.steps
    key = workload.call_step.astype(np.int64) * n + workload.call_owner
    calls_per_step = np.bincount(key, minlength=steps * n)
    step_end = np.cumsum(calls_per_step + 1).astype(float)  # each agent-step: its calls, then one unit
    step_start = step_end - calls_per_step - 1
    call_start = step_start[key] + (np.arange(len(key)) - np.concatenate([[0], np.cumsum(calls_per_step)])[key])
    agent = np.tile(np.arange(n), steps)
    step = np.repeat(np.arange(steps), n)
    partners = workload.partners_by_agent_step()
    ptr, ids = workload.observed_ptr, workload.observed_ids.tolist()
    names = workload.names
    steps_frame = pd.DataFrame(
        {
            "agent": agent,
            "name": [names[a] for a in agent],
            "step": step,
            "x": workload.positions[1:, :, 0].reshape(-1),
            "y": workload.positions[1:, :, 1].reshape(-1),
            "action": [workload.action_names[c] for c in workload.actions.reshape(-1)],
            "events": [[] for _ in agent],
            "observed": [ids[ptr[k] : ptr[k + 1]] for k in range(steps * n)],
            "partners": [list(partners.get((a, s), ())) for a, s in zip(agent.tolist(), step.tolist(), strict=True)],
            "llm_calls": calls_per_step,
            "start": step_start,
            "end": step_end,
            "plan_next": _plans_column(workload),
        }
    )
    calls_frame = pd.DataFrame(
        {
            "agent": workload.call_speaker,
            "name": [names[a] for a in workload.call_speaker],
            "step": workload.call_step,
            "function": [workload.function_names[f] for f in workload.call_function],
            "prompt_tokens": workload.call_prompt,
            "output_tokens": workload.call_output,
            "prompt_chars": None,
            "output_chars": None,
            "max_tokens": None,
            "prompt": None,
            "output": None,
            "start": call_start,
            "end": call_start + 1,
            "endpoint": None,
        }
    )
    meta = TraceMeta(
        source=source,
        agent_names=list(names),
        seconds_per_step=float(workload.seconds_per_step),
        start_seconds=workload.start_seconds,
        extra={
            **workload.meta,
            "perception_radius": workload.perception_radius,
            "initial_positions": workload.positions[0].tolist(),
        },
    )
    return Trace.of(meta, calls=calls_frame, steps=steps_frame)


def recorded_radius(extra: dict[str, object]) -> float:
    """The radius observations were recorded with: a run's `perception_radius`, a movement import's `radius`
    (`trace import-movement --radius`), else the paper's 4 tiles."""
    for key in ("perception_radius", "radius"):
        value = extra.get(key)
        if isinstance(value, int | float):
            return float(value)
    return 4.0


def from_trace(trace: Trace, perception_radius: float | None = None) -> Workload:
    """The workload of a recorded run; it needs a step row for every agent and step."""
    meta = trace.meta
    n, steps = len(meta.agent_names), trace.num_steps
    rows = trace.steps.sort_values(["step", "agent"], kind="stable")
    if len(rows) != n * steps or (rows["agent"].to_numpy() != np.tile(np.arange(n), steps)).any():
        raise ValueError(
            f"trace {meta.run_id or meta.source}: a workload needs one step row per agent and step "
            f"({n} x {steps}), found {len(rows)} rows"
        )
    reached = rows[["x", "y"]].to_numpy(dtype=np.int32).reshape(steps, n, 2)
    first = np.array(meta.extra.get("initial_positions", reached[0].tolist()), dtype=np.int32).reshape(n, 2)
    positions = np.concatenate([first[None], reached])
    action_names = sorted(set(rows["action"].astype(str)))
    codes = {a: i for i, a in enumerate(action_names)}
    observed = [list(o) if o is not None else [] for o in rows["observed"]]
    partners_col = [list(p) if p is not None else [] for p in rows["partners"]]
    owner = _owners(trace, rows, partners_col, n)
    calls = trace.calls.assign(owner=owner).sort_values(["step", "owner", "start"], kind="stable")
    functions = sorted(set(calls["function"].astype(str)))
    fcode = {f: i for i, f in enumerate(functions)}
    return Workload(
        names=list(meta.agent_names),
        positions=positions,
        actions=np.array([codes[a] for a in rows["action"].astype(str)], dtype=np.int32).reshape(steps, n),
        action_names=action_names,
        call_step=calls["step"].to_numpy(dtype=np.int32),
        call_owner=calls["owner"].to_numpy(dtype=np.int32),
        call_speaker=calls["agent"].to_numpy(dtype=np.int32),
        call_function=np.array([fcode[f] for f in calls["function"].astype(str)], dtype=np.int16),
        call_prompt=calls["prompt_tokens"].to_numpy(dtype=np.int32),
        call_output=np.maximum(1, calls["output_tokens"].to_numpy(dtype=np.int32)),
        observed_ptr=np.concatenate([[0], np.cumsum([len(o) for o in observed])]).astype(np.int64),
        observed_ids=np.array([j for o in observed for j in o], dtype=np.int32),
        partner_rows=np.array(
            [
                (s, a, p)
                for (a, s), ps in zip(zip(rows["agent"], rows["step"], strict=False), partners_col, strict=False)
                for p in ps
            ],
            dtype=np.int32,
        ).reshape(-1, 3),
        perception_radius=recorded_radius(meta.extra) if perception_radius is None else float(perception_radius),
        seconds_per_step=int(meta.seconds_per_step),
        start_seconds=meta.start_seconds,
        function_names=functions,
        meta={"source": meta.source, "run_id": meta.run_id},
        plan_next=_plans(rows["plan_next"], steps, n) if "plan_next" in rows else None,
    )


def _plans_column(workload: Workload) -> pd.Series | None:
    if workload.plan_next is None:
        return None
    plans = pd.Series(workload.plan_next.reshape(-1), dtype="Int32")
    return plans.mask(plans == PLAN_UNKNOWN)


def _plans(column: pd.Series, steps: int, n: int) -> np.ndarray | None:
    """The steps' plan column as `Workload.plan_next`; None when no step row knows a plan."""
    known = column.notna().to_numpy()
    if not known.any():
        return None
    return column.where(known, PLAN_UNKNOWN).to_numpy(dtype=np.int32).reshape(steps, n)


def _owners(trace: Trace, rows: pd.DataFrame, partners: list[list[int]], n: int) -> np.ndarray:
    """The agent whose step issued each call: the speaker, unless the call started within the span of a
    partner's step at that step (a turn inside that partner's conversation)."""
    calls = trace.calls
    owner = calls["agent"].to_numpy(dtype=np.int64).copy()
    start_col = rows["start"].to_numpy(dtype=float)
    end_col = rows["end"].to_numpy(dtype=float)
    triples = zip(owner.tolist(), calls["step"].tolist(), calls["start"].tolist(), strict=True)
    for k, (a, s, t) in enumerate(triples):
        row = s * n + a
        if not partners[row] or t is None or np.isnan(t) or start_col[row] <= t < end_col[row]:
            continue
        for p in partners[row]:
            other = s * n + p
            if start_col[other] <= t < end_col[other]:
                owner[k] = p
                break
    return owner
