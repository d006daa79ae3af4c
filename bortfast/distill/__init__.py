"""Knowledge-distillation pretraining of a BERT sub-architecture (de Wynter & Perry 2020, §3 and §4.1).

The student ξ = <D, A, H, I> is a ``transformers`` :class:`~transformers.BertForMaskedLM` that shares the teacher's
tokenizer and vocabulary. Two kinds of teacher:

* a masked-LM teacher (its config's ``architectures`` name a ``...ForMaskedLM`` class: BERT, RoBERTa, ...):
  loss = α·MLM + β·τ²·KL(softmax(z_t/τ) ‖ softmax(z_s/τ)) over the masked positions, as in alexa/bort
  (α = 0.1, β = 0.5, τ = 2; 15 % masking with 80/10/10 replacement; no next-sentence prediction);
* an encoder-only teacher (no MLM head, e.g. the sentence-embedding model all-MiniLM-L6-v2): last-layer
  hidden-state distillation, α·MLM + β·d(P h_s, h_t) with d = MSE or cosine distance over all positions and a
  learned linear projection P when the hidden sizes differ. This is the natural generalisation, not in the paper.

Rooms: :mod:`.config` (DistillConfig, LossWeights), :mod:`.student`, :mod:`.loss`, :mod:`.masking`,
:mod:`.inherit` (weight inheritance: students cut out of the teacher by activation importance, the default),
:mod:`.short` (ê of Algorithm 1: :func:`short_train_error`), :mod:`.trainer` (:func:`distill`: checkpoints,
exact resume, DDP under torchrun), :mod:`.checkpoint`. Teacher and corpus loading live in :mod:`bortfast.data`
and are re-exported here, as before.

Security: teacher weights load only from safetensors unless the caller opts in to pickle (``allow_pickle=True``,
which still uses ``torch.load(weights_only=True)`` inside ``transformers``); checkpoint tensors are safetensors and
the optimiser state is read with ``torch.load(weights_only=True)``.
"""

from bortfast._base.optim import param_groups as _param_groups  # noqa: F401  (tests of the no-decay rule)
from bortfast.data.corpus import Corpus, CorpusDecodeWarning, load_corpus
from bortfast.data.teacher import Teacher, TeacherKind, bundled_teacher_path, load_teacher
from bortfast.distill.config import DistillCallback, DistillConfig, HiddenLoss, LossWeights
from bortfast.distill.loss import distillation_loss, evaluate, teacher_targets
from bortfast.distill.masking import Masker, batch_indices
from bortfast.distill.short import short_train_error
from bortfast.distill.student import (
    StudentInit,
    _trainable_module,
    build_student,
    check_arch_matches_teacher,
    student_arch,
    teacher_importance,
)
from bortfast.distill.trainer import distill

__all__ = [
    "Corpus",
    "CorpusDecodeWarning",
    "DistillCallback",
    "DistillConfig",
    "HiddenLoss",
    "LossWeights",
    "Masker",
    "Teacher",
    "TeacherKind",
    "_trainable_module",
    "batch_indices",
    "build_student",
    "bundled_teacher_path",
    "check_arch_matches_teacher",
    "distill",
    "distillation_loss",
    "evaluate",
    "load_corpus",
    "load_teacher",
    "short_train_error",
    "student_arch",
    "StudentInit",
    "teacher_importance",
    "teacher_targets",
]
