"""Should ``bortfast.runtime`` let ONNX Runtime's idle intra-op threads spin? One model alone, and a teacher and a
student in one process used alternately (a server holding both), each with spinning on and off.

Each configuration runs in its own fresh process (no other engine's pool alive), B=1, the same 8 sentences.
Run:
    python benchmarks/runtime_spinning.py --teacher-onnx T.onnx --student-onnx S.onnx [--threads 2] [--n 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time, numpy as np
from bortfast.runtime import Encoder
teacher, student = sys.argv[1], sys.argv[2]
spin, both, threads, n = sys.argv[3] == "1", sys.argv[4] == "1", int(sys.argv[5]), int(sys.argv[6])
texts = ["The quick brown fox jumps over the lazy dog near the river bank today."] * 1
s = Encoder(student, threads=threads, spinning=spin, batch_size=1)
t = Encoder(teacher, threads=threads, spinning=spin, batch_size=1) if both else None
ts, tt = [], []
for i in range(n + 20):
    t0 = time.perf_counter(); s.encode(texts); d = time.perf_counter() - t0
    if i >= 20: ts.append(d)
    if t is not None:
        t0 = time.perf_counter(); t.encode(texts); d = time.perf_counter() - t0
        if i >= 20: tt.append(d)
print(json.dumps({"student_ms": 1e3 * float(np.median(ts)), "teacher_ms": 1e3 * float(np.median(tt)) if tt else None}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher-onnx", required=True)
    ap.add_argument("--student-onnx", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    for both in ("0", "1"):
        for spin in ("0", "1"):
            out = subprocess.run([sys.executable, "-c", CHILD, args.teacher_onnx, args.student_onnx, spin, both,
                                  str(args.threads), str(args.n)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            what = "teacher+student" if both == "1" else "student alone"
            print(f"{what:<16} spinning={'on ' if spin == '1' else 'off'}"
                  f"  student {r['student_ms']:.2f} ms" + (f"  teacher {r['teacher_ms']:.2f} ms" if r["teacher_ms"]
                                                          else ""), flush=True)


if __name__ == "__main__":
    main()
