"""Training-step cost of Bort <4, 8, 1024, 768> vs BERT-large <24, 16, 1024, 4096> (Bort paper §4: pretraining
the extracted architecture is much cheaper than BERT-large's).

One step = the student's forward (BertForMaskedLM, vocabulary 30522; the MLM head on the masked positions only,
as in the trainer), the MLM loss on 15 % masked positions,
backward, gradient clipping and AdamW (no decay on biases/LayerNorm), as in bortfast.distill. The teacher's
forward is not included: it is the same for both students. Same batch for both shapes.

Run: flock /tmp/bortfast-bench.lock pytest benchmarks/test_distill_step.py --benchmark-only -s
Environment: BORTFAST_BENCH_BATCH (default 2), BORTFAST_BENCH_SEQ (default 64), BORTFAST_BENCH_ROUNDS (default 3).
"""

from __future__ import annotations

import os

import pytest
import torch

from bortfast._base.optim import param_groups as _param_groups
from bortfast.distill import LossWeights, distillation_loss
from bortfast.space import Arch

BATCH = int(os.environ.get("BORTFAST_BENCH_BATCH", "2"))
SEQ = int(os.environ.get("BORTFAST_BENCH_SEQ", "64"))
ROUNDS = int(os.environ.get("BORTFAST_BENCH_ROUNDS", "3"))
SHAPES = {"bert-large": Arch(24, 16, 1024, 4096), "bort": Arch(4, 8, 1024, 768)}
MLM_ONLY = LossWeights(alpha=1.0, beta=0.0)

_times: dict[str, float] = {}


def _make_step(arch: Arch):
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(arch.to_bert_config()).train()
    optimizer = torch.optim.AdamW(_param_groups(model, 0.01), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, arch.vocab_size, (BATCH, SEQ), generator=gen)  # (B, L)
    labels = torch.where(torch.rand(BATCH, SEQ, generator=gen) < 0.15, input_ids, torch.full_like(input_ids, -100))
    labels[:, 1] = input_ids[:, 1]  # at least one masked position per row

    masked = labels != -100  # (B, L)

    def step() -> float:
        # as bortfast.distill's trainer: the MLM head runs on the masked positions only
        logits = model.cls(model.bert(input_ids=input_ids).last_hidden_state[masked])  # (N, V)
        loss, _, _ = distillation_loss(logits, None, logits.detach(), labels, "mlm", MLM_ONLY)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    return step


@pytest.mark.parametrize("name", ["bert-large", "bort"])
@pytest.mark.benchmark(group="distill-train-step")
def test_train_step(benchmark, name):
    arch = SHAPES[name]
    step = _make_step(arch)
    loss = benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert torch.isfinite(torch.tensor(loss)) and loss > 0
    if not benchmark.stats:
        return
    _times[name] = benchmark.stats.stats.median
    print(f"\n{name} {arch}: {arch.param_count('masked-lm') / 1e6:.1f}M params, median step "
          f"{_times[name]:.3f} s at batch {BATCH} x {SEQ} tokens, {torch.get_num_threads()} threads")
    if len(_times) == 2:
        ratio = _times["bert-large"] / _times["bort"]
        flop_ratio = SHAPES["bert-large"].flops(BATCH, SEQ) / SHAPES["bort"].flops(BATCH, SEQ)
        print(f"BERT-large step / Bort step = {ratio:.2f}x (encoder-FLOP ratio {flop_ratio:.2f}x)")
        assert ratio > 1.0
