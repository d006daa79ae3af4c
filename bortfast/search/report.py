"""What a search writes: ``search.json``, the top-k table and the Pareto plot."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bortfast._base.plot import new_figure, save_figure
from bortfast.search.algorithm import SearchResult
from bortfast.space import PerLayerArch

RESULT_NAME = "search.json"
PLOT_NAME = "pareto.png"


# ----------------------------------------------------------------------------------------------------- reporting
def format_top(result: SearchResult, k: int = 10) -> str:
    """A plain-text table of the k trained candidates with the largest W."""
    unit = result.latency_unit
    width = max([22, *(len(str(c.arch)) for c in result.top(k))])
    head = f"{'rank':>4}  {'xi = <D, A, H, I>':<{width}} {'params':>12} {'FLOPs':>14} {'i (' + unit + ')':>12} " \
           f"{'error':>9} {'W':>10}  theta"
    lines = [head, "-" * len(head)]
    for r, c in enumerate(result.top(k), 1):
        star = " *" if c.arch == result.best_arch else ""
        lines.append(f"{r:>4}  {str(c.arch):<{width}} {c.params:>12,} {c.flops:>14,} {c.latency:>12.4g} "
                     f"{c.error:>9.4f} {c.w:>10.4g}  {json.dumps(c.theta)}{star}")
    return "\n".join(lines)


def plot_pareto(result: SearchResult, path: str | os.PathLike) -> None:
    """p̂ vs î for every ξ (grey: untrained), trained ones coloured by ê, the Pareto front circled, ξ* starred."""
    cands = result.candidates
    fig, ax = new_figure(figsize=(7.5, 5.5), dpi=120)
    untrained = [c for c in cands if c.error is None]
    trained = [c for c in cands if c.error is not None]
    if untrained:
        ax.scatter([c.params for c in untrained], [c.latency for c in untrained], s=10, c="0.8",
                   label="not trained")
    sc = ax.scatter([c.params for c in trained], [c.latency for c in trained], s=28,
                    c=[c.error for c in trained], cmap="viridis_r", label="pivots (colour = error)")
    fig.colorbar(sc, ax=ax, label="distillation error ê")
    front = [cands[k] for k in result.pareto_front]
    ax.scatter([c.params for c in front], [c.latency for c in front], s=90, facecolors="none",
               edgecolors="tab:red", linewidths=1.4, label="Pareto front (p̂, î, ê)")
    best = result.best_arch
    bc = cands[result.best]
    ax.scatter([bc.params], [bc.latency], marker="*", s=320, c="tab:orange", edgecolors="k",
               label=f"ξ* = {best}", zorder=5)
    ax.scatter([result.teacher_params], [result.teacher_latency], marker="X", s=120, c="k",
               label=f"teacher T = {result.teacher}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters p̂")
    ax.set_ylabel("FLOPs" if result.latency_unit == "flops" else f"latency î ({result.latency_unit})")
    sel = result.selection or {}
    if sel.get("latency_budget"):
        ax.axhline(sel["latency_budget"], color="tab:orange", ls="--", lw=1, label="latency budget")
    if sel.get("w_argmax") is not None and sel["w_argmax"] != result.best:
        wc = cands[sel["w_argmax"]]
        ax.scatter([wc.params], [wc.latency], marker="P", s=120, c="tab:purple", label="W's argmax")
    rho = result.error_param_spearman
    ax.set_title(f"Algorithm 1: ε = {result.settings.get('eps')}, {result.trainings} trainings"
                 + (f", Spearman(ê, p̂) = {rho:.2f}" if rho is not None else ""), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    if isinstance(best, PerLayerArch):
        _width_chart(ax, best, bc.teacher_layers)
    fig.tight_layout()
    save_figure(fig, path)


def _width_chart(ax: Any, arch: PerLayerArch, teacher_layers: list[int] | None) -> None:
    """A small inset of ξ*'s per-layer widths: heads (bars) and FFN neurons (line), per kept teacher layer."""
    inset = ax.inset_axes((0.07, 0.6, 0.3, 0.32))
    x = np.arange(arch.layers)
    inset.bar(x, arch.heads, color="tab:blue", alpha=0.7)
    inset.set_ylabel("heads", fontsize=6, color="tab:blue")
    ffn = inset.twinx()
    ffn.plot(x, arch.intermediate, "o-", color="tab:red", ms=3, lw=1)
    ffn.set_ylabel("FFN", fontsize=6, color="tab:red")
    labels = [f"T{t}" for t in teacher_layers] if teacher_layers else [str(k) for k in x]
    inset.set_xticks(x, labels, fontsize=6)
    inset.tick_params(labelsize=6)
    ffn.tick_params(labelsize=6)
    inset.set_title(f"ξ* per layer (H = {arch.hidden})", fontsize=7)


def write_outputs(result: SearchResult, out_dir: str | os.PathLike) -> None:
    """``search.json`` and ``pareto.png`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    result.save(out_dir / RESULT_NAME)
    plot_pareto(result, out_dir / PLOT_NAME)
