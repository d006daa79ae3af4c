"""What a speed-up run reports: the paper's targets met or missed, ``speedup.png`` and the console table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bortfast._base.io import atomic_path
from bortfast.apps.bench.config import TARGETS, SpeedupConfig


def paper_targets(cfg: SpeedupConfig, speedups: dict[str, float], same_engine: dict[str, Any]) -> dict[str, Any]:
    b0 = cfg.batch_sizes[0]
    measured = {
        "int8_vs_torch_base_b1": speedups.get(f"student_int8_vs_torch_base_b{b0}"),
        "int8_vs_torch_large_b1": speedups.get(f"student_int8_vs_torch_large_b{b0}"),
        "fp32_vs_torch_base_b1": speedups.get(f"student_fp32_vs_torch_base_b{b0}"),
        "same_engine_vs_flop_ratio": same_engine[f"b{b0}"]["vs_encoder_flop_ratio"],
    }
    return {k: {"target": TARGETS[k], "measured": v, "met": (v is not None and v >= TARGETS[k]), "batch": b0}
            for k, v in measured.items()}


def plot_speedup(result: dict[str, Any], path: str | Path) -> None:
    """Bar chart: speed-up over the HF PyTorch baseline (BERT-base, or the teacher when given, named by its
    architecture) per engine and batch size (and end to end)."""
    from bortfast._base.plot import new_figure

    groups: dict[str, dict[str, float]] = {}
    for row in result["fixed"]:
        groups.setdefault(f"B={row['batch']}, L={row['seq_len']}", {})[row["engine"]] = row["speedup_vs_baseline"]
    for row in result["e2e"]:
        groups.setdefault(f"end to end ({row['sentences']} sent.)", {})[row["engine"]] = row["speedup_vs_baseline"]
    engines = list(dict.fromkeys(e for g in groups.values() for e in g))
    fig, ax = new_figure(figsize=(10, 4.8), dpi=100)
    width = 0.8 / max(1, len(engines))
    for j, engine in enumerate(engines):
        xs = [i + j * width for i, g in enumerate(groups.values()) if engine in g]
        ys = [g[engine] for g in groups.values() if engine in g]
        bars = ax.bar(xs, ys, width, label=engine)
        ax.bar_label(bars, fmt="%.1fx", fontsize=7)
    ax.axhline(7.9, color="grey", ls="--", lw=1)
    ax.text(len(groups) - 0.5, 7.9, "paper: 7.9x", va="bottom", ha="right", fontsize=8, color="grey")
    ax.set_xticks([i + width * (len(engines) - 1) / 2 for i in range(len(groups))], list(groups))
    ax.set_ylabel(f"speed-up over HF PyTorch {result.get('baseline', 'BERT-base')} (x)", fontsize=8)
    machine = result["machine"]
    ax.set_title(f"bortfast CPU speed-up, {machine['threads']} threads, {result['date_utc']} UTC "
                 f"(load avg {machine['loadavg_before'][0]:.1f})", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def format_summary(result: dict[str, Any]) -> str:
    """A readable table of the fixed-shape and end-to-end results and the targets."""
    lines = [f"{'engine':44s} {'B':>3s} {'median ms':>10s} {'min':>8s} {'max':>8s} {'n':>4s} {'x base':>7s} "
             f"{'x large':>8s}"]
    for row in result["fixed"]:
        large = row["speedup_vs_torch_large"]
        lines.append(f"{row['engine']:44s} {row['batch']:3d} {row['median_ms']:10.2f} {row['min_ms']:8.2f} "
                     f"{row['max_ms']:8.2f} {row['n']:4d} {row['speedup_vs_baseline']:7.2f} "
                     f"{large if large is None else f'{large:8.2f}'}")
    for row in result["e2e"]:
        lines.append(f"{row['engine'] + ' (e2e)':44s} {'':3s} {row['median_s'] * 1e3:10.0f} "
                     f"{row['speedup_vs_baseline']:7.2f}")
    for key, entry in result["same_engine"].items():
        lines.append(f"same engine {key}: ORT base/student {entry['latency_ratio']:.2f} vs FLOP ratio "
                     f"{result['flops']['encoder_formula']['ratio']:.2f} (encoder) / "
                     f"{result['flops']['full_model_counted']['ratio']:.2f} (full model)")
    if result.get("busy"):
        lines.append("WARNING: timed while other processes loaded the machine (rows' load.busy): not quiet figures")
    if not result["targets"]:
        lines.append(f"baseline: {result['baseline']} (not BERT-base: the paper's targets do not apply)")
    for key, t in result["targets"].items():
        measured = "n/a" if t["measured"] is None else f"{t['measured']:.2f}"
        lines.append(f"target {key}: {measured} (target {t['target']}) {'met' if t['met'] else 'MISSED'}")
    return "\n".join(lines)
