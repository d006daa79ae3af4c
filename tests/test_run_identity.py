"""Behaviour identity of the refactorings (issue 13): a fixed tiny ``bortfast run`` computes exactly what it
computed before the package was rearranged.

Golden digests were recorded on commit dc94eef (before RunConfig was composed of stage configs, the CLI built
from dataclasses and the long functions split). Compared, per teacher kind (an MLM teacher: MLM + KL
distillation and fine-tuning on a keyword SST-2; an encoder-only teacher: hidden-state distillation with a
projection):

* ``search.json`` -- the whole file, parsed, with the temporary folder replaced by ``<root>`` and any key naming a
  duration dropped (with ``--latency flops`` it holds none), re-serialised with sorted keys;
* the student's ``model.safetensors`` (and ``projection.safetensors``) and the fine-tuned ``model.safetensors``,
  byte for byte.

The run is ``bortfast run`` through the real command line (``bortfast.cli.main.main``) in a fresh process with
``OMP_NUM_THREADS=1`` (torch's own thread count: a different count may change the last bits of a reduction),
except that the export, bench, quality and summary stages are replaced by stubs: they only read the hashed files
and their outputs hold timings (``benchmarks/layout_identity.py`` runs the full command). Everything is built
deterministically: the teachers use the fixed-vocabulary tokenizer (``_tiny.vocab_tokenizer``), not the trained
one whose token order changes from process to process. Settings are fixed: ``--latency flops`` (no timing enters
the search), ``--seed 0``, ``--threads 1``. If a change is *meant* to change what a run computes, re-record the
digests with ``BORTFAST_PRINT_DIGESTS=1 pytest -s tests/test_run_identity.py`` and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny import save_tiny_bert, vocab_tokenizer, write_keyword_sst2, write_tiny_corpus

pytestmark = pytest.mark.slow

DURATION_KEYS = ("seconds", "elapsed", "wall")
HASHED_FILES = ("student/model.safetensors", "student/projection.safetensors", "finetuned/model.safetensors",
                "finetuned/best/model.safetensors")

# Recorded on dc94eef (the code before issue 13's RunConfig / CLI builder / function splits), then re-recorded
# once, on purpose, when TrainingStep's AdamW became torch's fused CPU kernel (same update to ~1e-8, not bitwise;
# the run passed against the dc94eef digests up to that change).
GOLDEN = {
    "mlm": {
        "search.json": "429bdce398d5af764e64f14d27ebfd7f474912bda018fc835431da224f51ddca",
        "student/model.safetensors": "e83bb620244d220d9781ce93fa924b051d39f78c37a73f9386e08ccebf3f70c1",
        "finetuned/best/model.safetensors": "e9dd9a2406032248ee96c08ccd561f90a135f6a11bc4d2b25970c847e711584e",
    },
    "hidden": {
        "search.json": "46a75271ebc22bdfbdec171a1d66b5a8c5ea606c7cc019f6c54499fd8962b41e",
        "student/model.safetensors": "f3fcd186b2b7bb97a912ae5ffa50425bbac076748ebc7a39307adfe7b9826baf",
        "student/projection.safetensors": "87dc59a6617c231a428e9620d622e5f680b3b3395aed268771fcfc6d4e04beef",
    },
}

# `bortfast run` up to the fine-tuning stage: the later stages (ONNX export, timings, quality, summary) are stubs.
RUN_WITHOUT_LATER_STAGES = """
import sys
from bortfast.apps import pipeline
from bortfast.cli.main import main

for name in ("export", "bench", "quality", "summary"):
    pipeline._STAGE_FUNCS[name] = lambda cfg, out, st: {"summary": {}, "similarity_spearman": 0.0, "sentences": 0}
sys.exit(main(sys.argv[1:]))
"""


def _strip_durations(obj):
    if isinstance(obj, dict):
        return {k: _strip_durations(v) for k, v in obj.items()
                if not (k in DURATION_KEYS or k.endswith("_s") or k.endswith("_seconds"))}
    if isinstance(obj, list):
        return [_strip_durations(v) for v in obj]
    return obj


def _digests(out: Path, root: Path) -> dict[str, str]:
    search = json.loads((out / "search.json").read_text(encoding="utf-8").replace(str(root), "<root>"))
    canonical = json.dumps(_strip_durations(search), sort_keys=True).encode()
    result = {"search.json": hashlib.sha256(canonical).hexdigest()}
    for rel in HASHED_FILES:
        if (out / rel).is_file():
            result[rel] = hashlib.sha256((out / rel).read_bytes()).hexdigest()
    return result


def _teacher(path: Path, kind: str) -> Path:
    from transformers import BertForMaskedLM, BertModel

    if kind == "mlm":
        return save_tiny_bert(path, BertForMaskedLM, tokenizer=vocab_tokenizer(), seed=0, intermediate=64)
    return save_tiny_bert(path, BertModel, tokenizer=vocab_tokenizer(), seed=0, hidden=48, intermediate=64,
                          model_kwargs={"add_pooling_layer": False})


@pytest.mark.parametrize("kind", ["mlm", "hidden"])
def test_fixed_tiny_run_computes_what_it_did_before_the_refactoring(kind, tmp_path):
    teacher = _teacher(tmp_path / f"teacher-{kind}", kind)
    corpus = write_tiny_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", RUN_WITHOUT_LATER_STAGES, "run", "--teacher", str(teacher), "--corpus", str(corpus),
           "--out", str(out), "--eps", "8", "--steps", "2", "--seq-len", "32", "--distill-steps", "6",
           "--distill-batch-size", "4", "--bench-rounds", "1", "--threads", "1", "--latency", "flops",
           "--seed", "0", "--no-progress"]
    if kind == "hidden":  # a smaller ξ* than W's: a narrower student, so distillation trains the projection too
        cmd += ["--min-speedup", "3", "--no-engine-check"]  # the check times ORT: timing would enter the choice
    if kind == "mlm":
        cmd += ["--task", "sst2", "--task-data", str(write_keyword_sst2(tmp_path / "glue") / "SST-2")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = _digests(out, tmp_path)
    if os.environ.get("BORTFAST_PRINT_DIGESTS"):
        print(f"\n{kind!r}: {json.dumps(digests, indent=4)}")
    assert digests == GOLDEN[kind]
