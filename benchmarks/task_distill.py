"""The task table: a fine-tuned all-MiniLM-L6-v2 teacher and three ways to train a ⟨D, A, H, I⟩ student cut out
of it (encoder and head, bortfast.finetune.task_distill), on GLUE dev, with each model's ONNX Runtime latency.

Per task (SST-2 by default; MRPC, CoLA, STS-B with --tasks):

1. teacher: ``bortfast.finetune.finetune`` of all-MiniLM-L6-v2 (the ``demo`` extra) on a seeded training subsample;
2. the student inherited from that fine-tuned teacher (importance on the task's training text), then
   (a) plain fine-tuning on the gold labels, (b) task distillation (logit KD at τ + hard labels, α),
   (c) Agora (bortfast.finetune.agora, a CPU-sized grid) and (d) task distillation on the training text augmented
   with Agora's word perturbation generator, labelled by the teacher;
3. each model exported to ONNX fp32 (fused), timed at batch 1 over real dev sentences, each engine in its own
   worker process (not in the training process; benchmarks/_harness.py ``classifier_engine``), interleaved rounds;
   the ratio is teacher / student median latency.

Steps whose results exist are skipped, so an interrupted run continues. Output: OUT/results.json and a table.

Run (reads ../shared/data/glue):
    python benchmarks/task_distill.py --out /tmp/bortfast-task-distill --tasks sst2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _harness import (  # benchmarks/ is on sys.path when run as a script
    classifier_engine,
    out_dir,
    parser,
    teacher_dir,
    time_isolated,
    write_json,
    write_result,
)

from bortfast.profile.timing import Engine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "glue"


def measure_latency(files: dict[str, Path], sentences: list, out: Path, threads: int, rounds: int) -> dict:
    """Median per-sentence latency (ms) of each ONNX classifier at batch 1: each file in its own worker process,
    ``rounds`` timed passes over ``sentences``, interleaved across the files. ``out`` keeps the sentences timed."""
    write_json(out / "latency_sentences.json", sentences)
    engines = [Engine(name, str(path), classifier_engine, {"onnx_path": str(path), "texts": sentences,
                                                           "threads": threads}) for name, path in files.items()]
    timed = time_isolated(engines, rounds=rounds, samples_per_round=1, warmup=1)
    per_sentence = {name: [ms / len(sentences) for ms in t.samples_ms] for name, t in timed.items()}
    return {name: {"median_ms": statistics.median(v), "rounds_ms": v} for name, v in per_sentence.items()}


def _cached(path: Path, make):
    if (path / "results.json").is_file():
        return json.loads((path / "results.json").read_text())
    t0 = time.perf_counter()
    res = make()
    res["process_wall_seconds"] = time.perf_counter() - t0
    write_json(path / "results.json", res)
    return res


def run_task(task: str, args: argparse.Namespace, methods: list[str]) -> dict:
    from bortfast.finetune import FinetuneConfig, finetune
    from bortfast.finetune.agora import agora
    from bortfast.finetune.config import AgoraConfig, TaskDistillConfig
    from bortfast.finetune.task_distill import distill_task, save_inherited_student

    out = args.out / task
    out.mkdir(parents=True, exist_ok=True)
    budget = dict(max_train_examples=args.max_train, max_seq_len=args.max_seq_len, progress=args.progress,
                  seed=0)
    teacher_budget = {**budget, "max_train_examples": args.teacher_max_train or args.max_train}
    teacher = _cached(out / "teacher", lambda: finetune(
        teacher_dir(), task, args.data, out / "teacher",
        FinetuneConfig(learning_rate=args.teacher_lr, epochs=args.teacher_epochs, batch_size=args.teacher_batch_size,
                       warmup_ratio=0.1, weight_decay=0.01, classifier_hidden_layer=False, **teacher_budget)))
    kd_cfg = TaskDistillConfig(task=task, data=str(args.data), teacher=str(out / "teacher" / "best"), arch=args.arch,
                               out_dir=str(out / "kd"), lr=args.student_lr, epochs=args.epochs, batch_size=32,
                               temperature=args.temperature, alpha=args.alpha, max_train_examples=args.max_train,
                               max_seq_len=args.max_seq_len, progress=args.progress, hidden_weight=args.hidden_weight,
                               group_by_length=args.group_by_length)
    init = out / "student-init"
    if not (init / "config.json").is_file():
        save_inherited_student(kd_cfg, init)
    runs = {"teacher": teacher}
    plain_cfg = FinetuneConfig(learning_rate=args.student_lr, epochs=args.epochs, batch_size=32,
                               group_by_length=args.group_by_length, **budget)
    if "plain" in methods:
        runs["plain"] = _cached(out / "plain", lambda: finetune(init, task, args.data, out / "plain", plain_cfg))
    if "kd" in methods:
        runs["kd"] = _cached(out / "kd", lambda: distill_task(kd_cfg))
    if "agora" in methods:
        grid = AgoraConfig(learning_rates=(args.student_lr, args.student_lr / 2), weight_decays=(0.01,),
                           warmup_ratios=(0.1,), batch_sizes=(32,), heldout_fraction=0.1, replay=1, copies=2,
                           max_new_per_round=512, generator="words",
                           finetune=FinetuneConfig(**{**plain_cfg.__dict__, "epochs": args.agora_epochs}))
        runs["agora"] = _cached(out / "agora", lambda: agora(init, task, args.data, out / "agora", grid))
    if "kd-aug" in methods:
        aug = TaskDistillConfig(**{**kd_cfg.__dict__, "out_dir": str(out / "kd-aug"), "augment_copies": 1})
        runs["kd-aug"] = _cached(out / "kd-aug", lambda: distill_task(aug))
    return {name: {"dev": r["dev"], "majority_baseline_dev": r["majority_baseline_dev"],
                   "wall_seconds": r.get("process_wall_seconds"), "checkpoint": str(out / name / "best")}
            for name, r in runs.items()}


def export_and_time(task: str, table: dict, args: argparse.Namespace) -> dict:
    """ONNX fp32 of the teacher and the distilled student (the other students share its shape), timed at B=1."""
    from bortfast.data.tasks import load_examples
    from bortfast.export.onnx import to_onnx

    out = args.out / task
    files = {}
    for name in ("teacher", "kd"):
        path = out / f"{name}.onnx"
        if not path.is_file():
            to_onnx(table[name]["checkpoint"], path)
        files[name] = path
    dev = load_examples(task, args.data, "dev")[:args.latency_sentences]
    sentences = [e.text_a if e.text_b is None else [e.text_a, e.text_b] for e in dev]
    lat = measure_latency(files, sentences, out, args.threads, args.latency_rounds)
    return {"teacher_ms": lat["teacher"]["median_ms"], "student_ms": lat["kd"]["median_ms"],
            "speedup": lat["teacher"]["median_ms"] / lat["kd"]["median_ms"], "rounds": lat,
            "threads": args.threads, "sentences": len(sentences), "engine": "onnxruntime fp32 (fused), batch 1"}


def time_shapes(args: argparse.Namespace) -> dict:
    """Pick the student by measurement: random-weight classifiers of MiniLM's shape and each --candidates shape,
    exported and timed exactly as the trained models are (SST-2 dev sentences, B=1, ORT fp32)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from bortfast.data.tasks import load_examples
    from bortfast.export.onnx import to_onnx
    from bortfast.space import Arch

    base = BertConfig.from_pretrained(teacher_dir())
    shapes = {"teacher": Arch.from_config(base), **{a: Arch.parse(a) for a in args.candidates}}
    files = {}
    for name, arch in shapes.items():
        d = args.out / "shapes" / name.replace(",", "-")
        if not (d / "model.onnx").is_file():
            cfg = BertConfig(**{**base.to_dict(), "num_hidden_layers": arch.layers, "num_attention_heads": arch.heads,
                                "hidden_size": arch.hidden, "intermediate_size": arch.intermediate,
                                "architectures": ["BertForSequenceClassification"], "num_labels": 2})
            torch.manual_seed(0)
            BertForSequenceClassification(cfg).save_pretrained(d)
            BertTokenizerFast.from_pretrained(teacher_dir()).save_pretrained(d)
            to_onnx(d, d / "model.onnx")
        files[name] = d / "model.onnx"
    dev = load_examples("sst2", args.data, "dev")[:args.latency_sentences]
    lat = measure_latency(files, [e.text_a for e in dev], args.out, args.threads, args.latency_rounds)
    t = lat["teacher"]["median_ms"]
    return {name: {"median_ms": v["median_ms"], "speedup": t / v["median_ms"]} for name, v in lat.items()}


def print_table(results: dict) -> None:
    print("\n| task | metric | majority | teacher | student: plain FT | student: task KD | Agora | KD + Agora aug. "
          "| speed-up (ORT fp32, B=1) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task, entry in results["tasks"].items():
        rows, speed = entry["models"], entry.get("latency", {}).get("speedup")
        for k, metric in enumerate(rows["teacher"]["dev"]):
            cells = [f"{rows[m]['dev'][metric]:.3f}" if m in rows else "–"
                     for m in ("teacher", "plain", "kd", "agora", "kd-aug")]
            base = rows["teacher"]["majority_baseline_dev"][metric]
            tail = f"{speed:.1f}x" if speed and k == 0 else ""
            print(f"| {task if k == 0 else ''} | {metric} | {base:.3f} | {' | '.join(cells)} | {tail} |")


def main() -> None:
    ap = parser(__doc__, out_default="/tmp/bortfast-task-distill", threads=1,
                out_help="output folder: results.json (or shapes.json with --candidates), every task's runs",
                threads_help="torch threads for training and ORT threads for timing (1: on a contended CPU two "
                "threads wait on each other; default %(default)s)")
    ap.add_argument("--data", type=Path, default=DATA, help="the GLUE directory (SST-2/, MRPC/, ...)")
    ap.add_argument("--tasks", nargs="+", default=["sst2"])
    ap.add_argument("--methods", nargs="+", default=["plain", "kd", "agora", "kd-aug"])
    ap.add_argument("--arch", default="3,4,192,768", help="student ⟨D,A,H,I⟩")
    ap.add_argument("--max-train", type=int, default=3000, help="training examples per task (seeded subsample)")
    ap.add_argument("--teacher-max-train", type=int, help="the teacher's training examples (default: --max-train)")
    ap.add_argument("--max-seq-len", type=int, default=64)
    ap.add_argument("--teacher-lr", type=float, default=1e-4)
    ap.add_argument("--teacher-epochs", type=int, default=1)
    ap.add_argument("--teacher-batch-size", type=int, default=16)
    ap.add_argument("--student-lr", type=float, default=2e-4)
    ap.add_argument("--epochs", type=int, default=3, help="student epochs")
    ap.add_argument("--agora-epochs", type=int, default=2, help="epochs of each Agora run")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--hidden-weight", type=float, default=0.0, help="hidden-state KD weight of the KD students")
    ap.add_argument("--group-by-length", action=argparse.BooleanOptionalAction, default=False,
                    help="student batches of similar lengths (plain fine-tuning, Agora and KD alike)")
    ap.add_argument("--latency-sentences", type=int, default=200)
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--candidates", nargs="+", help="only time these student shapes against the teacher (no "
                    "training), e.g. 3,4,192,768 2,12,192,1152")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out_dir(args.out)
    if args.candidates:
        shapes = time_shapes(args)
        write_result(args.out, shapes, name="shapes")
        for name, v in shapes.items():
            print(f"{name:>16}: {v['median_ms']:.2f} ms/sentence, {v['speedup']:.2f}x")
        return
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "tasks": {}}
    for task in args.tasks:  # the teacher, plain and KD students and the latency first; then Agora and KD+aug.
        models = run_task(task, args, [m for m in ("plain", "kd") if m in args.methods] or ["kd"])
        results["tasks"][task] = {"models": models, "latency": export_and_time(task, models, args)}
        write_result(args.out, results, name="results")
        results["tasks"][task]["models"] = run_task(task, args, args.methods)
        write_result(args.out, results, name="results")
    print_table(results)


if __name__ == "__main__":
    main()
