"""The quality stage: how much of the teacher the student keeps, on data nothing was chosen on (DESIGN.md §8),
written to ``quality.json`` with which data chose and which reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bortfast._base.io import write_json
from bortfast.evaluation import neighbour_recall, plot_quality, quality_scores, read_sts, sentence_embeddings
from bortfast.pipeline.config import RunConfig
from bortfast.space import PerLayerArch

RECALL_K = 10  # recall@10 of the teacher's own top-10 neighbours


def _heldout_sentences(cfg: RunConfig, st: dict) -> list[str]:
    """Held-out text for timing and quality: the corpus stage's ``heldout.txt``, lines that search and
    distillation excluded from their training blocks."""
    return Path(st["corpus"]["heldout"]).read_text(encoding="utf-8").splitlines()


def _stage_quality(cfg: RunConfig, out: Path, st: dict) -> dict:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from bortfast.data.teacher import load_teacher
    from bortfast.models.perlayer import load_student

    sentences = _heldout_sentences(cfg, st)
    teacher = load_teacher(cfg.teacher)
    student = load_student(out / "student", "BertModel", add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "student")
    projection = None
    proj_file = out / "student" / "projection.safetensors"
    if proj_file.is_file():
        weights = load_file(str(proj_file))
        projection = torch.nn.Linear(weights["weight"].shape[1], weights["weight"].shape[0])
        projection.load_state_dict(weights)
    t_emb = sentence_embeddings(teacher.model.base_model, teacher.tokenizer, sentences, cfg.seq_len)
    s_own = sentence_embeddings(student, tokenizer, sentences, cfg.seq_len)  # the student's own width
    s_emb = s_own if projection is None else _project(projection, s_own)  # mean pooling commutes with it
    scores = quality_scores(s_emb, t_emb)
    k = min(RECALL_K, len(sentences) - 1)
    scores["retrieval"] = _retrieval(s_own, s_emb if _teacher_space(out) else None, t_emb, k)
    metrics_file = out / "distill" / "metrics.jsonl"
    if metrics_file.is_file():
        from bortfast._base.io import read_jsonl

        evals = [r for r in read_jsonl(metrics_file) if "heldout_loss" in r or "mlm_accuracy" in r]
        if evals:
            scores["distill_final_eval"] = evals[-1]
    scores["sentences"] = len(sentences)
    if teacher.kind == "mlm":
        scores["mlm"] = _mlm_quality(cfg, out, teacher, sentences)
    pairs = None
    if cfg.quality.sts is not None:
        pairs = read_sts(cfg.quality.sts)
        scores["sts"] = _sts_quality(cfg, out, teacher, student, tokenizer, pairs)
    if cfg.quality.references:
        from bortfast.pipeline.references import measure_references

        scores["references"] = measure_references(cfg, out, st, sentences=sentences, t_emb=t_emb, s_emb=s_own, k=k,
                                                  sts=scores.get("sts"), pairs=pairs)
    if "sts" in scores or "references" in scores:
        plot_quality(scores.get("sts"), out / "quality.png", front=scores.get("references"))
    # Which data chose and which reports (DESIGN §8): no quality score chose anything in a run, ê did
    scores["splits"] = {
        "chose": "ê, the distillation loss on held-out corpus blocks of the search (and the speed budget)",
        "reports": [f"{len(sentences)} held-out corpus lines (corpus/heldout.txt, never trained on)"]
        + ([f"STS: {cfg.quality.sts}"] if cfg.quality.sts is not None else [])}
    write_json(out / "quality.json", scores)
    return scores


def _mlm_quality(cfg: RunConfig, out: Path, teacher: Any, sentences: list[str]) -> dict:
    """Held-out masked-token accuracy of the teacher and the student (with its MLM head), same masked positions."""
    from bortfast.evaluation import mlm_accuracy
    from bortfast.models.perlayer import load_student

    student = load_student(out / "student", "BertForMaskedLM")
    res = {"teacher": mlm_accuracy(teacher.model, teacher.tokenizer, sentences, max_len=cfg.seq_len, seed=cfg.seed),
           "student": mlm_accuracy(student, teacher.tokenizer, sentences, max_len=cfg.seq_len, seed=cfg.seed)}
    res["retained"] = res["student"]["accuracy"] / max(res["teacher"]["accuracy"], 1e-12)
    return res


def _project(projection: Any, emb: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return projection(torch.from_numpy(emb)).numpy()


def _teacher_space(out: Path) -> bool:
    """Whether the student ships its projection (``--teacher-space``: a Dense module in ``student/``)."""
    from bortfast.export.dense import read_dense

    return read_dense(out / "student") is not None


def _retrieval(s_own: np.ndarray, s_teacher_space: np.ndarray | None, t_emb: np.ndarray, k: int) -> dict:
    """recall@k of the teacher's own top-k neighbours over the held-out lines: the student's own vectors and, with
    ``--teacher-space``, its teacher-space vectors among themselves and as queries into the teacher's index."""
    res = {"k": k, "student": neighbour_recall(s_own, t_emb, k)}
    if s_teacher_space is not None:
        res["teacher_space"] = neighbour_recall(s_teacher_space, t_emb, k)
        res["teacher_space_vs_teacher_index"] = neighbour_recall(s_teacher_space, t_emb, k, index=t_emb)
    return res


def _sts_quality(cfg: RunConfig, out: Path, teacher: Any, student: Any, tokenizer: Any, pairs: Any) -> dict:
    """STS Spearman (the teacher's own pooling) of the teacher, ξ* and, on a sample of pairs, every trained pivot
    as inherited (before its short training); ``quality.png`` plots them against î."""
    from bortfast.data.teacher import model_pooling
    from bortfast.evaluation import head_pairs, sts_spearman, torch_embedder

    pooling = model_pooling(cfg.teacher)
    search = json.loads((out / "search.json").read_text(encoding="utf-8"))
    res = {"file": cfg.quality.sts, "pairs": len(pairs.scores), "pooling": pooling,
           "teacher": sts_spearman(torch_embedder(teacher.model, teacher.tokenizer, pooling=pooling), pairs),
           "student": sts_spearman(torch_embedder(student, tokenizer, pooling=pooling), pairs),
           "teacher_latency": search["teacher_latency"], "latency_unit": search["latency_unit"],
           "student_latency": search["candidates"][search["best"]]["latency"]}
    res["retained"] = res["student"] / res["teacher"]
    res["pivots"] = _pivot_sts(cfg, out, teacher, search, pooling, head_pairs(pairs, 400))
    return res


def _pivot_sts(cfg: RunConfig, out: Path, teacher: Any, search: dict, pooling: str, pairs: Any) -> list[dict]:
    from tqdm.auto import tqdm

    from bortfast.distill.inherit import Importance, inherit_student
    from bortfast.distill.perlayer import inherit_per_layer
    from bortfast.evaluation import sts_spearman, torch_embedder
    from bortfast.search.algorithm import arch_from_dict
    from bortfast.search.choice import arch_key

    caches = sorted((out / "search").glob("importance-*.npz"))
    if cfg.init != "inherit" or len(caches) != 1:
        return []
    imp = Importance.load(caches[0])
    rows = []
    trained = [c for c in search["candidates"] if c.get("error") is not None]
    for c in tqdm(trained, desc="pivot quality", disable=not cfg.progress, leave=False):
        arch = arch_from_dict(c["arch"])
        if isinstance(arch, PerLayerArch):  # cut from the teacher layers the frontier chose for it
            model = inherit_per_layer(arch, teacher.model, imp, teacher_layers=c["teacher_layers"],
                                      model_class="BertModel")
        else:
            model = inherit_student(arch, teacher.model, imp, model_class="BertModel")
        rows.append({"arch": arch_key(arch), "latency": c["latency"], "error": c["error"],
                     "sts_inherited": sts_spearman(torch_embedder(model, teacher.tokenizer, pooling=pooling), pairs)})
    return rows


