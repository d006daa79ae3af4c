"""Quality next to speed: STS-B dev Spearman of students of the demo teacher (all-MiniLM-L6-v2), inherited vs random
initialisation at equal distillation steps, the first-k-layers recipe, and the teacher itself.

Every student is distilled with bortfast's own trainer (``bortfast.distill.distill``: last-layer hidden-state KD,
no masking, 64-token blocks of the embedded stdlib-docstring corpus, batch 32, lr 1e-4) and scored zero-shot on
``../shared/data/glue/STS-B/dev.tsv`` (1,500 pairs the students never saw) with the teacher's own mean pooling
(``bortfast.evaluation``). The latency column is the ORT fp32 ratio teacher/student at B=1, L=128, each engine
timed alone in its own worker process (benchmarks/_harness.py ``ort_latency``; ``bortfast.apps.bench`` is not used:
see README "Benchmarks" on isolated timing).

Run (about 25 minutes on 2 cores; finished rows are kept in --out/results.json and skipped on a re-run):
    python benchmarks/quality_sts.py --sts ../shared/data/glue/STS-B/dev.tsv --out /tmp/bortfast-quality-sts
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from _harness import ort_latency, out_dir, parser, stdlib_corpus, teacher_dir, write_result  # on sys.path

from bortfast.distill import DistillConfig, distill
from bortfast.evaluation import read_sts, sts_spearman, torch_embedder

# (arch, init, layers): ⟨3,4,192,768⟩ has head size 48 (the teacher's is 32); "first" is sentence-transformers'
# keep-the-first-k-layers recipe.
ROWS = [
    ("3,6,192,768", "inherit", "importance"), ("3,6,192,768", "random", "importance"),
    ("3,4,192,768", "inherit", "importance"), ("3,4,192,768", "random", "importance"),
    ("1,3,96,384", "inherit", "importance"), ("1,3,96,384", "random", "importance"),
    ("3,12,384,1536", "inherit", "importance"), ("3,12,384,1536", "inherit", "first"),
]

def ort_ms(model_dir: Path, work: Path, threads: int = 2, samples: int = 60) -> float:
    """Median ORT fp32 latency (ms) at B=1, L=128 (all-ones input), timed alone in a worker process."""
    from transformers import AutoTokenizer, BertModel

    from bortfast.export import to_onnx

    onnx_path = work / "model.onnx"
    if not onnx_path.is_file():
        enc = work / "encoder"
        BertModel.from_pretrained(model_dir, add_pooling_layer=False).save_pretrained(enc)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(enc)
        to_onnx(enc, onnx_path, check_parity=False)
    timed = ort_latency({"model": onnx_path}, threads=threads, rounds=1, samples_per_round=samples)
    return timed["model"].median_ms


def score(model_dir: Path, pairs) -> float:
    from transformers import AutoTokenizer, BertModel

    model = BertModel.from_pretrained(model_dir, add_pooling_layer=False)
    return sts_spearman(torch_embedder(model, AutoTokenizer.from_pretrained(model_dir), pooling="mean"), pairs)


def run_row(arch: str, init: str, layers: str, steps: int, corpus: Path, out: Path, pairs) -> dict:
    d = out / f"{arch.replace(',', '-')}-{init}-{layers}"
    cfg = DistillConfig(teacher=str(teacher_dir()), corpus=[str(corpus)], arch=arch, out_dir=str(d),
                        steps=steps, batch_size=32, seq_len=64, lr=1e-4, max_blocks=4000, eval_every=0,
                        checkpoint_every=0, progress=False, init=init, layers=layers)
    t0 = time.perf_counter()
    final = distill(cfg)
    row = {"arch": arch, "init": init, "layers": layers, "steps": steps, "train_s": time.perf_counter() - t0,
           "sts": score(final, pairs), "ort_ms": ort_ms(final, d)}
    return row


def main() -> None:
    ap = parser(__doc__, threads=None,
                out_help="output folder: results.json (finished rows, kept on a re-run), corpus, students")
    ap.add_argument("--sts", required=True, help="STS-B dev.tsv")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--retime", action="store_true",
                    help="re-measure every ORT latency (e.g. on a quiet machine) without retraining")
    args = ap.parse_args()
    out = out_dir(args.out)
    pairs = read_sts(args.sts)
    corpus = stdlib_corpus(out)
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    if "teacher" not in results:
        results["teacher"] = {"sts": score(teacher_dir(), pairs),
                              "ort_ms": ort_ms(teacher_dir(), out / "teacher")}
        write_result(out, results, name="results")
    if args.retime:
        results["teacher"]["ort_ms"] = ort_ms(teacher_dir(), out / "teacher")
    for arch, init, layers in ROWS:
        for steps in ((0, args.steps) if init == "inherit" else (args.steps,)):
            key = f"{arch} {init} {layers} {steps}"
            if key not in results:
                results[key] = run_row(arch, init, layers, steps, corpus, out / str(steps), pairs)
            elif args.retime:
                d = out / str(steps) / f"{arch.replace(',', '-')}-{init}-{layers}"
                results[key]["ort_ms"] = ort_ms(d / "final", d)
            write_result(out, results, name="results")
            r = results[key]
            print(f"{key:<40} STS {r['sts']:.4f}  ORT {r['ort_ms']:.2f} ms  "
                  f"({results['teacher']['ort_ms'] / r['ort_ms']:.1f}x faster)", flush=True)
    print(f"teacher STS {results['teacher']['sts']:.4f}  ORT {results['teacher']['ort_ms']:.2f} ms")


if __name__ == "__main__":
    main()
