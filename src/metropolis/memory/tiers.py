"""Where agent state lives (GPU, host, nowhere) and what moving it costs on the virtual clock.

Tiers are exclusive, as in vLLM's swap space: an entry is in exactly one place. A link is a FIFO pipe: a
transfer occupies it for bytes / bandwidth seconds, starting when the link is free and the data may start
moving. Nothing here reads a clock: every call is told `now`, so the same objects run under the discrete-event
kernel (where a prefetch started at t overlaps whatever compute the kernel runs until the request arrives) and
in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from metropolis.memory.state import StateKind, StateSpec


class Place(Enum):
    GPU = "gpu"
    HOST = "host"
    NONE = "none"  # a KV prefix must be recomputed, an adapter or a model loaded from disk (the disk tier)


@dataclass(slots=True)
class Entry:
    """The live record of one piece of state. `ready_at` is when its last transfer to the GPU completes."""

    spec: StateSpec
    place: Place = Place.NONE
    pins: int = 0
    last_access: float = float("-inf")
    ready_at: float = float("-inf")
    prefetched: bool = False  # brought in by a prefetch and not used since

    @property
    def agent(self) -> int:
        return self.spec.agent

    @property
    def nbytes(self) -> int:
        return self.spec.nbytes


@dataclass(slots=True)
class Link:
    """A FIFO transfer pipe; `busy_until` is when the last reserved transfer leaves it."""

    name: str
    bandwidth: float  # bytes per second
    busy_until: float = float("-inf")
    bytes_moved: int = 0

    def __post_init__(self) -> None:
        if self.bandwidth <= 0:
            raise ValueError(f"link {self.name!r}: bandwidth must be > 0 bytes/s, got {self.bandwidth}")

    def finish_time(self, nbytes: int, earliest: float, setup_s: float = 0.0) -> float:
        """When a transfer that may start at `earliest` would end, without reserving the link; `setup_s` is
        fixed work that occupies the link with the bytes (an adapter's preparation)."""
        return max(earliest, self.busy_until) + setup_s + nbytes / self.bandwidth

    def reserve(self, nbytes: int, earliest: float, setup_s: float = 0.0) -> float:
        end = self.finish_time(nbytes, earliest, setup_s)
        self.busy_until = end
        self.bytes_moved += nbytes
        return end


@dataclass(slots=True)
class Tier:
    """A capacity in bytes and the entries that hold it."""

    name: str
    capacity: int
    used: int = 0
    entries: dict[tuple[int, StateKind], Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.capacity < 0:
            raise ValueError(f"tier {self.name!r}: capacity must be >= 0 bytes, got {self.capacity}")

    @property
    def free(self) -> int:
        return self.capacity - self.used

    def add(self, entry: Entry) -> None:
        if entry.nbytes > self.free:
            raise RuntimeError(
                f"tier {self.name!r}: {entry.nbytes} bytes of agent {entry.agent} do not fit in "
                f"{self.free} free; evict first"
            )
        self.entries[entry.spec.key] = entry
        self.used += entry.nbytes

    def remove(self, entry: Entry) -> None:
        del self.entries[entry.spec.key]
        self.used -= entry.nbytes


@dataclass(frozen=True, slots=True)
class TierConfig:
    """Capacities and bandwidths. PCIe 4.0 x16 moves ~25 GB/s in practice; an NVMe drive ~2-7 GB/s.

    Weights (an adapter, an agent's own model) missing from the host are read from disk straight into the GPU
    over the disk link (the host bounce is pipelined and much faster than the drive): disk is the third tier,
    and it holds every agent's weights. A model evicted from the GPU goes to the host if it has room (the
    manager drops host entries needed later to make some), else back to disk (dropped: the disk copy stays).

    `kv_to_host=False` is SGLang's radix cache without its hierarchical cache (the default): an evicted KV
    prefix is dropped, never copied to the host, so the next call recomputes it; adapters still live in host
    memory (SGLang loads every `--lora-paths` adapter to CPU at start). `lora_load_s` is the fixed cost of
    one adapter load on top of its bytes (weight preparation, per-layer copies, pool bookkeeping: tens of ms
    in practice, see docs/serving-memory.md); it occupies the link like the bytes do. `model_to_host=False`
    keeps no host copy of evicted per-agent models either (an engine that swaps a model in loads it from disk).
    """

    gpu_bytes: int
    host_bytes: int = 0
    h2d_bandwidth: float = 25e9
    d2h_bandwidth: float = 25e9
    disk_bandwidth: float = 2e9
    kv_to_host: bool = True
    lora_load_s: float = 0.0
    model_to_host: bool = True

    def __post_init__(self) -> None:
        if self.gpu_bytes <= 0:
            raise ValueError(f"GPU tier capacity must be > 0 bytes, got {self.gpu_bytes}")
        if self.host_bytes < 0:
            raise ValueError(f"host tier capacity must be >= 0 bytes, got {self.host_bytes}")
        if not self.lora_load_s >= 0:
            raise ValueError(f"lora_load_s must be >= 0 seconds, got {self.lora_load_s}")

    def hosts(self, kind: StateKind) -> bool:
        """Whether state of this kind may live on the host tier."""
        if kind is StateKind.KV_PREFIX:
            return self.kv_to_host
        return self.model_to_host or kind is not StateKind.MODEL


class Tiers:
    """The GPU and host tiers and the three links between them and the disk."""

    def __init__(self, config: TierConfig) -> None:
        self.config = config
        self.gpu = Tier("gpu", config.gpu_bytes)
        self.host = Tier("host", config.host_bytes)
        self.h2d = Link("host->gpu", config.h2d_bandwidth)
        self.d2h = Link("gpu->host", config.d2h_bandwidth)
        self.disk = Link("disk->gpu", config.disk_bandwidth)

    def load_time(self, entry: Entry, earliest: float) -> float | None:
        """When a transfer of `entry` to the GPU would end, or None if it cannot be transferred
        (recompute)."""
        if entry.place is Place.HOST:
            return self.h2d.finish_time(entry.nbytes, earliest, self._setup(entry))
        if entry.place is Place.NONE and entry.spec.kind.on_disk:
            return self.disk.finish_time(entry.nbytes, earliest, self._setup(entry))
        return None

    def _setup(self, entry: Entry) -> float:
        return self.config.lora_load_s if entry.spec.kind is StateKind.LORA else 0.0

    def load(self, entry: Entry, earliest: float) -> float:
        """Move `entry` onto the GPU over its link; the caller made room. Returns when it is there."""
        if entry.place is Place.HOST:
            end = self.h2d.reserve(entry.nbytes, earliest, self._setup(entry))
            self.host.remove(entry)
        elif entry.place is Place.NONE and entry.spec.kind.on_disk:
            end = self.disk.reserve(entry.nbytes, earliest, self._setup(entry))
        else:
            raise RuntimeError(
                f"agent {entry.agent} {entry.spec.kind.value} state in {entry.place.value} cannot be loaded"
            )
        self.gpu.add(entry)
        entry.place = Place.GPU
        entry.ready_at = end
        return end

    def materialize(self, entry: Entry, at: float) -> None:
        """Place a KV prefix on the GPU that the request's prefill recomputes; a host copy is dropped."""
        if entry.place is Place.HOST:
            self.host.remove(entry)
        self.gpu.add(entry)
        entry.place = Place.GPU
        entry.ready_at = at

    def offload(self, entry: Entry, now: float) -> float:
        """Take `entry` off the GPU: to the host if it may go there and has room (the caller made it), else
        drop it. Returns when its GPU bytes are free again: at once when dropped, after the copy when
        offloaded.
        """
        self.gpu.remove(entry)
        entry.prefetched = False
        if self.config.hosts(entry.spec.kind) and entry.nbytes <= self.host.free:
            end = self.d2h.reserve(entry.nbytes, max(now, entry.ready_at))
            self.host.add(entry)
            entry.place = Place.HOST
            return end
        entry.place = Place.NONE
        return now

    def drop_from_host(self, entry: Entry) -> None:
        self.host.remove(entry)
        entry.place = Place.NONE
