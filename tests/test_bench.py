"""bortfast.apps.bench: the speed-up harness end to end on tiny models (timings are not asserted here: see
benchmarks/test_cpu_speedup.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _tiny import save_tiny_bert, vocab_tokenizer, write_keyword_sst2
from transformers import BertForSequenceClassification

from bortfast.apps.bench import SpeedupConfig, read_sentences_tsv, run_speedup
from bortfast.cli import main


def _classifier(path: Path, tokenizer, layers: int, hidden: int, heads: int) -> Path:
    return save_tiny_bert(path, BertForSequenceClassification, tokenizer=tokenizer, seed=layers, layers=layers,
                          hidden=hidden, heads=heads, intermediate=2 * hidden)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    tok = vocab_tokenizer()
    return {"student": _classifier(root / "student", tok, 1, 32, 4),
            "teacher": _classifier(root / "teacher", tok, 3, 48, 4), "root": root,
            "sst2": write_keyword_sst2(root / "glue") / "SST-2" / "dev.tsv"}


def test_run_speedup_on_tiny_student_and_teacher(dirs, tmp_path):
    sentences = read_sentences_tsv(dirs["sst2"], limit=40)
    assert len(sentences) == 40 and all(isinstance(s, str) and s for s in sentences)
    result = run_speedup(out_dir=str(tmp_path), student_dir=str(dirs["student"]), teacher_dir=str(dirs["teacher"]),
                         include_large=False, sentences=sentences, batch_sizes=(1, 2), seq_len=16, threads=1,
                         rounds=2, min_samples=4, e2e_rounds=2, e2e_batch_size=8, progress=False)
    saved = json.loads((tmp_path / "speedup.json").read_text())
    assert (tmp_path / "speedup.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["archs"] == {"student": [1, 4, 32, 64], "teacher": [3, 4, 48, 96], "large": None}
    # 3 ORT engines + torch base, 2 batch sizes, >= 4 samples each, each engine in its own worker process
    assert len(saved["fixed"]) == 8 and all(len(r["times_ms"]) == r["n"] >= 4 for r in saved["fixed"])
    assert all(r["min_ms"] <= r["median_ms"] <= r["max_ms"] for r in saved["fixed"])
    pids = [r["pid"] for r in saved["fixed"]] + [r["pid"] for r in saved["e2e"]]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids
    assert saved["timing"]["fixed"]["min_samples"] == 4 and all(r["n"] == 2 for r in saved["e2e"])
    assert all(e["fusion_complete"] for e in saved["exports"].values())
    flops = saved["flops"]["encoder_formula"]
    assert flops["ratio"] == pytest.approx(flops["teacher"] / flops["student"])
    assert saved["flops"]["full_model_counted"]["teacher"] > flops["teacher"]  # + classifier head, pooler
    # end to end: the deployed classifier predicts like the torch teacher would with its own weights
    assert [r["sentences"] for r in saved["e2e"]] == [40, 40, 40]
    fp32_preds, int8_preds = saved["e2e"][1]["predictions"], saved["e2e"][2]["predictions"]
    assert len(fp32_preds) == 40 and sum(a == b for a, b in zip(fp32_preds, int8_preds)) >= 36
    # the user's own teacher: the baseline is named for it and the paper's BERT-base targets are not verdicts on it
    assert saved["baseline_key"] == "torch_teacher" and saved["targets"] == {}
    assert "student_int8_vs_torch_teacher_b1" in saved["speedups"]
    assert saved["compared"] == "the models' own heads"  # two sequence classifiers: what each deploys
    assert result["speedups"].keys() == saved["speedups"].keys()


def test_bench_cli_and_bad_input(dirs, tmp_path, capsys):
    assert main(["bench", "--out", str(tmp_path), "--student", str(dirs["student"]), "--teacher",
                 str(dirs["teacher"]), "--no-large", "--batch-sizes", "1", "--seq-len", "8", "--threads", "1",
                 "--rounds", "1", "--min-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "same engine b1" in out and "the paper's targets do not apply" in out and "MISSED" not in out
    assert json.loads((tmp_path / "speedup.json").read_text())["e2e"] == []
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses it before anything runs
        main(["bench", "--out", str(tmp_path), "--batch-sizes", "1,x"])
    assert exit_info.value.code == 2
    assert "argument --batch-sizes: invalid int value: 'x'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="rounds must be a positive int"):
        SpeedupConfig(out_dir=str(tmp_path), rounds=0)
    with pytest.raises(ValueError, match="empty list"):
        SpeedupConfig(out_dir=str(tmp_path), sentences=[])
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\nhello\t1\n")
    with pytest.raises(ValueError, match="no 'sentence' column"):
        read_sentences_tsv(bad)


def test_paper_targets_apply_only_to_a_bert_base_baseline(tmp_path):
    from bortfast.apps.bench import BERT_BASE, BORT, Models
    from bortfast.space import Arch

    def models(teacher: Arch, label: str) -> Models:
        return Models(student_dir=tmp_path, teacher_dir=tmp_path, student_arch=BORT, teacher_arch=teacher,
                      base_label=label, large_dir=None, large_arch=None)

    assert models(BERT_BASE, "BERT-base").paper_baseline and models(BERT_BASE, "BERT-base").baseline_key == \
        "torch_base"
    assert models(BERT_BASE, "teacher").paper_baseline  # the user's own BERT-base: the paper's claim is about it
    assert not models(Arch(6, 12, 384, 1536), "teacher").paper_baseline
    assert models(Arch(6, 12, 384, 1536), "teacher").baseline_key == "torch_teacher"
