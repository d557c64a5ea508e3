"""The bench's figures, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from metropolis.bench.sim import SCHEDULING_POLICIES, Setting, SettingResult, gpus_words

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h")
DASHES = ("-", "--", "-.", ":")
STYLED = (*SCHEDULING_POLICIES, "critical-path")  # colour k, marker k and dash k belong to STYLED[k]


def window_words(setting: Setting) -> str:
    """'busy window, 12:00-12:06 (0.1 h)': the title says the window the run covered, not a nominal hour."""
    start = setting.start_hour * 60
    end = start + setting.hours * 60
    end_hour = int(end // 60) if end == 24 * 60 else int(end // 60) % 24  # a whole day ends at 24:00, not 00:00
    span = f"{int(start // 60):02d}:{int(start % 60):02d}-{end_hour:02d}:{int(end % 60):02d}"
    return f"{setting.name} window, {span} ({setting.hours:g} h)"


def same_groups(series: dict[str, list[float]]) -> list[list[str]]:
    """Policies whose values are the same at every point (within 0.5%), in order: one line names them all, so
    no line hides under another."""
    groups: list[list[str]] = []
    for name, values in series.items():
        for group in groups:
            ref = series[group[0]]
            if all(abs(a - b) <= 0.005 * max(abs(a), abs(b), 1e-9) for a, b in zip(values, ref, strict=True)):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def speedup_plot(results: list[SettingResult], path: Path) -> Path | None:
    """Speedup over serial against agents, per window (busy, quiet): one line per policy, each with its own
    marker and dash; policies with the same values share a line whose label names them all."""
    windows = sorted({r.setting.name for r in results if r.setting.name != "day-25"})
    if not windows:
        return None
    fig, axes = plt.subplots(1, len(windows), figsize=(6.5 * len(windows), 5.6), squeeze=False)
    policies = (*SCHEDULING_POLICIES[1:], "critical-path")
    for ax, window in zip(axes[0], windows, strict=True):
        mine = sorted((r for r in results if r.setting.name == window), key=lambda r: r.setting.agents)
        agents = [r.setting.agents for r in mine]
        series = {p: [r.ratio(p, "serial") for r in mine] for p in policies}
        for group in same_groups(series):
            k = STYLED.index(group[0])  # a policy keeps its colour, marker and dash in every panel and plot
            ax.plot(
                agents, series[group[0]], marker=MARKERS[k % len(MARKERS)], linestyle=DASHES[k % len(DASHES)],
                color=f"C{k}", label=" = ".join(group), markersize=6, linewidth=1.6,
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(agents, [str(a) for a in agents])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("agents")
        ax.set_ylabel("speedup over serial")
        ax.set_title(f"{window_words(mine[0].setting)}, {gpus_words(mine[0].setting.gpus)}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def in_flight_plot(result: SettingResult, path: Path) -> Path:
    """Requests in flight over each policy's run (x: share of that run's simulated time): one panel per policy,
    on one scale, so no policy's curve hides another's."""
    ran = [p for p in SCHEDULING_POLICIES if result.results[p].in_flight_curve is not None]
    fig, axes = plt.subplots(len(ran), 1, figsize=(8, 0.95 * len(ran) + 1.3), sharex=True, sharey=True)
    axes = [axes] if len(ran) == 1 else list(axes)
    for ax, policy in zip(axes, ran, strict=True):
        k = STYLED.index(policy)
        curve = result.results[policy].in_flight_curve
        assert curve is not None
        x = [(i + 0.5) / len(curve) for i in range(len(curve))]
        ax.fill_between(x, curve, step="mid", color=f"C{k}", alpha=0.25)
        ax.step(x, curve, where="mid", color=f"C{k}", linewidth=1.2)
        name = f"{policy} (mean {result.results[policy].mean_in_flight:.2f})"
        box = {"facecolor": "white", "alpha": 0.8, "linewidth": 0}
        ax.text(0.99, 0.9, name, transform=ax.transAxes, fontsize=8, va="top", ha="right", bbox=box)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("share of the run (simulated time)")
    fig.supylabel("LLM requests in flight", fontsize=9)
    s = result.setting
    fig.suptitle(f"LLM requests in flight, {s.agents} agents on {gpus_words(s.gpus)}: {window_words(s)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
