"""The one place tests build tiny BERT models, tokenizers, corpora and task files (so the suite runs on a bare
clone: nothing here reads ../shared).

Everything is built from scratch and deterministic, except the token order of :func:`tiny_tokenizer` (the
``tokenizers`` WordPiece trainer orders equal-frequency tokens differently from process to process):

* :func:`tiny_config` / :func:`tiny_bert` / :func:`save_tiny_bert` -- THE tiny-model builder: a BertConfig the
  size transformers' own tests use (hidden 32, 2 layers, 4 heads by default), a seeded random-init model of any
  BERT class, saved with ``save_pretrained`` (safetensors) together with its tokenizer.
* :func:`tiny_tokenizer` -- a WordPiece tokenizer trained with ``tokenizers`` on :func:`tiny_text` (the tiny
  teachers' vocabulary); :func:`vocab_tokenizer` -- one over a fixed vocabulary file (:func:`write_vocab`) that
  spells any ASCII text without [UNK], standing in for bert-base-uncased's vocab.txt.
* :func:`tiny_text` / :func:`write_tiny_corpus` -- generated pseudo-English.
* :func:`write_keyword_sst2` and :func:`write_tiny_glue` -- small GLUE task directories in each file format
  (SST-2, CoLA without a header, MRPC with a BOM, STS-B's ten columns) whose labels a tiny model can learn.
"""

from __future__ import annotations

import random
import string
import tempfile
from pathlib import Path
from typing import Any

WORDS = (
    "the a one two three red green blue small large old new cat dog bird fish tree river hill house road city "
    "king queen child man woman runs walks sees finds eats sleeps sings reads writes builds near under over "
    "with from into and but then because quickly slowly today night morning winter summer happy quiet dark bright"
).split()
FILLER = ("the movie plot actor scene story film music ending cast script camera it was a truly very quite "
          "rather really long short new old").split()
# Words of the runtime/export test sentences, so they tokenize to whole words as with BERT's vocabulary.
REVIEW_WORDS = ("good bad gripping funny moving meanders acting wooden score lovely final act lands its punches yes "
                "unexpectedly tender about brothers liked indeed this is i s an").split()
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ------------------------------------------------------------------------------------------------- text
def tiny_text(n_sentences: int = 400, seed: int = 0) -> str:
    """Deterministic pseudo-English: one short sentence per line."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_sentences):
        n = rng.randint(5, 14)
        lines.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ".")
    return "\n".join(lines) + "\n"


def write_tiny_corpus(path: Path, n_sentences: int = 400, seed: int = 0) -> Path:
    path = Path(path)
    path.write_text(tiny_text(n_sentences, seed), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------- tokenizers
def tiny_tokenizer(vocab_size: int = 200):
    """A BertTokenizerFast with a WordPiece vocabulary trained on :func:`tiny_text` (the tiny teachers' one)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(tiny_text().splitlines(), vocab_size=vocab_size, min_frequency=1,
                           special_tokens=SPECIAL_TOKENS, show_progress=False)
    return BertTokenizerFast(tokenizer_object=wp._tokenizer, unk_token="[UNK]", sep_token="[SEP]",
                             pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]", do_lower_case=True)


def write_vocab(path: Path) -> Path:
    """A WordPiece vocab.txt (special tokens, every lower-case ASCII letter, digit and punctuation mark with its
    ``##`` continuation, then whole words): a stand-in for bert-base-uncased's vocab.txt, ~300 tokens."""
    chars = string.ascii_lowercase + string.digits
    pieces = list(chars + string.punctuation) + [f"##{c}" for c in chars] + ["##ed", "##ing", "##ly"]
    words = sorted(set(WORDS + FILLER + REVIEW_WORDS) - set(pieces))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(SPECIAL_TOKENS + pieces + words) + "\n", encoding="utf-8")
    return path


def vocab_tokenizer():
    """A lower-casing BertTokenizerFast over :func:`write_vocab`'s vocabulary."""
    from transformers import BertTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        return BertTokenizerFast(str(write_vocab(Path(tmp) / "vocab.txt")), do_lower_case=True)


# ------------------------------------------------------------------------------------------------- models
def tiny_config(*, hidden: int = 32, layers: int = 2, heads: int = 4, intermediate: int = 37,
                max_positions: int = 64, vocab_size: int = 99, **extra: Any):
    """A small BertConfig; ``extra`` are further BertConfig fields (dropout, labels, attn_implementation, ...)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=intermediate, max_position_embeddings=max_positions, **extra)


def tiny_bert(cls: Any = None, *, seed: int = 0, model_kwargs: dict | None = None, **config: Any):
    """A random-init model of BERT class ``cls`` (default BertModel) with :func:`tiny_config` ``config``,
    initialised under ``torch.manual_seed(seed)``; ``model_kwargs`` go to the class (``add_pooling_layer=False``)."""
    import torch
    from transformers import BertModel

    cfg = tiny_config(**config)
    torch.manual_seed(seed)
    return (cls or BertModel)(cfg, **(model_kwargs or {}))


def save_tiny_bert(path: Path, cls: Any = None, *, tokenizer: Any = None, seed: int = 0, **config: Any) -> Path:
    """:func:`tiny_bert` saved to ``path`` with ``save_pretrained`` (and ``tokenizer`` beside it, whose size is the
    default ``vocab_size``); return ``path``."""
    if tokenizer is not None:
        config.setdefault("vocab_size", len(tokenizer))
        config.setdefault("pad_token_id", tokenizer.pad_token_id)
    tiny_bert(cls, seed=seed, **config).save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return Path(path)


def make_tiny_teacher(directory: Path, *, kind: str = "mlm", seed: int = 0, **config: Any) -> Path:
    """A tiny teacher as the distillation tests use it: ``kind="mlm"`` a BertForMaskedLM, ``"hidden"`` an
    encoder-only BertModel without pooler, with :func:`tiny_tokenizer`."""
    from transformers import BertForMaskedLM, BertModel

    if kind == "mlm":
        return save_tiny_bert(directory, BertForMaskedLM, tokenizer=tiny_tokenizer(), seed=seed, **config)
    return save_tiny_bert(directory, BertModel, tokenizer=tiny_tokenizer(), seed=seed,
                          model_kwargs={"add_pooling_layer": False}, **config)


# ------------------------------------------------------------------------------------------------- task files
def _keyword_rows(n: int, rng: random.Random) -> list[tuple[str, int]]:
    """Sentences of FILLER words with "good" (label 1) or "bad" (label 0) at a random place: learnable in a few
    dozen steps by a tiny model, so a test can tell training that works from training that does not."""
    rows = []
    for i in range(n):
        label = i % 2
        words = rng.sample(FILLER, 6)
        words.insert(rng.randrange(7), "good" if label else "bad")
        rows.append((" ".join(words), label))
    return rows


def _write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


def write_keyword_sst2(root: Path, n_train: int = 160, n_dev: int = 48, seed: int = 0) -> Path:
    """``root/SST-2/{train,dev}.tsv`` in SST-2's format (header ``sentence\\tlabel``); return ``root``."""
    rng = random.Random(seed)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = _keyword_rows(n, rng)
        _write_lines(Path(root) / "SST-2" / f"{split}.tsv", ["sentence\tlabel"] + [f"{s} \t{y}" for s, y in rows])
    return Path(root)


def write_tiny_glue(root: Path, n_train: int = 64, n_dev: int = 32, seed: int = 0) -> Path:
    """SST-2, CoLA, MRPC and STS-B directories under ``root`` in the formats GLUE ships (CoLA: no header, four
    columns; MRPC: a header starting with a UTF-8 BOM; STS-B: ten columns, a score in [0, 5]); return ``root``."""
    root = Path(root)
    write_keyword_sst2(root, n_train, n_dev, seed)
    rng = random.Random(seed + 1)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = _keyword_rows(n, rng)
        _write_lines(root / "CoLA" / f"{split}.tsv", [f"tiny{i % 3}\t{y}\t{'' if y else '*'}\t{s}."
                                                     for i, (s, y) in enumerate(rows)])
        pairs = list(zip(rows, _keyword_rows(n, rng)))
        mrpc = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        mrpc += [f"{int(a[1] == b[1])}\t{2 * i}\t{2 * i + 1}\t{a[0]}\t{b[0]}" for i, (a, b) in enumerate(pairs)]
        _write_lines(root / "MRPC" / f"{split}.tsv", mrpc)
        sts = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
        sts += [f"{i}\tmain-captions\ttiny\t2012\t{i:04d}\tnone\tnone\t{a[0]}\t{b[0]}\t{2.5 * (a[1] + b[1]):.3f}"
                for i, (a, b) in enumerate(pairs)]
        _write_lines(root / "STS-B" / f"{split}.tsv", sts)
    return root


def make_tiny_bert(path: Path, *, mlm_head: bool = True, seed: int = 0, vocab_size: int | None = None) -> Path:
    """The fine-tuning tests' model: a tiny BertForMaskedLM (or, without ``mlm_head``, a BertModel) with
    intermediate 64 and 128 positions, saved with :func:`vocab_tokenizer`; ``vocab_size`` overrides its size."""
    from transformers import BertForMaskedLM, BertModel

    tok = vocab_tokenizer()
    extra = {"vocab_size": vocab_size} if vocab_size is not None else {}
    return save_tiny_bert(path, BertForMaskedLM if mlm_head else BertModel, tokenizer=tok, seed=seed, intermediate=64,
                          max_positions=128, **extra)


def dress_as_sentence_transformer(path: Path, *, pooling: Any = "mean", normalize: bool = True, legacy: bool = False,
                                  max_seq_length: int = 64) -> Path:
    """Give the model directory ``path`` a sentence-transformers module stack: ``modules.json`` (Transformer →
    ``1_Pooling`` → ``2_Normalize`` with ``normalize``), the pooling config (``pooling``: one mode or a list, in
    sentence-transformers >= 5's format; ``legacy``: the older ``pooling_mode_*`` switches, mean only) and
    ``sentence_bert_config.json``: what ``SentenceTransformer(path)`` loads. Returns ``path``."""
    import json

    hidden = json.loads((path / "config.json").read_text())["hidden_size"]
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (path / "2_Normalize").mkdir(exist_ok=True)
    (path / "1_Pooling").mkdir(exist_ok=True)
    config = ({"word_embedding_dimension": hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
               "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False} if legacy
              else {"embedding_dimension": hidden, "pooling_mode": pooling})
    (path / "1_Pooling" / "config.json").write_text(json.dumps(config))
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                "do_lower_case": False}))
    return path


def save_tiny_sentence_teacher(path: Path, *, pooling: Any = "mean", normalize: bool = True, seed: int = 0,
                               **config: Any) -> Path:
    """A tiny sentence-transformers teacher: an encoder-only BertModel (hidden 32) with :func:`vocab_tokenizer`,
    dressed by :func:`dress_as_sentence_transformer` (``pooling`` and ``normalize`` as there)."""
    from transformers import BertModel

    path = save_tiny_bert(path, BertModel, tokenizer=vocab_tokenizer(), seed=seed, intermediate=64,
                          model_kwargs={"add_pooling_layer": False}, **config)
    return dress_as_sentence_transformer(path, pooling=pooling, normalize=normalize)
