"""``quality.png``: the quality-speed picture of a run (STS Spearman against the latency î)."""

from __future__ import annotations

import os
from pathlib import Path


def plot_quality(res: dict, path: str | os.PathLike) -> None:
    """``quality.png``: STS Spearman vs latency î for the teacher, ξ* (distilled) and the pivots (inherited,
    before training). Uses matplotlib's object API: no global backend or pyplot state is touched."""
    from bortfast._base.plot import new_figure, save_figure

    fig, ax = new_figure(figsize=(7, 4.8))
    pivots = res.get("pivots") or []
    if pivots:
        ax.scatter([p["latency"] for p in pivots], [p["sts_inherited"] for p in pivots], s=22, c="0.55",
                   label="pivots, inherited (before training; 400 pairs)")
    ax.scatter([res["student_latency"]], [res["student"]], marker="*", s=300, c="tab:orange", edgecolors="k",
               zorder=5, label=f"ξ* distilled: {res['student']:.3f} ({100 * res['retained']:.0f}% of teacher)")
    ax.scatter([res["teacher_latency"]], [res["teacher"]], marker="X", s=120, c="k",
               label=f"teacher: {res['teacher']:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency î ({res['latency_unit']})")
    ax.set_ylabel("STS Spearman ρ")
    ax.set_title(f"Quality vs latency on {Path(res['file']).name} ({res['pairs']} pairs, {res['pooling']} pooling)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
