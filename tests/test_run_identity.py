"""Behaviour identity across refactorings: a fixed tiny ``bortfast run --until finetune`` computes what the recorded
baseline says, on any x86-64 CPU.

The run goes through the public command line only (``python -m bortfast run ... --until finetune``: corpus, search,
distillation and fine-tuning; export, timing and quality come after and hold timings). Per teacher kind (an MLM
teacher: MLM + KL distillation and fine-tuning on a keyword SST-2; an encoder-only teacher: hidden-state
distillation with a projection) it compares with ``baselines/run_identity.json``:

* the chosen ξ, θ and the trained pivots' architectures, exactly;
* every pivot's ê and ξ*'s W, to rtol 1e-4;
* every weight tensor of the student (and its projection) and of the fine-tuned model, as two numbers: its L2 norm
  and its projection on a fixed random unit direction (seeded from the tensor's name), each to 1e-4 of the norm
  (plus 1e-6: a key bias, whose gradient is zero in theory, holds only rounding noise of that size);
* the fine-tuning's dev metrics, to 1e-4.

Why values and not digests: float kernels differ across CPUs (AVX2 / AVX-512 / AMX paths of oneDNN, OpenBLAS and
torch), so the bytes of a trained tensor differ in their last bits from one machine to the next while every value
agrees to ~1e-6. A digest recorded on one CPU fails on another; these tolerances do not, yet a change of behaviour
(another ξ, another loss, another learning rate, another data order) moves the numbers by far more than 1e-4.
``test_identity_check_is_cpu_independent`` shows it on this machine by forcing the AVX2 kernels.

Settings are fixed: ``--latency flops`` (no timing enters the search), ``--seed 0``, ``--threads 1``,
``OMP_NUM_THREADS=1``; the teachers use the fixed-vocabulary tokenizer (``_tiny.vocab_tokenizer``). A change *meant*
to change what a run computes re-records the baseline, in a commit of its own that says why:
``BORTFAST_RECORD_BASELINE=1 pytest tests/test_run_identity.py -k computes``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from _tiny import save_tiny_bert, vocab_tokenizer, write_keyword_sst2, write_tiny_corpus

pytestmark = pytest.mark.slow

BASELINE = Path(__file__).parent / "baselines" / "run_identity.json"
RTOL = 1e-4
ATOL = 1e-6  # on weight values: below it lies the rounding noise of tensors trained by zero-in-theory gradients
WEIGHT_FILES = ("student/model.safetensors", "student/projection.safetensors", "finetuned/best/model.safetensors")
# Environment that makes oneDNN, torch and OpenBLAS take their AVX2 code paths: another CPU's arithmetic.
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2",
            "OPENBLAS_CORETYPE": "Haswell"}


def _teacher(path: Path, kind: str) -> Path:
    from transformers import BertForMaskedLM, BertModel

    if kind == "mlm":
        return save_tiny_bert(path, BertForMaskedLM, tokenizer=vocab_tokenizer(), seed=0, intermediate=64)
    return save_tiny_bert(path, BertModel, tokenizer=vocab_tokenizer(), seed=0, hidden=48, intermediate=64,
                          model_kwargs={"add_pooling_layer": False})


def _run(kind: str, tmp_path: Path, env_extra: dict[str, str] | None = None) -> Path:
    """``bortfast run --until finetune`` on the fixed tiny setting; returns its output directory."""
    teacher = _teacher(tmp_path / f"teacher-{kind}", kind)
    corpus = write_tiny_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bortfast", "run", "--teacher", str(teacher), "--corpus", str(corpus),
           "--out", str(out), "--eps", "8", "--steps", "2", "--seq-len", "32", "--distill-steps", "6",
           "--distill-batch-size", "4", "--threads", "1", "--latency", "flops", "--seed", "0", "--no-progress",
           "--until", "finetune", "--lr", "1e-3"]
    if kind == "hidden":  # a smaller ξ* than W's: a narrower student, so distillation trains the projection too
        cmd += ["--min-speedup", "3", "--no-engine-check"]  # the check times ORT: timing would enter the choice
    if kind == "mlm":  # W's argmax; the fine-tuning of the baseline: 1 epoch on 2,000 examples, chosen on dev
        cmd += ["--by-w", "--task", "sst2", "--task-data", str(write_keyword_sst2(tmp_path / "glue") / "SST-2"),
                "--finetune-epochs", "1", "--finetune-max-train", "2000", "--finetune-heldout-fraction", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _tensor_values(path: Path) -> dict[str, list[float]]:
    """Per tensor: [L2 norm, projection on a fixed random unit direction seeded by the tensor's name]."""
    from safetensors.numpy import load_file

    values = {}
    for name, tensor in sorted(load_file(str(path)).items()):
        flat = tensor.astype(np.float64).ravel()
        direction = np.random.default_rng(zlib.crc32(name.encode())).standard_normal(flat.size)
        direction /= max(np.linalg.norm(direction), 1e-300)
        values[name] = [float(np.linalg.norm(flat)), float(flat @ direction)]
    return values


def _values(out: Path) -> dict:
    """What the run computed, as the numbers the baseline holds."""
    search = json.loads((out / "search.json").read_text(encoding="utf-8"))
    trained = [c for c in search["candidates"] if c.get("error") is not None]
    state = json.loads((out / "pipeline.json").read_text(encoding="utf-8"))
    finetune = state["stages"]["finetune"]["outputs"]
    dev = (finetune.get("result") or {}).get("dev", {})
    return {
        "best_arch": search["candidates"][search["best"]]["arch"],
        "best_theta": search["best_theta"],
        "best_w": search["best_w"],
        "pivots": [c["arch"] for c in trained],
        "pivot_errors": [c["error"] for c in trained],
        "finetune_dev": {k: v for k, v in sorted(dev.items()) if isinstance(v, (int, float))},
        "weights": {rel: _tensor_values(out / rel) for rel in WEIGHT_FILES if (out / rel).is_file()},
    }


def _differences(got: dict, want: dict) -> list[str]:
    """Every way ``got`` departs from ``want`` beyond the tolerances (empty: the same behaviour)."""
    diffs = [f"{key}: {got[key]!r} != {want[key]!r}" for key in ("best_arch", "best_theta", "pivots")
             if got[key] != want[key]]
    for key in ("best_w", "pivot_errors", "finetune_dev"):
        g, w = got[key], want[key]
        if isinstance(w, dict):
            if set(g) != set(w):
                diffs.append(f"{key}: keys {sorted(g)} != {sorted(w)}")
                continue
            g, w = [g[k] for k in sorted(w)], [w[k] for k in sorted(w)]
        if np.shape(g) != np.shape(w) or not np.allclose(g, w, rtol=RTOL, atol=RTOL):
            diffs.append(f"{key}: {g!r} != {w!r} (rtol {RTOL})")
    if set(got["weights"]) != set(want["weights"]):
        diffs.append(f"weight files {sorted(got['weights'])} != {sorted(want['weights'])}")
    for rel, tensors in want["weights"].items():
        mine = got["weights"].get(rel, {})
        if set(mine) != set(tensors):
            diffs.append(f"{rel}: tensors {sorted(set(mine) ^ set(tensors))} differ")
            continue
        for name, (norm, proj) in tensors.items():
            g_norm, g_proj = mine[name]
            tol = RTOL * norm + ATOL  # ATOL: a tensor whose gradient is zero in theory holds rounding noise
            if abs(g_norm - norm) > tol or abs(g_proj - proj) > tol:
                diffs.append(f"{rel} {name}: norm {g_norm:.8g} vs {norm:.8g}, projection {g_proj:.8g} vs {proj:.8g}")
    return diffs


@pytest.mark.parametrize("kind", ["mlm", "hidden"])
def test_fixed_tiny_run_computes_the_recorded_baseline(kind, tmp_path):
    got = _values(_run(kind, tmp_path))
    if os.environ.get("BORTFAST_RECORD_BASELINE"):
        recorded = json.loads(BASELINE.read_text(encoding="utf-8")) if BASELINE.is_file() else {}
        recorded[kind] = got
        BASELINE.parent.mkdir(exist_ok=True)
        BASELINE.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    want = json.loads(BASELINE.read_text(encoding="utf-8"))[kind]
    diffs = _differences(got, want)
    assert not diffs, f"{len(diffs)} difference(s) from {BASELINE.name}:\n" + "\n".join(diffs[:20])


def test_identity_check_is_cpu_independent(tmp_path):
    """The hidden-kind run with AVX2 kernels forced (another CPU's arithmetic) passes the same comparison, and the
    same values moved by 2e-3 of each tensor's norm (far less than one optimiser step moves them) do not."""
    want = json.loads(BASELINE.read_text(encoding="utf-8"))["hidden"]
    avx2 = _values(_run("hidden", tmp_path / "avx2", AVX2_ENV))
    assert not _differences(avx2, want)
    changed = json.loads(json.dumps(want))
    for tensors in changed["weights"].values():
        for v in tensors.values():
            v[1] += 2e-3 * v[0] + 2 * ATOL
    assert _differences(avx2, changed)
