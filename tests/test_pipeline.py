"""`bortfast run` end to end on a tiny teacher and corpus: the report directory, resume, and stage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bortfast import pipeline
from bortfast.evaluation import quality_scores
from bortfast.pipeline import BenchStage, DistillStage, FinetuneStage, RunConfig, SearchStage, StageError, stages

REPORT_FILES = ["search.json", "pareto.png", "student/config.json", "student/model.safetensors", "model.onnx",
                "model.int8.onnx", "speedup.json", "speedup.png", "summary.md", "pipeline.json"]


def tiny_args(teacher: Path, corpus: Path, out: Path) -> list[str]:
    # --by-w: W's argmax, as a tiny model cannot be 5x faster than another in ONNX Runtime (the default budget)
    return ["--teacher", str(teacher), "--corpus", str(corpus), "--out", str(out), "--by-w", "--eps", "8",
            "--steps", "2",
            "--seq-len", "32", "--distill-steps", "6", "--distill-batch-size", "4", "--bench-rounds", "1",
            "--threads", "1"]


def _tiny_sts(path: Path) -> Path:
    from _tiny import tiny_text

    lines = tiny_text(40, seed=3).splitlines()
    rows = ["index\tsentence1\tsentence2\tscore"]
    rows += [f"{k}\t{a}\t{b}\t{(k * 7) % 6}" for k, (a, b) in enumerate(zip(lines[::2], lines[1::2]))]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_bortfast_run_end_to_end(tiny_hidden_teacher_dir, tiny_corpus_file, tmp_path):
    out = tmp_path / "run"
    sts = _tiny_sts(tmp_path / "sts.tsv")
    proc = subprocess.run([sys.executable, "-m", "bortfast", "run", *tiny_args(tiny_hidden_teacher_dir,
                                                                               tiny_corpus_file, out),
                           "--sts", str(sts)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    state = json.loads((out / "pipeline.json").read_text())
    summary = (out / "summary.md").read_text()
    assert list(state["stages"]) == list(pipeline.STAGES)
    search = json.loads((out / "search.json").read_text())
    best = search["candidates"][search["best"]]["arch"]
    chosen = ",".join(str(best[k]) for k in ("layers", "heads", "hidden", "intermediate"))
    assert state["stages"]["search"]["outputs"]["arch"] == chosen
    # The student checkpoint is the chosen architecture and loads with from_pretrained: an encoder (BertModel), as
    # the teacher is one (no MLM head was trained).
    from transformers import BertModel

    student = BertModel.from_pretrained(out / "student")
    assert student.config.architectures == ["BertModel"]
    # A finished run keeps the deliverables and the logs, not its intermediate copies and checkpoints.
    assert not (out / "work").exists() and not (out / "distill" / "checkpoints").exists()
    assert (out / "distill" / "metrics.jsonl").is_file()
    # An encoder-only teacher: the default unit "auto" distils on one sentence per row, with the sentence
    # recipe's loss (γ 1, β 0) and lr; the batch size given on the command line wins over the recipe's 64.
    distilled = state["stages"]["distill"]["outputs"]
    assert (distilled["unit"], distilled["batch_size"], distilled["lr"]) == ("sentences", 4, 3e-4)
    dcfg = json.loads((out / "distill" / "distill_config.json").read_text())
    assert (dcfg["unit"], dcfg["beta"], dcfg["embedding_loss"]) == ("sentences", None, None)
    card = (out / "student" / "README.md").read_text()  # the model card, with this run's measured figures
    assert "Spearman (cosine)" in card and "ONNX Runtime" in card and str(tiny_hidden_teacher_dir) in card
    assert (student.config.num_hidden_layers, student.config.num_attention_heads, student.config.hidden_size,
            student.config.intermediate_size) == tuple(best[k] for k in ("layers", "heads", "hidden", "intermediate"))
    summary = (out / "summary.md").read_text()
    assert f"⟨{chosen.replace(',', ', ')}⟩" in summary and "Quality retained" in summary
    assert "chosen ξ*" in proc.stdout and "report:" in proc.stdout
    # Quality on the STS file: teacher, ξ* and every trained pivot (as inherited), plotted against î.
    q = state["stages"]["quality"]["outputs"]["sts"]
    assert -1 <= q["teacher"] <= 1 and -1 <= q["student"] <= 1 and q["pairs"] == 20
    assert len(q["pivots"]) == search["trainings"] and (out / "quality.png").is_file()
    assert "STS Spearman teacher / student" in proc.stdout and "STS (" in summary
    quality = json.loads((out / "quality.json").read_text())  # the report says which data chose, which reports
    assert quality["sts"] == q and quality["splits"]["chose"].startswith("ê") and str(sts) in quality["splits"][
        "reports"][-1]
    assert search["selection"] == {"rule": "W"} and "error_param_spearman" in search
    # Retrieval agreement (no labels) and the reference points, measured in the same run (issue 29, items 3 and 5).
    retrieval = quality["retrieval"]
    assert retrieval["k"] == 10 and 0 <= retrieval["student"] <= 1 and "teacher_space" not in retrieval
    ref = quality["references"]
    assert [p["name"] for p in ref["points"]] == ["student", "teacher_int8", "cut"]
    student_layers = best["layers"]
    cut = ref["points"][2]
    assert cut["layers"] == student_layers and cut["label"] == f"first-{student_layers}-layer cut"
    for p in ref["points"]:
        assert p["speedup"] > 0 and p["kept"] == pytest.approx(p["sts"] / q["teacher"])
        assert p["speedup"] == pytest.approx(ref["teacher_fp32_ms"] / p["median_ms"])
    # the INT8 teacher is the teacher, quantised: it agrees with it far better than the untrained cut or chance
    assert ref["points"][1]["heldout"]["cosine"] > 0.9 and ref["points"][1]["heldout"]["recall@10"] > 0.5
    assert "beside the references" in proc.stdout and "teacher INT8:" in proc.stdout
    assert "student keeps" in summary and "what a user would try instead" in summary
    # The quality/bench sentences are held out: search and distillation excluded exactly these lines.
    heldout = out / "corpus" / "heldout.txt"
    assert state["stages"]["corpus"]["outputs"]["heldout"] == str(heldout)
    assert json.loads((out / "distill" / "distill_config.json").read_text())["exclude_file"] == str(heldout)
    assert json.loads((out / "search" / "search.json").read_text())["settings"]["corpus_fingerprint"]
    assert state["stages"]["quality"]["outputs"]["sentences"] == len(heldout.read_text().splitlines())
    speedup = json.loads((out / "speedup.json").read_text())
    assert speedup["archs"]["student"] == [best[k] for k in ("layers", "heads", "hidden", "intermediate")]
    # The benchmark stage's precision choice rests on isolated fp32/INT8 timings and an agreement figure.
    precision = state["stages"]["bench"]["outputs"]["precision"]
    assert precision["chosen"] in ("fp32", "int8") and precision["file"] in ("model.onnx", "model.int8.onnx")
    assert precision["agreement_metric"] == "cosine" and 0.5 < precision["agreement"] <= 1 + 1e-9
    assert precision["fp32"]["n"] >= 10 and precision["int8_speedup"] == pytest.approx(
        precision["fp32"]["median_ms"] / precision["int8"]["median_ms"])
    assert len({r["pid"] for r in speedup["fixed"]}) == len(speedup["fixed"])  # one worker process per engine

    # Re-running the same command resumes: every stage is skipped and the results are untouched.
    before = (out / "search.json").read_bytes()
    proc2 = subprocess.run([sys.executable, "-m", "bortfast", "run", *tiny_args(tiny_hidden_teacher_dir,
                                                                                tiny_corpus_file, out),
                            "--sts", str(sts)],
                           capture_output=True, text=True, timeout=300)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert proc2.stdout.count("done earlier, skipped") == len(pipeline.STAGES)
    assert (out / "search.json").read_bytes() == before

    # Other settings in the same directory are refused, not mixed in.
    proc3 = subprocess.run([sys.executable, "-m", "bortfast", "run", *tiny_args(tiny_hidden_teacher_dir,
                                                                                tiny_corpus_file, out)[:-2],
                            "--threads", "2"], capture_output=True, text=True, timeout=300)
    assert proc3.returncode == 2 and "other settings" in proc3.stderr and "threads" in proc3.stderr


def test_late_failure_keeps_earlier_stages_and_resumes(tiny_teacher_dir, tiny_corpus_file, tmp_path, monkeypatch):
    from _tiny import write_keyword_sst2

    cfg = RunConfig(teacher=str(tiny_teacher_dir), corpus=[str(tiny_corpus_file)], out_dir=str(tmp_path / "run"),
                    seq_len=32, threads=1, progress=False,
                    search=SearchStage(eps=16, steps=1, latency="flops", by_w=True),
                    distill=DistillStage(steps=2, batch_size=2), bench=BenchStage(rounds=1),
                    finetune=FinetuneStage(task="sst2", task_data=str(write_keyword_sst2(tmp_path / "glue") / "SST-2"),
                                           max_train=32))

    def broken_export(*args, **kwargs):
        raise ValueError("disk full (simulated)")

    monkeypatch.setitem(stages.STAGE_FUNCS, "export", broken_export)
    with pytest.raises(StageError, match=r"stage 'export' failed: ValueError: disk full \(simulated\)"):
        pipeline.run(cfg)
    state = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert list(state["stages"]) == ["corpus", "search", "distill", "finetune"]
    assert (tmp_path / "run" / "search.json").is_file() and (tmp_path / "run" / "student").is_dir()

    # Re-run: finished stages are not run again, the pipeline continues at export.
    monkeypatch.undo()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    for name in ("corpus", "search", "distill"):
        monkeypatch.setitem(stages.STAGE_FUNCS, name, must_not_run)
    state = pipeline.run(cfg)
    assert list(state["stages"]) == list(pipeline.STAGES)
    assert (tmp_path / "run" / "model.onnx").is_file()
    # The optional fine-tuning stage ran on SST-2 and its dev metrics reach the summary.
    assert state["stages"]["finetune"]["outputs"]["task"] == "sst2"
    assert "accuracy" in state["stages"]["finetune"]["outputs"]["result"]["dev"]
    assert "## Fine-tuning (sst2" in (tmp_path / "run" / "summary.md").read_text()
    # An MLM teacher: the quality stage scores held-out masked-token accuracy of both models.
    mlm = state["stages"]["quality"]["outputs"]["mlm"]
    assert 0 <= mlm["student"]["accuracy"] <= 1 and mlm["teacher"]["masked_tokens"] == mlm["student"]["masked_tokens"]
    assert "masked-token accuracy" in (tmp_path / "run" / "summary.md").read_text()


def test_run_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="space must be 'below-teacher' or 'bert-paper', got 'huge'"):
        RunConfig(teacher="t", out_dir=str(tmp_path), search=SearchStage(space="huge"))
    with pytest.raises(ValueError, match="RunConfig.eps must be a positive int, got 0"):
        RunConfig(teacher="t", out_dir=str(tmp_path), search=SearchStage(eps=0))
    with pytest.raises(ValueError, match="--task and --task-data go together"):
        RunConfig(teacher="t", out_dir=str(tmp_path), finetune=FinetuneStage(task="sst2"))
    with pytest.raises(ValueError, match="learning rates"):
        RunConfig(teacher="t", out_dir=str(tmp_path), search=SearchStage(lrs=(0.0,)))


def test_run_refuses_a_foreign_directory(tmp_path, tiny_teacher_dir):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a bortfast run directory"):
        pipeline.run(RunConfig(teacher=str(tiny_teacher_dir), out_dir=str(tmp_path), progress=False))
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_missing_corpus_names_the_stage(tmp_path, tiny_teacher_dir):
    with pytest.raises(StageError, match=r"stage 'corpus' failed: FileNotFoundError: corpus path '.*nope.txt'"):
        pipeline.run(RunConfig(teacher=str(tiny_teacher_dir), corpus=[str(tmp_path / "nope.txt")],
                               out_dir=str(tmp_path / "run"), progress=False))


def test_quality_scores_reference():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(20, 8))
    same = quality_scores(teacher * 3.0, teacher)  # scaling changes no cosine
    assert same["cosine"] == pytest.approx(1.0) and same["similarity_spearman"] == pytest.approx(1.0)
    other = quality_scores(rng.normal(size=(20, 5)), teacher)  # different width: only the width-free score
    assert "cosine" not in other and abs(other["similarity_spearman"]) < 0.5


def test_teacher_space_ships_the_projection(tiny_hidden_teacher_dir, tiny_corpus_file, tmp_path):
    """--teacher-space: SentenceTransformer(student) and model.onnx (through Encoder) emit the teacher's width, and
    equal the student's pooled vector through the distillation's projection."""
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertModel

    from bortfast.evaluation import sentence_embeddings
    from bortfast.pipeline import ExportStage, QualityStage
    from bortfast.runtime import Encoder

    out = tmp_path / "run"
    pipeline.run(RunConfig(teacher=str(tiny_hidden_teacher_dir), corpus=[str(tiny_corpus_file)], out_dir=str(out),
                           seq_len=32, threads=1, progress=False,
                           # the fastest ξ by FLOPs (any ê): narrower than the teacher, so it has a projection
                           search=SearchStage(eps=8, steps=2, min_speedup=None, max_error=1e9, latency="flops"),
                           distill=DistillStage(steps=4, batch_size=4), bench=BenchStage(rounds=1),
                           export=ExportStage(teacher_space=True), quality=QualityStage(references=False)))
    student = out / "student"
    assert json.loads((student / "config.json").read_text())["hidden_size"] < 48
    assert (student / "2_Dense" / "model.safetensors").is_file()
    sentences = (out / "corpus" / "heldout.txt").read_text().splitlines()[:6]
    got = SentenceTransformer(str(student), device="cpu").encode(sentences, convert_to_numpy=True)
    assert got.shape == (6, 48)  # the teacher's width, not the student's
    weights = load_file(str(student / "projection.safetensors"))
    encoder = BertModel.from_pretrained(student, add_pooling_layer=False).eval()
    pooled = sentence_embeddings(encoder, AutoTokenizer.from_pretrained(student), sentences, 32)
    with torch.no_grad():
        want = (torch.from_numpy(pooled) @ weights["weight"].T + weights["bias"]).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(Encoder(out / "model.onnx").encode(sentences), want, atol=1e-4)
    quality = json.loads((out / "quality.json").read_text())
    assert set(quality["retrieval"]) == {"k", "student", "teacher_space", "teacher_space_vs_teacher_index"}
    assert "references" not in quality and not (out / "quality.png").exists()
    state = json.loads((out / "pipeline.json").read_text())
    # settings added later count in a run's identity only away from their defaults (older runs still resume)
    assert state["config"]["teacher_space"] is True and state["config"]["references"] is False
    assert state["stages"]["export"]["outputs"]["teacher_space"]["out_features"] == 48
    assert "as queries into an index built with the teacher" in (out / "summary.md").read_text()
