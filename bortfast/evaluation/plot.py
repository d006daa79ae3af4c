"""``quality.png``: the quality-speed picture of a run -- quality kept against the same-engine speed-up for the
student and the reference points (the INT8 teacher, the first-k-layer cut) and, with an STS file, STS Spearman
against the latency î for the teacher, ξ* and the pivots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _draw_sts(ax: Any, res: dict) -> None:
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


def _draw_front(ax: Any, front: dict) -> None:
    styles = {"student": ("*", 300, "tab:orange"), "teacher_int8": ("s", 90, "tab:blue"), "cut": ("D", 80, "tab:green")}
    for p in front["points"]:
        marker, size, color = styles.get(p["name"], ("o", 60, "0.4"))
        ax.scatter([p["speedup"]], [100 * p["kept"]], marker=marker, s=size, c=color, edgecolors="k", zorder=5,
                   label=f"{p['label']}: {100 * p['kept']:.1f}% at {p['speedup']:.1f}x")
        ax.annotate(p["label"], (p["speedup"], 100 * p["kept"]), textcoords="offset points", xytext=(6, 6), fontsize=7)
    ax.scatter([1.0], [100.0], marker="X", s=120, c="k", label="teacher fp32: 100% at 1.0x")
    ax.set_xscale("log")
    ax.set_xlabel("speed-up over the teacher (ONNX Runtime fp32, B=1)")
    ax.set_ylabel("quality kept (%)")
    ax.set_title(f"Quality kept vs speed-up ({front['kept_measure']})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")


def plot_quality(res: dict | None, path: str | os.PathLike, front: dict | None = None) -> None:
    """``quality.png``: with ``front`` (the quality stage's ``references``), quality kept vs speed-up for the student
    and the reference points; with ``res`` (its ``sts``), STS Spearman vs latency î for the teacher, ξ* (distilled)
    and the pivots (inherited, before training); side by side when both are given. Uses matplotlib's object API: no
    global backend or pyplot state is touched."""
    from bortfast._base.plot import new_figure, save_figure

    panels = [p for p in (("front", front), ("sts", res)) if p[1] is not None]
    if not panels:
        raise ValueError("plot_quality needs an STS result or a front of reference points, got neither")
    fig, first = new_figure(figsize=(7 * len(panels), 4.8))
    axes = [first] if len(panels) == 1 else [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
    if len(panels) > 1:
        fig.delaxes(first)
    for ax, (kind, data) in zip(axes, panels):
        (_draw_front if kind == "front" else _draw_sts)(ax, data)
    fig.tight_layout()
    save_figure(fig, path)
