import json

import pytest
from _tiny import make_tiny_bert, write_keyword_sst2

from bortfast.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return make_tiny_bert(root / "mlm"), write_keyword_sst2(root)


def test_finetune_cli_prints_dev_metrics_and_writes_json(setup, tmp_path, capsys):
    model, data = setup
    rc = main(["finetune", "--model", str(model), "--task", "SST-2", "--data", str(data), "--out", str(tmp_path),
               "--epochs", "1", "--batch-size", "8", "--lr", "5e-3", "--no-progress", "--threads", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    assert f"{'accuracy':<10} {results['dev']['accuracy']:>8.4f} {0.5:>9.4f}" in out  # dev, majority baseline
    assert results["config"]["batch_size"] == 8 and results["config"]["epochs"] == 1


def test_agora_cli_with_a_tiny_grid(setup, tmp_path, capsys):
    model, data = setup
    rc = main(["finetune", "--model", str(model), "--task", "sst2", "--data", str(data), "--out", str(tmp_path),
               "--agora", "--agora-lrs", "5e-3", "1e-7", "--agora-weight-decays", "0",
               "--agora-warmup-ratios", "0.1", "--agora-batch-sizes", "16", "--agora-replay", "0",
               "--agora-generator", "words", "--epochs", "1", "--max-train-examples", "64", "--no-progress", "--json"])
    assert rc == 0
    results = json.loads(capsys.readouterr().out)
    assert results["method"] == "agora" and results["grid_size"] == 2 and results["generator"] == "words"
    assert [r["n_thetas"] for r in results["rounds"]] == [2]
    assert results["config"]["finetune"]["max_train_examples"] == 64


def test_finetune_cli_errors_are_clean(setup, tmp_path, capsys):
    model, data = setup
    base = ["finetune", "--model", str(model), "--data", str(data), "--out", str(tmp_path)]
    assert main([*base, "--task", "nope"]) == 2
    assert "bortfast finetune: error: unknown task 'nope'" in capsys.readouterr().err
    assert main([*base, "--task", "sst2", "--agora-replay", "2"]) == 2
    assert "--agora-* options given without --agora: replay" in capsys.readouterr().err
    assert main([*base, "--task", "sst2", "--epochs", "0"]) == 2
    assert "invalid FinetuneConfig: epochs=0" in capsys.readouterr().err
