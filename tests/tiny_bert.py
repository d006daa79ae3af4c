"""Tiny BERT checkpoints and synthetic task files for the fine-tuning tests (hidden 32, 2 layers, 4 heads)."""

from __future__ import annotations

import random
from pathlib import Path

from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

FILLER = ("the movie plot actor scene story film music ending cast script camera it was a truly very quite "
          "rather really long short new old").split()


def make_tiny_bert(path: Path, vocab: Path, mlm_head: bool = True, seed: int = 0,
                   vocab_size: int | None = None) -> Path:
    """Save a randomly initialised tiny BertForMaskedLM (or BertModel) and its WordPiece tokenizer to ``path``."""
    import torch

    torch.manual_seed(seed)
    tokenizer = BertTokenizerFast(str(vocab), do_lower_case=True)
    config = BertConfig(vocab_size=vocab_size or tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128)
    model = BertForMaskedLM(config) if mlm_head else BertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_keyword_sst2(root: Path, n_train: int = 160, n_dev: int = 48, seed: int = 0) -> Path:
    """An SST-2-format task whose label is whether the sentence says "good" (1) or "bad" (0): learnable in a few
    dozen steps by a tiny model, so a test can tell training that works from training that does not."""
    rng = random.Random(seed)
    task = root / "SST-2"
    task.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        lines = ["sentence\tlabel"]
        for i in range(n):
            label = i % 2
            words = rng.sample(FILLER, 6)
            words.insert(rng.randrange(7), "good" if label else "bad")
            lines.append(f"{' '.join(words)} \t{label}")
        (task / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
