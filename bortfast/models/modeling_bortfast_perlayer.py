"""BERT encoders whose layers differ in width: layer l keeps ``heads[l]`` attention heads and ``intermediate[l]`` FFN
neurons, every layer sharing the hidden size (bortfast's per-layer students; CoFi, Xia et al. 2022).

This one file is the whole model, and it depends only on ``torch`` and ``transformers``: bortfast copies it verbatim
into every per-layer student directory it writes and names its classes in ``config.json``'s ``auto_map``, as
transformers' remote-code models do, so that directory loads anywhere with

    AutoModel.from_pretrained(directory, trust_remote_code=True)
    AutoModelForMaskedLM.from_pretrained(directory, trust_remote_code=True)
    SentenceTransformer(directory, trust_remote_code=True)

bortfast itself imports this file from its own package (``bortfast.models``) and never executes a directory's copy.

Why a custom class at all. transformers 5.x dropped ``pruned_heads`` from BertConfig, and no BertConfig field sets an
FFN width per layer, so stock ``BertModel.from_pretrained`` cannot rebuild these shapes and refuses the checkpoint.
The widths are in ``config.json`` under ``bortfast_per_layer``: ``{"heads": [a_0, ...], "intermediate": [i_0, ...]}``,
one entry per layer; ``num_attention_heads`` and ``intermediate_size`` are the largest of them (they set the head
size, hidden_size / num_attention_heads, which every layer shares). Each class here is the stock transformers class
with its layers narrowed after construction, so module and weight names are exactly transformers' own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel
from transformers.models.bert.modeling_bert import (
    ALL_ATTENTION_FUNCTIONS,
    BertSelfAttention,
    eager_attention_forward,
)

PER_LAYER_KEY = "bortfast_per_layer"  # the config.json key holding the per-layer widths


class BortfastPerLayerConfig(BertConfig):
    """A BertConfig whose ``bortfast_per_layer`` entry gives each layer its own head count and FFN width."""

    # "bert", not a new type: code that reads the directory without remote code (tokenizers, bortfast itself, ONNX
    # tools) still sees a BERT config; only ``trust_remote_code=True`` follows ``auto_map`` to this class.
    model_type = "bert"


def layer_widths(config: Any) -> list[tuple[int, int]]:
    """``(heads, intermediate)`` of each layer from ``config.bortfast_per_layer``; ValueError naming the bad values."""
    per = getattr(config, PER_LAYER_KEY, None)
    if not isinstance(per, dict) or set(per) != {"heads", "intermediate"}:
        raise ValueError(f"config {PER_LAYER_KEY} must be {{'heads': [...], 'intermediate': [...]}}, got {per!r}")
    heads, intermediate = list(per["heads"]), list(per["intermediate"])
    if len(heads) != config.num_hidden_layers or len(intermediate) != config.num_hidden_layers:
        raise ValueError(f"config has num_hidden_layers={config.num_hidden_layers} but {PER_LAYER_KEY} lists "
                         f"{len(heads)} head counts and {len(intermediate)} FFN widths: {per!r}")
    for name, values in (("heads", heads), ("intermediate", intermediate)):
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise ValueError(f"config {PER_LAYER_KEY}[{name!r}] must be positive integers, got {values!r}")
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(f"hidden_size={config.hidden_size} is not a multiple of num_attention_heads="
                         f"{config.num_attention_heads} (they set the head size every layer shares)")
    return list(zip(heads, intermediate))


class PerLayerSelfAttention(BertSelfAttention):
    """BertSelfAttention that reshapes to its own head count, ``(B, L, heads, head_dim)``, instead of transformers'
    ``(B, L, -1, head_dim)``: the same numbers, but ONNX Runtime's attention fusion reads the head count of each
    layer off that reshape (with -1 it can only assume the config's, wrong for a narrowed layer, and leaves
    attention unfused)."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                encoder_hidden_states: Any = None, cache: Any = None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        if encoder_hidden_states is not None or cache is not None:
            raise ValueError("per-layer students are bidirectional encoders: no cross-attention, no cache")
        shape = (*hidden_states.shape[:-1], self.num_attention_heads, self.attention_head_size)
        q = self.query(hidden_states).view(shape).transpose(1, 2)  # (B, a, L, d)
        k = self.key(hidden_states).view(shape).transpose(1, 2)
        v = self.value(hidden_states).view(shape).transpose(1, 2)
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        out, weights = attend(self, q, k, v, attention_mask, dropout=self.dropout.p if self.training else 0.0,
                              scaling=self.scaling, **kwargs)
        return out.reshape(*hidden_states.shape[:-1], -1).contiguous(), weights  # (B, L, a·d)


def narrow_layers(bert: BertModel, config: Any) -> None:
    """Replace each layer's projections of ``bert`` (a BertModel built at the config's uniform widths) by Linears of
    that layer's widths, with fresh weights: normal(0, initializer_range), zero bias (a checkpoint's weights, when
    loaded, replace them)."""
    hidden, head_dim = config.hidden_size, config.hidden_size // config.num_attention_heads
    std = getattr(config, "initializer_range", 0.02)
    for layer, (heads, intermediate) in zip(bert.encoder.layer, layer_widths(config)):
        width = heads * head_dim  # a·d features in Q/K/V
        attention = layer.attention
        attention.self.query = nn.Linear(hidden, width)
        attention.self.key = nn.Linear(hidden, width)
        attention.self.value = nn.Linear(hidden, width)
        attention.self.num_attention_heads, attention.self.all_head_size = heads, width
        attention.self.__class__ = PerLayerSelfAttention
        attention.output.dense = nn.Linear(width, hidden)
        layer.intermediate.dense = nn.Linear(hidden, intermediate)
        layer.output.dense = nn.Linear(intermediate, hidden)
        for linear in (attention.self.query, attention.self.key, attention.self.value, attention.output.dense,
                       layer.intermediate.dense, layer.output.dense):
            nn.init.normal_(linear.weight, std=std)
            nn.init.zeros_(linear.bias)


class BortfastPerLayerModel(BertModel):
    """The per-layer encoder (``AutoModel``): BertModel with each layer at its own widths."""

    config_class = BortfastPerLayerConfig

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        narrow_layers(self, config)


class BortfastPerLayerForMaskedLM(BertForMaskedLM):
    """The per-layer encoder with BERT's masked-LM head (``AutoModelForMaskedLM``)."""

    config_class = BortfastPerLayerConfig

    def __init__(self, config: BertConfig):
        super().__init__(config)
        narrow_layers(self.bert, config)


class BortfastPerLayerForSequenceClassification(BertForSequenceClassification):
    """The per-layer encoder with BERT's pooled classification head (``AutoModelForSequenceClassification``)."""

    config_class = BortfastPerLayerConfig

    def __init__(self, config: BertConfig):
        super().__init__(config)
        narrow_layers(self.bert, config)

