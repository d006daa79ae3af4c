"""What a run reports: ``summary.md``, the console summary of ``bortfast run`` / ``demo``, and the student's
model card (``student/README.md``), all from the stages' outputs."""

from __future__ import annotations

import json
from pathlib import Path

from bortfast.pipeline.config import RunConfig


def speedup_label(key: str) -> str:
    """A speed-up key of ``speedup.json`` as the summary shows it (the run's baseline is its teacher)."""
    return key.replace("torch_teacher", "teacher(PyTorch)").replace("teacher_fp32", "teacher(ORT fp32)")


def _fmt_int(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def write_run_card(cfg: RunConfig, out: Path, st: dict) -> Path:
    """``student/README.md``: what the student is, what it was distilled from and what it was measured to keep and
    gain in this run (the figures of the quality and bench stages)."""
    from bortfast.export.card import ModelCardInfo, QualityRow, SpeedRow, write_model_card

    quality, rows = st["quality"], []
    if "sts" in quality:
        q = quality["sts"]
        rows.append(QualityRow("Spearman (cosine)", Path(q["file"]).name, q["teacher"], q["student"]))
    if "mlm" in quality:
        m = quality["mlm"]
        rows.append(QualityRow("masked-token accuracy", "held-out corpus lines", m["teacher"]["accuracy"],
                               m["student"]["accuracy"]))
    speedup = json.loads((out / "speedup.json").read_text(encoding="utf-8"))
    machine = f"{speedup['machine']['processor']}, {speedup['machine']['threads']} thread(s)"
    speed = [SpeedRow(f"ONNX Runtime {speedup['machine']['onnxruntime']} fp32, both", int(key[1:]),
                      entry["latency_ratio"], machine, speedup["date_utc"][:10], seq_len=cfg.seq_len)
             for key, entry in speedup["same_engine"].items()]
    return write_model_card(out / "student", ModelCardInfo(
        teacher_path=cfg.teacher, corpus=st["corpus"]["description"], steps=cfg.distill.steps, quality=rows,
        speed=speed, command="bortfast run (see pipeline.json for every setting)"))



def _arch_str(a: dict | list | str) -> str:
    """ξ in the summary: ``⟨D, A, H, I⟩``, or a per-layer ξ's spec (what ``bortfast distill --arch`` takes)."""
    from bortfast.search.algorithm import arch_from_dict

    if isinstance(a, str) or "head_dim" in a:  # a spec (checks, pivots) or a PerLayerArch's dict (search.json)
        return f"`{a if isinstance(a, str) else arch_from_dict(a).spec}`"
    if isinstance(a, list):
        a = dict(zip(("layers", "heads", "hidden", "intermediate"), a))
    return f"⟨{a['layers']}, {a['heads']}, {a['hidden']}, {a['intermediate']}⟩"


def _space_line(cfg: RunConfig, search: dict) -> str:
    per_layer = search["settings"].get("per_layer")
    if per_layer is None:
        return cfg.search.space
    return (f"per-layer frontier (knapsack DP over hidden sizes {per_layer['hidden']}, at most {per_layer['points']} "
            f"points each)")


def _checks_line(checks: list[dict] | None) -> str:
    if not checks:
        return ""
    timed = "; ".join(f"{_arch_str(c['arch'])} "
                      f"{c['speedup']:.2f}x{'' if c['ok'] else ' (rejected)'}"
                      f"{' (head-count twin)' if 'twin_of' in c else ''}" for c in checks)
    return f"; finalists timed against the teacher in {checks[-1]['engine']}: {timed}"


def render_summary(cfg: RunConfig, st: dict, search: dict) -> str:
    """``summary.md``: ξ* vs the teacher, the top candidates by W, speed-ups and quality retained."""
    cands = search["candidates"]
    unit = search["latency_unit"]
    best = cands[search["best"]]
    lines = [
        "# bortfast run summary", "",
        f"- teacher: `{cfg.teacher}` {_arch_str(search['teacher'])}",
        f"- corpus: {st['corpus']['description']}",
        f"- search space: {_space_line(cfg, search)}, {len(cands)} architectures, ε = {cfg.search.eps}, "
        f"{search['trainings']} short trainings of {cfg.search.steps} steps, Θ = lr {list(cfg.search.lrs)}, "
        f"latency proxy î: {cfg.search.latency} ({unit})",
        f"- chosen ξ* = {_arch_str(best['arch'])}"
        + (f" (per-layer: teacher layers {best['teacher_layers']})" if best.get("teacher_layers") else "")
        + f", θ* = {search['best_theta']}, W = {search['best_w']:.4g}, by "
        f"{(search.get('selection') or {}).get('rule', 'W')}"
        + (f"; Spearman(ê, p̂) over the pivots = {search['error_param_spearman']:.3f}"
           if search.get("error_param_spearman") is not None else "")
        + _checks_line((search.get("selection") or {}).get("checks")), "",
        "## ξ* vs the teacher", "",
        f"| | architecture | parameters | î ({unit}) | ê |", "|---|---|---|---|---|",
        f"| teacher | {_arch_str(search['teacher'])} | {_fmt_int(search['teacher_params'])} | "
        f"{search['teacher_latency']:.4g} | – |",
        f"| ξ* | {_arch_str(best['arch'])} | {_fmt_int(best['params'])} | {best['latency']:.4g} | "
        f"{best['error']:.4g} |",
        f"| ratio | | {search['teacher_params'] / best['params']:.1f}x fewer | "
        f"{search['teacher_latency'] / best['latency']:.1f}x lower | |", "",
        "## Top candidates by W", "",
        f"| rank | architecture | parameters | î ({unit}) | ê | W |", "|---|---|---|---|---|---|",
    ]
    trained = [c for c in cands if c.get("w") is not None]
    for rank, c in enumerate(sorted(trained, key=lambda c: -c["w"])[:10], 1):
        lines.append(f"| {rank} | {_arch_str(c['arch'])} | {_fmt_int(c['params'])} | {c['latency']:.4g} | "
                     f"{c['error']:.4g} | {c['w']:.4g} |")
    lines += ["", "## Speed-up of the deployed student (ONNX Runtime) over the teacher (PyTorch)", ""]
    if st["bench"].get("busy"):
        lines += ["**Timed while other processes loaded the machine**: these are not quiet figures (`speedup.json`, "
                  "each row's `load`).", ""]
    lines += ["| measure | speed-up |", "|---|---|"]
    lines += [f"| {speedup_label(k)} | {v:.2f}x |" for k, v in st["bench"]["summary"].items()]
    quality = st["quality"]
    lines += ["", "## Quality retained", "",
              f"On {quality['sentences']} held-out corpus lines: Spearman ρ between the student's and the teacher's "
              f"pairwise sentence similarities = {quality['similarity_spearman']:.3f}"
              + (f"; mean cosine of projected student vs teacher sentence embeddings = {quality['cosine']:.3f}"
                 if "cosine" in quality else "") + "."]
    if "mlm" in quality:
        m = quality["mlm"]
        lines += ["", f"Held-out masked-token accuracy ({m['teacher']['masked_tokens']} masked tokens of the same "
                  f"lines, same positions): teacher {m['teacher']['accuracy']:.4f}, ξ* {m['student']['accuracy']:.4f} "
                  f"(**{100 * m['retained']:.1f}%** of the teacher)."]
    if "sts" in quality:
        q = quality["sts"]
        lines += ["", f"STS ({q['file']}, {q['pairs']} pairs, {q['pooling']} pooling, cosine): Spearman ρ teacher "
                  f"{q['teacher']:.4f}, ξ* {q['student']:.4f} (**{100 * q['retained']:.1f}%** of the teacher). "
                  f"`quality.png` plots quality against î for the teacher, ξ* and the pivots (as inherited)."]
    lines += _retrieval_lines(quality, st["export"].get("teacher_space"))
    if "references" in quality:
        lines += _reference_lines(quality["references"])
    if not st["finetune"].get("skipped", True):
        dev = st["finetune"]["result"].get("dev", {})
        lines += ["", f"## Fine-tuning ({cfg.finetune.task}, {cfg.finetune.epochs} epoch(s), at most "
                  f"{cfg.finetune.max_train} training examples)", "", "| dev metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in dev.items() if isinstance(v, (int, float))]
    loader = "`bortfast.load_student`" if "head_dim" in best["arch"] else "`from_pretrained`"
    config_file = Path(cfg.out_dir) / "student" / "config.json"
    kind = (json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or ["BertModel"])[0] \
        if config_file.is_file() else "BertForMaskedLM"
    lines += ["", "## Files", "", f"`search.json`, `pareto.png`, `student/` ({kind}, loads with {loader}), "
              "`model.onnx`, `model.int8.onnx`, `speedup.json`, `speedup.png`, `quality.json`"
              + (", `quality.png`" if "sts" in quality or "references" in quality else "") + ", `pipeline.json`.", ""]
    return "\n".join(lines)


def _retrieval_lines(quality: dict, teacher_space: dict | None) -> list[str]:
    r = quality.get("retrieval")
    if r is None:
        return []
    k = r["k"]
    line = (f"Retrieval agreement, no labels needed: the student's own vectors find **{100 * r['student']:.1f}%** of "
            f"the teacher's top-{k} neighbours among the {quality['sentences']} held-out lines (recall@{k})")
    if "teacher_space" in r:
        line += (f"; in the teacher's space (`--teacher-space`: `student/2_Dense`) {100 * r['teacher_space']:.1f}% "
                 f"among its own vectors and {100 * r['teacher_space_vs_teacher_index']:.1f}% as queries into an "
                 f"index built with the teacher")
    elif teacher_space is not None and not teacher_space.get("applied"):
        line += f" (`--teacher-space` not applied: {teacher_space['reason']})"
    return ["", line + "."]


def _reference_lines(ref: dict) -> list[str]:
    """summary.md's table of the student beside the reference points (quality kept vs same-engine speed-up)."""
    lines = ["", "## The student beside what a user would try instead", "",
             f"Measured in this run. Quality kept: {ref['kept_measure']}; speed-up: {ref['speed']}"
             + (" (**timed on a busy machine**: not a quiet figure)" if ref.get("busy") else "") + ". "
             "`quality.png` plots quality kept against speed-up.", "",
             "| model | quality kept | speed-up | ms (B=1) | held-out similarity ρ | recall@10 |",
             "|---|---|---|---|---|---|",
             f"| teacher, ORT fp32 | 100% | 1.0x | {ref['teacher_fp32_ms']:.3g} | 1 | 100% |"]
    for p in ref["points"]:
        recall = next((v for key, v in p["heldout"].items() if key.startswith("recall@")), float("nan"))
        lines.append(f"| {p['label']} | {100 * p['kept']:.1f}% | {p['speedup']:.2f}x | {p['median_ms']:.3g} | "
                     f"{p['heldout']['similarity_spearman']:.3f} | {100 * recall:.1f}% |")
    return lines + ["", front_sentence(ref)]


def front_sentence(ref: dict) -> str:
    """The student and the references in plain words, e.g. "student keeps 93% of the teacher's STS Spearman at
    7.5x; teacher INT8: 99.7% at 2.2x; first-2-layer cut: 75% at 3.3x"."""
    what = ("of the teacher's STS Spearman" if ref["kept_measure"].startswith("STS")
            else "of the teacher's top-10 neighbours" if "recall@10" in ref["kept_measure"]
            else f"({ref['kept_measure']})")
    student, *others = ref["points"]
    parts = [f"student keeps {100 * student['kept']:.1f}% {what} at {student['speedup']:.1f}x"]
    parts += [f"{p['label']}: {100 * p['kept']:.1f}% at {p['speedup']:.1f}x" for p in others]
    return "; ".join(parts)


def _rule(selection: dict) -> str:
    """How ξ* was chosen, in words: the budget (e.g. "lowest ê at >= 5x the teacher's speed") or W's argmax."""
    if selection.get("min_speedup") is not None:
        return f"{selection['rule']} (>= {selection['min_speedup']:g}x the teacher's speed; --by-w: W's argmax)"
    return str(selection.get("rule", "W"))


def console_summary(state: dict) -> str:
    """The table ``bortfast run`` / ``demo`` print when a run finishes, from ``pipeline.json``'s content."""
    st = {k: v["outputs"] for k, v in state["stages"].items()}
    search = st["search"]
    per_layer = "=" in search["arch"]  # a per-layer ξ*: its spec "H=..;d=..;A=..;I=.."
    rows = [("chosen ξ*", f"{search['arch']} (per-layer)" if per_layer else f"<{search['arch']}>"),
            ("chosen by", _rule(search.get("selection") or {}))]
    if per_layer:
        rows.append(("teacher layers kept", str(search.get("teacher_layers"))))
    rows += [("parameters", f"{search['params']:,}"),
             (f"î ({search['latency_unit']})", f"{search['latency']:.4g}"),
             ("ê (distillation loss)", f"{search['error']:.4g}"),
             ("short trainings", str(search["trainings"]))]
    checks = (search.get("selection") or {}).get("checks")
    if checks:
        arch = search["arch"] if per_layer else [int(v) for v in search["arch"].split(",")]
        c = next((c for c in checks if c["arch"] == arch), checks[-1])  # ξ*'s own check (twins come after it)
        rows.append(("engine check of ξ*", f"{c['speedup']:.2f}x the teacher in {c['engine']} "
                                           f"({len(checks)} finalist(s) timed)"))
    busy = " (timed on a busy machine: not a quiet figure)" if st["bench"].get("busy") else ""
    rows += [(f"speed-up {speedup_label(k)}", f"{v:.2f}x{busy}") for k, v in st["bench"]["summary"].items()]
    q = st["quality"]
    rows.append(("similarity Spearman ρ vs teacher", f"{q['similarity_spearman']:.3f}"))
    if "cosine" in q:
        rows.append(("embedding cosine vs teacher", f"{q['cosine']:.3f}"))
    if "sts" in q:
        rows.append(("STS Spearman teacher / student", f"{q['sts']['teacher']:.3f} / {q['sts']['student']:.3f} "
                                                       f"({100 * q['sts']['retained']:.1f}% kept)"))
    if "retrieval" in q:
        r = q["retrieval"]
        rows.append((f"teacher's top-{r['k']} neighbours found", f"{100 * r['student']:.1f}% (student's own vectors)"
                     + (f", {100 * r['teacher_space_vs_teacher_index']:.1f}% (teacher-space queries into the "
                        f"teacher's index)" if "teacher_space" in r else "")))
    if "references" in q:
        rows.append(("beside the references", front_sentence(q["references"])
                     + (" (timed on a busy machine)" if q["references"].get("busy") else "")))
    if search.get("error_param_spearman") is not None:
        rows.append(("Spearman(ê, p̂) over pivots", f"{search['error_param_spearman']:.3f}"))
    width = max(len(k) for k, _ in rows)
    return "\n" + "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
