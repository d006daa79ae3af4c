"""Reproducible data for the trainers: dynamic BERT masking re-seeded per (seed, step, rank), and the batch
rows of any step as a pure function of the step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # heavy imports stay lazy: `import bortfast` must not import torch
    import torch




# --------------------------------------------------------------------------------------------------------- data
def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class Masker:
    """Dynamic BERT masking (15 %, 80/10/10) through ``transformers.DataCollatorForLanguageModeling``, with an
    explicit ``torch.Generator`` re-seeded from (seed, step, rank) so any step's mask is reproducible on resume."""

    def __init__(self, tokenizer: Any, mlm_probability: float = 0.15, *, enabled: bool = True) -> None:
        import torch
        from transformers import DataCollatorForLanguageModeling

        self.enabled = enabled  # False: inputs pass unmasked, no MLM labels (hidden-state KD without MLM)
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability!r}")
        self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
        self.generator = torch.Generator()
        self.collator.generator = self.generator
        size = max(len(tokenizer), max(tokenizer.all_special_ids) + 1)
        self.special = torch.zeros(size, dtype=torch.bool)
        self.special[tokenizer.all_special_ids] = True

    def __call__(self, blocks: torch.Tensor, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.enabled:
            return blocks.clone(), blocks.new_full(blocks.shape, -100)
        self.generator.manual_seed(seed)
        return self.collator.torch_mask_tokens(blocks.clone(), special_tokens_mask=self.special[blocks])


def masker_for(tokenizer: Any, kind: str, alpha: float, mlm_probability: float = 0.15) -> Masker:
    """Masking only when something learns from it: an MLM teacher, or a student MLM loss (alpha > 0). An
    encoder-only teacher with alpha = 0 distils on the text as it is (masked inputs cost 0.05 STS Spearman on
    the demo teacher: README, Quality)."""
    return Masker(tokenizer, mlm_probability, enabled=kind == "mlm" or alpha > 0)


def batch_indices(n: int, batch_size: int, step: int, *, seed: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Row indices of this rank's share of global batch ``step``: the data stream is an endless sequence of
    seeded permutations of ``range(n)`` (one per epoch), so the data position is a pure function of the step."""
    start = (step * world_size + rank) * batch_size
    pos = np.arange(start, start + batch_size)
    epochs = pos // n
    out = np.empty(batch_size, dtype=np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        sel = epochs == e
        out[sel] = perm[pos[sel] % n]
    return out
