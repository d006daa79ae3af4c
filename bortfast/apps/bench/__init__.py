"""The CPU speed-up benchmark behind the Bort paper's claim (de Wynter & Perry 2020, §5: Bort ⟨4, 8, 1024, 768⟩ is
7.9x faster than BERT-base and 20x faster than BERT-large on a CPU — hardware and settings unstated).

:func:`run_speedup` times every engine in its own worker process (:mod:`bortfast.profile.timing`: no other
engine's thread pool is alive or spinning while one runs), turns alternating A B A B across the engines so slow
drift on a shared machine hits all of them alike, and reports min/median/max and the number of samples:

(a) fixed shape (batch ``B`` ∈ ``batch_sizes``, length ``seq_len``): HF transformers PyTorch fp32 BERT-base and
    BERT-large (what a user runs by default) vs the bortfast-deployed student in ONNX Runtime, fp32 and INT8;
(b) the same-engine ratio: BERT-base in ONNX Runtime / student in ONNX Runtime, against their FLOP ratio
    (:meth:`bortfast.space.Arch.flops`, and full-model FLOPs counted by ``torch.utils.flop_counter``);
(c) end to end on a list of sentences (e.g. SST-2 dev), tokenization included: HF tokenizer + torch model in
    padded batches vs :class:`bortfast.runtime.Encoder` / :class:`~bortfast.runtime.Classifier`.

Without model directories it builds random-weight models (vocabulary 30522, 512 positions): speed does not depend
on the weights. It writes ``speedup.json`` and ``speedup.png`` into ``out_dir``.

The benchmark by job: :mod:`.config` (the settings, the models' record, the paper's targets), :mod:`.prepare`
(random-weight models, the ONNX exports, FLOP counts), :mod:`.timing` (the fixed-shape, same-engine and end-to-end
timings), :mod:`.report` (the targets, ``speedup.png``, the console table) and :mod:`.speedup` (:func:`run_speedup`,
which runs them in that order).
"""

from bortfast.apps.bench.config import BERT_BASE, BERT_LARGE, BORT, TARGETS, Models, SpeedupConfig, read_sentences_tsv
from bortfast.apps.bench.prepare import full_model_flops
from bortfast.apps.bench.report import format_summary, plot_speedup
from bortfast.apps.bench.speedup import run_speedup

__all__ = ["BERT_BASE", "BERT_LARGE", "BORT", "TARGETS", "Models", "SpeedupConfig", "format_summary",
           "full_model_flops", "plot_speedup", "read_sentences_tsv", "run_speedup"]
