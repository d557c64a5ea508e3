"""`VirtualLLM`: the LLM backend of the virtual-time runtime, answering through the serving model.

`complete` is a coroutine the kernel drives: it submits the request to the cluster and awaits a kernel Event
that the replica fires at the virtual instant the last token is out. No asyncio inside.
"""

from __future__ import annotations

import statistics

from metropolis.kernel import Environment, Event
from metropolis.llm.serving.cluster import Cluster
from metropolis.llm.serving.job import Job
from metropolis.llm.serving.responder import PlaceholderResponder, Responder, estimate_tokens
from metropolis.llm.types import LLMRequest, LLMResponse


class VirtualLLM:
    """`responses`: every answer, in the order calls finished, each carrying its timeline (arrival, admission,
    first token, last token): the one record of a call here; `summary` reads them."""

    def __init__(self, env: Environment, cluster: Cluster, responder: Responder | None = None) -> None:
        if cluster.env is not env:
            raise ValueError("the cluster runs on another Environment than the one given to VirtualLLM")
        self.env = env
        self.cluster = cluster
        self.responder: Responder = responder if responder is not None else PlaceholderResponder()
        self.responses: list[LLMResponse] = []
        self._endpoints = [f"{cluster.config.name}/replica-{i}" for i in range(len(cluster.replicas))]

    async def complete(self, request: LLMRequest) -> LLMResponse:
        reply = self.responder.respond(request)
        prompt = request.prompt_tokens if request.prompt_tokens is not None else reply.prompt_tokens
        if prompt is None:
            prompt = estimate_tokens(request.prompt_text())
        done: Event = self.env.event()
        job = Job(
            request.agent,
            max(1, prompt),
            reply.tokens,
            request.priority,
            # Fired with no value: were the job its value, job -> callback -> event -> job would make a reference
            # cycle per call, which only the cyclic collector frees (freed at once, the memory stays warm).
            on_done=lambda _job: done.succeed(),
            agent_id=request.agent_id,
            interactive=request.interactive,
        )
        self.cluster.submit(job)
        await done
        assert job.arrival is not None and job.admitted is not None  # set by the replica
        assert job.first_token is not None and job.finished is not None and job.replica is not None
        response = LLMResponse(
            text=reply.text,
            prompt_tokens=job.prompt_tokens,
            completion_tokens=job.output_tokens,
            start=job.arrival,
            end=job.finished,
            endpoint=self._endpoints[job.replica],
            admitted=job.admitted,
            first_token=job.first_token,
        )
        self.responses.append(response)
        return response

    def utilisation(self) -> float:
        return self.cluster.utilisation()

    def mean_batch_size(self) -> float:
        return self.cluster.mean_batch_size()

    def summary(self) -> dict[str, float]:
        """Means and medians of the per-request figures, plus the cluster's time-weighted ones."""
        out: dict[str, float] = {"requests": float(len(self.responses))}
        if self.responses:
            for name in ("queue_wait", "ttft", "latency"):
                values = [getattr(r, name) for r in self.responses]
                out[f"mean_{name}"] = statistics.fmean(values)
                out[f"p50_{name}"] = statistics.median(values)
        out["mean_batch_size"] = self.mean_batch_size()
        out["utilisation"] = self.utilisation()
        return out
