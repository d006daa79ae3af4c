"""Weight inheritance: cut any ξ = ⟨D, A, H, I⟩ inside the teacher out of the teacher's own weights.

DESIGN.md §3. Importance of every hidden channel, attention head (and each head's query/key and value dims),
FFN neuron and layer comes from the teacher's activations on a calibration sample of the corpus (forward passes
only, as in Minitron, Muralidharan et al. 2024). The most important units are kept and the rest *removed*, so the
student is a plain, genuinely smaller ``BertForMaskedLM`` / ``BertModel``:

- hidden channels: mean |x_c| over the outputs of every LayerNorm (embeddings and both per layer);
- heads: mean L2 norm of each head's contribution to the attention output (context_h · W_O,hᵀ);
- query/key dim j of a head: RMS(q_j)·RMS(k_j) (its share of the attention logits); value dim j: mean |ctx_j|
  times the norm of W_O's column j;
- FFN neuron i: mean |GELU(x W_1)_i| times the norm of W_2's column i;
- layers: ``layers="first"`` keeps the first D (the student computes exactly the teacher's first D layers,
  the sentence-transformers recipe), ``"even"`` spaces them evenly keeping the last, ``"importance"`` keeps the
  D layers with the largest block influence 1 − cos(h_in, h_out) (ShortGPT; the default, chosen by measurement:
  README, "Weight inheritance and quality"); a list names them.

Head size. A student head has d_S = H/A dims, a teacher head d_T = H_T/A_T. When d_S ≤ d_T a student head is one
teacher head (the A most important) cut to its d_S most important query/key and value dims. When d_S > d_T a
student head merges k = ⌈d_S/d_T⌉ teacher heads (taken in importance order) and keeps the d_S best of their
dims. Either way the query weights are scaled by √d_S / (k·√d_T), so the student's logit (q·k/√d_S) is the mean
of its teacher heads' (partial) logits, each at the teacher's own temperature 1/√d_T.

Removing hidden channels also changes what each LayerNorm normalises over; the kept channels' weights are
copied unchanged (Minitron does the same) and distillation repairs the rest.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bortfast.models.perlayer import bert_encoder
from bortfast.space import Arch

LayerRule = str | Sequence[int]
LAYER_RULES = ("first", "even", "importance")
IMPORTANCE_VERSION = 1  # bump when the importance definition changes (cached files carry it)


@dataclass(frozen=True)
class Importance:
    """Per-unit importance of a BERT teacher, measured on calibration text (higher = more important)."""

    hidden: np.ndarray  # (H_T,)
    heads: np.ndarray  # (D_T, A_T)
    qk_dims: np.ndarray  # (D_T, H_T): per head-dim of query/key, in the teacher's head-major layout
    v_dims: np.ndarray  # (D_T, H_T): per head-dim of value
    neurons: np.ndarray  # (D_T, I_T)
    layers: np.ndarray  # (D_T,) block influence 1 - cos(h_in, h_out)
    tokens: int  # calibration tokens the means are over

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically as .npz (no pickles: loads with ``allow_pickle=False``)."""
        from bortfast._base.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, version=np.int64(IMPORTANCE_VERSION), tokens=np.int64(self.tokens),
                     **{k: getattr(self, k) for k in ("hidden", "heads", "qk_dims", "v_dims", "neurons", "layers")})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Importance:
        keys = ("hidden", "heads", "qk_dims", "v_dims", "neurons", "layers")
        try:
            with np.load(path, allow_pickle=False) as z:
                version, tokens = int(z["version"]), int(z["tokens"])
                arrays = {k: z[k].astype(np.float64) for k in keys}
        except (KeyError, OSError, EOFError, ValueError) as err:
            raise ValueError(f"{os.fspath(path)!r} is not a bortfast importance file ({err})") from None
        if version != IMPORTANCE_VERSION:
            raise ValueError(f"{os.fspath(path)!r}: importance version {version}, expected {IMPORTANCE_VERSION}; "
                             f"delete it to recompute")
        return cls(**arrays, tokens=tokens)


# ------------------------------------------------------------------------------------------------- importance
class _Stats:
    """Running sums over calibration tokens, filled by forward hooks."""

    def __init__(self, d: int, a: int, h: int, i: int) -> None:
        self.hidden = torch.zeros(h, dtype=torch.float64)
        self.heads = torch.zeros(d, a, dtype=torch.float64)
        self.q2 = torch.zeros(d, h, dtype=torch.float64)
        self.k2 = torch.zeros(d, h, dtype=torch.float64)
        self.ctx = torch.zeros(d, h, dtype=torch.float64)
        self.neurons = torch.zeros(d, i, dtype=torch.float64)
        self.layers = torch.zeros(d, dtype=torch.float64)
        self.tokens = 0
        self.mask: torch.Tensor | None = None  # (B, L) bool of the current batch


def _valid(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x[mask].double()  # (N, ...) valid tokens only


def _install_hooks(bert: Any, st: _Stats) -> list[Any]:
    heads = bert.config.num_attention_heads
    hooks = []

    def ln_hook(_m: Any, _inp: Any, out: torch.Tensor) -> None:
        st.hidden += _valid(out, st.mask).abs().sum(0)

    hooks.append(bert.embeddings.LayerNorm.register_forward_hook(ln_hook))
    for li, layer in enumerate(bert.encoder.layer):
        att = layer.attention

        def q_hook(_m: Any, _i: Any, out: torch.Tensor, li: int = li) -> None:
            st.q2[li] += _valid(out, st.mask).square().sum(0)

        def k_hook(_m: Any, _i: Any, out: torch.Tensor, li: int = li) -> None:
            st.k2[li] += _valid(out, st.mask).square().sum(0)

        def ctx_hook(m: Any, inp: tuple, _out: Any, li: int = li) -> None:  # input of W_O = per-head context
            ctx = _valid(inp[0], st.mask)  # (N, H)
            st.ctx[li] += ctx.abs().sum(0)
            w = m.weight.double()  # (H, H): out x in
            n, h = ctx.shape
            per_head = torch.einsum("nad,oad->nao", ctx.view(n, heads, h // heads), w.view(h, heads, h // heads))
            st.heads[li] += per_head.norm(dim=-1).sum(0)

        def ffn_hook(_m: Any, _i: Any, out: torch.Tensor, li: int = li) -> None:  # after the activation
            st.neurons[li] += _valid(out, st.mask).abs().sum(0)

        def layer_hook(_m: Any, inp: tuple, out: Any, li: int = li) -> None:
            h_in = _valid(inp[0], st.mask)
            h_out = _valid(out[0] if isinstance(out, tuple) else out, st.mask)
            st.layers[li] += (1.0 - torch.nn.functional.cosine_similarity(h_in, h_out, dim=-1)).sum()

        hooks += [att.self.query.register_forward_hook(q_hook), att.self.key.register_forward_hook(k_hook),
                  att.output.dense.register_forward_hook(ctx_hook), layer.intermediate.register_forward_hook(ffn_hook),
                  layer.register_forward_hook(layer_hook), att.output.LayerNorm.register_forward_hook(ln_hook),
                  layer.output.LayerNorm.register_forward_hook(ln_hook)]
    return hooks


def compute_importance(model: Any, batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]], *,
                       progress: bool = False, total: int | None = None) -> Importance:
    """Measure :class:`Importance` of a BERT teacher from forward passes over ``batches`` of
    ``(input_ids (B, L), attention_mask (B, L) or None)``."""
    from tqdm.auto import tqdm

    bert = bert_encoder(model)
    c = bert.config
    st = _Stats(c.num_hidden_layers, c.num_attention_heads, c.hidden_size, c.intermediate_size)
    hooks = _install_hooks(bert, st)
    was_training = bert.training
    bert.eval()
    try:
        with torch.no_grad():
            for ids, mask in tqdm(batches, total=total, desc="importance", disable=not progress, leave=False):
                mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
                st.mask = mask
                st.tokens += int(mask.sum())
                bert(input_ids=ids, attention_mask=mask.long())
    finally:
        for h in hooks:
            h.remove()
        bert.train(was_training)
    if st.tokens == 0:
        raise ValueError("calibration sample is empty: importance needs at least one token of text")
    n = float(st.tokens)
    with torch.no_grad():
        out_norm = torch.stack([la.attention.output.dense.weight.double().norm(dim=0) for la in bert.encoder.layer])
        w2_norm = torch.stack([la.output.dense.weight.double().norm(dim=0) for la in bert.encoder.layer])
    return Importance(
        hidden=(st.hidden / n).numpy(), heads=(st.heads / n).numpy(),
        qk_dims=((st.q2 / n).sqrt() * (st.k2 / n).sqrt()).numpy(), v_dims=(st.ctx / n * out_norm).numpy(),
        neurons=(st.neurons / n * w2_norm).numpy(), layers=(st.layers / n).numpy(), tokens=st.tokens)


def calibration_batches(blocks: torch.Tensor, batch_size: int = 16) -> list[tuple[torch.Tensor, None]]:
    """Unpadded token blocks (N, L) as importance batches."""
    if blocks.ndim != 2 or len(blocks) == 0:
        raise ValueError(f"calibration blocks must be a non-empty (N, L) tensor, got shape {tuple(blocks.shape)}")
    return [(blocks[s:s + batch_size], None) for s in range(0, len(blocks), batch_size)]


# ------------------------------------------------------------------------------------------------- selection
def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, in their original order (stable under ties)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]
    return np.sort(order)


def choose_layers(rule: LayerRule, d: int, imp: Importance) -> list[int]:
    d_t = len(imp.layers)
    if not isinstance(rule, str):
        idx = [int(x) for x in rule]
        if len(idx) != d or len(set(idx)) != d or any(not 0 <= x < d_t for x in idx):
            raise ValueError(f"layers={list(rule)!r} must name {d} distinct teacher layers in [0, {d_t})")
        return sorted(idx)
    if rule == "first":
        return list(range(d))
    if rule == "even":
        return sorted({round((k + 1) * d_t / d) - 1 for k in range(d)})
    if rule == "importance":
        return _top(imp.layers, d).tolist()
    raise ValueError(f"layers must be one of {LAYER_RULES} or a list of layer indices, got {rule!r}")


@dataclass(frozen=True)
class HeadPlan:
    """For one student layer: per student head the teacher (q/k, v) dims it keeps, and the query scale."""

    qk: np.ndarray  # (H_S,) indices into the teacher's H_T query/key features, head-major
    v: np.ndarray  # (H_S,) indices into the teacher's value features
    q_scale: float


def plan_heads(a_s: int, h_s: int, a_t: int, h_t: int, heads: np.ndarray, qk_dims: np.ndarray,
               v_dims: np.ndarray) -> HeadPlan:
    d_s, d_t = h_s // a_s, h_t // a_t
    k = max(1, math.ceil(d_s / d_t))
    ranked = np.argsort(-heads, kind="stable")
    if k == 1:  # one teacher head per student head: keep the chosen heads in the teacher's order
        ranked = np.sort(ranked[:a_s])
    qk, v = [], []
    for j in range(a_s):
        group = [int(ranked[(j * k + m) % a_t]) for m in range(k)]  # cycles only if A·k > A_T (rare)
        feats = np.concatenate([np.arange(g * d_t, (g + 1) * d_t) for g in group])
        qk.append(feats[_top(qk_dims[feats], d_s)])
        v.append(feats[_top(v_dims[feats], d_s)])
    return HeadPlan(qk=np.concatenate(qk), v=np.concatenate(v), q_scale=math.sqrt(d_s) / (k * math.sqrt(d_t)))


# ------------------------------------------------------------------------------------------------- pruning
def check_fits(arch: Arch, teacher_config: Any) -> None:
    """ValueError unless ``arch`` fits inside the teacher (D ≤ D_T, H ≤ H_T, I ≤ I_T), naming both shapes."""
    t = Arch.from_config(teacher_config)
    too_big = [n for n in ("layers", "hidden", "intermediate") if getattr(arch, n) > getattr(t, n)]
    if too_big:
        raise ValueError(f"student ⟨{arch.layers}, {arch.heads}, {arch.hidden}, {arch.intermediate}⟩ does not fit "
                         f"inside teacher ⟨{t.layers}, {t.heads}, {t.hidden}, {t.intermediate}⟩ ({', '.join(too_big)} "
                         f"larger): inheritance cuts the student out of the teacher; use init='random' instead")


def student_config(arch: Arch, teacher_config: Any, **overrides: Any) -> Any:
    """The student's BertConfig: ``arch``'s shape, every other field (activation, LayerNorm eps, tables, pad id)
    from the teacher."""
    from transformers import BertConfig

    fields = {k: getattr(teacher_config, k) for k in ("vocab_size", "max_position_embeddings", "type_vocab_size",
                                                      "hidden_act", "layer_norm_eps", "pad_token_id",
                                                      "initializer_range") if hasattr(teacher_config, k)}
    fields.update(hidden_size=arch.hidden, num_hidden_layers=arch.layers, num_attention_heads=arch.heads,
                  intermediate_size=arch.intermediate)
    fields.update(overrides)
    return BertConfig(**fields)


def copy_linear(dst: Any, src: Any, rows: torch.Tensor | None, cols: torch.Tensor | None,
                scale: float = 1.0) -> None:
    """Copy ``src``'s weight and bias into the smaller ``dst`` (an ``nn.Linear``), keeping output rows ``rows`` and
    input columns ``cols`` (None: all), times ``scale``. Call under ``torch.no_grad()``."""
    w, b = src.weight, src.bias
    if rows is not None:
        w, b = w[rows], b[rows]
    if cols is not None:
        w = w[:, cols]
    dst.weight.copy_(w * scale)
    dst.bias.copy_(b * scale)


def _layernorm(dst: Any, src: Any, keep: torch.Tensor) -> None:
    dst.weight.copy_(src.weight[keep])
    dst.bias.copy_(src.bias[keep])


def _copy_layer(dst: Any, src: Any, hk: torch.Tensor, plan: HeadPlan, neurons: torch.Tensor) -> None:
    qk, v = torch.as_tensor(plan.qk), torch.as_tensor(plan.v)
    s, d = src.attention.self, dst.attention.self
    copy_linear(d.query, s.query, qk, hk, plan.q_scale)
    copy_linear(d.key, s.key, qk, hk)
    copy_linear(d.value, s.value, v, hk)
    copy_linear(dst.attention.output.dense, src.attention.output.dense, hk, v)
    _layernorm(dst.attention.output.LayerNorm, src.attention.output.LayerNorm, hk)
    copy_linear(dst.intermediate.dense, src.intermediate.dense, neurons, hk)
    copy_linear(dst.output.dense, src.output.dense, hk, neurons)
    _layernorm(dst.output.LayerNorm, src.output.LayerNorm, hk)


@dataclass(frozen=True)
class InheritPlan:
    """What the student keeps of the teacher (saved beside the student as ``inherit.json``)."""

    layers: list[int]  # teacher layer of each student layer
    hidden: list[int]  # kept hidden channels, in the teacher's order

    def to_json(self) -> dict:
        return {"layers": self.layers, "hidden": self.hidden}


def inherit_into(student: Any, teacher: Any, imp: Importance, layers: LayerRule = "importance") -> InheritPlan:
    """Copy the teacher's most important units into ``student`` (a BertModel/BertFor* of the student's shape)."""
    sb, tb = bert_encoder(student), bert_encoder(teacher)
    sc, tc = sb.config, tb.config
    hk_np = _top(imp.hidden, sc.hidden_size)
    hk = torch.as_tensor(hk_np)
    kept = choose_layers(layers, sc.num_hidden_layers, imp)
    with torch.no_grad():
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            getattr(sb.embeddings, name).weight.copy_(getattr(tb.embeddings, name).weight[:, hk])
        _layernorm(sb.embeddings.LayerNorm, tb.embeddings.LayerNorm, hk)
        for dst, li in zip(sb.encoder.layer, kept):
            plan = plan_heads(sc.num_attention_heads, sc.hidden_size, tc.num_attention_heads, tc.hidden_size,
                              imp.heads[li], imp.qk_dims[li], imp.v_dims[li])
            neurons = torch.as_tensor(_top(imp.neurons[li], sc.intermediate_size))
            _copy_layer(dst, tb.encoder.layer[li], hk, plan, neurons)
        if sb.pooler is not None and tb.pooler is not None:
            copy_linear(sb.pooler.dense, tb.pooler.dense, hk, hk)
        _copy_mlm_head(student, teacher, hk)
    return InheritPlan(layers=kept, hidden=hk_np.tolist())


def _copy_mlm_head(student: Any, teacher: Any, hk: torch.Tensor) -> None:
    s_cls, t_cls = getattr(student, "cls", None), getattr(teacher, "cls", None)
    if s_cls is None or t_cls is None:
        return  # a hidden-state teacher has no MLM head: the student's stays freshly initialised
    st, tt = s_cls.predictions.transform, t_cls.predictions.transform
    copy_linear(st.dense, tt.dense, hk, hk)
    _layernorm(st.LayerNorm, tt.LayerNorm, hk)
    s_cls.predictions.bias.copy_(t_cls.predictions.bias)
    student.tie_weights()


def inherit_student(arch: Arch, teacher: Any, imp: Importance, *, layers: LayerRule = "importance",
                    model_class: str = "BertForMaskedLM", seed: int = 0, **config_overrides: Any) -> Any:
    """A new ``model_class`` (BertForMaskedLM, BertModel, BertForSequenceClassification, ...) of shape ``arch``
    cut out of ``teacher`` (any BERT-layout model). Parts the teacher lacks (an MLM head for an encoder-only
    teacher) are initialised from ``seed``, leaving the global RNG untouched."""
    import transformers

    tc = bert_encoder(teacher).config
    check_fits(arch, tc)
    config = student_config(arch, tc, architectures=[model_class], **config_overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = getattr(transformers, model_class)(config)
    plan = inherit_into(student, teacher, imp, layers)
    student.config.bortfast_inherit = {"teacher_layers": plan.layers, "hidden": plan.hidden,
                                       "rule": layers if isinstance(layers, str) else "list"}
    return student


def importance_cached(model: Any, blocks: torch.Tensor, cache: str | os.PathLike | None, *,
                      progress: bool = False, batch_size: int = 16) -> Importance:
    """:func:`compute_importance` over calibration ``blocks``, cached in ``cache`` (an .npz path) when given."""
    if cache is not None and Path(cache).is_file():
        return Importance.load(cache)
    batches = calibration_batches(blocks, batch_size)
    imp = compute_importance(model, batches, progress=progress, total=len(batches))
    if cache is not None:
        imp.save(cache)
    return imp


def importance_key(teacher_name: str, vocab_fingerprint: str, model: Any, corpus_fingerprint: str,
                   n_blocks: int) -> str:
    """Cache key of a teacher's importance on a corpus: the teacher's identity and weights, the corpus, the
    calibration size and the importance definition."""
    import hashlib

    h = hashlib.sha256(f"v{IMPORTANCE_VERSION}|{teacher_name}|{vocab_fingerprint}|{corpus_fingerprint}|"
                       f"{n_blocks}".encode())
    bert = bert_encoder(model)
    for p in (bert.embeddings.word_embeddings.weight, bert.encoder.layer[-1].output.dense.weight):
        h.update(p.detach().float().contiguous().numpy().tobytes()[:1 << 20])
    return h.hexdigest()[:16]


def selection_projection(projection: Any, kept_hidden: Sequence[int]) -> None:
    """Initialise a Linear(H_S → H_T) so that it puts each kept channel back in its teacher position: an
    inherited student's projected hidden states then start as the teacher's, restricted to the kept channels."""
    with torch.no_grad():
        projection.weight.zero_()
        projection.bias.zero_()
        projection.weight[torch.as_tensor(list(kept_hidden)), torch.arange(len(kept_hidden))] = 1.0


def write_sentence_transformers_files(teacher_dir: str | os.PathLike, student_dir: str | os.PathLike,
                                      hidden: int) -> bool:
    """When the teacher is a sentence-transformers model (``modules.json``), give the student directory the same
    module stack (Transformer → the teacher's Pooling → Normalize, when the teacher has it), with the student's
    width, so ``SentenceTransformer(student_dir)`` loads it and embeds as the teacher does. Returns whether it
    wrote them. The distillation projection is a training device only: it is not part of the embedding."""
    import json
    import shutil

    from bortfast._base.io import write_json

    teacher_dir, student_dir = Path(teacher_dir), Path(student_dir)
    modules_file = teacher_dir / "modules.json"
    if not teacher_dir.is_dir() or not modules_file.is_file():
        return False
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kept = [m for m in modules if m.get("type", "").rsplit(".", 1)[-1] in ("Transformer", "Pooling", "Normalize")]
    for m in kept:
        kind = m["type"].rsplit(".", 1)[-1]
        src, dst = teacher_dir / m.get("path", ""), student_dir / m.get("path", "")
        if kind == "Pooling":
            cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
            # the student's width under every name the config uses (sentence-transformers >= 5 reads
            # "embedding_dimension", older ones "word_embedding_dimension")
            dims = {k: hidden for k in ("word_embedding_dimension", "embedding_dimension") if k in cfg}
            write_json(dst / "config.json", {**cfg, **(dims or {"word_embedding_dimension": hidden})})
        elif kind == "Normalize":
            dst.mkdir(parents=True, exist_ok=True)
    for name in ("sentence_bert_config.json", "config_sentence_transformers.json"):
        if (teacher_dir / name).is_file():
            shutil.copyfile(teacher_dir / name, student_dir / name)
    write_json(student_dir / "modules.json", kept)
    return True
