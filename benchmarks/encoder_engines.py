"""Shared helpers for the encoder benchmarks: one random-weight BertModel per shape, run by three engines.

- torch eager: the model's own ``BertEncoder`` (attn_implementation="eager").
- ONNX Runtime: the same weights exported with ``torch.onnx.export`` (TorchScript exporter) and optimised with
  ``onnxruntime.transformers.optimizer.optimize_model(model_type="bert")``. The export goes through a
  transformers-4.x-style encoder graph (:class:`LegacyEncoder`, same modules and weights): that is the pattern the
  ORT BERT fusions match, so the optimised graph has fused Attention, BiasGelu and SkipLayerNormalization nodes
  (the transformers 5 attention code exports to a graph ORT no longer fuses).
- the bortfast kernel: :meth:`bortfast.profile.kernel.EncoderKernel.from_bert` on the same model.

Run as a script, it times the three with isolated timing (``bortfast.profile.timing``) and writes
OUT/encoder_engines.json:
    python benchmarks/encoder_engines.py --out DIR [--shapes bort,bert-base] [--batches 1,8]
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from _harness import (  # benchmarks/ is on sys.path (as a script, and via conftest.py under pytest)
    ort_session,
    parser,
    write_result,
)
from torch import nn

from bortfast import Arch
from bortfast.profile.kernel import EncoderKernel

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
    return ort_session(opt_path, threads)


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


def torch_encoder_engine(arch: tuple[int, int, int, int], batch: int, seq_len: int, threads: int):
    """torch eager ``model.encoder`` on a random (B, L, H) input (a timing-worker factory)."""
    torch.set_num_threads(threads)
    a = Arch(*arch)
    model = build_model(a)
    hidden = torch.from_numpy(np.random.default_rng(batch).standard_normal((batch, seq_len, a.hidden),
                                                                         dtype=np.float32))

    def run() -> np.ndarray:
        with torch.inference_mode():
            return model.encoder(hidden).last_hidden_state.numpy()

    return run


def isolated_ratios(arch: Arch, batch: int, directory: Path, threads: int = THREADS, seq_len: int = SEQ_LEN,
                    min_samples: int = 20) -> dict:
    """The kernel, ORT and torch eager, each in its own worker process, turns alternating
    (bortfast.profile.timing): medians and the kernel's ratios to the other two."""
    from bortfast.profile.timing import Engine, TimingConfig, kernel_engine, ort_session_engine, time_engines

    export_ort(build_model(arch), arch, directory, threads)  # writes directory / "<tuple>.opt.onnx"
    path = directory / f"{arch.tuple}.opt.onnx"
    hidden = np.random.default_rng(batch).standard_normal((batch, seq_len, arch.hidden), dtype=np.float32)
    feed = {"hidden": hidden, "mask": np.ones((batch, seq_len), dtype=np.int64)}
    engines = [Engine("kernel", f"random {arch}", kernel_engine,
                      {"arch": arch.tuple, "batch": batch, "seq_len": seq_len, "threads": threads}),
               Engine("ort", str(path), ort_session_engine, {"path": str(path), "feed": feed, "threads": threads}),
               Engine("torch", f"random {arch}", torch_encoder_engine,
                      {"arch": arch.tuple, "batch": batch, "seq_len": seq_len, "threads": threads})]
    timings = time_engines(engines, TimingConfig(min_samples=min_samples))["timings"]
    med = {k: t.median_ms for k, t in timings.items()}
    return {"arch": list(arch.tuple), "batch": batch, "seq_len": seq_len, "threads": threads,
            "timings": {k: t.summary() for k, t in timings.items()},
            "kernel_vs_ort": med["ort"] / med["kernel"], "kernel_vs_torch": med["torch"] / med["kernel"],
            "kernel_gflops": arch.flops(batch, seq_len) / (med["kernel"] / 1e3) / 1e9}


def main() -> None:
    """The kernel-vs-ORT (and vs torch eager) ratio with isolated timing, JSON."""
    import os
    import tempfile
    import time

    ap = parser(__doc__, threads=THREADS)
    ap.add_argument("--shapes", default="bort", help=f"comma-separated, of {', '.join(SHAPES)} (default %(default)s)")
    ap.add_argument("--batches", default="1,8")
    args = ap.parse_args()
    t0, load = time.perf_counter(), os.getloadavg()
    rows = []
    for name in args.shapes.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            with tempfile.TemporaryDirectory(prefix="encoder-engines-") as tmp:
                row = isolated_ratios(SHAPES[name], batch, Path(tmp), args.threads) | {"shape": name}
            rows.append(row)
            t = {k: v["median_ms"] for k, v in row["timings"].items()}
            print(f"{name} B={batch}: kernel {t['kernel']:.2f} / ORT {t['ort']:.2f} / torch {t['torch']:.2f} ms -> "
                  f"kernel {row['kernel_vs_ort']:.2f}x ORT, {row['kernel_vs_torch']:.2f}x torch", flush=True)
    mhz, peak = fp32_peak_gflops(args.threads)
    write_result(args.out, {"mhz": mhz, "fp32_peak_gflops": peak, "loadavg_before": load,
                            "loadavg_after": os.getloadavg(), "rows": rows, "seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
