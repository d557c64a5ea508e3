"""One serving engine replica with continuous batching, driven by the discrete-event kernel.

How a replica schedules (vLLM / SGLang style, kept simple):
- Waiting queue: a strategy chosen by name (`ServingConfig.queue`, see queues.py): lowest step first by
  default, or first come first served, or cache-aware. Strict order: when the head cannot be admitted,
  nothing behind it is (no overtaking), except under the cache-aware queue.
- Memory gate (see gate.py): asked whether a request may start and when its private state is on the GPU;
  the default lets everything through, agent memory (agentmem.py) is the other gate.
- Each iteration decodes one token for every running request and prefills newly admitted requests whole.
  Decode tokens take the token budget first; the first prefill of an iteration is always admitted (a prompt
  over the budget stands for a chunked prefill, its whole cost charged to that one iteration), further ones
  only while they fit the remaining budget.
- KV cache: admission reserves the request's final footprint (prompt + output tokens) and the reservation is
  released when it finishes, so a running request never outgrows memory and nothing is preempted; when the
  head does not fit, it queues until completions free room. (vLLM allocates as tokens come and preempts on
  overflow; with ~22 output tokens against ~643 prompt tokens the difference is a few percent of capacity.)
- The prefill iteration emits the first token (TTFT); each later decode iteration one more; a request with n
  output tokens finishes after its prefill iteration and n - 1 decode iterations.
- Background requests are preempted for interactive ones (`Job.interactive`: a person waits for the answer),
  and only for them: when an interactive request heads the queue and does not fit (running slots or KV cache
  full), the latest background requests in the batch (highest step, latest arrival; vLLM's choice) are paused
  at the iteration boundary, their KV freed, and requeued at their old place; resumed, they prefill their prompt
  and the tokens they had generated again (vLLM's recompute preemption) and decode the rest. `preemptions` and
  `recomputed_tokens` count the cost. An interactive arrival also cuts a decode run short when it does not fit,
  so the preemption happens at the next iteration boundary, not at the next completion.
- Background yields (`ServingConfig.interactive_slack`, 1.5 by default): while interactive requests are in the
  replica, a background request starts its prefill only if every one of them is still projected to finish
  within `interactive_slack` times its latency on an idle replica (its deadline), counting the prefill's cost
  and the larger batch for the iterations they have left. Prefills are what slow an iteration most (a
  1,500-token prompt costs several decode iterations on an L4): so the person's answer decodes at nearly idle
  speed, and the slack left is lent to the background. None: background never yields.

Speed: the replica schedules one kernel event per *segment*, not per iteration. A segment is one prefill
iteration, or a run of decode iterations with a fixed batch up to the next completion, whose length is the
closed form `CostModel.decode_span`. An arrival that could be admitted cuts the run short at the end of the
iteration in progress (computed exactly), where the replica plans again. A global count of decode iterations
done lets every running request be tracked in O(1): it finishes when the count reaches its `finish` mark, and
the KV tokens the batch attends are `kv_base + batch * count`.
"""

from __future__ import annotations

import heapq

from metropolis.kernel import Environment
from metropolis.llm.serving.config import ServingConfig
from metropolis.llm.serving.gate import MemoryGate, OpenGate
from metropolis.llm.serving.job import Job, JobStatus
from metropolis.llm.serving.queues import DEFAULT_WINDOW, make_queue


class Replica:
    """`queue`: the waiting queue's name (default: the config's); `gate`: the memory behind the replica (default:
    none); `window`: the cache-aware queue's look-ahead."""

    def __init__(
        self,
        env: Environment,
        config: ServingConfig,
        index: int = 0,
        gate: MemoryGate | None = None,
        queue: str | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.env = env
        self.config = config
        self.cost = config.cost
        self.index = index
        self.gate: MemoryGate = gate if gate is not None else OpenGate()
        self.queue = make_queue(config.queue if queue is None else queue, window)
        self._loading = 0  # taken off the queue by the gate, waiting for their state to arrive on the GPU
        self._loaded: list[Job] = []  # state arrived: admitted ahead of the waiting queue
        self._running: list[tuple[int, int, Job]] = []  # (finish mark, arrival order, job)
        self._prefilling: list[Job] = []
        self._prefill_kv = 0  # sum over prefilling of their KV tokens (prompt + output)
        self._count = 0  # decode iterations done so far
        self._kv_base = 0  # sum over running of (prompt + 1 - count at join)
        self._finish_sum = 0  # sum over running of their finish marks
        self._reserved = 0  # KV tokens reserved by running and prefilling requests
        # the segment in progress
        self._busy = False
        self._generation = 0
        self._seg_start = 0.0
        self._seg_iters = 0
        self._seg_batch = 0
        self._seg_kv0 = 0
        self._seg_prefill = 0
        # statistics
        self.busy_time = 0.0
        self.batch_area = 0.0  # integral of requests in the iteration over busy time
        self.iterations = 0
        self.completed = 0
        self._urgent: dict[Job, float] = {}  # interactive requests submitted, not finished -> their deadline
        self._marks: dict[Job, int] = {}  # running interactive requests -> their finish mark
        self.preemptions = 0  # background requests paused for interactive ones
        self.recomputed_tokens = 0  # KV tokens the preempted requests had to prefill again
        self.first_arrival: float | None = None

    # -- queries --

    @property
    def waiting(self) -> int:
        return len(self.queue)

    @property
    def running(self) -> int:
        return len(self._running) + len(self._prefilling)

    @property
    def kv_reserved(self) -> int:
        return self._reserved

    @property
    def outstanding_tokens(self) -> int:
        """Tokens still to process (waiting prompts and outputs, decodes left), as of the segment's start."""
        decodes_left = self._finish_sum - len(self._running) * self._count
        return self.queue.tokens + self._prefill_kv + decodes_left

    # -- submitting --

    def submit(self, job: Job) -> None:
        cfg = self.config
        if job.kv_tokens > cfg.kv_capacity_tokens:
            raise ValueError(
                f"request of {job.agent} needs {job.kv_tokens} KV tokens (prompt {job.prompt_tokens} + "
                f"output {job.output_tokens}), more than a replica of {cfg.name!r} holds "
                f"({cfg.kv_capacity_tokens}); "
                "shorten it or use a preset with more memory"
            )
        now = self.env.now
        job.arrival = now
        job.replica = self.index
        job.status = JobStatus.WAITING
        if self.first_arrival is None:
            self.first_arrival = now
        if job.interactive:
            idle = self.cost.iteration(job.context, 0, 0) + self.cost.decode_span(job.left - 1, 1, job.context + 1)
            self._urgent[job] = now + (self.config.interactive_slack or 0.0) * idle
        self.queue.push(job)
        self._wake(job, self.queue.head() is job)

    def _wake(self, job: Job, first: bool) -> None:
        """`job` became admissible (arrived, or its state arrived): plan now if that can start it sooner."""
        now = self.env.now
        if not self._busy:
            self._plan()
        elif now == self._seg_start:
            self._cancel_segment()
            self._plan()
        elif self._seg_prefill == 0 and first and (self._fits(job) or job.interactive):
            self._cut_decode_run(now)  # an interactive request that does not fit preempts at the boundary

    def _on_loaded(self, job: Job) -> None:
        self._loading -= 1
        job.memory_ready = True
        job.status = JobStatus.WAITING
        self._loaded.append(job)
        self._wake(job, len(self._loaded) == 1)

    # -- planning --

    def _fits(self, job: Job) -> bool:
        return (
            self.running < self.config.max_running and self._reserved + job.kv_tokens <= self.config.kv_capacity_tokens
        )

    def _plan(self) -> None:
        """Start the next segment now: a prefill iteration if the head can be admitted, else a decode run."""
        head = self.queue.head()
        if head is not None and head.interactive and not self._fits(head):
            self._preempt_for(head)
        batch = len(self._running)
        kv0 = self._kv_base + batch * self._count
        prefill = self._admit(self.config.max_batched_tokens - batch)
        if prefill:
            now = self.env.now
            ready = now  # when the last blocking demand load is in (compiled, `max` over a generator is Python's)
            for j in self._prefilling:
                if j.state_at > ready:
                    ready = j.state_at
            stall = ready - now
            self._start_segment(1, batch, kv0, prefill, stall + self.cost.iteration(prefill, batch, kv0))
        elif batch:
            k = self._running[0][0] - self._count
            self._start_segment(k, batch, kv0, 0, self.cost.decode_span(k, batch, kv0))
        elif len(self.queue) and not self._loading and not self._urgent:
            raise RuntimeError(f"replica {self.index}: a request waits but nothing runs and none can be admitted")
        else:
            self._busy = False

    def _preempt_for(self, head: Job) -> None:
        """Pause the latest background requests of the batch until the interactive `head` fits (at an iteration
        boundary: nothing is prefilling). Each goes back to the waiting queue at its old place, keeping the
        tokens it generated, which its next prefill recomputes."""
        running, count = self._running, self._count
        while not self._fits(head):
            victims = [e for e in running if not e[2].interactive]
            if not victims:
                return  # only interactive requests run: it waits its turn
            entry = max(victims, key=lambda e: e[2].key)
            running.remove(entry)
            heapq.heapify(running)
            finish, _, job = entry
            join = finish - job.left + 1  # the decode count at which its prefill emitted its first token
            self._finish_sum -= finish
            self._kv_base -= job.context + 1 - join
            self._reserved -= job.kv_tokens
            job.generated += count - join + 1
            job.prefill_tokens = job.context
            job.preemptions += 1
            job.status = JobStatus.WAITING
            self.preemptions += 1
            self.recomputed_tokens += job.context
            self.queue.requeue(job)

    def _admit(self, budget: int) -> int:
        """Admit loaded requests, then waiting ones in the queue's order while they fit; returns prefill tokens."""
        now, loaded, queue, gate = self.env.now, self._loaded, self.queue, self.gate
        yields = bool(self._urgent) and self.config.interactive_slack is not None
        prefill = 0
        while loaded and self._fits(loaded[0]) and not (yields and not self._lends(loaded[0], prefill)):
            if self._prefilling and loaded[0].prefill_tokens > budget - prefill:
                return prefill
            prefill += self._start_prefill(loaded.pop(0), now)
        for job in queue.candidates(gate):
            if not self._fits(job) or (yields and not self._lends(job, prefill)):
                break
            if not job.memory_ready:
                if not gate.can_admit(job):
                    if queue.skips_refused:
                        continue  # do not let it block the queue
                    break
                ready = gate.admit(job, now)
                if ready is not None:
                    if ready > now and gate.overlap_loads:
                        queue.take(job)  # waits off the queue; the link overlaps compute
                        job.status = JobStatus.LOADING
                        self._loading += 1
                        self.env.schedule(ready - now, self._on_loaded, job)
                        continue
                    job.memory_ready, job.state_at = True, ready
            if self._prefilling and job.prefill_tokens > budget - prefill:
                break
            queue.take(job)
            prefill += self._start_prefill(job, now)
        queue.settle()
        return prefill

    def _lends(self, job: Job, prefill: int) -> bool:
        """May `job` start its prefill now, with `prefill` tokens admitted already this round, and every
        interactive request still meet its deadline? (Interactive requests themselves always may.)"""
        if job.interactive:
            return True
        cost, count, now = self.cost, self._count, self.env.now
        batch = self.running + 1
        kv = self._kv_base + len(self._running) * count + self._prefill_kv + job.kv_tokens
        first = cost.c0 + cost.c_prefill * (prefill + job.prefill_tokens) + cost.c_decode * batch + cost.c_kv * kv
        per_decode = cost.c0 + cost.c_decode * batch + cost.c_kv * kv
        marks = self._marks
        for urgent, deadline in self._urgent.items():
            left = marks[urgent] - count if urgent in marks else urgent.left
            if now + first + max(0, left - 1) * per_decode > deadline:
                return False
        return True

    def _start_prefill(self, job: Job, now: float) -> int:
        self._reserved += job.kv_tokens
        self._prefill_kv += job.kv_tokens
        if job.admitted is None:  # a preempted request keeps its first admission
            job.admitted = now
        job.status = JobStatus.PREFILLING
        self._prefilling.append(job)
        return job.prefill_tokens

    def _start_segment(self, iters: int, batch: int, kv0: int, prefill: int, duration: float) -> None:
        self._busy = True
        self._generation += 1
        self._seg_start = self.env.now
        self._seg_iters, self._seg_batch, self._seg_kv0, self._seg_prefill = iters, batch, kv0, prefill
        self.env.schedule(duration, self._on_segment_end, self._generation, iters)

    def _cancel_segment(self) -> None:
        """Undo a segment planned at this very instant (no time passed): admissions go back to the queue."""
        self._generation += 1
        for job in self._prefilling:
            self._reserved -= job.kv_tokens
            if not job.preemptions:  # a preempted request keeps its first admission
                job.admitted = None
            job.status = JobStatus.WAITING
            if job.memory_ready:
                self._loaded.append(job)  # pinned already: it must not queue behind requests it blocks
                continue
            self.queue.requeue(job)
        self._prefilling.clear()
        self._prefill_kv = 0

    def _cut_decode_run(self, now: float) -> None:
        """End the decode run at the end of the iteration in progress, where the new head gets admitted."""
        start, batch, kv0, span = self._seg_start, self._seg_batch, self._seg_kv0, self.cost.decode_span
        done = self.cost.decode_iterations_within(now - start, batch, kv0)
        while start + span(done + 1, batch, kv0) <= now:
            done += 1
        while done > 0 and start + span(done, batch, kv0) > now:
            done -= 1
        if start + span(done, batch, kv0) == now:  # exactly at an iteration boundary
            self._generation += 1
            self._end_segment(done)
            return
        k = done + 1
        if k < self._seg_iters:
            self._generation += 1
            self._seg_iters = k
            self.env.schedule(start + span(k, batch, kv0) - now, self._on_segment_end, self._generation, k)

    # -- progress --

    def _on_segment_end(self, generation: int, iters: int) -> None:
        if generation == self._generation:
            self._end_segment(iters)

    def _end_segment(self, iters: int) -> None:
        now = self.env.now
        requests = self._seg_batch + len(self._prefilling)
        elapsed = now - self._seg_start
        self.busy_time += elapsed
        self.batch_area += requests * elapsed
        self.iterations += iters
        self._count += iters
        count = self._count
        for job in self._prefilling:
            if job.first_token is None:  # a resumed request's first token came before its preemption
                job.first_token = now
            finish = count + job.left - 1
            if finish == count:
                self._finish(job)
                continue
            job.status = JobStatus.RUNNING
            heapq.heappush(self._running, (finish, job.key[1], job))
            if job.interactive:
                self._marks[job] = finish
            self._kv_base += job.context + 1 - count
            self._finish_sum += finish
        self._prefilling.clear()
        self._prefill_kv = 0
        running = self._running
        while running and running[0][0] <= count:
            finish, _, job = heapq.heappop(running)
            self._finish_sum -= finish
            self._kv_base -= job.context + 1 - (finish - job.left + 1)
            self._finish(job)
        self._plan()
        self.gate.prefetch(now)

    def _finish(self, job: Job) -> None:
        job.finished = self.env.now
        job.status = JobStatus.DONE
        self._reserved -= job.kv_tokens
        self.completed += 1
        if job.interactive:
            del self._urgent[job]
            self._marks.pop(job, None)
        if job.memory_ready:
            self.gate.release(job, job.finished)
        if job.on_done is not None:
            job.on_done(job)
