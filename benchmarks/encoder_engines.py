"""Shared helpers for the encoder benchmarks: one random-weight BertModel per shape, run by three engines.

- torch eager: the model's own ``BertEncoder`` (attn_implementation="eager").
- ONNX Runtime: the same weights exported with ``torch.onnx.export`` (TorchScript exporter) and optimised with
  ``onnxruntime.transformers.optimizer.optimize_model(model_type="bert")``. The export goes through a
  transformers-4.x-style encoder graph (:class:`LegacyEncoder`, same modules and weights): that is the pattern the
  ORT BERT fusions match, so the optimised graph has fused Attention, BiasGelu and SkipLayerNormalization nodes
  (the transformers 5 attention code exports to a graph ORT no longer fuses).
- the bortfast kernel: :meth:`bortfast.kernel.EncoderKernel.from_bert` on the same model.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bortfast import Arch
from bortfast.kernel import EncoderKernel

THREADS = 2
SEQ_LEN = 128
SHAPES = {
    "bort": Arch(4, 8, 1024, 768),
    "bert-base": Arch(12, 12, 768, 3072),
    "bert-large": Arch(24, 16, 1024, 4096),
}


def fp32_peak_gflops(threads: int = THREADS) -> tuple[float, float]:
    """(MHz from /proc/cpuinfo, FP32 peak GFLOP/s for `threads` cores at that clock): 2 FMA units x 8 floats x
    2 flops = 32 flop/cycle/core (AVX2; Zen 4 runs AVX-512 at the same 32 flop/cycle)."""
    text = Path("/proc/cpuinfo").read_text()
    mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", text).group(1))
    return mhz, mhz * 1e6 * 32 * threads / 1e9


class LegacyEncoder(nn.Module):
    """transformers-4.x-style BertEncoder forward over a BertModel's own layers (same weights)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.layers = model.encoder.layer
        self.heads = model.config.num_attention_heads
        self.head_size = model.config.hidden_size // self.heads

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size()[:-1] + (self.heads, self.head_size)).permute(0, 2, 1, 3)  # (B, A, L, d)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ext = (1.0 - mask[:, None, None, :].to(dtype=hidden.dtype)) * -10000.0  # (B, 1, 1, L)
        for layer in self.layers:
            sa = layer.attention.self
            q, k, v = (self.split_heads(lin(hidden)) for lin in (sa.query, sa.key, sa.value))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size) + ext  # (B, A, L, L)
            ctx = torch.matmul(nn.functional.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous()
            ctx = ctx.view(ctx.size()[:-2] + (self.heads * self.head_size,))  # (B, L, H)
            attn = layer.attention.output(ctx, hidden)
            hidden = layer.output(layer.intermediate(attn), attn)
        return hidden


def build_model(arch: Arch, seed: int = 0) -> nn.Module:
    from transformers import BertModel

    torch.manual_seed(seed)
    # A small vocabulary: only the encoder is timed, the embedding table would just cost memory.
    return BertModel(arch.to_bert_config(vocab_size=100, attn_implementation="eager")).eval()


def export_ort(model: nn.Module, arch: Arch, directory: Path, threads: int = THREADS):
    """An ONNX Runtime session over the optimised encoder graph of `model` (inputs hidden (B, L, H), mask)."""
    import onnxruntime as ort
    from onnxruntime.transformers.optimizer import optimize_model

    raw, opt_path = directory / f"{arch.tuple}.onnx", directory / f"{arch.tuple}.opt.onnx"
    hidden = torch.zeros(1, 8, arch.hidden)
    mask = torch.ones(1, 8, dtype=torch.long)
    # eval() first: the exporter restores the wrapper's training flag afterwards, which would switch the shared
    # layers' dropout on.
    with torch.no_grad():
        torch.onnx.export(LegacyEncoder(model).eval(), (hidden, mask), str(raw), input_names=["hidden", "mask"],
                          output_names=["out"], opset_version=17, dynamo=False,
                          dynamic_axes={"hidden": {0: "B", 1: "L"}, "mask": {0: "B", 1: "L"}, "out": {0: "B", 1: "L"}})
    opt = optimize_model(str(raw), model_type="bert", num_heads=arch.heads, hidden_size=arch.hidden, opt_level=0)
    fused = opt.get_fused_operator_statistics()
    assert fused["Attention"] == arch.layers and fused["SkipLayerNormalization"] == 2 * arch.layers, fused
    opt.save_model_to_file(str(opt_path), use_external_data_format=arch.param_count("encoder") * 4 > 1.8e9)
    raw.unlink()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(opt_path), options, providers=["CPUExecutionProvider"])


class Engines:
    """torch eager, ORT and the kernel over the same weights, each a callable hidden -> (B, L, H) numpy."""

    def __init__(self, arch: Arch, directory: Path, threads: int = THREADS) -> None:
        self.arch = arch
        model = build_model(arch)
        self.model = model
        self.kernel = EncoderKernel.from_bert(model)
        self.session = export_ort(model, arch, directory, threads)
        self.threads = threads

    def inputs(self, batch: int, seq_len: int = SEQ_LEN) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(batch)
        hidden = rng.standard_normal((batch, seq_len, self.arch.hidden), dtype=np.float32)
        return hidden, np.ones((batch, seq_len), dtype=np.int64)

    def run_torch(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            return self.model.encoder(torch.from_numpy(hidden)).last_hidden_state.numpy()

    def run_ort(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"hidden": hidden, "mask": mask})[0]

    def run_kernel(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.kernel.forward(hidden, mask, self.threads)
