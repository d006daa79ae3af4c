"""Full ONNX Runtime fusion on a sample of the Bort paper's search space (de Wynter & Perry 2020, §3: D ∈ {2..12},
A ∈ {4,8,12,16}, H ∈ {512,768,1024}, I ∈ {256..3072}), random weights, exported with bortfast.export.to_onnx.

Too slow for tests/ (each export builds and traces a paper-size model), so it lives here:
    pytest benchmarks/test_export_paper_space.py -q
The vocabulary is cut to 1000 tokens: fusion patterns do not depend on it, export time does.
"""

from __future__ import annotations

import random

import pytest
import torch
from transformers import BertModel

from bortfast.export import to_onnx
from bortfast.space import Arch, SearchSpace


def _sample() -> list[Arch]:
    archs = SearchSpace.bert_paper().archs()
    picked = random.Random(0).sample(archs, 5)
    # the paper's result, and the extremes of each dimension the sample may miss
    extra = [Arch(4, 8, 1024, 768), Arch(2, 16, 512, 256), Arch(6, 12, 768, 3072)]
    return sorted({a.tuple: a for a in picked + extra}.values())


@pytest.mark.parametrize("arch", _sample(), ids=str)
def test_paper_space_arch_fully_fused(arch, tmp_path):
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    BertModel(arch.to_bert_config(vocab_size=1000)).save_pretrained(model_dir)
    report = to_onnx(model_dir, tmp_path / "model.onnx")  # raises if a fusion is missing or parity fails
    fused = report.fused_ops
    print(f"\n{arch}: {fused}, max|diff| {report.parity_max_abs_diff:.2e}")
    assert report.fusion_complete
    assert fused.get("Attention", 0) + fused.get("MultiHeadAttention", 0) == arch.layers
    assert fused.get("SkipLayerNormalization", 0) == 2 * arch.layers
    assert fused.get("EmbedLayerNormalization", 0) == 1
    assert report.parity_max_abs_diff <= 1e-4
