"""Regenerate docs/reliability.md from a real run of the reliability tests (issue 9).

Runs the fuzz / hostile-input / crash-safety test files with pytest (``--junitxml`` for per-test outcomes and times,
``--hypothesis-show-statistics`` for the number of generated examples), optionally the sanitizer run ``.ci/asan``,
and writes docs/reliability.md atomically: one row per test (input or fault tried -> outcome, examples), the totals, and
the counts that matter: crashes (a test process killed by a signal) and lost work (a failed kill/resume test).

Run from the repository root (the installed package is tested; shared data only for tests that ask for it):

    BORTFAST_SHARED_DATA=/work/shared/data python benchmarks/reliability_report.py [--asan] [--out docs/reliability.md]
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from _harness import REPO, parser  # benchmarks/ is on sys.path when run as a script

from bortfast._base.io import atomic_open  # private package: bortfast has no public atomic writer

# file -> what it throws at the code
FILES = {
    "tests/test_fuzz_core.py": "C++ boundary fuzz (hypothesis): every bortfast._core function, odd dtypes/shapes/"
                               "strides, NaN/inf, huge sizes; results checked against the Python/numpy references",
    "tests/test_hostile_inputs.py": "hostile files: corrupt/truncated safetensors, code-running pickle, NUL bytes, "
                                    "10 MB single-line corpus, bad TSV bytes",
    "tests/test_kernel.py": "fused encoder kernel: torch parity, bad shapes/dtypes, fork safety",
    "tests/test_selection.py": "selection core vs references: ties, NaN, empty, huge eps",
    "tests/test_runtime.py": "ONNX runtime: corrupt/truncated .onnx, bad tokenizer JSON, bad inputs",
    "tests/test_tasks.py": "task loaders: malformed TSV/JSONL rows named by file:line",
    "tests/test_distill_train.py": "distillation: SIGKILL mid-run + resume, corrupt/pickle checkpoints",
    "tests/test_search_cli.py": "search: SIGKILL mid-run + resume, refusal to mix settings, --overwrite",
    "tests/test_kernel_stress.py": "encoder thread pool: random batch/sequence/thread counts, Python threads sharing "
                                   "one kernel (the TSan workload, here without the sanitizer)",
    "tests/test_profile.py": "latency cache: two processes writing one cache at once, an old-format cache, other "
                             "repeats/warm-up/kernel build, corrupt JSON",
    "tests/test_dist.py": "2 gloo ranks on localhost: an injected failure on one rank, a rank that stalls past the "
                          "collective timeout, a bad BORTFAST_DIST_TIMEOUT",
    "tests/test_overwrite.py": "--overwrite on a foreign directory, on ., ~, /, a parent of the cwd, a symlink",
    "tests/test_cli.py": "every CLI failure class: a message and exit 2, no traceback (--debug shows it)",
}
# The TSan run (.ci/tsan) builds its own _core and takes minutes, so its outcome is recorded here, not re-run.
TSAN_SECTION = [
    '## ThreadSanitizer (`bash .ci/tsan`, issue 16)',
    '',
    (
        '`_core` built with `-fsanitize=thread` (CMake option `BORTFAST_TSAN`), libtsan preloaded into the '
        'uninstrumented Python, then `tests/test_kernel.py` and `tests/test_kernel_stress.py` (forwards with '
        'random batch 1-4, sequence 1-23 and 2/3/5/8 threads on three architectures, each compared with a '
        '1-thread forward; 2-3 Python threads calling forward at once on separate kernels and on one shared '
        'kernel).'
    ),
    '',
    (
        "- Found: a data race in the encoder's thread pool (csrc/encoder.cc), exactly as issue 16 reasoned. "
        '`run()` wrote the plain `participants_` under the pool mutex while a worker read it after loading '
        'the generation, without the mutex (TSan: write at encoder.cc:58 in `run` by the calling thread, '
        "previous read at encoder.cc:127 in `worker_loop`). A worker late for job g could read job g+1's "
        'count, run g+1 as a participant, then see g+1 again as new and run it a second time, so `pending_` '
        'dropped twice and `run()` could return while a task still ran. The stress test alone never produced '
        'a wrong result; TSan reported the race on every run.'
    ),
    (
        '- Fixed: the generation and the participant count now sit in one atomic 64-bit word (generation in '
        'the upper 48 bits, count in the lower 16, thread counts capped at 65536). It is published with a '
        'release store and read with one acquire load, so a worker decides from the job it actually saw. '
        'After the fix the TSan run is clean: 18 passed, exit 0, about 50 s.'
    ),
    (
        '- Suppressions (`.ci/tsan.supp`): none were needed. TSan sees CPython, numpy, OpenBLAS and torch '
        'only through its interceptors; torch runs with one OpenMP thread (`OMP_NUM_THREADS=1`) because '
        'libgomp is not TSan-aware. `die_after_fork=0` is set because '
        '`test_thread_pool_survives_fork_and_growth` forks a multi-threaded process and starts a fresh pool '
        'in the child, which TSan refuses by default.'
    ),
    (
        '- This section is recorded from that run, not re-run by this script (the TSan build takes minutes): '
        'run `bash .ci/tsan` to check a change. Its persistent build directory re-runs CMake when a csrc/ file '
        "changes, so `_core.kernel_hash` (the latency cache's kernel version) follows the sources there too."
    ),
]

FINDINGS = [
    "UBSan: a NaN in the encoder kernel's input reached `exp_approx`'s float->int conversion and exponent shift "
    "(undefined behaviour; csrc/encoder_ops_inl.h). NaN now propagates like torch "
    "(`test_nan_input_propagates_without_undefined_behaviour`).",
    "`_core.Encoder` accepted sizes whose weights need terabytes and zero-filled them until std::bad_alloc (an "
    "abort under ASan); weights above 2^31 floats are now a ValueError "
    "(`test_encoder_huge_but_in_range_sizes_fail_cleanly`).",
    "A corrupt/truncated/empty `model.safetensors` given to `load_teacher`, `finetune.build_model` or "
    "`export.to_onnx` raised safetensors' own `SafetensorError` (not a ValueError/OSError, so the CLI printed a "
    "traceback) without naming the file; now a ValueError naming the checkpoint.",
    "A non-UTF-8 GLUE/SuperGLUE file raised a bare UnicodeDecodeError without the file name; now a ValueError "
    "naming the file and byte.",
    "`.ci/asan` lost sanitizer reports (pytest's fd capture swallowed them when the process exited); it now runs "
    "pytest with `-s`.",
    "Issue 16: `--overwrite` called `shutil.rmtree` on whatever `--out` named (`.`, `~`); it now removes only what "
    "bortfast wrote into a directory holding its own state file and refuses `.`, `~`, `/` and parents of the "
    "working directory (tests/test_overwrite.py).",
    "Issue 16: RuntimeError and FloatingPointError from the library reached the user as tracebacks; every failure "
    "class now ends as `bortfast CMD: error: ...`, exit 2 (tests/test_cli.py).",
    "Issue 16: the latency cache's read-modify-write had no lock: two processes writing 40 entries each into one "
    "cache lost entries in 3 of 3 runs with the lock removed. Updates now hold an `fcntl.flock` on "
    "`latency-cache.json.lock` (`test_concurrent_writers_lose_no_entries`).",
    "Issue 16: the latency cache key had no kernel version, repeats or warm-up, so a timing of other kernel code or "
    "other settings was reused silently. The key now has all three (kernel version = `__version__` + "
    "`_core.kernel_hash`, a SHA-256 of csrc/ and the build settings from CMake); a format-1 cache is refused with "
    "an error, not reused (`test_old_format_cache_is_refused_not_reused`).",
    "Issue 16: when one rank raised, the other rank's collective failed with gloo's raw \"Connection reset by "
    "peer ... GLHF!\" (or, for a rank that never arrived, waited out the timeout); it now raises a RuntimeError "
    "naming the rank, the collective and BORTFAST_DIST_TIMEOUT. Both 2-rank cases end every rank with an error, "
    "bounded by the subprocess timeout (tests/test_dist.py).",
]
CRASH_SAFETY = re.compile(r"kill|resume|torn|interrupt|concurrent|overwrite|survive", re.I)
# Hypothesis >= 6.1xx prints "100 passing, 0 failing, and 8 invalid test cases"; older: "100 passing examples, 0 failing
# examples, ...".
STATS = re.compile(r"^(?P<test>\S+::\S+):\s*$|(?P<n>\d+) passing(?: examples)?, (?P<f>\d+) failing", re.M)


def hypothesis_examples(output: str) -> dict[str, int]:
    """Test id -> passing+failing examples from ``--hypothesis-show-statistics`` output (summed over phases)."""
    counts: dict[str, int] = {}
    current = None
    for m in STATS.finditer(output):
        if m.group("test"):
            current = m.group("test").split("::", 1)[1]
        elif current is not None:
            counts[current] = counts.get(current, 0) + int(m.group("n")) + int(m.group("f"))
    return counts


def run_pytest(files: list[str], junit: Path) -> tuple[int, str, float]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics",
           f"--junitxml={junit}", *[str(REPO / f) for f in files]]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def run_asan() -> tuple[int, str, float]:
    start = time.perf_counter()
    proc = subprocess.run(["bash", str(REPO / ".ci/asan")], cwd=REPO, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def parse_junit(junit: Path) -> list[dict]:
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
        file = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        rows.append({"file": Path(file).name, "name": case.get("name", ""), "time": float(case.get("time", 0)),
                     "outcome": outcome})
    return rows


def deselected(output: str) -> int:
    """Tests pytest deselected (the shared_data marker when ../shared/data is absent; tests/conftest.py)."""
    m = re.search(r"(\d+) deselected", output)
    return int(m.group(1)) if m else 0


def render(rows: list[dict], examples: dict[str, int], rc: int, wall: float, asan: tuple | None,
           n_deselected: int = 0) -> str:
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    crashes = int(rc < 0)  # pytest killed by a signal (a segfault in the C++ core would do this)
    failed = [r for r in rows if r["outcome"] in ("FAILED", "ERROR")]
    lost = [r for r in failed if CRASH_SAFETY.search(r["name"])]
    n_examples = sum(examples.values())
    inputs = n_examples + sum(1 for r in rows if r["name"] not in examples)
    today = dt.date.today().isoformat()
    out = [
        "# Reliability",
        "",
        f"Generated by `benchmarks/reliability_report.py` on {today} ({platform.machine()}, {os.cpu_count()} cores, "
        "2-core x86-64 dev box shared with other jobs). Do not edit by hand: re-run the script.",
        "",
        "| count | value |",
        "|---|---|",
        f"| tests run | {len(rows)} ({sum(r['outcome'] == 'passed' for r in rows)} passed, {len(failed)} "
        f"failed/errored, {sum(r['outcome'] == 'skipped' for r in rows)} skipped; {n_deselected} deselected) |",
        f"| hypothesis examples generated | {n_examples} |",
        f"| inputs/faults tried (examples + plain tests) | {inputs} |",
        f"| crashes (test process killed by a signal) | {crashes} |",
        f"| lost work (failed kill/resume/torn-write/concurrent-writer/overwrite tests) | {len(lost)} |",
        f"| pytest exit status / wall time | {rc} / {wall:.0f} s |",
    ]
    if asan is not None:
        arc, atext, awall = asan
        tail = [ln for ln in atext.strip().splitlines() if ln.strip()][-2:]
        out.append(f"| ASan+UBSan run (`bash .ci/asan`) | exit {arc}, {awall:.0f} s: {' / '.join(tail)} |")
    out += ["", "## By file", "", "| file | what it throws at the code | tests | passed | examples | time (s) |",
            "|---|---|---|---|---|---|"]
    for file, rs in by_file.items():
        what = next((v for k, v in FILES.items() if k.endswith(file)), "")
        ex = sum(examples.get(r["name"], 0) for r in rs)
        out.append(f"| {file} | {what} | {len(rs)} | {sum(r['outcome'] == 'passed' for r in rs)} | {ex} | "
                   f"{sum(r['time'] for r in rs):.1f} |")
    out += ["", "## Every input or fault tried", "", "| file | test (input / fault) | outcome | examples | time (s) |",
            "|---|---|---|---|---|"]
    for r in rows:
        ex = examples.get(r["name"], "")
        out.append(f"| {r['file']} | `{r['name']}` | {r['outcome']} | {ex} | {r['time']:.2f} |")
    out += ["", "## Bugs these tests found (fixed, each with a test)", ""] + [f"- {b}" for b in FINDINGS]
    out += ["", "An outcome of *passed* means: every call returned a result equal to the reference, or raised a "
            "Python exception (TypeError/ValueError/IndexError/OverflowError/OSError) with a message naming the "
            "value or file; no crash, hang, foreign code run or partial output file.", ""]
    out += TSAN_SECTION + [""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, out_default=REPO / "docs" / "reliability.md", out_help="the markdown file to write",
                threads=None)
    ap.add_argument("--asan", action="store_true", help="also run bash .ci/asan and record its result")
    ap.add_argument("files", nargs="*", default=[f for f in FILES if (REPO / f).is_file()])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        rc, output, wall = run_pytest(args.files, junit)
        if not junit.is_file():
            print(output[-4000:], file=sys.stderr)
            raise SystemExit(f"pytest wrote no junit report (exit {rc})")
        rows = parse_junit(junit)
    asan = run_asan() if args.asan else None
    text = render(rows, hypothesis_examples(output), rc, wall, asan, deselected(output))
    with atomic_open(args.out, "w") as fh:
        fh.write(text)
    print(f"wrote {args.out}: {len(rows)} tests, pytest exit {rc}" + (f", asan exit {asan[0]}" if asan else ""))
    return 0 if rc == 0 and (asan is None or asan[0] == 0) else 1


if __name__ == "__main__":
    raise SystemExit(main())
