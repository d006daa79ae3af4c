"""AdamW on CPU: torch's per-tensor loop vs foreach vs fused, for a student's real parameter set (why
``bortfast._base.optim.adamw`` takes the fused kernel).

For ⟨D, A, H, I⟩ students with the MiniLM vocabulary (30,522 tokens; the embedding table dominates the count):
the optimiser step alone, and one whole training step (forward, MLM-style loss, backward, clip, AdamW) at batch
32 x 64 tokens, each implementation timed in the same process, alternating, median of ``--rounds``. Also the
largest difference between the fused and per-tensor updates after the timed steps (same seed, same gradients).

Run (quiet machine):  python benchmarks/adamw_fused.py --threads 2 --out /tmp/adamw  (writes adamw_fused.json)
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from _harness import parser, write_result  # benchmarks/ is on sys.path when run as a script

# torch and transformers are imported where used, so --help answers at once

IMPLS = {"per-tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def model(arch: tuple[int, int, int, int]) -> Any:
    """A random-weight BertForMaskedLM ⟨D, A, H, I⟩ with the MiniLM vocabulary."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    d, a, h, i = arch
    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=30522, num_hidden_layers=d, num_attention_heads=a, hidden_size=h,
                                      intermediate_size=i, max_position_embeddings=512))


def step_fn(arch: tuple, impl: dict, whole: bool):
    import torch

    m = model(arch).eval()  # no dropout: the fused/per-tensor difference is the optimiser's alone
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, **impl)
    ids = torch.randint(0, 30522, (32, 64), generator=torch.Generator().manual_seed(1))
    for p in m.parameters():
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(2)) * 1e-3

    def step() -> None:
        if whole:
            opt.zero_grad(set_to_none=True)
            m(input_ids=ids, labels=ids).loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    return m, step


def time_arch(arch: tuple, rounds: int, whole: bool) -> dict:
    runs = {name: step_fn(arch, impl, whole) for name, impl in IMPLS.items()}
    samples: dict[str, list[float]] = {name: [] for name in IMPLS}
    for _ in range(2):
        for _, step in runs.values():
            step()
    for _ in range(rounds):  # alternating, so drift reaches every implementation alike
        for name, (_, step) in runs.items():
            t0 = time.perf_counter()
            step()
            samples[name].append((time.perf_counter() - t0) * 1000)
    out = {name: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v), "n": len(v)}
           for name, v in samples.items()}
    ref = dict(runs["per-tensor"][0].named_parameters())
    out["fused_vs_per_tensor_max_abs_diff"] = max(float((p - ref[n]).abs().max())
                                                  for n, p in runs["fused"][0].named_parameters())
    out["params"] = sum(p.numel() for p in ref.values())
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--archs", nargs="+", default=["2,3,192,1152", "4,12,384,1536"])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "torch": torch.__version__, "archs": {}}
    for text in args.archs:
        arch = tuple(int(v) for v in text.split(","))
        result["archs"][text] = {"optimizer_step": time_arch(arch, args.rounds, whole=False),
                                 "training_step": time_arch(arch, max(3, args.rounds // 3), whole=True)}
        for kind, r in result["archs"][text].items():
            cells = "  ".join(f"{n} {r[n]['median_ms']:7.1f} ms" for n in IMPLS)
            gain = r["per-tensor"]["median_ms"] / r["fused"]["median_ms"]
            print(f"{text:>14} {kind:<15} {cells}  (fused {gain:.1f}x faster, max |diff| "
                  f"{r['fused_vs_per_tensor_max_abs_diff']:.1e})", flush=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
