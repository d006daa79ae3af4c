"""Faults and bad input end in one clear line (issue 26, items 10-11): an output directory another command is
writing is refused at once, naming it; a failed checkpoint write (a full disk) leaves nothing half-written; a bad
configuration is a message, not a traceback; timings say when the machine was busy; ``--version`` needs no torch."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bortfast._base.io import OutputLocked, output_lock
from bortfast.cli import main
from bortfast.profile.timing import machine_load


def _distill_args(teacher: Path, corpus: Path, out: Path) -> list[str]:
    return ["distill", "--teacher", str(teacher), "--corpus", str(corpus), "--arch", "1,2,16,32", "--out", str(out),
            "--steps", "2", "--batch-size", "2", "--seq-len", "16", "--checkpoint-every", "1", "--no-progress"]


def test_a_second_command_on_a_locked_output_directory_is_refused_naming_the_holder(tmp_path, tiny_teacher_dir,
                                                                                    tiny_corpus_file):
    out = tmp_path / "out"
    with output_lock(out, "the first run"):
        with pytest.raises(OutputLocked, match=rf"being written by the first run \(pid {os.getpid()} on "):
            with output_lock(out, "the second run"):
                pass
        for argv in (_distill_args(tiny_teacher_dir, tiny_corpus_file, out),
                     ["run", "--teacher", str(tiny_teacher_dir), "--corpus", str(tiny_corpus_file), "--out",
                      str(out), "--no-progress"]):
            proc = subprocess.run([sys.executable, "-m", "bortfast", *argv], capture_output=True, text=True,
                                  timeout=300)
            assert proc.returncode == 2 and "being written by the first run" in proc.stderr, proc.stderr[-2000:]
            assert "Traceback" not in proc.stderr
        assert not (out / "checkpoints").exists() and not (out / "pipeline.json").exists()  # nothing touched
    with output_lock(out, "later"):  # released: the next command gets it
        pass


@pytest.mark.parametrize("failure", ["disk full", "safetensors"])
def test_a_failed_checkpoint_write_leaves_nothing_half_written(failure, tmp_path, tiny_teacher_dir, tiny_corpus_file,
                                                               monkeypatch, capsys):
    from bortfast.distill import trainer

    class SafetensorError(Exception):  # safetensors' own error type is no OSError
        pass

    def full_disk(*args, **kwargs):
        if failure == "disk full":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(trainer, "_save_model_dir", full_disk)
    out = tmp_path / "out"
    assert main(_distill_args(tiny_teacher_dir, tiny_corpus_file, out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "writing checkpoint" in err and "No space left" in err, err
    assert not list((out / "checkpoints").glob(".tmp-*")) and not list((out / "checkpoints").glob("step-*"))


def test_a_config_with_a_mistyped_field_is_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "bert", "hidden_size": "x"}')
    proc = subprocess.run([sys.executable, "-m", "bortfast", "export", "--model", str(tmp_path / "m"), "--out",
                           str(tmp_path / "m.onnx")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "invalid BERT configuration" in proc.stderr and "hidden_size" in proc.stderr


def test_machine_load_marks_a_busy_machine():
    def counters(busy: int, own: int, steal: int = 0, total: int = 1000) -> dict:
        return {"loadavg": [0.1, 0.1, 0.1], "busy": busy, "own": own, "steal": steal, "total": total}

    cores = os.cpu_count() or 1
    start = counters(0, 0, total=0)
    quiet = machine_load(start, counters(busy=400, own=400))  # only our engine ran
    assert quiet["busy"] is False and quiet["other_cores"] == 0
    shared = machine_load(start, counters(busy=400 + 300 // cores, own=400))  # others: ~0.3 of a core
    assert shared["busy"] is (shared["other_cores"] > 0.25)
    loaded = machine_load(start, counters(busy=900, own=400))  # others: half the machine
    assert loaded["busy"] is True and loaded["other_cores"] == pytest.approx(cores * 0.5)
    stolen = machine_load(start, counters(busy=400, own=400, steal=100))  # the hypervisor took 10 %
    assert stolen["busy"] is True and stolen["steal_fraction"] == pytest.approx(0.1)
    assert machine_load({"loadavg": None}, {"loadavg": None})["busy"] is None  # no /proc: unknown, not quiet


def test_version_and_help_import_no_torch():
    code = ("import sys\nfrom bortfast.cli import main\n"
            "for argv in (['--version'], ['--help'], ['run', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "False", proc.stdout[-500:]
