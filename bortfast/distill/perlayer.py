"""Students whose layers differ in width (:class:`bortfast.space.PerLayerArch`): building, inheriting, loading.

A per-layer student is a plain ``transformers`` BERT model whose layer l has its Q/K/V/O projections cut to
``heads[l]·head_dim`` features and its FFN to ``intermediate[l]`` neurons, and whose attention reshapes to its own
head count. The shapes and that attention live in one file, :mod:`bortfast.models.modeling_bortfast_perlayer`
(``narrow_layers``), which bortfast imports from its package and also copies into every per-layer student directory
it writes (:func:`bortfast.models.ship_model_code`), so ``AutoModel.from_pretrained(dir, trust_remote_code=True)``
builds the same model elsewhere.

Why a loader. transformers 5.x dropped ``pruned_heads`` / ``prune_heads`` from BertConfig and BERT (the 5.24
``modeling_bert`` has neither), and no BertConfig field sets an FFN width per layer, so stock ``from_pretrained``
cannot rebuild these shapes: it refuses the checkpoint with a size-mismatch error rather than loading it wrongly.
:func:`load_student` is bortfast's loader: it reads ``config.json`` (``bortfast_per_layer``: heads and FFN width per
layer), builds the model at those shapes with the package's code (never the directory's copy of it) and loads
``model.safetensors`` strictly. A uniform checkpoint goes straight to ``from_pretrained``.

Inheritance (:func:`inherit_per_layer`) uses :mod:`bortfast.distill.inherit`'s importance: the most important
hidden channels (shared), and per kept teacher layer its ``heads[l]`` most important whole heads and its
``intermediate[l]`` most important FFN neurons (Kwon et al. 2022, CoFi: Xia et al. 2022, keep per-layer masks the
same way).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bortfast.space import PER_LAYER_KEY, Arch, PerLayerArch

__all__ = ["build_per_layer_model", "check_fits_per_layer", "inherit_per_layer", "is_per_layer", "load_student"]


def is_per_layer(config: Any) -> bool:
    """Whether a transformers config (or its dict) records per-layer widths."""
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    return get(PER_LAYER_KEY) is not None


def build_per_layer_model(config: Any, model_class: str = "BertForMaskedLM", *, seed: int = 0,
                          **model_kwargs: Any) -> Any:
    """A freshly initialised ``model_class`` of the per-layer shape ``config`` records (``bortfast_per_layer``),
    seeded from ``seed`` with the global torch RNG left untouched."""
    import transformers

    from bortfast.distill.inherit import bert_encoder
    from bortfast.models.modeling_bortfast_perlayer import narrow_layers  # the package's file, not a directory's

    if PerLayerArch.from_config(config) is None:  # also validates the widths
        raise ValueError(f"config has no {PER_LAYER_KEY}: build a uniform model with transformers directly")
    cls = getattr(transformers, model_class, None)
    if cls is None or not model_class.startswith("Bert"):
        raise ValueError(f"model_class must be a transformers Bert* class, got {model_class!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config, **model_kwargs)
        narrow_layers(bert_encoder(model), config)
    return model


def _remap_keys(state: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    """Map a checkpoint's keys onto the model's: as they are, or adding / stripping the ``bert.`` prefix (a
    BertForMaskedLM checkpoint loads as a BertModel and back); keys the model does not have are left out."""
    for transform in (lambda k: k, lambda k: k.removeprefix("bert."), lambda k: "bert." + k):
        mapped = {transform(k): v for k, v in state.items()}
        if any(k.startswith("encoder.") or k.startswith("bert.encoder.") for k in wanted & set(mapped)):
            return {k: v for k, v in mapped.items() if k in wanted}
    return {}


def load_student(directory: str | os.PathLike, model_class: str | None = None, **model_kwargs: Any) -> Any:
    """Load a bortfast student (per-layer or uniform) from a directory of ``config.json`` + ``model.safetensors``.

    ``model_class`` defaults to the config's ``architectures[0]`` (``BertModel`` loads the encoder of a masked-LM
    checkpoint). Extra keyword arguments go to the model constructor (e.g. ``add_pooling_layer=False``) or, for a
    uniform checkpoint, to ``from_pretrained`` (e.g. ``attn_implementation="eager"``). Weights load only from
    safetensors; missing or mis-shaped tensors raise ValueError naming them.
    """
    import transformers
    from safetensors.torch import load_file
    from transformers import BertConfig

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise ValueError(f"{str(directory)!r} is not a model directory: no config.json")
    attn = model_kwargs.pop("attn_implementation", None)
    config = BertConfig.from_pretrained(directory, **({"attn_implementation": attn} if attn else {}))
    model_class = model_class or (list(config.architectures or []) or ["BertModel"])[0]
    if not is_per_layer(config):
        return getattr(transformers, model_class).from_pretrained(directory, use_safetensors=True,
                                                                  **({"attn_implementation": attn} if attn else {}),
                                                                  **model_kwargs)
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"{str(directory)!r} has no model.safetensors (bortfast students are safetensors)")
    model = build_per_layer_model(config, model_class, **model_kwargs)
    own = model.state_dict()
    state = _remap_keys(load_file(str(weights)), set(own))
    bad = [f"{k}: {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model" for k, v in state.items()
           if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"{str(weights)!r} does not match its config's per-layer shapes: {'; '.join(bad[:3])}")
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    missing = sorted(set(own) - set(state) - tied)
    pooler = [k for k in missing if k.startswith("pooler.")]
    if pooler and len(pooler) == len(missing) and model_class == "BertModel":  # saved without its pooler
        model.pooler, missing = None, []
    if missing:
        raise ValueError(f"{str(weights)!r} lacks {len(missing)} tensors of {model_class}, e.g. {missing[:3]}")
    model.load_state_dict(state, strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model.eval()


# ------------------------------------------------------------------------------------------------- inheritance
def check_fits_per_layer(arch: PerLayerArch, teacher_config: Any, teacher_layers: Sequence[int] | None) -> None:
    """ValueError unless ``arch`` can be cut out of the teacher, naming the offending layer and values: H ≤ H_T,
    the teacher's head size, at most the teacher's heads and FFN neurons per layer, one distinct teacher layer
    per student layer."""
    t = Arch.from_config(teacher_config)
    if arch.hidden > t.hidden:
        raise ValueError(f"student hidden={arch.hidden} is larger than the teacher's {t.hidden}")
    if arch.head_dim != t.head_dim:
        raise ValueError(f"student head_dim={arch.head_dim} differs from the teacher's {t.head_dim} "
                         f"(= {t.hidden}/{t.heads}): per-layer students keep whole teacher heads")
    if arch.layers > t.layers:
        raise ValueError(f"student has {arch.layers} layers, the teacher only {t.layers}")
    for layer, (a, i) in enumerate(zip(arch.heads, arch.intermediate)):
        if a > t.heads:
            raise ValueError(f"student layer {layer} keeps {a} heads, the teacher's layers have {t.heads}")
        if i > t.intermediate:
            raise ValueError(f"student layer {layer} keeps {i} FFN neurons, the teacher's layers have "
                             f"{t.intermediate}")
    if teacher_layers is not None:
        idx = [int(x) for x in teacher_layers]
        if len(idx) != arch.layers or len(set(idx)) != len(idx) or any(not 0 <= x < t.layers for x in idx):
            raise ValueError(f"teacher_layers={list(teacher_layers)!r} must name {arch.layers} distinct teacher "
                             f"layers in [0, {t.layers}), one per student layer")


def inherit_per_layer(arch: PerLayerArch, teacher: Any, imp: Any, *, teacher_layers: Sequence[int] | str =
                      "importance", model_class: str = "BertForMaskedLM", seed: int = 0,
                      **config_overrides: Any) -> Any:
    """A ``model_class`` of shape ``arch`` cut out of ``teacher``: student layer j is teacher layer
    ``teacher_layers[j]`` (a list, in increasing order, or a rule of :func:`~bortfast.distill.inherit.choose_layers`)
    with its ``heads[j]`` most important heads and ``intermediate[j]`` most important FFN neurons."""
    from bortfast.distill import inherit as inh

    tc = inh.bert_encoder(teacher).config
    check_fits_per_layer(arch, tc, None if isinstance(teacher_layers, str) else teacher_layers)
    kept = inh.choose_layers(teacher_layers, arch.layers, imp)
    uniform = inh.student_config(Arch(arch.layers, arch.max_heads, arch.hidden, max(arch.intermediate)), tc,
                                 architectures=[model_class], **config_overrides)
    uniform.update({PER_LAYER_KEY: {"heads": list(arch.heads), "intermediate": list(arch.intermediate)}})
    student = build_per_layer_model(uniform, model_class, seed=seed)
    sb, tb = inh.bert_encoder(student), inh.bert_encoder(teacher)
    hk_np = inh._top(imp.hidden, arch.hidden)
    hk = torch.as_tensor(hk_np)
    with torch.no_grad():
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            getattr(sb.embeddings, name).weight.copy_(getattr(tb.embeddings, name).weight[:, hk])
        inh._layernorm(sb.embeddings.LayerNorm, tb.embeddings.LayerNorm, hk)
        for dst, li, a, i in zip(sb.encoder.layer, kept, arch.heads, arch.intermediate):
            plan = inh.plan_heads(a, a * arch.head_dim, tc.num_attention_heads, tc.hidden_size, imp.heads[li],
                                  imp.qk_dims[li], imp.v_dims[li])
            inh._copy_layer(dst, tb.encoder.layer[li], hk, plan, torch.as_tensor(inh._top(imp.neurons[li], i)))
        if sb.pooler is not None and tb.pooler is not None:
            inh._linear(sb.pooler.dense, tb.pooler.dense, hk, hk)
        inh._copy_mlm_head(student, teacher, hk)
    student.config.bortfast_inherit = {"teacher_layers": list(kept), "hidden": hk_np.tolist(),
                                       "rule": teacher_layers if isinstance(teacher_layers, str) else "list"}
    return student
