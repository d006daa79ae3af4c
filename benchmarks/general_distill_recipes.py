"""One general-distillation recipe for the demo's student, chosen on a selection split, reported on another
(issue 29, item 2; DESIGN.md §8).

Runs ``bortfast distill`` once (the demo teacher all-MiniLM-L6-v2, inherited student, the demo's final distillation
settings unless EXTRA distill options say otherwise), then scores the distilled student and the teacher zero-shot
with the teacher's own pooling (mean, cosine):

* selection split: a fixed random sample of STS-B *train* pairs (``--selection-pairs``, ``--selection-seed``):
  the split every choice between recipes is made on;
* report split: STS-B dev, scored once per finished variant and never used to choose.

Writes ``OUT/NAME.json`` (date, CPU model, the exact command, wall seconds of the distillation, both splits'
Spearman for student and teacher and the share kept) and ``OUT/NAME.cos.json`` (the selection pairs' cosines);
the teacher's scores are cached in ``OUT/teacher.json``. ``--summarize BASELINE`` tabulates every variant in OUT
with a paired bootstrap of its selection score against BASELINE's (is a difference larger than the pairs' noise?),
and writes those differences to ``OUT/deltas.json`` (the manual's table is rendered from OUT by render_results.py).
Run each variant at one torch thread (OMP_NUM_THREADS=1), e.g. from /tmp:

    OMP_NUM_THREADS=1 python benchmarks/general_distill_recipes.py --name base --out DIR
    OMP_NUM_THREADS=1 python benchmarks/general_distill_recipes.py --name emb1 --out DIR -- --embedding-loss 1.0
    OMP_NUM_THREADS=1 python benchmarks/general_distill_recipes.py --name wiki --out DIR \\
        --corpus ../shared/data/corpus/enwiki-chunk/wiki_00

Options after ``--`` are passed to ``bortfast distill`` and override the demo's (a later flag wins in argparse).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _harness import machine, parser, stdlib_corpus, teacher_dir, write_json

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# The demo's final distillation (bortfast/cli/run.py DEMO_DEFAULTS + RunConfig.max_blocks), as `bortfast distill`
DEMO_ARGS = ["--arch", "2,6,192,1152", "--steps", "100", "--batch-size", "32", "--seq-len", "64", "--lr", "1e-4",
             "--max-blocks", "2000", "--unit", "blocks", "--no-progress"]


def selection_pairs(path: Path, n: int, seed: int):
    """A fixed random sample of ``n`` pairs of an STS-B file (the selection split)."""
    import numpy as np

    from bortfast.evaluation import StsPairs, read_sts

    pairs = read_sts(path)
    idx = np.sort(np.random.default_rng(seed).choice(len(pairs.scores), size=min(n, len(pairs.scores)),
                                                     replace=False))
    return StsPairs([pairs.first[i] for i in idx], [pairs.second[i] for i in idx], pairs.scores[idx],
                    f"{pairs.source} (sample of {len(idx)}, seed {seed})")


def pair_cosines(model_dir: str, pairs) -> list[float]:
    """cos(embed(s1), embed(s2)) per pair, mean pooling (the teacher's)."""
    import numpy as np
    from transformers import AutoModel, AutoTokenizer

    from bortfast.evaluation import torch_embedder

    embed = torch_embedder(AutoModel.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir),
                           pooling="mean")
    a, b = embed(pairs.first), embed(pairs.second)
    return ((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)).tolist()


def score_model(model_dir: str, splits: dict) -> tuple[dict, list[float]]:
    """Spearman of cosine similarity with the gold scores on every split (as bortfast.evaluation.sts_spearman),
    and the selection split's per-pair cosines (for paired comparisons between variants)."""
    from scipy.stats import spearmanr

    scores, selection_cos = {}, []
    for name, pairs in splits.items():
        cos = pair_cosines(model_dir, pairs)
        scores[name] = round(float(spearmanr(cos, pairs.scores).statistic), 4)
        if name == "selection":
            selection_cos = cos
    return scores, selection_cos


def paired_delta(cos: list[float], base_cos: list[float], gold, *, rounds: int = 1000, seed: int = 0) -> dict:
    """Spearman(variant) − Spearman(baseline) on the same selection pairs, with a paired bootstrap over pairs
    (95 % interval): how much of a difference the choice of pairs alone could make."""
    import numpy as np
    from scipy.stats import spearmanr

    cos, base_cos, gold = np.asarray(cos), np.asarray(base_cos), np.asarray(gold)
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(rounds):
        i = rng.integers(0, len(gold), len(gold))
        deltas.append(spearmanr(cos[i], gold[i]).statistic - spearmanr(base_cos[i], gold[i]).statistic)
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    point = spearmanr(cos, gold).statistic - spearmanr(base_cos, gold).statistic
    return {"delta": round(float(point), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}


def summarize(out: Path, baseline: str, splits: dict) -> None:
    """The markdown table of every variant in OUT, with the paired bootstrap of its selection score vs
    ``baseline``'s (per-pair cosines from OUT/NAME.cos.json, recomputed from OUT/runs/NAME/final if absent)."""
    from bortfast._base.io import write_json

    rows = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if not p.name.endswith(".cos.json")}
    rows = {k: r for k, r in rows.items() if isinstance(r, dict) and "student" in r and "name" in r}  # variants only
    cos = {}
    for name in rows:
        path = out / f"{name}.cos.json"
        if not path.is_file():
            write_json(path, pair_cosines(str(out / "runs" / name / "final"), splits["selection"]))
        cos[name] = json.loads(path.read_text())
    t = json.loads((out / "teacher.json").read_text())["scores"]
    deltas = {name: paired_delta(cos[name], cos[baseline], splits["selection"].scores) for name in rows}
    # kept beside the rows, so the manual's table renders from OUT alone (benchmarks/render_results.py)
    write_json(out / "deltas.json", {"baseline": baseline, "split": splits["selection"].source,
                                     "bootstrap": {"rounds": 1000, "seed": 0, "interval": 0.95}, "delta": deltas})
    print("| variant | change | selection ρ | kept | Δ vs baseline (95 % CI, paired bootstrap) | dev ρ | kept | "
          "steps | wall s | command |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| teacher | all-MiniLM-L6-v2, mean pooling | {t['selection']:.4f} | 100 % | – | {t['report']:.4f} | "
          f"100 % | – | – | – |")
    for name, r in sorted(rows.items(), key=lambda kv: kv[1]["date_utc"]):
        d = deltas[name]
        s, k = r["student"], r["kept"]
        print(f"| {name} | {r['change']} | {s['selection']:.4f} | {100 * k['selection']:.1f} % | "
              f"{d['delta']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] | {s['report']:.4f} | "
              f"{100 * k['report']:.1f} % | {r['steps']} | {r['distill_wall_s']:.0f} | `{r['script']}` |")


def corpus_path(spec: str, out: Path, files: list[str] | None = None, paragraphs: bool = False) -> Path:
    """``stdlib``: the demo's embedded corpus; else a text file or a directory of them (only ``files`` of it, when
    given), concatenated in name order (WikiExtractor ``<doc>`` lines dropped). ``paragraphs``: the text is
    hard-wrapped (Project Gutenberg): each blank-line-separated paragraph of six or more words, not all capitals,
    becomes one line."""
    if spec == "stdlib":
        path = out / "stdlib-corpus.txt"
        if not path.is_file():
            stdlib_corpus(out, path.name)
        return path
    src = Path(spec)
    path = out / f"corpus-{src.name}{'-paragraphs' if paragraphs else ''}.txt"
    if not path.is_file():
        chosen = sorted(p for p in src.iterdir() if p.is_file()) if src.is_dir() else [src]
        if files:
            chosen = [p for p in chosen if p.name in set(files)]
        texts = [f.read_text(encoding="utf-8", errors="replace") for f in chosen]
        if paragraphs:
            lines = [" ".join(par.split()) for text in texts for par in re.split(r"\n\s*\n", text)]
            lines = [line for line in lines if len(line.split()) >= 6 and not line.isupper()]
        else:
            lines = [line for text in texts for line in text.splitlines()
                     if line.strip() and not line.startswith(("<doc ", "</doc>"))]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    ap = parser(__doc__, out_help="results folder (students go under OUT/runs/NAME)", threads=None)
    ap.add_argument("--name", help="the variant's name (its JSON is OUT/NAME.json)")
    ap.add_argument("--summarize", metavar="BASELINE", help="run nothing: print the markdown table of every variant "
                    "in OUT with its paired-bootstrap difference from variant BASELINE on the selection split")
    ap.add_argument("--corpus", default="stdlib", help="'stdlib' (the demo's, default) or a text file")
    ap.add_argument("--files", type=lambda v: v.split(","), help="comma-separated file names: only these of the "
                    "--corpus directory")
    ap.add_argument("--paragraphs", action="store_true", help="hard-wrapped text: one paragraph per line")
    ap.add_argument("--seed", type=int, default=0, help="distillation seed (init, data order, masks)")
    ap.add_argument("--sts-train", default=str(DATA / "glue" / "STS-B" / "train.tsv"))
    ap.add_argument("--sts-dev", default=str(DATA / "glue" / "STS-B" / "dev.tsv"))
    ap.add_argument("--selection-pairs", type=int, default=1500)
    ap.add_argument("--selection-seed", type=int, default=0)
    ap.add_argument("--change", default="", help="what the row changes, for the table")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="-- then `bortfast distill` options overriding the demo's")
    args = ap.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    if not args.name and not args.summarize:
        ap.error("--name (run a variant) or --summarize BASELINE (tabulate) is required")

    import torch

    from bortfast.evaluation import read_sts

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    teacher = str(teacher_dir())
    splits = {"selection": selection_pairs(Path(args.sts_train), args.selection_pairs, args.selection_seed),
              "report": read_sts(args.sts_dev)}
    if args.summarize:
        summarize(out, args.summarize, splits)
        return

    teacher_json = out / "teacher.json"
    if teacher_json.is_file():
        t_scores = json.loads(teacher_json.read_text())["scores"]
    else:
        t_scores = score_model(teacher, splits)[0]
        write_json(teacher_json, {"teacher": teacher, "pooling": "mean", "scores": t_scores,
                                  "splits": {k: v.source for k, v in splits.items()}})

    run_dir = out / "runs" / args.name
    corpus = corpus_path(args.corpus, out, args.files, args.paragraphs)
    cmd = [sys.executable, "-m", "bortfast", "distill", "--teacher", teacher, "--corpus", str(corpus), "--out",
           str(run_dir), *DEMO_ARGS, "--seed", str(args.seed), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    scores, selection_cos = score_model(str(run_dir / "final"), splits)
    write_json(out / f"{args.name}.cos.json", selection_cos)
    steps = int(cmd[len(cmd) - 1 - cmd[::-1].index("--steps") + 1])  # the last --steps given
    result = {
        "name": args.name, "change": args.change, "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": machine(), "torch_threads": torch.get_num_threads(), "seed": args.seed, "steps": steps,
        "corpus": args.corpus, "distill_wall_s": round(wall, 1),
        "command": shlex.join(["OMP_NUM_THREADS=" + env["OMP_NUM_THREADS"], "python", *cmd[1:]]),
        "script": shlex.join(["python", "benchmarks/general_distill_recipes.py", *sys.argv[1:]]),
        "chosen_on": "selection", "reported_on": "report",
        "splits": {k: {"source": v.source, "pairs": len(v.scores)} for k, v in splits.items()},
        "teacher": t_scores, "student": scores,
        "kept": {k: round(scores[k] / t_scores[k], 4) for k in scores},
    }
    write_json(out / f"{args.name}.json", result)
    print(json.dumps(result, indent=1), flush=True)


if __name__ == "__main__":
    main()
