"""Every command's options, as `bortfast.cli.main.build_parser()` builds them: each has a help that says something,
one flag per concept across commands, the old spellings still work (hidden) and warn, lists are space-separated."""

from __future__ import annotations

import argparse
import functools
import re

import pytest

from bortfast.cli._args import removal_release
from bortfast.cli.main import COMMANDS, build_parser

# The least each command needs to parse.
REQUIRED = {
    "space": ["--preset", "bert-paper"],
    "search": ["--teacher", "T", "--corpus", "c.txt", "--out", "O"],
    "profile": ["--preset", "bert-paper"],
    "distill": ["--teacher", "T", "--arch", "2,2,32,37", "--out", "O"],
    "export": ["--model", "M", "--out", "O"],
    "bench": ["--out", "O"],
    "run": ["--teacher", "T", "--out", "O"],
    "demo": ["--out", "O"],
    "finetune": ["--model", "M", "--task", "sst2", "--data", "D", "--out", "O"],
}


@functools.lru_cache(maxsize=1)
def _subparsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS]


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for a in _visible(parser) for flag in a.option_strings}


def test_every_command_is_built():
    assert set(_subparsers()) == set(COMMANDS) == set(REQUIRED)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_a_help_that_is_more_than_its_default(command):
    parser = _subparsers()[command]
    for action in _visible(parser):
        if isinstance(action, argparse._HelpAction):
            continue
        text = (action.help or "") % {"default": action.default, "prog": parser.prog}
        words = re.sub(r"default[: ]\s*\S+", "", text).strip(" ;,.()")
        assert len(words) >= 8, (command, action.option_strings, action.help)
        assert text.count("default ") <= 1 or "default:" in text, (command, action.option_strings, text)
        assert not re.search(r"default \S+ / ", text), (command, action.option_strings, text)  # "(default 32 / 32)"
        assert "(default required)" not in text and "default None" not in text, (command, action.option_strings)


def test_top_level_options_have_help():
    assert all(a.help for a in build_parser()._actions if a.option_strings)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_one_flag_per_concept(command):
    flags = _flags(_subparsers()[command])
    # learning rate: --lr (stage-prefixed in run: --distill-lr, --finetune-lr; a grid: --agora-lrs)
    assert not [f for f in flags if "learning" in f], flags
    # threads: --threads, the command's one budget
    assert not [f for f in flags if "threads" in f and f != "--threads"], flags
    # batches: --batch-size for training (prefixed by its stage or use), --latency-batch for latency / FLOPs
    batch = [f for f in flags if "batch" in f and f not in ("--latency-batch", "--eval-batches")]
    assert all(re.fullmatch(r"--([a-z0-9]+-)*batch-sizes?", f) for f in batch), batch
    assert "--batch" not in flags and "--train-batch-size" not in flags and "--torch-threads" not in flags


def test_the_same_concepts_have_the_same_flags_in_every_command():
    parsers = _subparsers()
    for command in ("search", "distill", "finetune", "run", "demo"):
        assert "--lr" in _flags(parsers[command]), command
    for command in ("search", "distill", "finetune"):
        assert "--batch-size" in _flags(parsers[command]), command
    for command in ("search", "space", "profile"):
        assert "--latency-batch" in _flags(parsers[command]), command
    for command in ("search", "profile", "export", "bench", "run", "demo", "finetune"):
        help_text = next(a.help for a in _visible(parsers[command]) if "--threads" in a.option_strings)
        assert "thread budget" in help_text, command
    for command in ("search", "profile", "space", "export", "bench", "run", "demo", "finetune", "distill"):
        assert "--no-progress" in _flags(parsers[command]), command


def _parse(command: str, *argv: str) -> argparse.Namespace:
    return build_parser([command]).parse_args([command, *REQUIRED[command], *argv])


# (command, old spelling, the same with the new spelling, the flag that replaces it)
OLD_SPELLINGS = [
    ("finetune", ["--learning-rate", "3e-5"], ["--lr", "3e-5"], "--lr"),
    ("finetune", ["--agora-learning-rates", "1e-4", "2e-5"], ["--agora-lrs", "1e-4", "2e-5"], "--agora-lrs"),
    ("search", ["--batch", "2"], ["--latency-batch", "2"], "--latency-batch"),
    ("search", ["--train-batch-size", "4"], ["--batch-size", "4"], "--batch-size"),
    ("search", ["--torch-threads", "1"], ["--threads", "1"], "--threads"),
    ("space", ["--batch", "4"], ["--latency-batch", "4"], "--latency-batch"),
    ("profile", ["--batch", "4"], ["--latency-batch", "4"], "--latency-batch"),
    ("bench", ["--batch-sizes", "1,2"], ["--batch-sizes", "1", "2"], "--batch-sizes 1 2"),
    ("search", ["--lr", "1e-3,2e-4"], ["--lr", "1e-3", "2e-4"], "--lr 1e-3 2e-4"),
]


@pytest.mark.parametrize("command, old, new, replacement", OLD_SPELLINGS,
                         ids=[f"{c}:{' '.join(o)}" for c, o, _, _ in OLD_SPELLINGS])
def test_old_spellings_still_work_warn_and_are_hidden(command, old, new, replacement, capsys):
    assert _parse(command, *new) == _parse(command, *old) != _parse(command)
    err = capsys.readouterr().err
    assert err.count("DeprecationWarning") == 1, err
    assert old[0] in err and f"use {replacement}" in err and f"removed in bortfast {removal_release()}" in err
    assert len(err.strip().splitlines()) == 1
    if old[0] not in new:  # a renamed flag is no longer shown
        assert old[0] not in _flags(_subparsers()[command])


def test_removal_is_the_next_minor_release():
    from bortfast._base.version import __version__

    major, minor = __version__.split(".")[:2]
    assert removal_release() == f"{major}.{int(minor) + 1}"


@pytest.mark.parametrize("command, argv, dest, expected", [
    ("bench", ["--batch-sizes", "1", "8", "32"], "batch_sizes", [1, 8, 32]),
    ("search", ["--lr", "1e-3", "2e-4"], "lr", [1e-3, 2e-4]),
    ("search", ["--per-layer-hidden", "64", "48"], "per_layer_hidden", [64, 48]),
    ("run", ["--lr", "1e-3", "2e-4"], "lrs", [1e-3, 2e-4]),
    ("run", ["--corpus", "a,b.txt", "c.txt"], "corpus", ["a,b.txt", "c.txt"]),  # paths: commas are no separators
    ("distill", ["--teacher-layers", "0", "3"], "teacher_layers", [0, 3]),
    ("distill", ["--corpus", "a.txt", "b.txt"], "corpus", ["a.txt", "b.txt"]),
    ("finetune", ["--agora", "--agora-batch-sizes", "8", "16"], "agora_batch_sizes", [8, 16]),
])
def test_list_options_take_space_separated_values(command, argv, dest, expected, capsys):
    assert getattr(_parse(command, *argv), dest) == expected
    assert "DeprecationWarning" not in capsys.readouterr().err


def test_a_bad_list_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        _parse("bench", "--batch-sizes", "1", "x")
    assert "argument --batch-sizes: invalid int value: 'x'" in capsys.readouterr().err


def test_options_left_out_keep_their_defaults():
    """The builder changes names and help only: what each command runs with by default is its config's default."""
    from bortfast.apps.bench import SpeedupConfig
    from bortfast.cli import bench, export, search
    from bortfast.cli._args import from_args
    from bortfast.export.precision import PrecisionConfig
    from bortfast.search import SearchConfig

    cfg = from_args(SearchConfig, _parse("search"), skip=search._NOT_OPTIONS)
    assert cfg == SearchConfig(progress=True)
    assert from_args(SpeedupConfig, _parse("bench"), skip=bench._NOT_OPTIONS) == SpeedupConfig(out_dir="O")
    assert from_args(PrecisionConfig, _parse("export"), skip=export._NOT_OPTIONS) == PrecisionConfig()
    args = _parse("profile")
    assert (args.batch, args.seq_len, args.threads, args.progress) == (1, 128, None, True)
    args = _parse("space")
    assert (args.batch, args.seq_len, args.kind, args.json) == (1, 128, "encoder+pooler", False)
