"""The reference points of a run (issue 29, item 3): what a user would try instead of a distilled student, measured
in the same run on the same data -- the teacher in INT8 (ONNX Runtime's ``quantize_dynamic``, what one tries first)
and the teacher cut to its first k layers with no training (k = the student's depth).

Each point gets its quality on the report data (held-out corpus lines: similarity agreement and recall@10 of the
teacher's own neighbours; STS Spearman when ``--sts`` is given) and its same-engine speed-up: ONNX Runtime fp32
B=1 at the run's sequence length, as ``speedup.json``'s ``same_engine``, every engine in its own worker process
with rounds alternating (:mod:`bortfast.profile.timing`), the teacher and the student timed again in the same call
so the ratios share one machine state.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bortfast.pipeline.config import RunConfig


def cut_teacher(teacher_dir: str | Path, layers: int, out_dir: str | Path) -> Path:
    """The encoder of ``teacher_dir`` cut to its first ``layers`` layers (no training), saved with its tokenizer."""
    from transformers import AutoTokenizer, BertModel

    model = BertModel.from_pretrained(teacher_dir, add_pooling_layer=False)
    if not 1 <= layers < model.config.num_hidden_layers:
        raise ValueError(f"a cut keeps 1 to {model.config.num_hidden_layers - 1} of the teacher's "
                         f"{model.config.num_hidden_layers} layers, got {layers}")
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(out_dir)
    return out_dir


def _heldout(emb: np.ndarray, t_emb: np.ndarray, k: int) -> dict[str, float]:
    from bortfast.evaluation import neighbour_recall, quality_scores

    return {**quality_scores(emb, t_emb), f"recall@{k}": neighbour_recall(emb, t_emb, k)}


def measure_references(cfg: RunConfig, out: Path, st: dict, *, sentences: list[str], t_emb: np.ndarray,
                       s_emb: np.ndarray, k: int, sts: dict | None, pairs: Any = None) -> dict:
    """The student, the INT8 teacher and the first-k-layer cut as points of quality kept vs speed-up (see the module
    docstring). ``t_emb`` / ``s_emb``: the teacher's and the student's own held-out vectors (mean pooling);
    ``sts``: the quality stage's STS result (teacher and student Spearman) and ``pairs`` its pairs, or None."""
    from bortfast.data.teacher import model_pooling
    from bortfast.evaluation import sts_spearman
    from bortfast.export.onnx import quantize_int8, to_onnx
    from bortfast.models.config import load_config
    from bortfast.runtime import Encoder

    t0 = time.perf_counter()
    work = out / "work" / "references"
    work.mkdir(parents=True, exist_ok=True)
    teacher_dir = Path(st["export"]["teacher_encoder"])
    teacher_fp32 = out / "work" / "bench" / "teacher_fp32.onnx"  # the bench stage's export of the same encoder
    if not teacher_fp32.is_file():
        teacher_fp32 = Path(to_onnx(teacher_dir, work / "teacher_fp32.onnx", encoder_only=True).out_path)
    student_fp32 = out / "work" / "bench" / "student_fp32.onnx"
    if not student_fp32.is_file():
        student_fp32 = Path(to_onnx(st["export"]["student_encoder"], work / "student_fp32.onnx",
                                    encoder_only=True).out_path)
    files = {"teacher_int8": quantize_int8(teacher_fp32, work / "teacher_int8.onnx")}
    depth = load_config(out / "student").num_hidden_layers
    teacher_layers = load_config(teacher_dir).num_hidden_layers
    if depth < teacher_layers:
        cut_dir = cut_teacher(teacher_dir, depth, work / f"cut{depth}")
        files["cut"] = Path(to_onnx(cut_dir, work / f"cut{depth}.onnx", encoder_only=True).out_path)

    pooling = model_pooling(cfg.teacher)
    points = [{"name": "student", "label": "student ξ*", "heldout": _heldout(s_emb, t_emb, k)}]
    for name, path in files.items():
        encoder = Encoder(path, tokenizer=teacher_dir, threads=cfg.threads, max_length=cfg.seq_len)
        point: dict[str, Any] = {"name": name, "file": str(path),
                                 "label": "teacher INT8" if name == "teacher_int8" else f"first-{depth}-layer cut",
                                 "heldout": _heldout(encoder.encode(sentences, pooling="mean", normalize=False),
                                                     t_emb, k)}
        if name == "cut":
            point["layers"] = depth
        if sts is not None:
            point["sts"] = sts_spearman(lambda texts, e=encoder: e.encode(list(texts), pooling=pooling,
                                                                           normalize=False), pairs)
        points.append(point)
    if sts is not None:
        points[0]["sts"] = sts["student"]
    for p in points:
        p["kept"] = p["sts"] / sts["teacher"] if sts is not None else p["heldout"][f"recall@{k}"]
    timing = _time_b1(cfg, {"teacher_fp32": teacher_fp32, "student": student_fp32, **files})
    for p in points:
        p["median_ms"] = timing[p["name"]]
        p["speedup"] = timing["teacher_fp32"] / timing[p["name"]]
    return {"points": points, "teacher_fp32_ms": timing["teacher_fp32"], "busy": timing["busy"],
            "kept_measure": "STS Spearman / the teacher's" if sts is not None
            else f"recall@{k} of the teacher's own top-{k} neighbours on the held-out lines",
            "speed": f"ONNX Runtime fp32 teacher / point, B=1, L={cfg.seq_len}, {cfg.threads} thread(s), each engine "
                     f"in its own process, rounds alternating", "seconds": time.perf_counter() - t0}


def _time_b1(cfg: RunConfig, files: dict[str, Path]) -> dict[str, Any]:
    """Median ms of each ONNX file at B=1, L=seq_len, each in its own worker process, rounds alternating (and
    ``busy``: whether other processes loaded the machine meanwhile)."""
    from bortfast.profile.timing import Engine, TimingConfig, fixed_feed, ort_session_engine, time_engines
    from bortfast.runtime import Encoder

    vocab = int(Encoder(files["student"]).meta.get("bortfast.vocab_size", 1000))
    feed = fixed_feed(vocab, 1, cfg.seq_len, cfg.seed + 1)
    engines = [Engine(name, str(path), ort_session_engine,
                      {"path": str(path), "feed": feed, "threads": cfg.threads}) for name, path in files.items()]
    got = time_engines(engines, TimingConfig(rounds=cfg.bench.rounds, min_samples=20), progress=False)
    return {**{name: t.median_ms for name, t in got["timings"].items()}, "busy": bool(got["load"]["busy"])}
