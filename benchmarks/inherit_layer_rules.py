"""Which teacher layers should an inherited student keep? Zero-shot STS-B dev Spearman (no training at all) of
students cut out of all-MiniLM-L6-v2 under each layer rule of ``bortfast.distill.inherit`` (forward passes only).

Run (about 3 minutes on 2 cores):
    python benchmarks/inherit_layer_rules.py --sts ../shared/data/glue/STS-B/dev.tsv --out /tmp/bortfast-layer-rules
"""

from __future__ import annotations

from _harness import out_dir, parser, stdlib_corpus, teacher_dir, write_result  # benchmarks/ is on sys.path

from bortfast.space import Arch

ARCHS = [(3, 12, 384, 1536), (3, 6, 192, 768), (3, 4, 192, 768), (1, 3, 96, 384)]


def main() -> None:
    ap = parser(__doc__, threads=None,
                out_help="output folder: inherit_layer_rules.json, the corpus and the importance cache")
    ap.add_argument("--sts", required=True, help="STS-B dev.tsv")
    args = ap.parse_args()
    from transformers import AutoTokenizer, BertModel  # here, so --help answers at once

    from bortfast.data.corpus import load_corpus
    from bortfast.distill.inherit import importance_cached, inherit_student
    from bortfast.evaluation import read_sts, sts_spearman, torch_embedder

    work = out_dir(args.out)
    tp = teacher_dir()
    teacher = BertModel.from_pretrained(tp, add_pooling_layer=False).eval()
    tok = AutoTokenizer.from_pretrained(tp)
    pairs = read_sts(args.sts)
    teacher_sts = sts_spearman(torch_embedder(teacher, tok), pairs)
    print(f"teacher {teacher_sts:.4f}")
    corpus = load_corpus([stdlib_corpus(work)], tok, seq_len=128, seed=0, max_blocks=2000)
    imp = importance_cached(teacher, corpus.train[:128], work / "importance.npz")
    print("block influence per teacher layer:", " ".join(f"{x:.3f}" for x in imp.layers))
    rows = []
    for shape in ARCHS:
        arch = Arch(*shape, vocab_size=30522, max_positions=512)
        row = {}
        for rule in ("first", "even", "importance"):
            s = inherit_student(arch, teacher, imp, layers=rule, model_class="BertModel").eval()
            row[rule] = sts_spearman(torch_embedder(s, tok), pairs)
        rows.append({"arch": list(shape), "sts_dev": row})
        print(f"⟨{', '.join(map(str, shape))}⟩  " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
    write_result(work, {"teacher_sts_dev": teacher_sts, "block_influence": [float(x) for x in imp.layers],
                        "rows": rows})


if __name__ == "__main__":
    main()
