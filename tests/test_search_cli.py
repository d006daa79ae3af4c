"""`bortfast search` / bortfast.extract end to end on a tiny random teacher: outputs, resume after SIGKILL,
settings mismatch, torchrun with 2 gloo processes, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bortfast.apps.extract import extract
from bortfast.search import SearchResult
from bortfast.space import Arch, SearchSpace

ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
N_TRAININGS = 9  # below-teacher space of the tiny teacher: 130 architectures, eps 16 -> 9 pivots, one theta


def cli_args(teacher: Path, corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["search", "--teacher", str(teacher), "--corpus", str(corpus), "--space", "below-teacher",
            "--eps", "16", "--steps", "2", "--lr", "1e-3", "--latency", "flops", "--seq-len", "32",
            "--batch-size", "4", "--heldout-batch-size", "4", "--threads", "1", "--no-progress",
            "--out", str(out), *extra]


def bortfast_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bortfast", *args]


@pytest.fixture(scope="module")
def single_run(tiny_teacher_dir, tiny_corpus_file, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("search-single")
    proc = subprocess.run(bortfast_cmd(*cli_args(tiny_teacher_dir, tiny_corpus_file, out)), env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_cli_writes_result_plot_journal_and_table(single_run):
    out, proc = single_run
    result = SearchResult.load(out / "search.json")
    assert len(result.candidates) == 130
    assert result.trainings == N_TRAININGS == sum(c.pivot for c in result.candidates)
    assert result.settings["steps"] == 2 and result.settings["eps"] == 16
    assert result.settings["space"] == "below-teacher"
    assert result.teacher.tuple == (2, 4, 32, 37)
    assert all(c.error > 0 for c in result.candidates if c.pivot)
    assert result.best_w == max(c.w for c in result.candidates if c.pivot) > 0
    assert (out / "pareto.png").stat().st_size > 10_000
    journal = (out / "journal.jsonl").read_text().splitlines()
    assert json.loads(journal[0])["kind"] == "header" and len(journal) == 1 + N_TRAININGS
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["rank", "xi"]
    assert f"xi* = {result.best_arch}" in proc.stdout
    assert str(result.best_arch) in lines[2]


def test_rerun_with_other_settings_is_refused(single_run, tiny_teacher_dir, tiny_corpus_file, tmp_path):
    out, _ = single_run
    work = tmp_path / "copy"
    work.mkdir()
    (work / "journal.jsonl").write_bytes((out / "journal.jsonl").read_bytes())
    args = cli_args(tiny_teacher_dir, tiny_corpus_file, work)
    args[args.index("--steps") + 1] = "1"
    proc = subprocess.run(bortfast_cmd(*args), env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "different settings (steps: journal has 2, this run has 1)" in proc.stderr
    assert "bortfast search: error:" in proc.stderr


def test_sigkill_then_rerun_skips_finished_and_matches(single_run, tiny_teacher_dir, tiny_corpus_file, tmp_path):
    reference, _ = single_run
    out = tmp_path / "killed"
    journal = out / "journal.jsonl"
    cmd = bortfast_cmd(*cli_args(tiny_teacher_dir, tiny_corpus_file, out))
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    k = 2
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 1 + k:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(journal.read_text().splitlines()) - 1
    assert k <= done < N_TRAININGS, f"{done} trainings journaled at the kill"
    assert not (out / "search.json").exists()

    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert len(records) == N_TRAININGS  # the finished ones were not trained again
    # identical to the uninterrupted run with the same command
    assert (out / "search.json").read_bytes() == (reference / "search.json").read_bytes()


def test_torchrun_two_gloo_ranks_equal_single_process(single_run, tiny_teacher_dir, tiny_corpus_file, tmp_path):
    reference, _ = single_run
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "bortfast",
           *cli_args(tiny_teacher_dir, tiny_corpus_file, out)]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines()[1:]]
    rank1 = [json.loads(x) for x in (out / "journal.rank1.jsonl").read_text().splitlines()[1:]]
    assert len(rank0) == 5 and len(rank1) == 4  # pivots round-robin: positions 0, 2, 4, 6, 8 and 1, 3, 5, 7
    assert (out / "search.json").read_bytes() == (reference / "search.json").read_bytes()


# --- the Python API: bad input ------------------------------------------------------------------------------------


def fake_error(arch, theta) -> float:
    return 1.0 + 1.0 / arch.hidden


def test_extract_rejects_bad_input(tiny_teacher_dir, tiny_corpus_file, tmp_path, monkeypatch):
    base = dict(eps=16, steps=1, latency="flops", seq_len=32, error_fn=fake_error)
    with pytest.raises(ValueError, match=r"vocab_size=30522 but the teacher has vocab_size=\d+"):
        extract(tiny_teacher_dir, tiny_corpus_file, SearchSpace.bert_paper(), **base)
    with pytest.raises(ValueError, match=r"eps must be in \[1, \|Xi\| = 130\], got 131"):
        extract(tiny_teacher_dir, tiny_corpus_file, **(base | {"eps": 131}))
    with pytest.raises(ValueError, match="eps must be an int >= 1, got 0"):
        extract(tiny_teacher_dir, tiny_corpus_file, **(base | {"eps": 0}))
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        extract(tiny_teacher_dir, tiny_corpus_file, **(base | {"steps": 0}))
    with pytest.raises(FileNotFoundError, match="teacher directory '/no/such/teacher' does not exist"):
        extract("/no/such/teacher", tiny_corpus_file, **base)
    with pytest.raises(FileNotFoundError, match="corpus path '/no/such/corpus.txt' does not exist"):
        extract(tiny_teacher_dir, "/no/such/corpus.txt", **base)
    with pytest.raises(ValueError, match="a corpus .* is required"):
        extract(tiny_teacher_dir, [], **base)
    with pytest.raises(ValueError, match="space must be 'below-teacher', 'bert-paper'"):
        extract(tiny_teacher_dir, tiny_corpus_file, "huge", **base)

    import bortfast.search.runner as runner

    def nan_latency(archs, proxy, **kw):
        values = np.ones(len(archs))
        values[7] = np.nan
        return values, "ms"

    monkeypatch.setattr(runner, "latencies", nan_latency)
    with pytest.raises(ValueError, match=r"latency of <.*> is nan; it must be finite"):
        extract(tiny_teacher_dir, tiny_corpus_file, **base)


def test_extract_with_injected_error_fn_and_bert_paper_space(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    # bert-paper takes the teacher's vocabulary; every xi is larger than this tiny teacher, so it is refused
    with pytest.raises(ValueError, match="no architecture in the space is both smaller"):
        extract(tiny_teacher_dir, tiny_corpus_file, "bert-paper", eps=4, steps=1, latency="flops", seq_len=32,
                error_fn=fake_error)
    result = extract(tiny_teacher_dir, tiny_corpus_file, eps=1, steps=1, latency="flops", seq_len=32,
                     error_fn=fake_error, out_dir=tmp_path)
    assert result.trainings == 130 and result.settings["error_fn"] == "fake_error"
    assert SearchResult.load(tmp_path / "search.json") == result


def test_extract_resume_refusal_and_overwrite(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    calls = []

    def counting(arch, theta):
        calls.append(arch)
        return fake_error(arch, theta)

    kw = dict(eps=8, steps=1, latency="flops", seq_len=32, error_fn=counting, out_dir=tmp_path)
    first = extract(tiny_teacher_dir, tiny_corpus_file, **kw)
    assert len(calls) == first.trainings == 17
    assert extract(tiny_teacher_dir, tiny_corpus_file, **kw) == first and len(calls) == 17  # all from the journal
    with pytest.raises(ValueError, match="different settings .*seed: journal has 0, this run has 1"):
        extract(tiny_teacher_dir, tiny_corpus_file, **kw, seed=1)
    again = extract(tiny_teacher_dir, tiny_corpus_file, **kw, seed=1, overwrite=True)
    assert len(calls) == 34 and again.settings["seed"] == 1


def test_extract_with_kernel_latency_reuses_the_profile_cache(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    from bortfast.distill import load_teacher

    teacher = load_teacher(tiny_teacher_dir)
    archs = [a for a in SearchSpace.below(teacher.config) if a.layers == 1 and a.intermediate == 18]
    kw = dict(eps=2, steps=1, latency="kernel", seq_len=32, error_fn=fake_error, out_dir=tmp_path)
    first = extract(teacher, tiny_corpus_file, archs, **kw)
    assert first.latency_unit == "ms" and first.teacher_latency > 0
    assert all(c.latency > 0 for c in first.candidates)
    assert any((tmp_path / "latency-cache").iterdir())
    # the re-run reads the measured latencies from the cache, so the result is identical
    assert extract(teacher, tiny_corpus_file, archs, **kw) == first


def test_extract_scores_sentence_rows_for_an_encoder_only_teacher(tiny_hidden_teacher_dir, tiny_teacher_dir,
                                                                   tiny_corpus_file, tmp_path):
    from bortfast.data.corpus import load_corpus
    from bortfast.data.teacher import load_teacher

    t = load_teacher(tiny_hidden_teacher_dir)
    T = t.arch
    archs = [Arch(1, a, h, i, vocab_size=T.vocab_size, max_positions=T.max_positions,
                  type_vocab_size=T.type_vocab_size) for a, h, i in ((2, 16, 24), (4, 32, 32))]
    base = dict(eps=1, steps=2, thetas=({"lr": 1e-3},), latency="flops", seq_len=32, train_batch_size=4,
                heldout_batch_size=8, calibration_blocks=8)
    auto = extract(t, tiny_corpus_file, archs, out_dir=tmp_path / "auto", **base)
    blocks = extract(t, tiny_corpus_file, archs, out_dir=tmp_path / "blocks", unit="blocks", **base)
    assert auto.settings["unit"] == "sentences" and blocks.settings["unit"] == "blocks"
    assert auto.settings["error_definition"].endswith(" sentences")
    assert auto.settings["corpus_fingerprint"] != blocks.settings["corpus_fingerprint"]
    assert all(a.error != b.error for a, b in zip(auto.candidates, blocks.candidates) if a.error is not None)
    with pytest.raises(ValueError, match="encoder-only teacher"):
        extract(tiny_teacher_dir, tiny_corpus_file, "below-teacher", unit="sentences", error_fn=fake_error, **base)
    with pytest.raises(ValueError, match="'auto', 'blocks' or 'sentences'"):
        extract(t, tiny_corpus_file, archs, unit="lines", **base)
    packed = load_corpus(tiny_corpus_file, t.tokenizer, seq_len=32)
    with pytest.raises(ValueError, match="holds blocks but the search's unit is 'sentences'"):
        extract(t, packed, archs, **base)
