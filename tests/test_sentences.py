"""Sentence rows for sentence-level distillation (bortfast.data.sentences) and `distill(unit="sentences")`."""

from __future__ import annotations

import json

import pytest
import torch

from bortfast.data.sentences import attention_mask, load_sentences, split_sentences, trim
from bortfast.distill import DistillConfig, distill
from bortfast.distill.config import LossWeights
from bortfast.distill.loss import distillation_loss


def test_split_sentences_cuts_at_sentence_ends_and_drops_fragments():
    line = "The first one is here.  A second, longer sentence follows! Ok. 3 items remain in the list?"
    assert list(split_sentences(line)) == ["The first one is here.", "A second, longer sentence follows!",
                                           "3 items remain in the list?"]
    assert list(split_sentences("e.g. this stays whole because lower case follows")) == [
        "e.g. this stays whole because lower case follows"]
    long = " ".join(f"w{i}" for i in range(150))
    assert [len(s.split()) for s in split_sentences(long, max_words=64)] == [64, 64, 22]


def test_load_sentences_rows_are_cls_sentence_sep_then_padding(tiny_corpus_file):
    from _tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    corpus = load_sentences(tiny_corpus_file, tok, seq_len=12, heldout_fraction=0.1, seed=0)
    rows = torch.cat([corpus.train, corpus.heldout])
    n_lines = len({ln for ln in tiny_corpus_file.read_text().splitlines() if ln.strip()})
    assert len(rows) == n_lines and len(corpus.heldout) == -(-n_lines // 10)
    assert corpus.pad_id == tok.pad_token_id and rows.shape[1] == 12
    assert (rows[:, 0] == tok.cls_token_id).all()
    mask = attention_mask(rows, corpus.pad_id)
    lengths = mask.sum(1)
    assert ((rows == tok.sep_token_id).sum(1) == 1).all()  # exactly one [SEP], right after the (cut) sentence
    assert (rows[torch.arange(len(rows)), lengths - 1] == tok.sep_token_id).all()
    assert (rows[mask == 0] == corpus.pad_id).all()
    first = tok(tiny_corpus_file.read_text().splitlines()[0], add_special_tokens=False)["input_ids"][:10]
    assert any(r[1:len(first) + 1].tolist() == first for r in rows)
    batch = trim(rows[:5], corpus.pad_id)
    assert batch.shape[1] == int(lengths[:5].max())


def test_load_sentences_refuses_a_corpus_without_sentences(tmp_path):
    from _tiny import tiny_tokenizer

    (tmp_path / "c.txt").write_text("hi\nok\n", encoding="utf-8")
    with pytest.raises(ValueError, match="sentences of 3 words"):
        load_sentences(tmp_path / "c.txt", tiny_tokenizer(), seq_len=12)


def test_masked_hidden_loss_ignores_padding():
    torch.manual_seed(0)
    hs, ht = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    labels = torch.full((2, 5), -100)
    w = LossWeights(alpha=0.0, beta=1.0, hidden_loss="mse", embedding=1.0)
    loss = distillation_loss(torch.zeros(0, 3), hs, ht, labels, "hidden", w, mask)[0]
    hs2 = hs.clone()
    hs2[0, 3:] = 100.0  # padding positions: must not move the loss
    assert torch.allclose(loss, distillation_loss(torch.zeros(0, 3), hs2, ht, labels, "hidden", w, mask)[0])
    assert not torch.allclose(loss, distillation_loss(torch.zeros(0, 3), hs2, ht, labels, "hidden", w)[0])


def test_distill_on_sentences_trains_and_resumes(tiny_hidden_teacher_dir, tiny_corpus_file, tmp_path):
    cfg = dict(teacher=str(tiny_hidden_teacher_dir), corpus=[str(tiny_corpus_file)], arch="1,2,16,24",
               out_dir=str(tmp_path / "run"), steps=4, batch_size=4, seq_len=32, lr=1e-3, checkpoint_every=2,
               eval_every=0, log_every=2, progress=False, unit="sentences", embedding_loss=1.0)
    final = distill(DistillConfig(**cfg))
    records = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["event"] == "train"]
    assert len(train) == 2 and all(r["kd_loss"] > 0 for r in train)
    assert (final / "projection.safetensors").is_file()
    # the same out_dir with packed blocks is another run: resuming from the sentence checkpoint is refused
    with pytest.raises(ValueError, match="unit|corpus"):
        distill(DistillConfig(**{**cfg, "unit": "blocks", "steps": 6}))


def test_sentences_need_an_encoder_only_teacher(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    cfg = DistillConfig(teacher=str(tiny_teacher_dir), corpus=[str(tiny_corpus_file)], arch="1,2,16,24",
                        out_dir=str(tmp_path / "run"), steps=1, seq_len=32, progress=False, unit="sentences")
    with pytest.raises(ValueError, match="encoder-only teacher"):
        distill(cfg)
    with pytest.raises(ValueError, match="'blocks' or 'sentences'"):
        DistillConfig(teacher="t", corpus="c", arch="1,2,16,24", out_dir="o", unit="lines")


def test_unit_auto_resolves_by_teacher_kind_with_each_recipe():
    from bortfast.pipeline import DistillStage

    cfg = DistillConfig(teacher="t", corpus="c", arch="1,2,16,24", out_dir="o")
    assert cfg.unit == "auto" and cfg.unit_for("hidden") == "sentences" and cfg.unit_for("mlm") == "blocks"
    w = cfg.loss_weights_for("hidden")
    assert (w.alpha, w.beta, w.embedding) == (0.0, 0.0, 1.0)
    w = cfg.loss_weights_for("mlm")
    assert (w.alpha, w.beta, w.embedding) == (0.1, 0.5, 0.0)
    w = DistillConfig(teacher="t", corpus="c", arch="1,2,16,24", out_dir="o", unit="blocks").loss_weights_for("hidden")
    assert (w.beta, w.embedding) == (0.5, 0.0)  # explicit blocks: the token-level recipe
    with pytest.raises(ValueError, match="nothing to learn"):
        DistillConfig(teacher="t", corpus="c", arch="1,2,16,24", out_dir="o", alpha=0.0,
                      beta=0.0).loss_weights_for("mlm")
    stage = DistillStage()
    assert {k: stage.resolved("hidden")[k] for k in ("unit", "batch_size", "lr")} == {
        "unit": "sentences", "batch_size": 64, "lr": 3e-4}
    assert {k: stage.resolved("mlm")[k] for k in ("unit", "batch_size", "lr")} == {
        "unit": "blocks", "batch_size": 16, "lr": 5e-4}
    assert DistillStage(lr=1e-3, batch_size=8).resolved("hidden")["lr"] == 1e-3


def test_distill_resolves_the_recipe_into_its_saved_config(tiny_hidden_teacher_dir, tiny_corpus_file, tmp_path):
    cfg = DistillConfig(teacher=str(tiny_hidden_teacher_dir), corpus=[str(tiny_corpus_file)], arch="1,2,16,24",
                        out_dir=str(tmp_path / "run"), steps=1, seq_len=32, checkpoint_every=0, eval_every=0,
                        progress=False)
    assert (cfg.batch_size, cfg.lr) == (None, None)
    final = distill(cfg)
    saved = json.loads((final / "distill_config.json").read_text())
    assert (saved["unit"], saved["batch_size"], saved["lr"]) == ("sentences", 64, 3e-4)
    blocks = DistillConfig(teacher="t", corpus="c", arch="1,2,16,24", out_dir="o", unit="blocks").resolved_for("hidden")
    assert (blocks.unit, blocks.batch_size, blocks.lr) == ("blocks", 32, 1e-4)
    with pytest.raises(ValueError, match="batch_size"):
        DistillConfig(teacher="t", corpus="c", arch="1,2,16,24", out_dir="o", batch_size=0)


def test_short_train_error_on_sentence_rows_ignores_padding(tiny_hidden_teacher_dir, tiny_corpus_file):
    from bortfast.data.corpus import Corpus, load_corpus
    from bortfast.data.teacher import load_teacher
    from bortfast.distill.config import default_loss_weights
    from bortfast.distill.short import short_train_error
    from bortfast.distill.student import student_arch, teacher_importance

    t = load_teacher(tiny_hidden_teacher_dir)
    c = load_sentences(tiny_corpus_file, t.tokenizer, seq_len=32, seed=0)
    arch, w = student_arch("1,2,16,24", t), default_loss_weights("hidden", beta=0.0, embedding=1.0)
    # inheritance is calibrated on packed blocks of the same text, as extract() and distill() do
    importance = teacher_importance(t, load_corpus(tiny_corpus_file, t.tokenizer, seq_len=32), None, n_blocks=8)
    kw = dict(steps=6, lr=3e-3, batch_size=8, seed=0, heldout_batch_size=16, weights=w, importance=importance)
    untrained = short_train_error(arch, t, c, **{**kw, "steps": 0})
    trained = short_train_error(arch, t, c, **kw)
    assert trained < untrained

    # the same sentences padded to 48 columns: every batch is trimmed and masked, so ê is the same
    def pad(rows):
        return torch.cat([rows, torch.full((len(rows), 16), c.pad_id, dtype=rows.dtype)], 1)

    wider = Corpus(pad(c.train), pad(c.heldout), 48, c.sources, 0, pad_id=c.pad_id)
    assert abs(short_train_error(arch, t, wider, **kw) - trained) < 1e-5
    # read as packed blocks (no pad id), the padding would be trained on: another ê
    blocks = Corpus(c.train, c.heldout, 32, c.sources, 0)
    assert abs(short_train_error(arch, t, blocks, **kw) - trained) > 1e-4
