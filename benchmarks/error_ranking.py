"""Does the search's ê rank shapes as their full distillations do? (issue 29; DESIGN.md §1, §8)

For a fixed list of shapes (the demo teacher all-MiniLM-L6-v2, inherited students), computes ê as Algorithm 1 does
(:func:`bortfast.distill.short_train_error`, one short training per shape) twice: on packed token blocks with the
token-level loss (the search's ê before 2026-12-08, and still for a masked LM) and on sentence rows with the
sentence recipe's loss (``SearchConfig.unit="sentences"``, now the default for an encoder-only teacher). With
``--finals DIR`` (a ``general_distill_recipes.py`` results folder) it adds each shape's full-distillation score on
the selection split (STS-B train pairs) where a row of that shape exists, and the Spearman of each ê against it
(a lower ê should mean a higher score: a good ranker has Spearman near -1).

    OMP_NUM_THREADS=1 python benchmarks/error_ranking.py --corpus FILE --out DIR [--finals DIR --finals-corpus C]

Writes ``OUT/error_ranking.json``. Nothing here is timed.
"""

from __future__ import annotations

import json
from pathlib import Path

from _harness import parser, teacher_dir, write_result

SHAPES = ("2,6,192,1152", "1,12,384,1152", "1,12,384,1536", "2,12,384,384", "1,6,384,1536", "3,6,192,768",
          "2,6,288,1152", "4,6,192,576", "2,9,288,192")


def errors(corpus: str, shapes: list[str], *, steps: int, seed: int) -> dict[str, dict[str, float]]:
    """ê of every shape on blocks (search defaults: lr 1e-4, batch 8) and on sentences (lr 3e-4, batch 32)."""
    from bortfast.data.corpus import load_corpus
    from bortfast.data.sentences import load_sentences
    from bortfast.data.teacher import load_teacher
    from bortfast.distill.config import default_loss_weights
    from bortfast.distill.short import short_train_error
    from bortfast.distill.student import student_arch, teacher_importance

    t = load_teacher(str(teacher_dir()))
    blocks = load_corpus([corpus], t.tokenizer, seq_len=128, seed=seed, max_blocks=2000)
    sentences = load_sentences([corpus], t.tokenizer, seq_len=64, seed=seed, max_sentences=40000)
    importance = teacher_importance(t, blocks, None, n_blocks=128)
    sentence_weights = default_loss_weights("hidden", beta=0.0, embedding=1.0)
    out = {}
    for shape in shapes:
        arch = student_arch(shape, t)
        out[shape] = {
            "blocks": short_train_error(arch, t, blocks, steps=steps, lr=1e-4, batch_size=8, seed=seed,
                                        heldout_batch_size=32, importance=importance),
            "sentences": short_train_error(arch, t, sentences, steps=steps, lr=3e-4, batch_size=32, seed=seed,
                                           heldout_batch_size=64, weights=sentence_weights, importance=importance)}
        print(shape, {k: round(v, 4) for k, v in out[shape].items()}, flush=True)
    return out


def finals(folder: Path, corpus: str | None) -> dict[str, dict[str, float]]:
    """Selection-split score of every sentence-recipe row in a results folder (only rows whose ``corpus`` is
    ``corpus``, when given), by shape (last row wins)."""
    by_shape = {}
    for path in sorted(folder.glob("*.json")):
        row = json.loads(path.read_text())
        if not isinstance(row, dict) or "student" not in row or "--unit sentences" not in row.get("command", ""):
            continue
        if corpus is not None and row.get("corpus") != corpus:
            continue
        args = row["command"].split()
        shape = [args[i + 1] for i, a in enumerate(args) if a == "--arch"][-1]
        by_shape[shape] = {"row": row["name"], "selection": row["student"]["selection"]}
    return by_shape


def main() -> None:
    ap = parser(__doc__, threads=None)
    ap.add_argument("--corpus", required=True, help="a text file of real sentences (one paragraph per line)")
    ap.add_argument("--finals", type=Path, help="general_distill_recipes.py results folder of the same corpus")
    ap.add_argument("--finals-corpus", help="only the --finals rows distilled on this corpus (their JSON's "
                    "'corpus', e.g. ../shared/data/corpus/gutenberg-nltk)")
    ap.add_argument("--steps", type=int, default=10, help="short-training steps (the demo search's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    result = {"corpus": args.corpus, "steps": args.steps,
              "errors": errors(args.corpus, list(SHAPES), steps=args.steps, seed=args.seed)}
    if args.finals:
        from scipy.stats import spearmanr

        fin = finals(args.finals, args.finals_corpus)
        result["finals"] = fin
        common = [s for s in SHAPES if s in fin]
        if len(common) >= 3:
            score = [fin[s]["selection"] for s in common]
            result["spearman_vs_final"] = {
                unit: float(spearmanr([result["errors"][s][unit] for s in common], score).statistic)
                for unit in ("blocks", "sentences")}
    write_result(args.out, result)
    print(json.dumps(result.get("spearman_vs_final", {})))


if __name__ == "__main__":
    main()
