"""Per-layer widths vs uniform ξ at matched measured latency, from the demo teacher all-MiniLM-L6-v2 (issue 17,
part 4; DESIGN.md §1 "The dynamic programme").

1. Uniform side: each ξ of ``--uniform`` is inherited from the teacher (importance layer rule), exported to ONNX
   fp32 and timed (ORT, B=1, L=128, each model in its own worker process, turns alternating, median of 100;
   benchmarks/_harness.py ``ort_latency``); those ≥ ``--min-speedup``
   faster than the teacher are scored zero-shot on a *selection* split (STS-B train pairs, never the dev set) and
   the best is the uniform pick.
2. Per-layer side: for each hidden size of ``--hidden``, the knapsack FPTAS (C++, δ = 0.01) over the teacher's
   importance (cost: FLOPs, or the fused kernel's per-layer latency table with ``--cost kernel``; value: share of
   importance, bortfast.search.perlayer) gives the frontier; ``--per-hidden`` points near the uniform pick's cost
   (:func:`per_layer_candidates`) are inherited, exported and timed in the same alternating rounds as the uniform
   pick; those no slower than it (+3 %) are scored on the selection split and the best is the per-layer pick.
3. Both picks are distilled with the same recipe as benchmarks/quality_sts.py (bortfast.distill.distill: 200
   steps, batch 32, 64-token blocks of the stdlib-docstring corpus, lr 1e-4) and scored on STS-B dev (1,500 pairs)
   with the teacher's mean pooling.

Run (about 30 minutes on 2 shared cores; every measured row is kept in --out/results.json and reused on a re-run):
    python benchmarks/per_layer.py --sts ../shared/data/glue/STS-B/dev.tsv \\
        --select ../shared/data/glue/STS-B/train.tsv --out /tmp/bortfast-per-layer
``--retime`` re-measures every latency (e.g. on a quiet machine) without retraining.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from _harness import ort_latency, out_dir, parser, stdlib_corpus, teacher_dir, write_json, write_result

from bortfast.evaluation import read_sts, sts_spearman, torch_embedder
from bortfast.space import Arch, PerLayerArch

UNIFORM = ("3,6,192,768", "2,6,192,1536", "4,6,192,384", "3,4,192,768", "2,9,288,768")
DISTILL = dict(steps=200, batch_size=32, seq_len=64, lr=1e-4, max_blocks=4000, eval_every=0, checkpoint_every=0,
               progress=False, init="inherit")


def time_models(paths: dict[str, Path], rounds: int = 5, samples: int = 20, threads: int = 2) -> dict[str, dict]:
    """ORT fp32 latency (ms) at B=1, L=128 (all-ones input) of every model: ``rounds`` turns alternating across
    the models, each model in its own worker process (only one runs at a time: no other engine's pool is busy),
    ``samples`` timed runs per turn; min / median / max over all of a model's runs. Alternating turns make every
    model see the same share of a shared CPU's load, so their ratios are fair even when the absolute figures are
    contended."""
    timed = ort_latency(paths, threads=threads, rounds=rounds, samples_per_round=samples)
    return {k: {"ort_ms": t.median_ms, "ort_min_ms": t.min_ms, "ort_max_ms": t.max_ms, "ort_runs": t.n}
            for k, t in timed.items()}


def export(model_dir: Path) -> tuple[Path, dict]:
    from bortfast.export import to_onnx

    onnx_path = model_dir / "model.onnx"
    fused_file = model_dir / "fused_ops.json"
    if not fused_file.is_file():
        write_json(fused_file, to_onnx(model_dir, onnx_path, check_parity=True).fused_ops)
    return onnx_path, json.loads(fused_file.read_text())


def score(model_dir: Path, pairs: Any) -> float:
    from transformers import AutoTokenizer

    from bortfast.models.perlayer import load_student

    model = load_student(model_dir, "BertModel", add_pooling_layer=False).eval()
    return sts_spearman(torch_embedder(model, AutoTokenizer.from_pretrained(model_dir), pooling="mean"), pairs)


def save_inherited(arch: Arch | PerLayerArch, teacher_layers: Any, teacher: Any, imp: Any, out: Path) -> Path:
    from bortfast.distill.inherit import inherit_student
    from bortfast.distill.perlayer import inherit_per_layer

    if not (out / "config.json").is_file():
        if isinstance(arch, Arch):
            model = inherit_student(arch, teacher.model, imp, model_class="BertModel")
        else:
            model = inherit_per_layer(arch, teacher.model, imp, teacher_layers=teacher_layers,
                                      model_class="BertModel")
        model.save_pretrained(out)
        teacher.tokenizer.save_pretrained(out)
    return out


def _dir(ctx: dict, key: str) -> Path:
    return ctx["out"] / "candidates" / key.replace(",", "-").replace(";", "_").replace("=", "")


def prepare(key: str, arch: Any, teacher_layers: Any, ctx: dict, results: dict) -> dict:
    """Inherit and export one candidate (cached in ``results``); timing comes later, in alternating rounds."""
    row = results["candidates"].get(key)
    if row is None:
        d = _dir(ctx, key)
        save_inherited(arch, teacher_layers, ctx["teacher"], ctx["imp"], d)
        row = {"arch": key, "teacher_layers": teacher_layers, "flops": arch.flops(),
               "params": arch.param_count("encoder"), "fused_ops": export(d)[1]}
        results["candidates"][key] = row
        write_json(ctx["out"] / "results.json", results)
    return row


def time_rows(rows: list[dict], ctx: dict, results: dict, retime: bool) -> None:
    """Time the teacher and ``rows`` together (alternating rounds); speed-ups are against that teacher time."""
    todo = [r for r in rows if retime or "ort_ms" not in r]
    if not todo:
        return
    paths = {"teacher": ctx["out"] / "teacher" / "model.onnx", **{r["arch"]: _dir(ctx, r["arch"]) / "model.onnx"
                                                                  for r in todo}}
    timed = time_models(paths)
    for r in todo:
        r.update(timed[r["arch"]], teacher_ort_ms=timed["teacher"]["ort_ms"])
        r["speedup"] = r["teacher_ort_ms"] / r["ort_ms"]
        print(f"{r['arch']:<60} {r['ort_ms']:6.2f} ms  {r['speedup']:4.1f}x", flush=True)
    results["teacher"].update(timed["teacher"])
    write_json(ctx["out"] / "results.json", results)


def selection_score(row: dict, ctx: dict, results: dict) -> float:
    if "select_sts" not in row:
        d = _dir(ctx, row["arch"])
        row["select_sts"] = score(d, ctx["select"])
        write_json(ctx["out"] / "results.json", results)
    return row["select_sts"]


def per_layer_candidates(uniform: dict, args: argparse.Namespace, ctx: dict) -> list[tuple[str, Any, list]]:
    """Frontier points at ``--window`` x the uniform pick's cost, per hidden size: its FLOPs (``--cost flops``,
    the default) or its fused-kernel latency against the per-layer latency table (``--cost kernel``). The default
    window is below 1: FLOPs miss per-layer fixed costs, and FLOPs-matched per-layer students (more, thinner layers)
    were 10-80 % slower in ORT here."""
    from bortfast.profile import measure_latency
    from bortfast.profile.perlayer import layer_latency_table
    from bortfast.search.perlayer import frontier_archs, layer_menus, menu_options, per_layer_frontier

    t, imp = ctx["teacher"].arch, ctx["imp"]
    tables = dict(vocab_size=t.vocab_size, max_positions=t.max_positions, type_vocab_size=t.type_vocab_size)
    if args.cost == "kernel":
        ref = measure_latency(Arch.parse(uniform["arch"], **tables), 1, 128, 2, repeats=15).median_ms
    else:
        ref = uniform["flops"]
    low, high = args.window[0] * ref, args.window[1] * ref
    out = []
    for hidden in args.hidden:
        cost: Any = "flops"
        if args.cost == "kernel":
            heads, neurons = menu_options(t.heads, t.intermediate, hidden=hidden, head_dim=t.head_dim)
            cost = layer_latency_table(hidden, t.head_dim, heads, neurons, seq_len=128, threads=2, repeats=7)
        menu = layer_menus(imp.heads, imp.neurons, hidden=hidden, head_dim=t.head_dim, layer_importance=imp.layers,
                           cost=cost)
        cands = frontier_archs(per_layer_frontier(menu, 0.01), menu, hidden=hidden, head_dim=t.head_dim, **tables)
        near = [c for c in cands if low <= c.cost <= high]
        picks = [near[int(i)] for i in np.unique(np.linspace(0, len(near) - 1, args.per_hidden).round())] \
            if near else []
        out += [(c.arch.spec, c.arch, list(c.teacher_layers)) for c in picks]
    return out


def distilled(row: dict, ctx: dict, results: dict, steps: int) -> float:
    from bortfast.distill import DistillConfig, distill

    key = f"distilled {steps}"
    if key not in row:
        d = ctx["out"] / "distill" / row["arch"].replace(",", "-").replace(";", "_").replace("=", "")
        cfg = DistillConfig(teacher=str(teacher_dir()), corpus=[str(ctx["corpus"])], arch=row["arch"],
                            out_dir=str(d), teacher_layers=row["teacher_layers"], **{**DISTILL, "steps": steps})
        row[key] = score(distill(cfg), ctx["dev"])
        write_json(ctx["out"] / "results.json", results)
    return row[key]


def main() -> None:
    ap = parser(__doc__, threads=None,
                out_help="output folder: results.json (every measured row, reused on a re-run) and the models")
    ap.add_argument("--sts", required=True, help="STS-B dev.tsv (the reported score)")
    ap.add_argument("--select", required=True, help="STS-B train.tsv (picks each side's candidate)")
    ap.add_argument("--select-pairs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--min-speedup", type=float, default=5.0)
    ap.add_argument("--uniform", nargs="+", default=list(UNIFORM))
    ap.add_argument("--hidden", nargs="+", type=int, default=[192, 288])
    ap.add_argument("--per-hidden", type=int, default=4, help="frontier points tried per hidden size")
    ap.add_argument("--cost", choices=["kernel", "flops"], default="flops",
                    help="the knapsack's per-layer cost: FLOPs (default) or the fused-kernel latency table")
    ap.add_argument("--window", type=float, nargs=2, default=[0.4, 0.9],
                    help="frontier points tried: this range x the uniform pick's cost (default 0.4 0.9)")
    ap.add_argument("--retime", action="store_true")
    args = ap.parse_args()

    from bortfast.distill import load_corpus, load_teacher, teacher_importance

    out = out_dir(args.out)
    corpus_file = stdlib_corpus(out)
    teacher = load_teacher(str(teacher_dir()))
    corpus = load_corpus([str(corpus_file)], teacher.tokenizer, seq_len=64, heldout_fraction=0.05, seed=0,
                         max_blocks=4000)
    ctx = {"out": out, "teacher": teacher, "imp": teacher_importance(teacher, corpus, out), "corpus": corpus_file,
           "dev": read_sts(args.sts), "select": read_sts(args.select, limit=args.select_pairs)}
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {"candidates": {}}
    if "teacher" not in results:
        enc = save_inherited(teacher.arch, None, teacher, ctx["imp"], out / "teacher")
        export(enc)
        results["teacher"] = {"sts": score(teacher_dir(), ctx["dev"])}
    tables = dict(vocab_size=teacher.arch.vocab_size, max_positions=teacher.arch.max_positions,
                  type_vocab_size=teacher.arch.type_vocab_size)
    rows = [prepare(a, Arch.parse(a, **tables), None, ctx, results) for a in args.uniform]
    time_rows(rows, ctx, results, args.retime)
    fast = [r for r in rows if r["speedup"] >= args.min_speedup]
    if not fast:
        raise SystemExit(f"no uniform candidate is {args.min_speedup}x faster than the teacher: {rows}")
    uniform = max(fast, key=lambda r: selection_score(r, ctx, results))
    per = [prepare(k, a, tl, ctx, results) for k, a, tl in per_layer_candidates(uniform, args, ctx)]
    # the per-layer candidates are timed in the same rounds as the uniform pick: the match is within one run
    if args.retime or any("ort_ms" not in r for r in per):
        time_rows([*per, uniform], ctx, results, retime=True)
    matched = [r for r in per if r["ort_ms"] <= 1.03 * uniform["ort_ms"] and r["speedup"] >= args.min_speedup]
    if not matched:
        raise SystemExit(f"no per-layer candidate is as fast as the uniform pick {uniform['arch']}: {per}")
    best = max(matched, key=lambda r: selection_score(r, ctx, results))
    summary = {"teacher": results["teacher"], "steps": args.steps}
    for name, row in (("uniform", uniform), ("per_layer", best)):
        summary[name] = {**row, "inherited_dev_sts": row.get("inherited_dev_sts")}
        if row.get("inherited_dev_sts") is None:
            d = _dir(ctx, row["arch"])
            row["inherited_dev_sts"] = summary[name]["inherited_dev_sts"] = score(d, ctx["dev"])
        summary[name]["distilled_dev_sts"] = distilled(row, ctx, results, args.steps)
    summary["gain"] = summary["per_layer"]["distilled_dev_sts"] - summary["uniform"]["distilled_dev_sts"]
    results["summary"] = summary
    write_result(out, results, name="results")
    print(json.dumps({k: summary[k] for k in ("gain",)}, indent=1))
    for name in ("uniform", "per_layer"):
        r = summary[name]
        print(f"{name:<10} {r['arch']:<55} {r['speedup']:4.1f}x  select {r['select_sts']:.4f}  "
              f"dev inherited {r['inherited_dev_sts']:.4f}  dev distilled {r['distilled_dev_sts']:.4f}")


if __name__ == "__main__":
    main()
