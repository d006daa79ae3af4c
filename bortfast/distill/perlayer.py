"""Per-layer students (:class:`bortfast.space.PerLayerArch`) cut out of a teacher: the fit check and inheritance.

Building and loading such students (the model code, :func:`bortfast.models.perlayer.load_student`) lives in
:mod:`bortfast.models`; this module fills one with a teacher's weights.

Inheritance (:func:`inherit_per_layer`) uses :mod:`bortfast.distill.inherit`'s importance: the most important
hidden channels (shared), and per kept teacher layer its ``heads[l]`` most important whole heads and its
``intermediate[l]`` most important FFN neurons (Kwon et al. 2022, CoFi: Xia et al. 2022, keep per-layer masks the
same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bortfast.models.perlayer import bert_encoder, build_per_layer_model
from bortfast.space import PER_LAYER_KEY, Arch, PerLayerArch

__all__ = ["check_fits_per_layer", "inherit_per_layer"]


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

    tc = bert_encoder(teacher).config
    check_fits_per_layer(arch, tc, None if isinstance(teacher_layers, str) else teacher_layers)
    kept = inh.choose_layers(teacher_layers, arch.layers, imp)
    uniform = inh.student_config(Arch(arch.layers, arch.max_heads, arch.hidden, max(arch.intermediate)), tc,
                                 architectures=[model_class], **config_overrides)
    uniform.update({PER_LAYER_KEY: {"heads": list(arch.heads), "intermediate": list(arch.intermediate)}})
    student = build_per_layer_model(uniform, model_class, seed=seed)
    sb, tb = bert_encoder(student), bert_encoder(teacher)
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
            inh.copy_linear(sb.pooler.dense, tb.pooler.dense, hk, hk)
        inh._copy_mlm_head(student, teacher, hk)
    student.config.bortfast_inherit = {"teacher_layers": list(kept), "hidden": hk_np.tolist(),
                                       "rule": teacher_layers if isinstance(teacher_layers, str) else "list"}
    return student
