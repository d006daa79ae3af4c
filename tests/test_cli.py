import json
import subprocess
import sys

from bortfast.cli import main


def test_space_cli_json(capsys):
    assert main(["space", "--preset", "bert-paper", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["archs"]) == 300
    bort = next(r for r in out["archs"] if (r["layers"], r["heads"], r["hidden"], r["intermediate"]) ==
                (4, 8, 1024, 768))
    # <4,8,1024,768> BertModel with pooler, by hand: embeddings (30522+512+2)*1024 + 2*1024,
    # 4 layers of 4*1024^2 + 2*1024*768 + 9*1024 + 768, pooler 1024^2 + 1024. The paper rounds it to 56M.
    assert bort["params"] == (30522 + 512 + 2) * 1024 + 2 * 1024 + 4 * (4 * 1024**2 + 2 * 1024 * 768 + 9 * 1024
                                                                      + 768) + 1024**2 + 1024 == 55_941_120


def test_space_cli_table_runs_as_a_program():
    proc = subprocess.run([sys.executable, "-m", "bortfast", "space", "--preset", "bert-paper"],
                          capture_output=True, text=True, check=True)
    assert "300 architectures in space 'bert-paper'" in proc.stdout


def test_cli_error_is_clean(capsys, tmp_path):
    assert main(["space", "--below", str(tmp_path / "missing")]) == 2
    assert "bortfast space: error" in capsys.readouterr().err


def test_every_failure_class_is_a_message_and_debug_shows_the_traceback(monkeypatch, capsys):
    import bortfast.cli.space as space_cli

    for exc in (RuntimeError("export failed"), FloatingPointError("loss is nan"), KeyError("missing"),
                ValueError("bad"), OSError("disk")):
        def boom(args, exc=exc):
            raise exc

        monkeypatch.setattr(space_cli, "run_cli", boom)
        assert main(["space", "--preset", "bert-paper"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("bortfast space: error:") and type(exc).__name__ in err
    monkeypatch.setattr(space_cli, "run_cli", lambda args: (_ for _ in ()).throw(RuntimeError("x")))
    import pytest

    with pytest.raises(RuntimeError):
        main(["--debug", "space", "--preset", "bert-paper"])
