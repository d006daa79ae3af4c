"""Full distillation runs: checkpoints, exact resume after kill -9, bad checkpoints, DDP under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bortfast.distill import DistillConfig, distill

TESTS = Path(__file__).resolve().parent

# Runs one distillation in a fresh process: 1 thread and deterministic algorithms, so two runs agree bit for bit.
# With KILL_AT set, the process SIGKILLs itself right after writing that checkpoint (a hard crash mid-run).
DRIVER = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    from bortfast.distill import DistillConfig, distill
    cfg = DistillConfig(**json.loads(sys.argv[1]))
    kill_at = int(os.environ.get("KILL_AT", "0"))
    def on_event(event, info):
        if event == "checkpoint" and info["step"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    print(distill(cfg, callbacks=[on_event]))
""")


def _config(teacher: Path, corpus: Path, out: Path, **kw) -> DistillConfig:
    base = dict(teacher=str(teacher), corpus=[str(corpus)], arch="1,2,16,24", out_dir=str(out), steps=8,
                batch_size=4, seq_len=32, lr=1e-3, checkpoint_every=2, keep_last=2, eval_every=4, log_every=2,
                progress=False, seed=3)
    base.update(kw)
    return DistillConfig(**base)


def _run_driver(cfg: DistillConfig, kill_at: int = 0) -> subprocess.CompletedProcess:
    import dataclasses

    env = dict(os.environ, KILL_AT=str(kill_at), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", DRIVER, json.dumps(dataclasses.asdict(cfg))], env=env,
                          capture_output=True, text=True, timeout=300)


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def test_kill9_then_resume_equals_uninterrupted_run(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    straight = _run_driver(_config(tiny_teacher_dir, tiny_corpus_file, tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]

    cfg = _config(tiny_teacher_dir, tiny_corpus_file, tmp_path / "crashed")
    killed = _run_driver(cfg, kill_at=4)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    ckpts = sorted(p.name for p in (tmp_path / "crashed" / "checkpoints").iterdir())
    assert ckpts == ["step-00000002", "step-00000004"]  # checkpoint 2 of 4 written, then the crash
    assert not (tmp_path / "crashed" / "final").exists()

    resumed = _run_driver(cfg)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(tmp_path / "straight" / "final"), _weights(tmp_path / "crashed" / "final")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    starts = [r for r in map(json.loads, (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines())
              if r["event"] == "start"]
    assert [s["step"] for s in starts] == [0, 4]
    # the weights really changed during training (the test would be vacuous otherwise)
    first = _weights(tmp_path / "crashed" / "checkpoints" / "step-00000006")
    assert any(not torch.equal(first[n], a[n]) for n in a)


def test_final_checkpoint_loads_with_from_pretrained(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    from transformers import AutoTokenizer, BertForMaskedLM

    cfg = _config(tiny_teacher_dir, tiny_corpus_file, tmp_path / "run", steps=4, checkpoint_every=0)
    final = distill(cfg)
    assert final == tmp_path / "run" / "final"
    model = BertForMaskedLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (1, 16)
    assert model.config.vocab_size == len(tok) == 200
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-00000004"]
    recs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["event"] == "train"]
    assert train and all(r["tokens_per_s"] > 0 and r["kd_loss"] >= 0 for r in train)
    assert 0.0 <= [r for r in recs if r["event"] == "eval"][-1]["heldout_mlm_accuracy"] <= 1.0
    summary = json.loads((final / "summary.json").read_text())
    assert summary["arch"] == "<1, 2, 16, 24>" and summary["steps"] == 4


def test_hidden_teacher_distill_saves_projection(tiny_hidden_teacher_dir, tiny_corpus_file, tmp_path):
    cfg = _config(tiny_hidden_teacher_dir, tiny_corpus_file, tmp_path / "run", steps=2, checkpoint_every=0,
                  hidden_loss="cosine")
    final = distill(cfg)
    proj = load_file(str(final / "projection.safetensors"))
    assert proj["weight"].shape == (48, 16)


def test_keep_last_prunes_old_checkpoints(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    distill(_config(tiny_teacher_dir, tiny_corpus_file, tmp_path / "run", steps=6, checkpoint_every=1, keep_last=3))
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "step-00000004", "step-00000005", "step-00000006"]


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def trained_run(tiny_teacher_dir, tiny_corpus_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    distill(_config(tiny_teacher_dir, tiny_corpus_file, out, steps=4))
    return out


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_resume_with_other_teacher_vocab_is_refused(trained_run, tiny_corpus_file, tmp_path):
    from _tiny import make_tiny_teacher, tiny_tokenizer

    other = tmp_path / "other-teacher"
    make_tiny_teacher(other)
    tiny_tokenizer(vocab_size=150).save_pretrained(other)  # a different vocabulary than the checkpoint's
    run = _copy_run(trained_run, tmp_path / "run")
    before = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()}
    with pytest.raises(ValueError, match="teacher vocabulary"):
        distill(_config(other, tiny_corpus_file, run, steps=6))
    assert {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()} == before  # nothing lost


def test_resume_with_other_arch_is_refused(trained_run, tiny_teacher_dir, tiny_corpus_file, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    with pytest.raises(ValueError, match="architecture"):
        distill(_config(tiny_teacher_dir, tiny_corpus_file, run, steps=6, arch="1,2,32,24"))


def test_seq_len_beyond_teacher_positions(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    with pytest.raises(ValueError, match="seq_len=128.*max 64"):
        distill(_config(tiny_teacher_dir, tiny_corpus_file, tmp_path / "run", seq_len=128))


def test_corrupt_checkpoint_is_named_and_kept(trained_run, tiny_teacher_dir, tiny_corpus_file, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    latest = run / "checkpoints" / "step-00000004"
    (latest / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="step-00000004.*corrupt"):
        distill(_config(tiny_teacher_dir, tiny_corpus_file, run, steps=6))
    assert (latest / "model.safetensors").exists()
    # an earlier checkpoint can still be resumed explicitly
    final = distill(_config(tiny_teacher_dir, tiny_corpus_file, run, steps=6,
                            resume_from=str(run / "checkpoints" / "step-00000002")))
    assert (final / "model.safetensors").is_file()


def test_missing_checkpoint_is_named(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="step-00000099"):
        distill(_config(tiny_teacher_dir, tiny_corpus_file, tmp_path / "run",
                        resume_from=str(tmp_path / "run" / "checkpoints" / "step-00000099")))


def test_pickle_checkpoint_is_refused(trained_run, tiny_teacher_dir, tiny_corpus_file, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    latest = run / "checkpoints" / "step-00000004"
    torch.save({"optimizer": _Evil(), "scheduler": {}}, latest / "trainer.pt")  # arbitrary object: needs unpickling
    with pytest.raises(ValueError, match="refusing to unpickle.*trainer.pt"):
        distill(_config(tiny_teacher_dir, tiny_corpus_file, run, steps=6))
    weights = load_file(str(latest / "model.safetensors"))
    (latest / "model.safetensors").unlink()
    torch.save(weights, latest / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickle weights"):
        distill(_config(tiny_teacher_dir, tiny_corpus_file, run, steps=6))


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_config_validation():
    with pytest.raises(ValueError, match="not divisible"):
        DistillConfig(teacher="t", corpus="c", arch="1,3,16,24", out_dir="o")
    with pytest.raises(ValueError, match="batch_size"):
        DistillConfig(teacher="t", corpus="c", arch="1,2,16,24", out_dir="o", batch_size=0)
    with pytest.raises(ValueError, match="hidden_loss"):
        DistillConfig(teacher="t", corpus="c", arch="1,2,16,24", out_dir="o", hidden_loss="l1")


# ------------------------------------------------------------------------------------------------ DDP
def test_ddp_two_processes_under_torchrun(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    """Two gloo ranks via torch.distributed.run (the torchrun entry point) and the bortfast CLI; then resume the
    finished run with more steps under DDP again."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "bortfast",
           "distill", "--teacher", str(tiny_teacher_dir), "--corpus", str(tiny_corpus_file), "--arch", "1,2,16,24",
           "--out", str(out), "--batch-size", "4", "--seq-len", "32", "--checkpoint-every", "2",
           "--log-every", "2", "--no-progress", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.run(cmd + ["--steps", "4"], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-4000:]
    assert f"{out / 'final'}" in first.stdout
    second = subprocess.run(cmd + ["--steps", "6"], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-4000:]
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    starts = [r for r in recs if r["event"] == "start"]
    assert [(s["step"], s["world_size"]) for s in starts] == [(0, 2), (4, 2)]
    train = [r for r in recs if r["event"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6] and all(r["world_size"] == 2 for r in train)
    state = json.loads((out / "checkpoints" / "step-00000006" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    assert {p.name for p in (out / "checkpoints" / "step-00000006").glob("rng_rank*.pt")} == {
        "rng_rank0.pt", "rng_rank1.pt"}
    from transformers import BertForMaskedLM

    BertForMaskedLM.from_pretrained(out / "final")


def test_cli_single_process_and_clean_errors(tiny_teacher_dir, tiny_corpus_file, tmp_path, capsys):
    from bortfast.cli import main

    args = ["distill", "--teacher", str(tiny_teacher_dir), "--corpus", str(tiny_corpus_file), "--arch", "1,2,16,24",
            "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2", "--seq-len", "16", "--no-progress"]
    assert main(args) == 0
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert main([*args[:2], str(tmp_path / "nope"), *args[3:]]) == 2
    assert "nope" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert main([*args[:4], str(empty), *args[5:8], str(tmp_path / "run2"), *args[9:]]) == 2
    assert "empty.txt" in capsys.readouterr().err
