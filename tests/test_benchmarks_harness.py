"""Every benchmark script stands on benchmarks/_harness.py (house style 14) and answers ``--help``.

The argparse scripts in benchmarks/ (every ``*.py`` but the pytest-benchmark files ``test_*.py``, ``conftest.py`` and
the harness) must build their options with the harness's ``parser`` and must not re-do what the harness does: write
the stdlib corpus, locate the bundled teacher, read the CPU name, build an ONNX Runtime session or build their own
``ArgumentParser``. Each one runs with ``--help`` in a subprocess and exits 0, showing the common ``--out``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
HARNESS = BENCHMARKS / "_harness.py"

SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py")
                 if not p.name.startswith(("test_", "_")) and p.name != "conftest.py")
BENCHMARK_FILES = sorted(p for p in BENCHMARKS.glob("*.py") if p != HARNESS)

# what only the harness may do: (pattern, what it re-does)
HARNESS_ONLY = [
    (r"\bdef\s+write_stdlib_corpus\b|\bwrite_stdlib_corpus\s*\(", "writes the stdlib corpus (use stdlib_corpus)"),
    (r"\bdef\s+bundled_teacher_path\b|\bbundled_teacher_path\s*\(", "locates the teacher (use teacher_dir)"),
    (r"\bcpu_model\s*\(", "reads the CPU name (write_result stamps it)"),
    (r"\bInferenceSession\s*\(", "builds an ONNX Runtime session (use ort_latency / ort_session / profile.timing)"),
    (r"\bArgumentParser\s*\(", "builds its own argument parser (use parser)"),
]


def test_scripts_are_found() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"bench_isolation.py", "quality_sts.py", "per_layer.py", "remeasure_speed.py"} <= names, names
    assert HARNESS.is_file()


@pytest.mark.parametrize("path", BENCHMARK_FILES, ids=lambda p: p.name)
def test_no_benchmark_file_redoes_the_harness(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [f"{what}: {m.group(0)!r} on line {text.count(chr(10), 0, m.start()) + 1}"
             for pattern, what in HARNESS_ONLY for m in re.finditer(pattern, text)]
    assert not found, f"benchmarks/{path.name} re-does the harness's work: {found}"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_is_on_the_harness(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "_harness"
             for alias in node.names}
    assert "parser" in names, f"benchmarks/{path.name} does not build its options with _harness.parser"


def _help(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    # the installed bortfast (the source tree has no compiled core); a script finds _harness beside itself
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(path), "--help"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_every_script_answers_help(tmp_path: Path) -> None:
    # in parallel: each is a fresh interpreter importing bortfast (heavy imports wait until after parse_args)
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = dict(zip(SCRIPTS, pool.map(lambda p: _help(p, tmp_path), SCRIPTS)))
    failed = {p.name: (r.returncode, r.stderr[-1500:]) for p, r in runs.items() if r.returncode != 0}
    assert not failed, f"--help failed: {failed}"
    no_out = [p.name for p, r in runs.items() if "--out" not in r.stdout]
    assert not no_out, f"--help shows no --out: {no_out}"
    assert not list(tmp_path.iterdir()), "--help wrote files"
