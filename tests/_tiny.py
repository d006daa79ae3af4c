"""Tiny teachers, tokenizers and corpora for fast tests (reusable by other test modules).

Everything is built from scratch and deterministic: a WordPiece tokenizer trained with ``tokenizers`` on generated
text (a few hundred tokens of vocabulary), and BERT models the size transformers' own tests use (hidden 32,
2 layers, 4 heads), saved with ``save_pretrained`` (safetensors) together with the fast tokenizer.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = (
    "the a one two three red green blue small large old new cat dog bird fish tree river hill house road city "
    "king queen child man woman runs walks sees finds eats sleeps sings reads writes builds near under over "
    "with from into and but then because quickly slowly today night morning winter summer happy quiet dark bright"
).split()


def tiny_text(n_sentences: int = 400, seed: int = 0) -> str:
    """Deterministic pseudo-English: one short sentence per line."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_sentences):
        n = rng.randint(5, 14)
        lines.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ".")
    return "\n".join(lines) + "\n"


def tiny_tokenizer(vocab_size: int = 200):
    """A BertTokenizerFast with a WordPiece vocabulary trained on :func:`tiny_text`."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(tiny_text().splitlines(), vocab_size=vocab_size, min_frequency=1,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False)
    return BertTokenizerFast(tokenizer_object=wp._tokenizer, unk_token="[UNK]", sep_token="[SEP]",
                             pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]", do_lower_case=True)


def make_tiny_teacher(directory: Path, *, kind: str = "mlm", hidden: int = 32, layers: int = 2, heads: int = 4,
                      intermediate: int = 37, max_positions: int = 64, seed: int = 0) -> Path:
    """Save a random-init tiny BERT teacher (``kind="mlm"``: BertForMaskedLM; ``"hidden"``: BertModel, no MLM
    head) with its tokenizer into ``directory``; return the directory."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertModel

    tok = tiny_tokenizer()
    config = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=max_positions, type_vocab_size=2,
                        pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = BertForMaskedLM(config) if kind == "mlm" else BertModel(config, add_pooling_layer=False)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return Path(directory)


def write_tiny_corpus(path: Path, n_sentences: int = 400, seed: int = 0) -> Path:
    path = Path(path)
    path.write_text(tiny_text(n_sentences, seed), encoding="utf-8")
    return path
