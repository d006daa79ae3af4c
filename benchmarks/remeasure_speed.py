"""Regenerate every published speed figure with isolated timing (each engine in its own worker process, turns
alternating; bortfast.profile.timing), one JSON per figure plus ``summary.json``, for a quiet machine.

Steps (each a separate process, one after the other; the lock keeps other benchmarks off the CPU meanwhile):

1. ``bench_isolation``  -- bench ratio vs each engine timed alone, demo's ξ* ⟨2,3,288,1152⟩ and ⟨3,6,192,768⟩
   vs torch all-MiniLM-L6-v2, 2 repeats (README "Runtime" / issue 18 "Done when");
2. ``cpu_speedup``      -- the 8x claim: random Bort ⟨4,8,1024,768⟩ (ORT fp32/INT8) vs torch BERT-base/large, B=1
   and 8, L=128, + end to end on SST-2 dev sentences (benchmarks/test_cpu_speedup.py);
3. ``encoder_engines``  -- fused kernel vs ORT vs torch eager, Bort B=1 and 8 (benchmarks/encoder_engines.py);
4. ``int8_threads``     -- INT8 formats vs fp32 at 1 and 2 threads, spinning on/off (benchmarks/int8_threads.py);
5. ``spinning``         -- runtime spinning on/off, one model and teacher+student (benchmarks/runtime_spinning.py);
6. ``demo_bench`` (only with --demo-dir) -- ``bortfast bench`` on a finished demo's student and teacher encoders.

Run from the repository root (with ../shared/data beside it, or BORTFAST_SHARED_DATA):
    flock /tmp/bortfast-bench.lock python benchmarks/remeasure_speed.py --out benchmarks/results/remeasure
Expected: ~10-13 min on a quiet 2-core box (--quick: ~4 min, fewer samples and sentences, for a smoke test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _harness import out_dir, parser, write_result  # benchmarks/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("BORTFAST_SHARED_DATA", HERE.parents[1] / "shared" / "data"))


def steps(out: Path, quick: bool, demo_dir: str | None, threads: int) -> dict[str, list[str]]:
    py = sys.executable
    sentences = "64" if quick else "256"
    todo = {
        "bench_isolation": [py, str(HERE / "bench_isolation.py"), "--out", str(out),
                            "--threads", str(threads), "--repeats", "1" if quick else "2"],
        "cpu_speedup": ["env", f"BORTFAST_SHARED_DATA={SHARED}", f"BORTFAST_SPEEDUP_OUT={out / 'cpu_speedup'}",
                        f"BORTFAST_SPEEDUP_SENTENCES={sentences}", f"BORTFAST_SPEEDUP_THREADS={threads}",
                        f"BORTFAST_SPEEDUP_MIN_SAMPLES={5 if quick else 10}",
                        py, "-m", "pytest", str(HERE / "test_cpu_speedup.py"), "-q", "-s", "-p", "no:cacheprovider"],
        "encoder_engines": [py, str(HERE / "encoder_engines.py"), "--out", str(out),
                            "--shapes", "bort", "--batches", "1" if quick else "1,8", "--threads", str(threads)],
        "int8_threads": [py, str(HERE / "int8_threads.py"), "--out", str(out),
                         "--min-samples", "10" if quick else "30"],
        "spinning": [py, str(HERE / "runtime_spinning.py"), "--out", str(out),
                     "--threads", str(threads), "--n", "50" if quick else "100", "--passes", "2" if quick else "3"],
    }
    if demo_dir:
        work = Path(demo_dir) / "work"
        todo["demo_bench"] = [py, "-m", "bortfast", "bench", "--out", str(out / "demo_bench"),
                              "--student", str(work / "student_encoder"), "--teacher", str(work / "teacher_encoder"),
                              "--no-large", "--threads", str(threads),
                              "--sentences-tsv", str(SHARED / "glue" / "SST-2" / "dev.tsv"),
                              "--max-sentences", sentences]
    return todo


def main() -> None:
    ap = parser(__doc__, out_help="output folder: each step's <script>.json and log, summary.json")
    ap.add_argument("--quick", action="store_true", help="fewer samples and sentences (a smoke test)")
    ap.add_argument("--demo-dir", help="a finished `bortfast demo` output directory: re-bench its student too")
    ap.add_argument("--only", help="comma-separated step names to run")
    args = ap.parse_args()
    out = out_dir(args.out)
    todo = steps(out, args.quick, args.demo_dir, args.threads)
    if args.only:
        unknown = set(args.only.split(",")) - set(todo)
        if unknown:
            raise SystemExit(f"unknown steps {sorted(unknown)}; steps: {list(todo)}")
        todo = {k: v for k, v in todo.items() if k in args.only.split(",")}
    summary = {"loadavg_before": os.getloadavg(), "quick": args.quick, "steps": {}}
    for name, cmd in todo.items():
        t0 = time.perf_counter()
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        with open(out / f"{name}.log", "w", encoding="utf-8") as log:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parent).returncode
        summary["steps"][name] = {"returncode": code, "seconds": round(time.perf_counter() - t0, 1),
                                  "log": str(out / f"{name}.log")}
        print(f"   {name}: exit {code}, {summary['steps'][name]['seconds']} s", flush=True)
    summary["loadavg_after"] = os.getloadavg()
    write_result(out, summary, name="summary")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
