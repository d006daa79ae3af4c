"""`--overwrite` removes only what bortfast wrote, in a directory it recognises as its own run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bortfast import pipeline
from bortfast._base.io import clear_own_dir
from bortfast.pipeline import RunConfig
from bortfast.search.runner import _clear_outputs


def _state(out: Path, overwrite: bool) -> pipeline.RunState:
    return pipeline.RunState(RunConfig(teacher="t", out_dir=str(out), overwrite=overwrite, progress=False))


def test_foreign_directory_survives_overwrite(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="not a bortfast run directory.*use another --out"):
        _state(out, overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work"
    with pytest.raises(FileExistsError, match="use another --out") as err:
        _state(out, overwrite=False)
    assert "--overwrite" not in str(err.value)  # the error never suggests discarding a foreign directory


def test_run_directory_with_a_foreign_file_survives(tmp_path):
    out = tmp_path / "run"
    _state(out, overwrite=False)
    (out / "search").mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="notes.txt"):
        _state(out, overwrite=True)
    assert (out / "notes.txt").exists() and (out / "search").is_dir() and (out / pipeline.STATE_NAME).exists()


def test_previous_run_is_replaced(tmp_path):
    out = tmp_path / "run"
    old = _state(out, overwrite=False)
    old.finish("corpus", {"paths": []}, 1.0)
    (out / "student").mkdir()
    (out / "student" / "config.json").write_text("{}")
    (out / "model.onnx").write_bytes(b"x")
    (out / ".summary.md.abc.tmp").write_text("torn")  # a temp file left by a killed atomic write
    new = _state(out, overwrite=True)
    assert new.data["stages"] == {}
    assert sorted(p.name for p in out.iterdir()) == [pipeline.STATE_NAME]


def test_symlinked_output_is_unlinked_not_followed(tmp_path):
    out = tmp_path / "run"
    _state(out, overwrite=False)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.bin").write_bytes(b"1")
    (out / "work").symlink_to(precious, target_is_directory=True)
    _state(out, overwrite=True)
    assert (precious / "data.bin").exists() and not (out / "work").exists()


@pytest.mark.parametrize("which", ["cwd", "parent", "home", "root"])
def test_dangerous_directories_are_refused(tmp_path, monkeypatch, which):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "a"))
    target = {"cwd": Path("."), "parent": Path(".."), "home": Path.home(), "root": Path("/")}[which]
    (Path(target) / pipeline.STATE_NAME).write_text("{}") if which in ("cwd", "parent") else None
    with pytest.raises(ValueError, match="refusing to clear"):
        clear_own_dir(target, pipeline.STATE_NAME, pipeline.RUN_OUTPUTS)
    assert work.is_dir()


def test_cli_out_dot_overwrite_is_refused_without_traceback(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    (tmp_path / pipeline.STATE_NAME).write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "bortfast", "run", "--teacher", "nope", "--out", ".",
                           "--overwrite"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    assert "refusing to clear" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "keep.txt").exists() and (tmp_path / pipeline.STATE_NAME).exists()


def test_search_overwrite_keeps_foreign_journal(tmp_path):
    (tmp_path / "journal.jsonl").write_text("my own log\n")
    with pytest.raises(FileExistsError, match="journal.jsonl"):
        _clear_outputs(tmp_path)
    assert (tmp_path / "journal.jsonl").exists()
    (tmp_path / "journal.jsonl").write_text(json.dumps({"kind": "header", "settings": {}}) + "\n")
    (tmp_path / "search.json").write_text(json.dumps({"candidates": [], "best": 0}))
    (tmp_path / "pareto.png").write_bytes(b"png")
    _clear_outputs(tmp_path)
    assert list(tmp_path.iterdir()) == []
