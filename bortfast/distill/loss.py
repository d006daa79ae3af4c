"""The distillation loss (alexa/bort: α·MLM + β·τ²·KL over masked positions; hidden-state distance for an
encoder-only teacher), the teacher's targets, and the held-out evaluation.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports stay lazy: `import bortfast` must not import torch
    import torch



from bortfast.data.teacher import Teacher, TeacherKind
from bortfast.distill.config import LossWeights
from bortfast.distill.masking import Masker, _derived_seed


def distillation_loss(
    student_logits: torch.Tensor,
    student_hidden: torch.Tensor | None,
    teacher_out: torch.Tensor | None,
    labels: torch.Tensor,
    kind: TeacherKind,
    weights: LossWeights,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, mlm, kd): total = α·MLM + β·KD with KD = τ²·KL(teacher ‖ student) over masked positions (MLM
    teacher) or the hidden-state distance over all positions (hidden teacher), plus γ·(sentence-level terms,
    :func:`embedding_loss`) for a hidden teacher with ``weights.embedding`` = γ > 0 (then the reported KD term is
    the token-level distance plus the sentence-level one).

    ``labels`` is (B, L) with -100 at unmasked positions. Logits are either (B, L, V) or already gathered at the
    masked positions, (N, V) in the row-major order of ``labels != -100``; ``teacher_out`` is the teacher's logits
    in the same layout (MLM teacher) or its last hidden states (B, L, H_t) (hidden teacher), or None when
    ``weights.beta == 0`` (plain MLM). ``attention_mask`` (B, L), for padded sentence rows: the hidden-state terms
    run over real tokens only (None: every position, as in packed blocks).
    """
    import torch.nn.functional as F

    masked = labels != -100  # (B, L)
    zs = (student_logits[masked] if student_logits.dim() == 3 else student_logits).float()  # (N, V)
    target = labels[masked]  # (N,)
    mlm = F.cross_entropy(zs, target) if len(target) else zs.sum() * 0.0
    if teacher_out is None:  # plain MLM pretraining (beta = 0): the teacher is not run at all
        if weights.beta or weights.embedding:
            raise ValueError(f"distillation_loss: beta={weights.beta} needs the teacher's outputs")
        kd = zs.sum() * 0.0
    elif kind == "mlm":
        tau = weights.temperature
        zt = (teacher_out[masked] if teacher_out.dim() == 3 else teacher_out).float()  # (N, V)
        if len(target):
            kd = F.kl_div(F.log_softmax(zs / tau, dim=-1), F.log_softmax(zt / tau, dim=-1), log_target=True,
                          reduction="batchmean") * tau * tau
        else:
            kd = mlm * 0.0
    else:
        hs, ht = student_hidden.float(), teacher_out.float()  # (B, L, H_t)
        real = None if attention_mask is None else attention_mask.bool()
        ts, tt = (hs, ht) if real is None else (hs[real], ht[real])  # (..., H_t) the real tokens
        cos = (1.0 - F.cosine_similarity(ts, tt, dim=-1)).mean()
        if weights.hidden_loss == "mse":
            kd = F.mse_loss(ts, tt)
        elif weights.hidden_loss == "cosine":
            kd = cos
        else:  # "mse+cosine": the cosine term sees what an embedding loses when hidden channels are cut
            kd = F.mse_loss(ts, tt) + cos
        if weights.embedding:  # γ weighs the sentence-level terms on their own (they need no token-level β)
            sentence = embedding_loss(hs, ht, attention_mask)
            return weights.alpha * mlm + weights.beta * kd + weights.embedding * sentence, mlm, kd + sentence
    return weights.alpha * mlm + weights.beta * kd, mlm, kd


def embedding_loss(hs: torch.Tensor, ht: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sentence-level distance of (B, L, H) student/teacher states: mean-pooled cosine distance plus the MSE of
    the in-batch cosine-similarity matrices (what STS-style ranking of pairs depends on). The mean runs over the
    real tokens of ``attention_mask`` (B, L); None (packed blocks, no padding): over every position."""
    import torch.nn.functional as F

    ps, pt = F.normalize(masked_mean(hs, attention_mask), dim=-1), F.normalize(masked_mean(ht, attention_mask), dim=-1)
    pooled = (1.0 - (ps * pt).sum(-1)).mean()
    relation = F.mse_loss(ps @ ps.T, pt @ pt.T)
    return pooled + relation


def masked_mean(h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, L, H) → (B, H): the mean over the real tokens of ``attention_mask`` (None: over every position)."""
    if attention_mask is None:
        return h.mean(1)
    m = attention_mask[..., None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def teacher_targets(teacher: Teacher, input_ids: torch.Tensor, masked: torch.Tensor,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The teacher's logits at the masked positions (N, V) for an MLM teacher, or its last hidden states
    (B, L, H_t) otherwise; ``attention_mask`` for padded sentence rows (hidden teacher)."""
    import torch

    model = teacher.model
    with torch.no_grad():
        if teacher.kind == "hidden":
            return model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        base = getattr(model, model.base_model_prefix, None)
        head = next((getattr(model, a) for a in ("cls", "lm_head") if hasattr(model, a)), None)
        if base is not None and head is not None:  # BERT / RoBERTa layout: run the head on masked positions only
            return head(base(input_ids=input_ids).last_hidden_state[masked])
        return model(input_ids=input_ids).logits[masked]



def evaluate(
    module: Any, teacher: Teacher, heldout: torch.Tensor, masker: Masker, *, seed: int, batch_size: int,
    max_batches: int | None, weights: LossWeights, device: Any = "cpu", autocast_dtype: Any = None,
    pad_id: int | None = None,
) -> dict[str, float]:
    """Held-out loss and MLM accuracy with fixed masking (seeded by ``seed``), averaged over batches;
    ``pad_id``: the rows are padded sentences (:mod:`bortfast.data.sentences`)."""
    import torch

    from bortfast.data.sentences import attention_mask, trim

    was_training = module.training
    module.eval()
    totals = {"loss": 0.0, "mlm_loss": 0.0, "kd_loss": 0.0}
    correct = masked = 0
    n_batches = math.ceil(len(heldout) / batch_size)
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    try:
        with torch.no_grad():
            for b in range(n_batches):
                blocks = trim(heldout[b * batch_size:(b + 1) * batch_size], pad_id)
                mask = None if pad_id is None else attention_mask(blocks, pad_id).to(device)
                inputs, labels = masker(blocks, seed=_derived_seed(seed, 0xE7A1, b))
                inputs, labels = inputs.to(device), labels.to(device)
                with _autocast(device, autocast_dtype):
                    sel = labels != -100
                    t_out = teacher_targets(teacher, inputs, sel, mask)
                    logits, hidden = module(inputs, sel, mask)
                loss, mlm, kd = distillation_loss(logits, hidden, t_out, labels, teacher.kind, weights, mask)
                for k, v in zip(totals, (loss, mlm, kd)):
                    totals[k] += float(v)
                correct += int((logits.argmax(-1) == labels[sel]).sum())
                masked += int(sel.sum())
    finally:
        module.train(was_training)
    out = {k: v / max(1, n_batches) for k, v in totals.items()}
    out["mlm_accuracy"] = correct / max(1, masked)
    out["masked_tokens"] = masked
    return out


def _autocast(device: Any, dtype: Any) -> Any:
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
