"""The fused CPU encoder kernel: a BERT encoder stack <D, A, H, I> in C++ (``bortfast._core.Encoder``).

It is the inference-cost proxy i-hat of the Bort paper (de Wynter & Perry 2020, §2: CPU wall-clock latency of
each candidate architecture) and a reference engine compared with ONNX Runtime (DESIGN.md §5). Post-LayerNorm
BERT layout, GELU (erf), float32, GEMMs through OpenBLAS (``scipy-openblas32``) with fused epilogues, GIL
released. Weights come from a ``transformers`` BertModel (or its state dict) -- numpy arrays cross the boundary,
the extension does not link libtorch -- or from a fast random initialisation for latency profiling.

Example::

    kernel = EncoderKernel.from_bert(bert_model)            # same weights as the torch model
    out = kernel.forward(hidden, mask, threads=2)           # (B, L, H) float32 -> (B, L, H)
    EncoderKernel.random(Arch.parse("4,8,1024,768"), seed=0)  # for timing
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from bortfast import _core
from bortfast._base.checks import check_int, check_int_type
from bortfast.space import Arch, PerLayerArch

TENSOR_NAMES: tuple[str, ...] = tuple(_core.encoder_tensor_names())  # per-layer names, BertLayer order
_LAYER0_QUERY = re.compile(r"^(.*?)encoder\.layer\.0\.attention\.self\.query\.weight$")


def default_threads() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    return check_int("threads", check_int_type("threads", threads, "an int or None"), 1, ">= 1")


def _to_float32(value: Any, name: str) -> np.ndarray:
    """A state-dict value (torch tensor or numpy array) as a C-contiguous float32 numpy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch here
        if not value.is_floating_point():
            raise TypeError(f"weight {name!r} must be floating point, got {value.dtype}")
        value = value.detach().cpu().float().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"weight {name!r} must be a torch tensor or numpy array, got {type(value).__name__}")
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"weight {name!r} must be floating point, got {value.dtype}")
    return np.ascontiguousarray(value, dtype=np.float32)


class EncoderKernel:
    """A BERT encoder stack with its weights, run by the C++ kernel. See the module docstring."""

    def __init__(self, arch: Arch | PerLayerArch, layer_norm_eps: float = 1e-12) -> None:
        if not isinstance(arch, (Arch, PerLayerArch)):
            raise TypeError(f"arch must be a bortfast.Arch or PerLayerArch, got {type(arch).__name__}")
        if not (isinstance(layer_norm_eps, (int, float)) and np.isfinite(layer_norm_eps) and layer_norm_eps > 0):
            raise ValueError(f"layer_norm_eps must be a positive finite number, got {layer_norm_eps!r}")
        self.arch = arch
        if isinstance(arch, PerLayerArch):  # every layer its own heads (of head_dim) and FFN width
            self._encoder = _core.Encoder.per_layer(arch.hidden, arch.head_dim, list(arch.heads),
                                                    list(arch.intermediate), float(layer_norm_eps))
        else:
            self._encoder = _core.Encoder(arch.layers, arch.heads, arch.hidden, arch.intermediate,
                                          float(layer_norm_eps))

    def __repr__(self) -> str:
        return f"EncoderKernel({self.arch}, layer_norm_eps={self._encoder.layer_norm_eps:g})"

    @classmethod
    def random(cls, arch: Arch | PerLayerArch, seed: int = 0, layer_norm_eps: float = 1e-12) -> EncoderKernel:
        """Random weights (uniform with std 0.02; biases 0, LayerNorm 1/0), deterministic in ``seed``. Fast:
        filled in C++, no torch model is built -- this is what the latency profiler uses."""
        kernel = cls(arch, layer_norm_eps)
        kernel._encoder.init_random(check_int("seed", seed, 0), 0.02)
        return kernel

    @classmethod
    def from_bert(cls, model_or_state_dict: Any, *, heads: int | None = None,
                  layer_norm_eps: float | None = None) -> EncoderKernel:
        """The encoder of a ``transformers`` BertModel / BertForMaskedLM / BertFor... (or its state dict).

        With a model, heads and eps come from its config; a bare state dict needs ``heads=`` (it is not
        recoverable from weight shapes) and takes ``layer_norm_eps`` (default 1e-12, BERT's). Keys may carry a
        prefix such as ``bert.``.
        """
        config = getattr(model_or_state_dict, "config", None)
        if config is not None and hasattr(model_or_state_dict, "state_dict"):
            act = getattr(config, "hidden_act", "gelu")
            if act != "gelu":
                raise ValueError(f"the kernel implements GELU (erf) only, model has hidden_act={act!r}")
            pos = getattr(config, "position_embedding_type", "absolute") or "absolute"
            if pos != "absolute":
                raise ValueError(f"the kernel implements absolute position embeddings only, got {pos!r}")
            if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
                raise ValueError("the kernel implements a bidirectional encoder, got a decoder config")
            heads = config.num_attention_heads if heads is None else heads
            layer_norm_eps = config.layer_norm_eps if layer_norm_eps is None else layer_norm_eps
            state = model_or_state_dict.state_dict()
        elif isinstance(model_or_state_dict, Mapping):
            state = model_or_state_dict
            if heads is None:
                raise ValueError("from_bert(state_dict) needs heads= (the head count is not in the weights)")
        else:
            raise TypeError("from_bert expects a transformers BERT model or a state dict, got "
                            f"{type(model_or_state_dict).__name__}")
        layer_norm_eps = 1e-12 if layer_norm_eps is None else layer_norm_eps

        prefixes = [m.group(1) for k in state if (m := _LAYER0_QUERY.match(str(k)))]
        if len(prefixes) != 1:
            raise ValueError("state dict has no unique 'encoder.layer.0.attention.self.query.weight' "
                             f"(found {len(prefixes)} matches among {len(state)} keys)")
        prefix = prefixes[0] + "encoder.layer."
        layers = 0
        while f"{prefix}{layers}.attention.self.query.weight" in state:
            layers += 1
        hidden = int(np.shape(state[f"{prefix}0.attention.self.query.weight"])[1])
        widths, inters = [], []
        for i in range(layers):
            inter_key = f"{prefix}{i}.intermediate.dense.weight"
            if inter_key not in state:
                raise ValueError(f"state dict lacks {inter_key!r}")
            widths.append(int(np.shape(state[f"{prefix}{i}.attention.self.query.weight"])[0]))
            inters.append(int(np.shape(state[inter_key])[0]))
        head_dim = hidden // int(heads)  # heads = the config's, i.e. of a full-width layer
        if set(widths) == {hidden} and len(set(inters)) == 1:
            arch: Arch | PerLayerArch = Arch(layers, int(heads), hidden, inters[0])
        else:  # a per-layer student (bortfast.distill.perlayer): layer widths from the weight shapes
            bad = [w for w in widths if w % head_dim]
            if bad:
                raise ValueError(f"attention widths {widths} are not multiples of head_dim={head_dim} "
                                 f"(hidden {hidden} / heads {heads})")
            arch = PerLayerArch(hidden, head_dim, tuple(w // head_dim for w in widths), tuple(inters))
        kernel = cls(arch, layer_norm_eps)
        for i in range(layers):
            for name in TENSOR_NAMES:
                key = f"{prefix}{i}.{name}"
                if key not in state:
                    raise ValueError(f"state dict lacks {key!r}")
                kernel._encoder.set_tensor(i, name, _to_float32(state[key], key))
        return kernel

    def forward(self, hidden: np.ndarray, mask: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
        """Encoder output (B, L, H) float32 for ``hidden`` (B, L, H) float32 (the embeddings' output) and
        ``mask`` (B, L): 1 = attend, 0 = padding; float32, bool or integer; None = no padding.
        ``threads`` defaults to the CPUs this process may use."""
        n_threads = _check_threads(threads)
        if mask is None and isinstance(hidden, np.ndarray) and hidden.ndim == 3:
            mask = np.ones(hidden.shape[:2], dtype=np.float32)
        elif isinstance(mask, np.ndarray) and (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer)):
            mask = mask.astype(np.float32)  # exact for 0/1 masks (transformers' attention_mask is int64)
        return self._encoder.forward(hidden, mask, n_threads)

    __call__ = forward
