"""Plain fine-tuning vs Agora on SST-2, MRPC, CoLA and STS-B for a small distilled student (Bort paper §5.1).

1. Teacher: a small BertForMaskedLM trained from scratch with plain MLM (``bortfast.distill.distill`` with
   alpha=1, beta=0) on WikiText-2 test + Project Gutenberg (../shared/data/corpus), bert-base-uncased WordPiece.
2. Student: a smaller BertForMaskedLM distilled from that teacher (alpha=0.1, beta=0.5, tau=2: alexa/bort's loss).
3. Per task, on a seeded subsample of the training set (the same subsample and the same 10 % held-out split for
   both methods; the GLUE dev set is only evaluated, never used to select anything):
   (a) plain fine-tuning, one hyperparameter set, best epoch chosen on the held-out split;
   (b) Agora (bortfast.finetune.agora) on a CPU-sized grid drawn from alexa/bort's README values, same epochs per run.
4. Report dev metrics, the majority-class baseline (regression: predict the training mean) and process CPU time.

Steps whose outputs exist are skipped, so an interrupted run continues where it stopped.

Run:
    python benchmarks/finetune_glue.py --data /work/shared/data --out /tmp/bortfast-finetune-glue
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _harness import out_dir, parser, write_json, write_result  # benchmarks/ is on sys.path

from bortfast.space import Arch

# torch and the trainers are imported where used, so --help answers at once

TASKS = ("sst2", "mrpc", "cola", "stsb")


def make_init_dir(directory: Path, arch: Arch, vocab_file: Path, max_positions: int) -> Path:
    """A random-init BertForMaskedLM of shape ``arch`` + the bert-base-uncased tokenizer (the MLM teacher's start)."""
    import torch
    from transformers import BertForMaskedLM, BertTokenizerFast

    # positional: in transformers 5, BertTokenizerFast(vocab_file=...) silently builds a 5-token vocabulary
    tok = BertTokenizerFast(str(vocab_file), do_lower_case=True)
    config = Arch(*arch.tuple, vocab_size=len(tok), max_positions=max_positions).to_bert_config(
        architectures=["BertForMaskedLM"])
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def pretrain(args: argparse.Namespace) -> tuple[Path, dict]:
    from bortfast.distill import DistillConfig, distill

    corpus = [str(args.data / "corpus" / "wikitext-2-raw" / "wiki.test.raw"),
              str(args.data / "corpus" / "gutenberg-nltk")]
    common = dict(corpus=corpus, batch_size=16, seq_len=64, lr=5e-4, eval_every=0, eval_batches=4,
                  heldout_batch_size=64, checkpoint_every=100, log_every=50, progress=True, dropout=0.1,
                  init="random")  # from scratch, as measured before students were inherited (init's default now)
    info = {}
    teacher_final = args.out / "teacher" / "final"
    c0 = time.process_time()
    if not (teacher_final / "config.json").is_file():
        init = make_init_dir(args.out / "teacher-init", Arch.parse(args.teacher_arch),
                             args.data / "vocab" / "bert-base-uncased" / "vocab.txt", 512)
        distill(DistillConfig(teacher=str(init), arch=args.teacher_arch, out_dir=str(args.out / "teacher"),
                              steps=args.teacher_steps, alpha=1.0, beta=0.0, seed=0, **common))
    info["teacher_cpu_seconds_this_run"] = time.process_time() - c0
    student_final = args.out / "student" / "final"
    c0 = time.process_time()
    if not (student_final / "config.json").is_file():
        distill(DistillConfig(teacher=str(teacher_final), arch=args.student_arch, out_dir=str(args.out / "student"),
                              steps=args.student_steps, alpha=0.1, beta=0.5, temperature=2.0, seed=0, **common))
    info["student_cpu_seconds_this_run"] = time.process_time() - c0
    return student_final, info


def main() -> None:
    ap = parser(__doc__, out_default="/tmp/bortfast-finetune-glue",
                out_help="output folder: results.json, the teacher, the student and each task's runs")
    ap.add_argument("--data", type=Path, required=True, help="the shared data directory (glue/, corpus/, vocab/)")
    ap.add_argument("--teacher-arch", default="4,4,256,1024")
    ap.add_argument("--teacher-steps", type=int, default=400)
    ap.add_argument("--student-arch", default="2,4,128,512")
    ap.add_argument("--student-steps", type=int, default=300)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--max-train", type=int, default=1000, help="training examples per task (seeded subsample)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3, help="plain fine-tuning lr; Agora's grid uses lr and lr/10")
    args = ap.parse_args()
    import torch

    from bortfast.finetune import finetune
    from bortfast.finetune.agora import agora
    from bortfast.finetune.config import AgoraConfig, FinetuneConfig

    torch.set_num_threads(args.threads)
    out_dir(args.out)
    student, info = pretrain(args)

    run = FinetuneConfig(epochs=args.epochs, max_train_examples=args.max_train, max_seq_len=128, progress=False,
                         seed=0)
    # The student is tiny and briefly pretrained, so the learning rates sit 10x above alexa/bort's (1e-4 is the
    # README's largest; at lr 1e-4 plain fine-tuning stayed at the majority class on SST-2 in our first run).
    plain = FinetuneConfig(**{**run.__dict__, "learning_rate": args.lr, "weight_decay": 0.01, "warmup_ratio": 0.1,
                              "batch_size": 16, "heldout_fraction": 0.1})
    # CPU grid, 4 θ: {lr, lr/10} x README weight decays {0, 10}, README warmup 0.35, README batch 16.
    grid = AgoraConfig(learning_rates=(args.lr, args.lr / 10), weight_decays=(0.0, 10.0), warmup_ratios=(0.35,),
                       batch_sizes=(16,), heldout_fraction=0.1, replay=1, copies=2, max_new_per_round=200,
                       finetune=run)
    results = {"student": str(student), "pretraining": info, "args": {k: str(v) for k, v in vars(args).items()},
               "tasks": {}}
    glue = args.data / "glue"
    for task in args.tasks:
        entry = {}
        for method in ("finetune", "agora"):
            out = args.out / task / method
            if (out / "results.json").is_file():
                entry[method] = json.loads((out / "results.json").read_text())
                continue
            c0, w0 = time.process_time(), time.perf_counter()
            r = finetune(student, task, glue, out, plain) if method == "finetune" else agora(student, task, glue,
                                                                                             out, grid)
            r["process_cpu_seconds"], r["process_wall_seconds"] = time.process_time() - c0, time.perf_counter() - w0
            write_json(out / "results.json", r)
            entry[method] = r
            print(task, method, r["dev"], f"cpu {r['process_cpu_seconds']:.0f}s", flush=True)
        results["tasks"][task] = entry
        write_result(args.out, results, name="results")

    print("\n| task | metric | majority baseline | plain fine-tuning | Agora | plain CPU (s) | Agora CPU (s) "
          "| Agora θ |")
    print("|---|---|---|---|---|---|---|---|")
    for task, e in results["tasks"].items():
        ft, ag = e["finetune"], e["agora"]
        th = ag["final_theta"]
        for k, (metric, value) in enumerate(ft["dev"].items()):
            cells = (f"{ft['majority_baseline_dev'][metric]:.3f}", f"{value:.3f}", f"{ag['dev'][metric]:.3f}")
            tail = (f"{ft['process_cpu_seconds']:.0f} | {ag['process_cpu_seconds']:.0f} | lr {th['learning_rate']:g}, "
                    f"wd {th['weight_decay']:g}" if k == 0 else " | | ")
            print(f"| {task if k == 0 else ''} | {metric} | {' | '.join(cells)} | {tail} |")


if __name__ == "__main__":
    main()
