"""The bench's figures, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from metropolis.bench.sim import SCHEDULING_POLICIES, SettingResult


def speedup_plot(results: list[SettingResult], path: Path) -> Path | None:
    """Speedup over serial against agents, per window (busy, quiet), one line per policy."""
    windows = sorted({r.setting.name for r in results if r.setting.name != "day-25"})
    if not windows:
        return None
    fig, axes = plt.subplots(1, len(windows), figsize=(6 * len(windows), 4.5), squeeze=False)
    for ax, window in zip(axes[0], windows, strict=True):
        mine = sorted((r for r in results if r.setting.name == window), key=lambda r: r.setting.agents)
        agents = [r.setting.agents for r in mine]
        for policy in (*SCHEDULING_POLICIES[1:], "critical-path"):
            ax.plot(agents, [r.ratio(policy, "serial") for r in mine], marker="o", label=policy)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("agents")
        ax.set_ylabel("speedup over serial")
        ax.set_title(f"{window} hour, {mine[0].setting.gpus} GPUs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def in_flight_plot(result: SettingResult, path: Path) -> Path:
    """Requests in flight over each policy's run (x: share of that run's simulated time)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for policy in SCHEDULING_POLICIES:
        curve = result.results[policy].in_flight_curve
        if curve is None:
            continue
        x = [(i + 0.5) / len(curve) for i in range(len(curve))]
        ax.plot(x, curve, label=f"{policy} (mean {result.results[policy].mean_in_flight:.2f})")
    ax.set_xlabel("share of the run (simulated time)")
    ax.set_ylabel("LLM requests in flight")
    ax.set_title(result.setting.label)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
