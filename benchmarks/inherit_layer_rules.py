"""Which teacher layers should an inherited student keep? Zero-shot STS-B dev Spearman (no training at all) of
students cut out of all-MiniLM-L6-v2 under each layer rule of ``bortfast.distill.inherit`` (forward passes only).

Run (about 3 minutes on 2 cores):
    python benchmarks/inherit_layer_rules.py --sts ../shared/data/glue/STS-B/dev.tsv --work /tmp/bortfast-layer-rules
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoTokenizer, BertModel

from bortfast.apps.quality import read_sts, sts_spearman, torch_embedder
from bortfast.data.corpus import load_corpus
from bortfast.data.stdlib import write_stdlib_corpus
from bortfast.data.teacher import bundled_teacher_path
from bortfast.distill.inherit import importance_cached, inherit_student
from bortfast.space import Arch

ARCHS = [(3, 12, 384, 1536), (3, 6, 192, 768), (3, 4, 192, 768), (1, 3, 96, 384)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sts", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tp = bundled_teacher_path()
    teacher = BertModel.from_pretrained(tp, add_pooling_layer=False).eval()
    tok = AutoTokenizer.from_pretrained(tp)
    pairs = read_sts(args.sts)
    print(f"teacher {sts_spearman(torch_embedder(teacher, tok), pairs):.4f}")
    if not (work / "corpus.txt").is_file():
        write_stdlib_corpus(work / "corpus.txt")
    corpus = load_corpus([work / "corpus.txt"], tok, seq_len=128, seed=0, max_blocks=2000)
    imp = importance_cached(teacher, corpus.train[:128], work / "importance.npz")
    print("block influence per teacher layer:", " ".join(f"{x:.3f}" for x in imp.layers))
    for shape in ARCHS:
        arch = Arch(*shape, vocab_size=30522, max_positions=512)
        row = []
        for rule in ("first", "even", "importance"):
            s = inherit_student(arch, teacher, imp, layers=rule, model_class="BertModel").eval()
            row.append(f"{rule} {sts_spearman(torch_embedder(s, tok), pairs):.4f}")
        print(f"⟨{', '.join(map(str, shape))}⟩  " + "  ".join(row), flush=True)


if __name__ == "__main__":
    main()
