"""The summary a runtime hands back after a run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunReport:
    scheduler: str
    runtime: str
    agents: int
    steps: int
    agent_steps: int
    units: int
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    duration: float  # seconds on the runtime's clock: simulated seconds in virtual time, wall seconds in real time
    mean_running_agents: float
    mean_llm_in_flight: float
    peak_llm_in_flight: int
    wall_seconds: float

    def lines(self) -> list[str]:
        clock = "virtual" if self.runtime == "virtual" else "wall"
        return [
            f"scheduler        {self.scheduler}",
            f"runtime          {self.runtime}",
            f"agents           {self.agents}",
            f"steps            {self.steps}",
            f"agent-steps      {self.agent_steps}",
            f"units dispatched {self.units}",
            f"LLM calls        {self.llm_calls} ({self.prompt_tokens} prompt / {self.completion_tokens} output tokens)",
            f"{'time (' + clock + ')':<17}{self.duration:.2f} s",
            f"avg parallelism  {self.mean_running_agents:.2f} agents running, "
            f"{self.mean_llm_in_flight:.2f} LLM requests in flight (peak {self.peak_llm_in_flight})",
            f"wall time        {self.wall_seconds:.2f} s",
        ]
