"""`bortfast run --per-layer`: the whole pipeline on a per-layer ξ* (search → distil → export → bench → quality →
summary), its resume, the ORT engine check of a per-layer finalist, and bad per-layer settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bortfast import pipeline
from bortfast.apps import bench
from bortfast.cli.main import main
from bortfast.pipeline import RunConfig, SearchStage
from bortfast.space import Arch, PerLayerArch

real_run_speedup = bench.run_speedup


def per_layer_args(teacher: Path, corpus: Path, out: Path) -> list[str]:
    return ["run", "--teacher", str(teacher), "--corpus", str(corpus), "--out", str(out), "--per-layer",
            "--per-layer-hidden", "16", "32", "--per-layer-points", "3", "--eps", "3", "--steps", "1",
            "--lr", "1e-3", "--latency", "flops", "--seq-len", "32", "--max-blocks", "120", "--search-batch-size",
            "4", "--distill-steps", "2", "--distill-batch-size", "2", "--bench-rounds", "1", "--bench-sentences",
            "24", "--threads", "1", "--no-progress", "--by-w"]


@pytest.fixture(scope="module")
def per_layer_run(tiny_teacher_dir, tiny_corpus_file, tmp_path_factory):
    """One tiny `bortfast run --per-layer` (an MLM teacher, so the masked-token quality runs too) with an STS file."""
    import torch
    from _tiny import tiny_text

    root = tmp_path_factory.mktemp("per-layer-run")
    lines = tiny_text(24, seed=5).splitlines()
    sts = root / "sts.tsv"
    sts.write_text("index\tsentence1\tsentence2\tscore\n" + "".join(
        f"{k}\t{a}\t{b}\t{k % 5}\n" for k, (a, b) in enumerate(zip(lines[::2], lines[1::2]))), encoding="utf-8")
    argv = [*per_layer_args(tiny_teacher_dir, tiny_corpus_file, root / "run"), "--sts", str(sts),
            "--keep-intermediate"]  # work/student_encoder is checked below
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOKENIZERS_PARALLELISM", "false")
        # The bench stage as it runs, with fewer timing processes and samples: one batch size, no end-to-end part
        # (tests/test_pipeline.py times a uniform run fully; the per-layer ONNX file is the same kind of file).
        mp.setattr(bench, "run_speedup", lambda config: real_run_speedup(dataclasses.replace(
            config, batch_sizes=(1,), min_samples=3, warmup=0, sentences=None)))
        try:
            rc = main(argv)
        finally:
            torch.set_num_threads(threads)
    return rc, argv, root / "run"


@pytest.mark.slow
def test_run_per_layer_end_to_end(per_layer_run, capsys):
    from bortfast import load_student

    rc, _, out = per_layer_run
    assert rc == 0
    state = json.loads((out / "pipeline.json").read_text())
    assert list(state["stages"]) == list(pipeline.STAGES)
    assert state["config"]["per_layer"] is True and state["config"]["per_layer_hidden"] == [16, 32]
    search = json.loads((out / "search.json").read_text())
    assert search["settings"]["space"] == "per-layer frontier"
    best = search["candidates"][search["best"]]
    arch = PerLayerArch(**{**best["arch"], "heads": tuple(best["arch"]["heads"]),
                           "intermediate": tuple(best["arch"]["intermediate"])})
    outputs = state["stages"]["search"]["outputs"]
    assert outputs["arch"] == arch.spec and outputs["teacher_layers"] == best["teacher_layers"]
    # The final distillation is of ξ*, cut from the teacher layers the search chose for it.
    dcfg = json.loads((out / "distill" / "distill_config.json").read_text())
    assert dcfg["arch"] == arch.spec and dcfg["teacher_layers"] == best["teacher_layers"]
    student = load_student(out / "student")
    assert PerLayerArch.from_config(student.config) == arch
    assert type(student).__name__ == "BertForMaskedLM"
    # The delivered student and the exported encoder load outside bortfast too (tests/test_perlayer_remote.py).
    from transformers import AutoModel

    from bortfast.models import MODELING_FILE
    for directory in (out / "student", out / "work" / "student_encoder"):
        assert (directory / MODELING_FILE.name).read_bytes() == MODELING_FILE.read_bytes(), directory
        assert type(AutoModel.from_pretrained(directory, trust_remote_code=True)).__name__ == "BortfastPerLayerModel"
    for name in ("model.onnx", "model.int8.onnx", "speedup.json", "summary.md", "quality.png"):
        assert (out / name).is_file(), name
    speedup = json.loads((out / "speedup.json").read_text())
    assert speedup["archs"]["student"] == arch.spec
    assert speedup["flops"]["encoder_formula"]["student"] == arch.flops(1, 32)
    quality = state["stages"]["quality"]["outputs"]
    assert 0 <= quality["mlm"]["student"]["accuracy"] <= 1
    assert all(isinstance(p["arch"], str) and p["arch"].startswith("H=") for p in quality["sts"]["pivots"])
    assert len(quality["sts"]["pivots"]) == search["trainings"]
    summary = (out / "summary.md").read_text()
    assert f"chosen ξ* = `{arch.spec}` (per-layer: teacher layers {best['teacher_layers']})" in summary
    assert "search space: per-layer frontier" in summary and "`bortfast.load_student`" in summary


@pytest.mark.slow
def test_run_per_layer_resumes(per_layer_run, capsys):
    rc, argv, out = per_layer_run
    assert rc == 0
    before = {name: (out / name).read_bytes() for name in ("search.json", "summary.md", "model.onnx")}
    assert main([a for a in argv if a != "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("done earlier, skipped") == len(pipeline.STAGES)
    assert f"{json.loads((out / 'pipeline.json').read_text())['stages']['search']['outputs']['arch']} " \
           f"(per-layer)" in printed and "teacher layers kept" in printed
    assert {name: (out / name).read_bytes() for name in before} == before
    # Another per-layer setting in the same directory is refused, naming it.
    changed = [*argv[:argv.index("--per-layer-points") + 1], "4", *argv[argv.index("--per-layer-points") + 2:]]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "per_layer_points" in err


@pytest.mark.parametrize("flags, message", [
    (["--per-layer-points", "0"], "RunConfig.per_layer_points must be a positive int, got 0"),
    (["--per-layer-hidden", "0"], "RunConfig.per_layer_hidden must be positive ints (hidden sizes), got [0]"),
    (["--per-layer-hidden", "20"], "--per-layer-hidden 20: per-layer hidden size 20 must be a multiple of "
                                   "head_dim=8 in (0, 32]"),
    (["--per-layer-hidden", "40"], "per-layer hidden size 40 must be a multiple of head_dim=8 in (0, 32]"),
    (["--task", "sst2", "--task-data", "glue"], "fine-tuning a per-layer student is not supported yet"),
], ids=["points", "hidden-zero", "hidden-not-multiple", "hidden-too-wide", "task"])
def test_bad_per_layer_flags_are_clear_errors(flags, message, tiny_teacher_dir, tiny_corpus_file, tmp_path, capsys):
    argv = per_layer_args(tiny_teacher_dir, tiny_corpus_file, tmp_path / "run")
    assert main([*argv, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bortfast run: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything is written: the fixed command starts afresh


def test_per_layer_hidden_must_be_ints_on_the_command_line(tiny_teacher_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--teacher", str(tiny_teacher_dir), "--out", str(tmp_path), "--per-layer",
              "--per-layer-hidden", "wide"])
    assert exc.value.code == 2 and "--per-layer-hidden: invalid int value: 'wide'" in capsys.readouterr().err


def test_per_layer_settings_enter_the_identity_only_when_on():
    uniform = RunConfig(teacher="t", out_dir="o", search=SearchStage(per_layer_points=5))
    assert not {"per_layer", "per_layer_hidden", "per_layer_points"} & set(uniform.identity())
    on = RunConfig(teacher="t", out_dir="o", search=SearchStage(per_layer=True, per_layer_hidden=[192, 288])).identity()
    assert (on["per_layer"], on["per_layer_hidden"], on["per_layer_points"]) == (True, [192, 288], 24)
    assert {k: v for k, v in on.items() if not k.startswith("per_layer")} == uniform.identity()


def test_run_and_demo_help_list_the_per_layer_flags():
    import argparse

    from bortfast.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("run", "demo"):
        text = sub.choices[command].format_help()
        search_group = text[text.index("\nsearch stage:"):text.index("\ndistill stage:")]
        for flag in ("--per-layer ", "--per-layer-hidden", "--per-layer-points"):
            assert flag in search_group, (command, flag)


def test_engine_check_times_a_per_layer_finalist(tmp_path):
    from bortfast.apps.engine_check import OrtSpeedCheck
    from bortfast.profile.timing import TimingConfig

    teacher = Arch(2, 4, 32, 64, vocab_size=60, max_positions=40, type_vocab_size=2)
    arch = PerLayerArch(32, 8, (3, 1), (48, 16), vocab_size=60, max_positions=40, type_vocab_size=2)
    check = OrtSpeedCheck(teacher, tmp_path, seq_len=16, threads=1, timing=TimingConfig(rounds=1, min_samples=3,
                                                                                         turn_seconds=0.02))
    report = check(arch, None, None)
    assert report["ok"] is True and report["student_ms"] > 0 and report["teacher_ms"] > 0
    assert (tmp_path / "H32-d8-A3.1-I48.16.onnx").is_file() and (tmp_path / "2-4-32-64.onnx").is_file()
    with pytest.raises(ValueError, match="an Arch or a PerLayerArch, got"):
        check("2,4,32,64", None, None)
