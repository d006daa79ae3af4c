"""Does distillation beat plain MLM pretraining for the same student and steps? (Bort paper §3: the student is
pretrained by knowledge distillation from the teacher.)

1. Train a small MLM teacher from scratch on real text (WikiText-2 test + Project Gutenberg from ../shared/data,
   bert-base-uncased WordPiece vocabulary), using `bortfast.distill.distill` with alpha=1, beta=0 (plain MLM; the
   "teacher" it is given is only a holder for the tokenizer and shape — with beta=0 it is never run).
2. Train the same small student for the same steps, same data order and masking, twice: with distillation
   (alpha=0.1, beta=0.5, tau=2, the alexa/bort defaults) and with MLM only (alpha=1, beta=0).
3. Report held-out MLM accuracy (and losses) of teacher and both students on the same held-out blocks and masks.

Run (≈ 10-20 min on a shared 2-core box):
    flock /tmp/bortfast-bench.lock python benchmarks/kd_vs_mlm.py --data /work/shared/data --out /tmp/kd-vs-mlm
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from _harness import out_dir, parser, write_result  # benchmarks/ is on sys.path

from bortfast.space import Arch

# torch and the trainer are imported where used, so --help answers at once


def make_init_dir(directory: Path, arch: Arch, vocab_file: Path, max_positions: int) -> Path:
    """A random-init BertForMaskedLM of shape ``arch`` plus the bert-base-uncased tokenizer: the starting point
    (tokenizer holder) for training the teacher with plain MLM."""
    import torch
    from transformers import BertForMaskedLM, BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(vocab_file.parent)  # reads vocab.txt (lower-casing WordPiece)
    assert len(tok) == 30522, len(tok)
    config = Arch(*arch.tuple, vocab_size=len(tok), max_positions=max_positions).to_bert_config(
        architectures=["BertForMaskedLM"])
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def last_eval(run_dir: Path) -> dict:
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in recs if r["event"] == "eval"][-1]


def main() -> None:
    ap = parser(__doc__, out_default="/tmp/bortfast-kd-vs-mlm", threads=None,
                out_help="output folder: results.json, the teacher and the students (resumed on a re-run)")
    ap.add_argument("--data", type=Path, required=True, help="the shared data directory (corpus/, vocab/)")
    ap.add_argument("--teacher-arch", default="4,4,256,1024")
    ap.add_argument("--teacher-steps", type=int, default=400)
    ap.add_argument("--student-arch", default="2,4,128,512")
    ap.add_argument("--student-steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    from bortfast.distill import DistillConfig, distill

    corpus = [str(args.data / "corpus" / "wikitext-2-raw" / "wiki.test.raw"),
              str(args.data / "corpus" / "gutenberg-nltk")]
    vocab = args.data / "vocab" / "bert-base-uncased" / "vocab.txt"
    out_dir(args.out)
    common = dict(corpus=corpus, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr, eval_every=0,
                  eval_batches=8, heldout_batch_size=64, checkpoint_every=50, keep_last=1, log_every=50,
                  progress=True, dropout=0.1,  # checkpoints: an interrupted experiment resumes when re-run
                  init="random")  # both students from scratch: the comparison predates inheritance (init's default)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": []}

    init = make_init_dir(args.out / "teacher-init", Arch.parse(args.teacher_arch), vocab, 512)
    t0 = time.perf_counter()
    teacher = distill(DistillConfig(teacher=str(init), arch=args.teacher_arch, out_dir=str(args.out / "teacher"),
                                    steps=args.teacher_steps, alpha=1.0, beta=0.0, seed=0, **common))
    teacher_eval = last_eval(args.out / "teacher")
    results["runs"].append({"model": "teacher (MLM from scratch)", "arch": args.teacher_arch,
                            "steps": args.teacher_steps, "seed": 0, "seconds": time.perf_counter() - t0,
                            **teacher_eval})

    for seed in args.seeds:
        for name, alpha, beta in (("student, distillation (a=0.1, b=0.5, tau=2)", 0.1, 0.5),
                                  ("student, MLM only (a=1, b=0)", 1.0, 0.0)):
            tag = f"student-{'kd' if beta else 'mlm'}-seed{seed}"
            t0 = time.perf_counter()
            # both students use the trained teacher's tokenizer; eval masks/blocks depend on the seed only
            distill(DistillConfig(teacher=str(teacher), arch=args.student_arch, out_dir=str(args.out / tag),
                                  steps=args.student_steps, alpha=alpha, beta=beta, seed=seed, **common))
            results["runs"].append({"model": name, "arch": args.student_arch, "steps": args.student_steps,
                                    "seed": seed, "seconds": time.perf_counter() - t0,
                                    **last_eval(args.out / tag)})
        write_result(args.out, results, name="results")

    write_result(args.out, results, name="results")
    print("\n| model | arch | steps | seed | held-out MLM acc. | held-out MLM loss | held-out KD loss | time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        print(f"| {r['model']} | <{r['arch']}> | {r['steps']} | {r['seed']} | {r['heldout_mlm_accuracy']:.4f} | "
              f"{r['heldout_mlm_loss']:.3f} | {r['heldout_kd_loss']:.3f} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
