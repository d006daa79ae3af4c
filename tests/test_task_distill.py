"""Task-specific distillation (bortfast.finetune.task_distill) on tiny models and tiny task files written here:
the head is inherited (the teacher's own shape reproduces the teacher exactly), the loss goes down, the student
exports and serves with label names, bad input is rejected with messages naming both sides, and the CLI reports
errors without a traceback."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import WORDS, make_tiny_teacher

from bortfast.cli.main import main
from bortfast.data.tasks import get_task, load_examples
from bortfast.distill.inherit import compute_importance
from bortfast.finetune import FinetuneConfig, finetune, load_finetuned, load_tokenizer
from bortfast.finetune.config import TaskDistillConfig
from bortfast.finetune.encode import batch_order, collate, encode, predict
from bortfast.finetune.task_distill import (
    cached_hidden_kd_loss,
    calibration_batches,
    distill_task,
    hidden_kd_loss,
    inherit_task_student,
    logit_kd_loss,
    targets_fit,
    teacher_targets,
)
from bortfast.space import Arch

FILLER = [w for w in WORDS if w not in ("happy", "dark")]


def write_keyword_task(root: Path, n_train: int = 160, n_dev: int = 48, seed: int = 0) -> Path:
    """SST-2 format: label 1 when the sentence says "happy", 0 when it says "dark" (both in the tiny vocabulary)."""
    rng = random.Random(seed)
    task = root / "SST-2"
    task.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        lines = ["sentence\tlabel"]
        for i in range(n):
            words = rng.sample(FILLER, 6)
            words.insert(rng.randrange(7), "happy" if i % 2 else "dark")
            lines.append(f"{' '.join(words)}\t{i % 2}")
        (task / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    return write_keyword_task(tmp_path_factory.mktemp("kw"))


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, task_dir) -> Path:
    """A tiny encoder ⟨2, 4, 32, 37⟩ fine-tuned on the keyword task (its best/ checkpoint)."""
    root = tmp_path_factory.mktemp("teacher")
    base = make_tiny_teacher(root / "base", kind="mlm")
    cfg = FinetuneConfig(epochs=3, batch_size=8, learning_rate=5e-3, weight_decay=0.0, progress=False,
                         max_seq_len=32)
    res = finetune(base, "sst2", task_dir, root / "ft", cfg)
    assert res["dev"]["accuracy"] >= 0.9, res["history"]
    return root / "ft" / "best"


def _config(task_dir: Path, teacher_dir: Path, out: Path, **kw) -> TaskDistillConfig:
    base = dict(task="sst2", data=task_dir, teacher=teacher_dir, arch="1,2,16,24", out_dir=out, epochs=3,
                batch_size=8, lr=5e-3, weight_decay=0.0, max_seq_len=32, progress=False, calibration_examples=32)
    return TaskDistillConfig(**{**base, **kw})


def _importance(teacher, tokenizer, task_dir):
    spec = get_task("sst2")
    data = encode(load_examples(spec, task_dir, "train")[:32], tokenizer, spec, 32)
    return compute_importance(teacher, calibration_batches(data, spec.kind, tokenizer.pad_token_id))


def _logits(model, tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**enc).logits.numpy()


def test_student_with_the_teachers_shape_is_the_teacher(teacher_dir, task_dir):
    teacher, tok = load_finetuned(teacher_dir).eval(), load_tokenizer(teacher_dir)
    student, plan = inherit_task_student(teacher, Arch.from_config(teacher.config), _importance(teacher, tok, task_dir))
    assert plan.layers == [0, 1] and plan.hidden == list(range(32))
    texts = ["the happy dog sings", "a dark river near the old city"]
    np.testing.assert_allclose(_logits(student, tok, texts), _logits(teacher, tok, texts), atol=1e-5)


def test_smaller_student_inherits_pooler_and_classifier_on_the_kept_channels(teacher_dir, task_dir):
    teacher, tok = load_finetuned(teacher_dir).eval(), load_tokenizer(teacher_dir)
    student, plan = inherit_task_student(teacher, Arch(1, 2, 16, 24), _importance(teacher, tok, task_dir))
    keep = torch.as_tensor(plan.hidden)
    assert len(plan.hidden) == 16 and len(plan.layers) == 1
    torch.testing.assert_close(student.classifier.weight, teacher.classifier.weight[:, keep])
    torch.testing.assert_close(student.classifier.bias, teacher.classifier.bias)
    torch.testing.assert_close(student.bert.pooler.dense.weight, teacher.bert.pooler.dense.weight[keep][:, keep])
    assert student.config.id2label == teacher.config.id2label and student.config.num_labels == 2


def test_losses_are_zero_at_the_teacher_and_positive_elsewhere():
    z = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    assert logit_kd_loss(z, z, "classification", 2.0).item() == pytest.approx(0.0, abs=1e-7)
    assert logit_kd_loss(-z, z, "classification", 2.0).item() > 0.01
    assert logit_kd_loss(z[:, 0], z[:, 0] + 1, "regression", 2.0).item() == pytest.approx(1.0)
    from bortfast.distill.inherit import InheritPlan

    plan = InheritPlan(layers=[1], hidden=[0, 2])
    t = [torch.randn(2, 3, 4) for _ in range(3)]
    s = [t[0][..., [0, 2]], t[2][..., [0, 2]]]  # the student's layer 0 was inherited from teacher layer 1
    mask = torch.ones(2, 3)
    assert hidden_kd_loss(s, t, plan, mask).item() == pytest.approx(0.0, abs=1e-7)
    assert hidden_kd_loss([x + 1 for x in s], t, plan, mask).item() == pytest.approx(1.0)


@pytest.mark.parametrize("grouped", [False, True])
def test_batch_order_covers_every_example_once_and_grouping_cuts_padding(grouped):
    lengths = np.random.default_rng(1).integers(3, 60, size=1003)
    batches = batch_order(lengths, 8, np.random.default_rng(0), grouped)
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert all(len(b) == 8 for b in batches if len(b) != 1003 % 8) and sum(len(b) != 8 for b in batches) == 1
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert (padded < 1.2 * lengths.sum()) == grouped, padded / lengths.sum()
    again = batch_order(lengths, 8, np.random.default_rng(0), grouped)
    assert again == batches and batch_order(lengths, 8, np.random.default_rng(2), grouped) != batches


def test_cached_hidden_targets_give_the_per_batch_loss(teacher_dir, task_dir):
    teacher, tok = load_finetuned(teacher_dir).eval(), load_tokenizer(teacher_dir)
    student, plan = inherit_task_student(teacher, Arch(1, 2, 16, 24), _importance(teacher, tok, task_dir))
    spec = get_task("sst2")
    texts = load_examples(spec, task_dir, "train")[:6]
    texts[0] = dataclasses.replace(texts[0], text_a="happy")  # lengths differ, so batches pad
    data = encode(texts, tok, spec, 32)
    logits, targets = teacher_targets(teacher, data, plan, "classification", tok.pad_token_id, batch_size=4)
    np.testing.assert_allclose(logits, predict(teacher, data, "classification", tok.pad_token_id), atol=1e-5)
    assert [t.shape for t in targets[:2]] == [(2, len(data.input_ids[i]), 16) for i in range(2)]
    assert targets_fit(data, plan, "classification", 1.0) and not targets_fit(data, plan, "classification", 0.0)
    assert not targets_fit(data, plan, "multiple_choice", 1.0)
    index = [3, 0, 5]
    batch = collate(data, index, tok.pad_token_id, "classification")
    kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              token_type_ids=batch["token_type_ids"], output_hidden_states=True)
    with torch.no_grad():
        s_states = student.eval()(**kw).hidden_states
        t_states = teacher(**kw).hidden_states
    want = hidden_kd_loss(s_states, t_states, plan, batch["attention_mask"]).item()
    got = cached_hidden_kd_loss(s_states, [targets[i] for i in index], plan, batch["attention_mask"]).item()
    assert want > 1e-3 and got == pytest.approx(want, rel=1e-3)
    wrong = cached_hidden_kd_loss(s_states, [targets[i] for i in (0, 3, 5)], plan, batch["attention_mask"])
    assert wrong.item() != pytest.approx(want, rel=1e-2)


def test_distill_task_learns_keeps_the_best_epoch_and_writes_a_finetune_checkpoint(teacher_dir, task_dir, tmp_path):
    res = distill_task(_config(task_dir, teacher_dir, tmp_path / "out", hidden_weight=1.0))
    losses = [h["train_loss"] for h in res["history"]]
    assert losses[-1] < losses[0], res["history"]
    assert all("train_hidden" in h and "train_kd" in h for h in res["history"])
    assert res["dev"]["accuracy"] >= 0.9 and res["teacher_dev"]["accuracy"] >= 0.9, res["history"]
    assert res["dev"]["accuracy"] == max(h["accuracy"] for h in res["history"])
    saved = json.loads((tmp_path / "out/results.json").read_text())
    assert saved["dev"] == res["dev"] and saved["method"] == "task_distill" and saved["arch"] == "1,2,16,24"
    student = load_finetuned(tmp_path / "out/best")
    assert student.config.num_hidden_layers == 1 and student.config.hidden_size == 16
    assert student.config.id2label == {0: "0", 1: "1"}


def test_augmentation_adds_teacher_labelled_examples(teacher_dir, task_dir, tmp_path):
    res = distill_task(_config(task_dir, teacher_dir, tmp_path / "out", augment_copies=1, epochs=1))
    assert 0 < res["n_augmented"] <= res["n_train"]
    assert res["history"][0]["train_loss"] > 0


def test_student_exports_and_serves_with_labels_and_parity(teacher_dir, task_dir, tmp_path):
    from bortfast.export.onnx import to_onnx
    from bortfast.runtime import Classifier

    distill_task(_config(task_dir, teacher_dir, tmp_path / "out", epochs=1))
    to_onnx(tmp_path / "out/best", tmp_path / "student.onnx", optimize=False)
    clf = Classifier(tmp_path / "student.onnx", threads=1)
    assert clf.labels == ["0", "1"]
    texts = ["the happy dog sings today", "a dark river near the old city", "one cat"]
    student, tok = load_finetuned(tmp_path / "out/best"), load_tokenizer(tmp_path / "out/best")
    expected = np.concatenate([_logits(student, tok, [t]) for t in texts])
    np.testing.assert_allclose(clf.logits(texts), expected, atol=1e-4)


def test_bad_teachers_archs_and_task_dirs_are_rejected(teacher_dir, task_dir, tmp_path):
    base = make_tiny_teacher(tmp_path / "no-head", kind="mlm")
    with pytest.raises(ValueError, match=r"no classification head.*task sst2 needs a classification head"):
        distill_task(_config(task_dir, base, tmp_path / "o1"))
    with pytest.raises(ValueError, match=r"num_labels=2; task mnli needs a classification head with num_labels=3"):
        distill_task(_config(task_dir, teacher_dir, tmp_path / "o2", task="mnli"))
    with pytest.raises(ValueError, match=r"does not fit inside teacher ⟨2, 4, 32, 37⟩"):
        distill_task(_config(task_dir, teacher_dir, tmp_path / "o3", arch="3,4,32,37"))
    empty = tmp_path / "glue" / "SST-2"
    empty.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"expected .*SST-2/train\.tsv"):
        distill_task(_config(tmp_path / "glue", teacher_dir, tmp_path / "o4"))
    with pytest.raises(ValueError, match=r"invalid TaskDistillConfig: alpha=1.5"):
        _config(task_dir, teacher_dir, tmp_path / "o5", alpha=1.5)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()


def test_cli_distills_a_task_and_reports_errors_without_traceback(teacher_dir, task_dir, tmp_path, capsys):
    common = ["distill", "--task", "sst2", "--data", str(task_dir), "--arch", "1,2,16,24", "--epochs", "1",
              "--max-seq-len", "32", "--batch-size", "8", "--no-progress"]
    assert main([*common, "--teacher", str(teacher_dir), "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "sst2" in out and "accuracy" in out and (tmp_path / "cli/best/config.json").is_file()
    bad = make_tiny_teacher(tmp_path / "plain", kind="mlm")
    assert main([*common, "--teacher", str(bad), "--out", str(tmp_path / "cli2")]) == 2
    err = capsys.readouterr().err
    assert "bortfast distill: error:" in err and "no classification head" in err and "Traceback" not in err
    assert main(["distill", "--teacher", str(teacher_dir), "--arch", "1,2,16,24", "--out", str(tmp_path / "x")]) == 2
    assert "--corpus" in capsys.readouterr().err
    assert main([*common, "--teacher", str(teacher_dir), "--out", str(tmp_path / "x"), "--steps", "5"]) == 2
    assert "--steps" in capsys.readouterr().err


def test_pipeline_distils_a_finetuned_teacher_on_the_task(teacher_dir, task_dir, tmp_path):
    from bortfast import pipeline
    from bortfast.finetune.task_distill import is_finetuned

    assert is_finetuned(teacher_dir) and not is_finetuned(tmp_path) and not is_finetuned(teacher_dir.parent)
    cfg = pipeline.RunConfig(teacher=str(teacher_dir), out_dir=str(tmp_path), progress=False,
                             finetune=pipeline.FinetuneStage(task="sst2", task_data=str(task_dir), epochs=1, lr=5e-3))
    st = pipeline.stages._stage_finetune(cfg, tmp_path, {"search": {"arch": "1,2,16,24"}})
    assert st["method"] == "task_distill" and st["result"]["arch"] == "1,2,16,24"
    assert load_finetuned(tmp_path / "finetuned/best").config.hidden_size == 16
