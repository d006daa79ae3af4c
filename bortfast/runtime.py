"""Deployment runtime: an exported Bort/BERT model behind ONNX Runtime, with its tokenizer (Bort paper, de Wynter &
Perry 2020, §5: the CPU inference the speed-up claim is about).

This module needs only numpy, onnxruntime and the ``tokenizers`` library — not torch, not transformers — so a
service can ship the ``.onnx`` file (which :func:`bortfast.export.to_onnx` makes self-contained: tokenizer, label
names, maximum length in its metadata) and these three wheels.

:class:`Encoder` returns pooled sentence vectors or per-token hidden states; :class:`Classifier` returns logits,
probabilities or labels. Both tokenize, sort by length, batch, pad each batch to its longest member, truncate to
the model's positions (or reject over-long inputs when truncation is off) and return numpy arrays in input order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from bortfast.profile.timing import DEFAULT_ORT_SPINNING

META_PREFIX = "bortfast."  # keep in step with bortfast.export.META_PREFIX (not imported: that module needs torch)

TextInput = str | tuple[str, str]


def _load_tokenizer(tokenizer: Tokenizer | str | os.PathLike | None, meta: dict[str, str], onnx_path: Path
                    ) -> Tokenizer:
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if tokenizer is None:
        embedded = meta.get(META_PREFIX + "tokenizer_json")
        if embedded is None:
            raise ValueError(f"{str(onnx_path)!r} has no embedded tokenizer: pass tokenizer= (a tokenizers."
                             f"Tokenizer, a tokenizer.json file or a directory holding one)")
        return Tokenizer.from_str(embedded)
    path = Path(tokenizer)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {str(path)!r} does not exist")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception on bad JSON
        raise ValueError(f"{str(path)!r} is not a tokenizers JSON file: {err}") from None


class _OnnxTextModel:
    """Shared machinery: the ORT session, the tokenizer, batching and padding."""

    expected_output: str = ""

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        tokenizer: Tokenizer | str | os.PathLike | None = None,
        *,
        threads: int | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        truncation: bool = True,
        sort_by_length: bool = True,
        spinning: bool = DEFAULT_ORT_SPINNING,
    ) -> None:
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise FileNotFoundError(f"ONNX model {str(self.onnx_path)!r} does not exist")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        # Off by default: an idle spinning ORT pool steals the cores of every other model in the process (a server
        # holding a teacher and a student); on: a few % less latency for one model alone on an otherwise idle CPU.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own InvalidProtobuf / Fail / InvalidGraph types
            raise ValueError(f"{str(self.onnx_path)!r} is not a loadable ONNX model: {err}") from None
        self.meta: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_names = [i.name for i in self.session.get_inputs()]
        if "input_ids" not in self.input_names:
            raise ValueError(f"{str(self.onnx_path)!r} has inputs {self.input_names}, expected input_ids "
                             f"(+ attention_mask, token_type_ids): export it with bortfast export")
        outputs = self.session.get_outputs()
        self.output_name = outputs[0].name
        self.output_rank = len(outputs[0].shape)
        if self.expected_output and self.output_name != self.expected_output:
            raise ValueError(f"{type(self).__name__} needs a model with output {self.expected_output!r}; "
                             f"{str(self.onnx_path)!r} outputs {self.output_name!r}")
        self.max_positions = int(self.meta.get(META_PREFIX + "max_positions", 512))
        if max_length is not None and not 1 <= max_length <= self.max_positions:
            raise ValueError(f"max_length must be in [1, {self.max_positions}] (the model's positions), "
                             f"got {max_length}")
        self.max_length = max_length or self.max_positions
        self.truncation = truncation
        self.batch_size = batch_size
        self.sort_by_length = sort_by_length
        self.tokenizer = _load_tokenizer(tokenizer, self.meta, self.onnx_path)
        vocab_size = self.meta.get(META_PREFIX + "vocab_size")
        if vocab_size is not None and self.tokenizer.get_vocab_size() > int(vocab_size):
            raise ValueError(f"tokenizer has {self.tokenizer.get_vocab_size()} tokens but the model's vocabulary "
                             f"has {vocab_size}: they do not belong together")
        padding = self.tokenizer.padding or {}
        pad_id = padding.get("pad_id", self.tokenizer.token_to_id("[PAD]") or 0)
        pad_token = padding.get("pad_token", "[PAD]")
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)  # to the longest in each batch
        if truncation:
            self.tokenizer.enable_truncation(self.max_length)
        else:
            self.tokenizer.no_truncation()

    # -- batching -------------------------------------------------------------------------------------------------
    def _check_texts(self, texts: Sequence[TextInput]) -> list[TextInput]:
        if isinstance(texts, (str, tuple)):
            raise TypeError(f"pass a list of texts (or of (text, text_pair) tuples), got a {type(texts).__name__}")
        texts = list(texts)
        if not texts:
            raise ValueError("empty input list: pass at least one text")
        for i, text in enumerate(texts):
            ok = isinstance(text, str) or (isinstance(text, tuple) and len(text) == 2
                                           and all(isinstance(t, str) for t in text))
            if not ok:
                raise TypeError(f"input {i} is {text!r}: expected a str or a (str, str) pair")
        return texts

    def tokenize(self, texts: Sequence[TextInput]) -> dict[str, np.ndarray]:
        """Tokenize one batch, padded to its longest member: int64 arrays (B, L) for the model's inputs."""
        texts = self._check_texts(texts)
        encodings = self.tokenizer.encode_batch(texts)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)  # (B, L)
        lengths = attention_mask.sum(axis=1)
        too_long = np.flatnonzero(lengths > self.max_length)
        if too_long.size:
            i = int(too_long[0])
            raise ValueError(f"input {i} has {int(lengths[i])} tokens, more than the model's maximum "
                             f"{self.max_length} ({too_long.size} inputs too long); enable truncation or shorten it")
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": attention_mask,
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {name: arrays[name] for name in self.input_names}

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """One session run on already-tokenized int64 inputs (B, L); returns the model's output array."""
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64) for name in self.input_names}
        return self.session.run([self.output_name], feed)[0]

    def _batches(self, texts: list[TextInput]) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(indices into texts, tokenized batch); length-sorted so padding stays small."""
        if self.sort_by_length:
            # a cheap length proxy (characters) keeps the sort free of a second tokenization pass
            order = np.argsort([len(t) if isinstance(t, str) else len(t[0]) + len(t[1]) for t in texts],
                               kind="stable")
        else:
            order = np.arange(len(texts))
        for start in range(0, len(texts), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield idx, self.tokenize([texts[i] for i in idx])


# sentence-transformers' pooling modes, in the order its Pooling module concatenates them (kept in step with
# bortfast.data.teacher.POOLING_MODES; not imported: that module needs the training stack).
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


def _parse_pooling(pooling: str) -> tuple[str, ...]:
    modes = tuple(pooling.split("+")) if isinstance(pooling, str) else ()
    if not modes or any(m not in POOLING_MODES for m in modes):
        raise ValueError(f"pooling must be one of {list(POOLING_MODES)} or several joined by '+', got {pooling!r}")
    return modes


def pool(states: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Sentence vectors (B, k·H) from token states (B, L, H) and the attention mask (B, L) (right padding), as
    sentence-transformers' Pooling module computes them; several modes (``"cls+mean"``) are concatenated."""
    m = mask[..., None].astype(np.float32)  # (B, L, 1)
    counts = np.maximum(m.sum(1), 1e-9)  # (B, 1)
    out = []
    for mode in _parse_pooling(pooling):
        if mode == "cls":
            out.append(states[:, 0])
        elif mode == "max":
            out.append(np.where(m > 0, states, -np.inf).max(1))
        elif mode == "mean":
            out.append((states * m).sum(1) / counts)
        elif mode == "mean_sqrt_len_tokens":
            out.append((states * m).sum(1) / np.sqrt(counts))
        elif mode == "weightedmean":
            w = m * np.arange(1, states.shape[1] + 1, dtype=np.float32)[None, :, None]  # (B, L, 1)
            out.append((states * w).sum(1) / np.maximum(w.sum(1), 1e-9))
        else:  # lasttoken
            last = np.maximum(mask.sum(1).astype(np.int64) - 1, 0)  # (B,)
            out.append(states[np.arange(len(states)), last])
    return np.concatenate(out, axis=1) if len(out) > 1 else out[0]


def _decode_dense(value: str | None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The ``dense`` metadata entry (kept in step with ``bortfast.export.dense.DenseModule.to_metadata``)."""
    if value is None:
        return None
    import base64

    d = json.loads(value)
    if d.get("activation") != "identity":
        raise ValueError(f"the model's Dense module has activation {d.get('activation')!r}; only identity is known")
    n_in, n_out = int(d["in_features"]), int(d["out_features"])
    weight = np.frombuffer(base64.b64decode(d["weight"]), dtype="<f4").reshape(n_out, n_in).astype(np.float32)
    bias = None if d["bias"] is None else np.frombuffer(base64.b64decode(d["bias"]), dtype="<f4").astype(np.float32)
    return weight, bias


class Encoder(_OnnxTextModel):
    """Sentence vectors / token states from an exported encoder (output ``last_hidden_state``)."""

    expected_output = "last_hidden_state"

    @property
    def pooling(self) -> str:
        """The model's own pooling, as its export recorded it (a sentence-transformers model's ``Pooling`` module,
        e.g. ``"mean"`` for all-MiniLM-L6-v2; ``"cls+mean"`` for two concatenated modes); a file exported without
        one pools by mean, as sentence-transformers does for a plain transformers model."""
        return self.meta.get(META_PREFIX + "pooling", "mean")

    @property
    def normalize(self) -> bool:
        """Whether the model's sentence vectors are L2-normalised (a sentence-transformers ``Normalize`` module)."""
        return self.meta.get(META_PREFIX + "normalize", "false") == "true"

    @property
    def dense(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The model's identity-activation ``Dense`` module as (weight (out, in), bias (out,) or None), applied to
        the pooled vector before normalising (a student shipped in its teacher's space,
        :mod:`bortfast.export.dense`); None when the export recorded none."""
        if not hasattr(self, "_dense"):
            self._dense = _decode_dense(self.meta.get(META_PREFIX + "dense"))
        return self._dense

    def encode(self, texts: Sequence[TextInput], pooling: str | None = None,
               normalize: bool | None = None) -> np.ndarray:
        """float32 (N, k·hidden) sentence vectors: token states pooled by ``pooling`` (one of :data:`POOLING_MODES`,
        or several joined by ``+``), then mapped by the model's ``Dense`` module when it has one (:attr:`dense`),
        then L2-normalised when ``normalize``. ``None`` = the model's own
        (:attr:`pooling`, :attr:`normalize`), so the result equals ``SentenceTransformer(model_dir).encode``."""
        pooling = self.pooling if pooling is None else pooling
        _parse_pooling(pooling)
        normalize = self.normalize if normalize is None else normalize
        texts = self._check_texts(texts)
        out: np.ndarray | None = None
        for idx, batch in self._batches(texts):
            pooled = pool(self.forward(batch), batch["attention_mask"], pooling)  # (B, k·H)
            if out is None:
                out = np.empty((len(texts), pooled.shape[-1]), dtype=np.float32)
            out[idx] = pooled
        assert out is not None
        if self.dense is not None:
            weight, bias = self.dense
            if out.shape[1] != weight.shape[1]:
                raise ValueError(f"the model's Dense module maps {weight.shape[1]}-wide pooled vectors; pooling "
                                 f"{pooling!r} gives {out.shape[1]}")
            out = out @ weight.T
            if bias is not None:
                out += bias
        if normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def token_states(self, texts: Sequence[TextInput]) -> list[np.ndarray]:
        """Per input, float32 (tokens, hidden) without the padding."""
        texts = self._check_texts(texts)
        result: list[Any] = [None] * len(texts)
        for idx, batch in self._batches(texts):
            states = self.forward(batch)
            for row, i in enumerate(idx):
                result[i] = states[row, : int(batch["attention_mask"][row].sum())].copy()
        return result


class Classifier(_OnnxTextModel):
    """Sequence classification from an exported ``BertForSequenceClassification`` (output ``logits`` (B, C))."""

    expected_output = "logits"

    def __init__(self, onnx_path: str | os.PathLike, tokenizer: Tokenizer | str | os.PathLike | None = None,
                 **kwargs: Any) -> None:
        super().__init__(onnx_path, tokenizer, **kwargs)
        if self.output_rank != 2:
            raise ValueError(f"{str(self.onnx_path)!r} outputs token-level logits (rank {self.output_rank}); "
                             f"Classifier needs a sequence classifier (logits of shape (batch, labels))")
        labels = self.meta.get(META_PREFIX + "id2label")
        self.labels: list[str] | None = json.loads(labels) if labels else None

    def logits(self, texts: Sequence[TextInput]) -> np.ndarray:
        """float32 (N, num_labels)."""
        texts = self._check_texts(texts)
        out: np.ndarray | None = None
        for idx, batch in self._batches(texts):
            logits = self.forward(batch)  # (B, C)
            if out is None:
                out = np.empty((len(texts), logits.shape[-1]), dtype=np.float32)
            out[idx] = logits
        assert out is not None
        return out

    def predict_proba(self, texts: Sequence[TextInput]) -> np.ndarray:
        """Softmax over labels, float32 (N, num_labels)."""
        z = self.logits(texts)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[TextInput]) -> np.ndarray:
        """int64 (N,): the argmax label id per input (names: ``self.labels[i]``)."""
        return self.logits(texts).argmax(axis=1)
