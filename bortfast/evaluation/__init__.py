"""Quality metrics, in one room for the pipeline's quality stage and the benchmarks alike (DESIGN.md §2, §8): how
much of the teacher a student keeps.

* :mod:`.sts`: STS-B style pairs (:func:`read_sts`) and their Spearman ρ (:func:`sts_spearman`), as the STS
  benchmark scores sentence embeddings.
* :mod:`.embeddings`: sentence embeddings of a transformers encoder with a given pooling (:func:`torch_embedder`,
  :func:`sentence_embeddings`).
* :mod:`.agreement`: the student against the teacher on the same inputs: masked-token accuracy (:func:`mlm_accuracy`)
  and embedding agreement (:func:`quality_scores`).
* :mod:`.retrieval`: retrieval agreement with no labels: recall@k of the teacher's own top-k neighbours
  (:func:`neighbour_recall`).
* :mod:`.plot`: the quality-speed picture of a run (:func:`plot_quality`, ``quality.png``).

Task metrics (accuracy, F1, Matthews, Pearson/Spearman of a GLUE task) stay with the task files in
:mod:`bortfast.data.tasks`. Nothing here imports torch at import time.
"""

from bortfast.evaluation.agreement import mlm_accuracy, quality_scores
from bortfast.evaluation.embeddings import pool, sentence_embeddings, torch_embedder
from bortfast.evaluation.plot import plot_quality
from bortfast.evaluation.retrieval import neighbour_recall, top_k_neighbours
from bortfast.evaluation.sts import StsPairs, head_pairs, read_sts, sts_spearman

__all__ = ["StsPairs", "head_pairs", "mlm_accuracy", "neighbour_recall", "plot_quality", "pool", "quality_scores",
           "read_sts", "sentence_embeddings", "sts_spearman", "top_k_neighbours", "torch_embedder"]
