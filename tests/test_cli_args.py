"""The dataclass → argparse builder (bortfast/cli/_args.py) and RunConfig composed of stage configs: every
``bortfast run`` / ``demo`` flag keeps its name, meaning and default, and the old flat RunConfig keywords work."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from typing import Literal

import pytest

from bortfast.cli._args import add_dataclass_arguments, field_comments, from_args, given
from bortfast.cli.main import build_parser
from bortfast.pipeline import BenchStage, DistillStage, FinetuneStage, RunConfig, SearchStage


@dataclass
class _Example:
    name: str  # a required name
    count: int = 3  # how many (100% of them)
    rate: float | None = None  # a rate, or None
    kind: Literal["a", "b"] = "a"  # which kind
    values: tuple[float, ...] = (1.0,)  # one or more values
    fast: bool = False  # go fast
    check: bool = field(default=True, metadata={"help": "skip the check"})
    alias: int = field(default=1, metadata={"flag": "other-name", "dest": "other"})  # renamed


def _example_parser(**kw) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="x")
    add_dataclass_arguments(parser, _Example, **kw)
    return parser


def test_builder_makes_one_typed_option_per_field():
    args = _example_parser().parse_args(["--name", "n", "--count", "4", "--rate", "0.5", "--kind", "b",
                                         "--values", "2", "3", "--fast", "--no-check", "--other-name", "7"])
    assert from_args(_Example, args) == _Example("n", 4, 0.5, "b", (2.0, 3.0), True, False, 7)
    defaults = _example_parser().parse_args(["--name", "n"])
    assert from_args(_Example, defaults) == _Example("n")


def test_builder_rejects_bad_values_and_missing_required_fields(capsys):
    with pytest.raises(SystemExit):
        _example_parser().parse_args(["--count", "2"])  # --name is required
    with pytest.raises(SystemExit):
        _example_parser().parse_args(["--name", "n", "--kind", "c"])
    assert "invalid choice: 'c'" in capsys.readouterr().err


def test_builder_prefix_defaults_and_help():
    parser = _example_parser(prefix="ex_", defaults={"ex_count": 9}, skip=("name",))
    args = parser.parse_args(["--ex-rate", "2"])
    assert from_args(_Example, args, prefix="ex_", skip=("name",), name="fixed") == _Example("fixed", 9, 2.0)
    text = parser.format_help()
    assert "how many (100% of them); default 9" in text and "skip the check" in text
    assert field_comments(_Example)["kind"] == "which kind"


@dataclass
class _Modes:
    name: str  # a required name
    count: int = field(default=5, metadata={"help": "how many, from metadata"})  # a comment the metadata overrides
    maybe: bool | None = None  # on, off or the mode's choice
    old: float = field(default=1.0, metadata={"flag": "new", "aliases": ("old",), "help": "renamed"})


@dataclass
class _OtherMode:
    name: str  # a required name
    count: int = 7  # how many
    extra: int = 2  # only here


def test_builder_metadata_help_aliases_and_unset_modes(capsys):
    parser = argparse.ArgumentParser(prog="x")
    add_dataclass_arguments(parser, _Modes, _OtherMode, unset=True, labels=("in a", "in b"))
    text = parser.format_help()
    assert "how many, from metadata; default 5 in a, 7 in b" in text  # the metadata wins; each mode's default
    assert "only here; default 2; in b only" in text
    assert "--maybe, --no-maybe" in text and "--new NEW" in text and "--old" not in text  # the alias is hidden
    args = parser.parse_args(["--name", "n", "--old", "2", "--no-maybe"])
    assert "--old is deprecated" in capsys.readouterr().err
    assert given(_Modes, args) == {"name": "n", "old": 2.0, "maybe": False}  # only what was given
    assert given(_OtherMode, args) == {"name": "n"}
    with pytest.raises(SystemExit):  # required in every mode: required
        parser.parse_args([])


def test_run_config_takes_the_stage_configs_and_no_flat_names():
    cfg = RunConfig(teacher="t", out_dir="o", search=SearchStage(eps=8, lrs=[1e-4], train_batch_size=4),
                    distill=DistillStage(steps=30))
    assert (cfg.search.eps, cfg.search.lrs, cfg.distill.steps) == (8, (1e-4,), 30)
    with pytest.raises(TypeError, match="unexpected keyword argument 'eps'"):
        RunConfig(teacher="t", out_dir="o", eps=8)
    assert not hasattr(cfg, "eps") and not hasattr(cfg, "distill_steps")  # no alias reads a stage's field
    with pytest.raises(ValueError, match="RunConfig.search must be a SearchStage, got"):
        RunConfig(teacher="t", out_dir="o", search=DistillStage())
    with pytest.raises(ValueError, match="RunConfig.distill_steps must be a positive int, got -1"):
        RunConfig(teacher="t", out_dir="o", distill=DistillStage(steps=-1))


def test_from_flat_builds_the_stage_configs_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=r"RunConfig.from_flat\(eps=, lrs=, .*\) is deprecated .* 0.2"):
        flat = RunConfig.from_flat(teacher="t", out_dir="o", eps=8, lrs=[1e-4], distill_steps=30,
                                   search_batch_size=4, bench_rounds=2, task="sst2", task_data="d",
                                   finetune_lr=3e-5, threads=1)
    nested = RunConfig(teacher="t", out_dir="o", threads=1,
                       search=SearchStage(eps=8, lrs=(1e-4,), train_batch_size=4), distill=DistillStage(steps=30),
                       bench=BenchStage(rounds=2), finetune=FinetuneStage(task="sst2", task_data="d", lr=3e-5))
    assert flat == nested and flat.identity() == nested.identity()
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"search= and the flat settings \['eps'\]"):
        RunConfig.from_flat(teacher="t", out_dir="o", search=SearchStage(), eps=3)
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="unexpected keyword argument 'epss'"):
        RunConfig.from_flat(teacher="t", out_dir="o", epss=3)


# RunConfig.identity() of the default settings: pipeline.json's "config" (the flat form, as since dc94eef). The
# defaults changed on purpose in issue 26 (item 9): FLOPs as î, a 5x speed budget (--by-w: W's argmax), short
# trainings at 1e-4, fine-tuning on all of train for 3 epochs chosen on a held-out tenth of it.
DEFAULT_IDENTITY = {
    "teacher": "t", "corpus": [], "space": "below-teacher", "eps": 16, "steps": 10, "lrs": [0.0001],
    "latency": "flops", "seq_len": 128, "distill_seq_len": None, "search_batch_size": 8, "max_blocks": 2000,
    "distill_steps": 300, "distill_batch_size": None, "distill_lr": None, "distill_unit": "auto",
    "distill_beta": None, "distill_embedding_loss": None, "task": None, "task_data": None,
    "finetune_epochs": 3, "finetune_max_train": None, "finetune_lr": 0.0001, "finetune_heldout_fraction": 0.1,
    "bench_rounds": 5, "bench_sentences": 256, "threads": 2, "seed": 0, "init": "inherit", "max_latency": None,
    "min_speedup": 5.0, "by_w": False, "max_error": None, "engine_check": True, "sts": None,
}


def test_identity_keeps_the_flat_form_of_pipeline_json():
    assert RunConfig(teacher="t", out_dir="o").identity() == DEFAULT_IDENTITY
    changed = RunConfig(teacher="t", out_dir="o", distill=DistillStage(steps=5)).identity()
    assert {k for k in changed if changed[k] != DEFAULT_IDENTITY[k]} == {"distill_steps"}


def _parsed(argv: list[str]) -> dict:
    """The RunConfig ``bortfast ARGV`` runs with (identity, out_dir, progress, overwrite)."""
    from bortfast.cli import run as run_cli

    args = build_parser().parse_args(argv)
    cfg = run_cli._config(args, "<bundled>" if argv[0] == "demo" else args.teacher)
    return {**cfg.identity(), "out_dir": cfg.out_dir, "progress": cfg.progress, "overwrite": cfg.overwrite}


# What `bortfast run` / `demo` build from these command lines (every flag the two commands had at dc94eef; the
# defaults as changed in issue 26).
OLD_PARSES = [
    (["run", "--teacher", "T", "--corpus", "a.txt", "b", "--out", "O", "--space", "bert-paper", "--eps", "3",
      "--steps", "4", "--lr", "1e-3", "2e-4", "--latency", "flops", "--seq-len", "64", "--max-blocks", "50",
      "--distill-steps", "7", "--distill-batch-size", "5", "--distill-seq-len", "32", "--distill-lr", "3e-4",
      "--task", "sst2", "--task-data", "D", "--bench-rounds", "2", "--threads", "1", "--seed", "9", "--init",
      "random", "--max-latency-ms", "3.5", "--min-speedup", "2", "--max-error", "4", "--no-engine-check",
      "--overwrite", "--no-progress"],
     '{"bench_rounds": 2, "bench_sentences": 256, "by_w": false, "corpus": ["a.txt", "b"], '
     '"distill_batch_size": 5, "distill_lr": 0.0003, "distill_seq_len": 32, "distill_steps": 7, '
     '"engine_check": false, "eps": 3, "finetune_epochs": 3, "finetune_heldout_fraction": 0.1, '
     '"finetune_lr": 0.0001, "finetune_max_train": null, "init": "random", "latency": "flops", '
     '"lrs": [0.001, 0.0002], "max_blocks": 50, "max_error": 4.0, "max_latency": 3.5, "min_speedup": 2.0, '
     '"out_dir": "O", "overwrite": true, "progress": false, "search_batch_size": 8, "seed": 9, '
     '"seq_len": 64, "space": "bert-paper", "steps": 4, "sts": null, "task": "sst2", "task_data": "D", '
     '"teacher": "T", "threads": 1}'),
    (["demo", "--out", "O"],
     '{"bench_rounds": 5, "bench_sentences": 256, "by_w": false, "corpus": [], "distill_batch_size": 32, '
     '"distill_lr": 0.0001, "distill_seq_len": 64, "distill_steps": 100, "engine_check": true, "eps": 16, '
     '"finetune_epochs": 3, "finetune_heldout_fraction": 0.1, "finetune_lr": 0.0001, '
     '"finetune_max_train": null, "init": "inherit", "latency": "flops", "lrs": [0.0001], '
     '"max_blocks": 2000, "max_error": null, "max_latency": null, "min_speedup": 5.5, "out_dir": "O", '
     '"overwrite": false, "progress": true, "search_batch_size": 8, "seed": 0, "seq_len": 128, '
     '"space": "below-teacher", "steps": 10, "sts": null, "task": null, "task_data": null, '
     '"teacher": "<bundled>", "threads": 2}'),
    (["demo", "--out", "O", "--eps", "5", "--lr", "1e-3", "--min-speedup", "3", "--distill-seq-len", "48",
      "--no-progress"],
     '{"bench_rounds": 5, "bench_sentences": 256, "by_w": false, "corpus": [], "distill_batch_size": 32, '
     '"distill_lr": 0.0001, "distill_seq_len": 48, "distill_steps": 100, "engine_check": true, "eps": 5, '
     '"finetune_epochs": 3, "finetune_heldout_fraction": 0.1, "finetune_lr": 0.0001, '
     '"finetune_max_train": null, "init": "inherit", "latency": "flops", "lrs": [0.001], '
     '"max_blocks": 2000, "max_error": null, "max_latency": null, "min_speedup": 3.0, "out_dir": "O", '
     '"overwrite": false, "progress": false, "search_batch_size": 8, "seed": 0, "seq_len": 128, '
     '"space": "below-teacher", "steps": 10, "sts": null, "task": null, "task_data": null, '
     '"teacher": "<bundled>", "threads": 2}'),
]


# Recorded on dc94eef; one change since, on purpose: the demo's î is FLOPs (its finalists are then deterministic and
# the engine check times them in ORT), so "latency" of the two demo lines reads "flops" where it read "kernel".
# The distillation's unit and recipe weights came later (issue 29): a run's default is "auto" (sentences for an
# encoder-only teacher, with its recipe's batch size and lr where none is given), the demo's stays on blocks.
SINCE_UNIT = [{"distill_unit": "auto", "distill_beta": None, "distill_embedding_loss": None},
              {"distill_unit": "blocks", "distill_beta": None, "distill_embedding_loss": None},
              {"distill_unit": "blocks", "distill_beta": None, "distill_embedding_loss": None}]


@pytest.mark.parametrize("argv, old, since", [(a, o, s) for (a, o), s in zip(OLD_PARSES, SINCE_UNIT)],
                         ids=["run-every-flag", "demo-defaults", "demo-some-flags"])
def test_run_and_demo_flags_mean_what_they_meant(argv, old, since):
    assert _parsed(argv) == {**json.loads(old), **since}


def test_run_help_groups_the_options_by_stage():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["run"].format_help()
    for group, flag in [("search stage", "--eps"), ("distill stage", "--distill-steps"),
                        ("finetune stage", "--finetune-epochs"), ("bench stage", "--bench-rounds"),
                        ("quality stage", "--sts")]:
        assert f"\n{group}:" in text
        assert text.index(f"\n{group}:") < text.index(f"  {flag}"), (group, flag)
    assert re.search(r"--teacher\b(?!-)", sub.choices["demo"].format_help()) is None  # --teacher-space is fine
    assert "--teacher-space" in text and "--no-references" in text
