"""Distillation recipe vs quality at a fixed student and step budget: which loss, learning rate and block length
buy the most STS-B per minute of CPU (issue 14, item 6: "steps vs quality").

Each row distils the same inherited student (default ⟨2,12,192,1152⟩, the demo's ξ*) from the demo teacher
all-MiniLM-L6-v2 on the embedded stdlib-docstring corpus with bortfast's own trainer, then scores it zero-shot on
``../shared/data/glue/STS-B/dev.tsv`` with mean pooling (the student as deployed, no projection) and records the
wall time of the distillation. Rows are ``name:key=value,key=value`` over :class:`bortfast.distill.DistillConfig`
fields; finished rows are kept in --out/results.json and skipped on a re-run.

Run (about 3-4 minutes a row on 2 cores):
    python benchmarks/distill_recipe.py --sts ../shared/data/glue/STS-B/dev.tsv --out /tmp/bortfast-recipe \\
        --row base: --row emb1:embedding_loss=1.0 --row lr3:lr=3e-4
"""

from __future__ import annotations

import json
import re
import time

from _harness import out_dir, parser, stdlib_corpus, teacher_dir, write_result  # benchmarks/ is on sys.path
from quality_sts import score  # the same zero-shot STS scoring

from bortfast.distill import DistillConfig, distill
from bortfast.evaluation import read_sts

BASE = dict(steps=200, batch_size=32, seq_len=64, lr=1e-4, max_blocks=2000, eval_every=0, checkpoint_every=0,
            progress=False)


def parse_row(spec: str) -> tuple[str, dict]:
    name, _, body = spec.partition(":")
    if not name:
        raise SystemExit(f"--row {spec!r}: expected NAME:key=value,...")
    fields = {f.name: f.type for f in DistillConfig.__dataclass_fields__.values()}
    kw: dict = {}
    for item in filter(None, re.split(r",(?![^\[]*\])", body)):  # commas inside [...] belong to a list
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--row {spec!r}: {key!r} is not a DistillConfig field")
        kw[key] = _value(value)
    return name, kw


def _value(text: str) -> object:
    """A row value: JSON (numbers, lists, true/false/null) where it parses, else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    ap = parser(__doc__, out_help="output folder: results.json (finished rows, kept on a re-run), corpus, students",
                threads=None)
    ap.add_argument("--sts", required=True, help="STS-B dev.tsv")
    ap.add_argument("--arch", default="2,12,192,1152")
    ap.add_argument("--row", action="append", required=True, help="NAME:key=value,... (DistillConfig overrides)")
    args = ap.parse_args()
    import torch

    out = out_dir(args.out)
    corpus = stdlib_corpus(out)
    pairs = read_sts(args.sts)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for spec in args.row:
        name, kw = parse_row(spec)
        key = f"{args.arch}|{name}"
        if key in results:
            print(f"{name}: kept {results[key]}")
            continue
        cfg = DistillConfig(teacher=str(teacher_dir()), arch=args.arch,  # a row may set its own corpus
                            out_dir=str(out / args.arch.replace(",", "-") / name),
                            **{**BASE, "corpus": [str(corpus)], **kw})
        t0 = time.perf_counter()
        final = distill(cfg)
        wall = time.perf_counter() - t0
        results[key] = {"arch": args.arch, "row": name, "overrides": kw, "sts_dev": round(score(final, pairs), 4),
                        "distill_s": round(wall, 1), "torch_threads": torch.get_num_threads(),
                        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
        write_result(out, results, name="results")
        print(json.dumps(results[key]), flush=True)


if __name__ == "__main__":
    main()
