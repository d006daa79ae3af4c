"""Held-out masked-token accuracy (the quality stage's score for an MLM teacher) against oracles."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer

from bortfast.evaluation import mlm_accuracy


class _OneHot(torch.nn.Module):
    """A fake *ForMaskedLM whose logits are the one-hot of ``source(input_ids)``."""

    def __init__(self, vocab: int, source) -> None:
        super().__init__()
        self.vocab, self.source = vocab, source

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=torch.nn.functional.one_hot(self.source(input_ids), self.vocab).float())


@pytest.fixture(scope="module")
def tokenizer(tiny_teacher_dir):
    return AutoTokenizer.from_pretrained(tiny_teacher_dir)


class _Remembering:
    """The tokenizer, remembering the ids of its last call (what the text was before masking)."""

    def __init__(self, tok) -> None:
        self.tok, self.last = tok, None

    def __call__(self, *args, **kwargs):
        enc = self.tok(*args, **kwargs)
        self.last = enc["input_ids"].clone()
        return enc

    def __len__(self) -> int:
        return len(self.tok)

    def __getattr__(self, name):
        return getattr(self.tok, name)


def test_oracle_scores_one_and_copying_the_input_scores_what_masking_left(tokenizer):
    from _tiny import tiny_text

    texts = tiny_text(60, seed=1).splitlines()
    tok = _Remembering(tokenizer)
    oracle = mlm_accuracy(_OneHot(len(tokenizer), lambda ids: tok.last), tok, texts, max_len=32)
    assert oracle["accuracy"] == 1.0
    n_real = sum(len(tokenizer(t, truncation=True, max_length=32)["input_ids"]) - 2 for t in texts)
    assert 0 < oracle["masked_tokens"] < 0.3 * n_real  # ≈15 % of the real tokens, never padding or specials
    # Copying the (masked) input is right only where BERT masking kept the token (10 % of the masked ones).
    copy = mlm_accuracy(_OneHot(len(tokenizer), lambda ids: ids), tokenizer, texts, max_len=32)
    assert copy["masked_tokens"] == oracle["masked_tokens"] and 0.0 < copy["accuracy"] < 0.35


def test_same_seed_same_positions_and_bad_input(tokenizer):
    from _tiny import tiny_text

    texts = tiny_text(20, seed=2).splitlines()
    model = _OneHot(len(tokenizer), lambda ids: ids)
    assert mlm_accuracy(model, tokenizer, texts, seed=3) == mlm_accuracy(model, tokenizer, texts, seed=3)
    with pytest.raises(ValueError, match="at least one text"):
        mlm_accuracy(model, tokenizer, [])
