"""The pipeline's stages (DESIGN.md §2): each ``stage(cfg, out, outputs) -> dict`` reads the outputs of the
stages before it and writes its files into the run directory; :data:`STAGE_FUNCS` maps stage names to them."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bortfast._base.io import atomic_dir, atomic_open
from bortfast.pipeline.config import RunConfig
from bortfast.pipeline.quality import _heldout_sentences, _stage_quality
from bortfast.pipeline.report import render_summary, write_run_card
from bortfast.space import Arch, PerLayerArch


def log(cfg: RunConfig, msg: str) -> None:
    if cfg.progress:
        print(f"[bortfast run] {msg}", flush=True)


def _copytree_atomic(src: Path, dst: Path) -> None:
    """Copy a directory into place via a temp sibling and a rename, so ``dst`` is never half-written."""
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)



def _stage_corpus(cfg: RunConfig, out: Path, st: dict) -> dict:
    if cfg.corpus:
        for path in cfg.corpus:
            if not path.startswith("hf:") and not Path(path).exists():
                raise FileNotFoundError(f"corpus path {path!r} does not exist")
        res = {"paths": list(cfg.corpus), "description": f"user corpus: {', '.join(cfg.corpus)}"}
    else:
        from bortfast.data.stdlib import write_stdlib_corpus

        path = out / "corpus" / "stdlib_docstrings.txt"
        info = write_stdlib_corpus(path)
        res = {"paths": [str(path)], "description": f"embedded default: {info['source']}, "
               f"{info['paragraphs']} paragraphs, {info['characters']} characters", **info}
    heldout = out / "corpus" / "heldout.txt"  # never trained on: search and distillation exclude these lines
    with atomic_open(heldout) as f:
        f.write("\n".join(_tail_lines(res["paths"], cfg.bench.sentences)) + "\n")
    return {**res, "heldout": str(heldout)}


def _tail_lines(paths: list[str], n: int) -> list[str]:
    """The last ``n`` distinct lines of 5 or more words of the (file) corpus: the held-out text."""
    lines: list[str] = []
    for path in paths:
        if path.startswith("hf:"):
            continue
        p = Path(path)
        for f in (sorted(p.rglob("*.txt")) if p.is_dir() else [p]):
            lines.extend(line.strip() for line in f.read_text(encoding="utf-8", errors="replace").splitlines()
                         if len(line.split()) >= 5)
    lines = list(dict.fromkeys(lines))
    if not lines:
        raise ValueError("the corpus has no line of 5 or more words to hold out for evaluation")
    return lines[-n:]


def _stage_search(cfg: RunConfig, out: Path, st: dict) -> dict:
    from bortfast.apps.extract import extract

    search_dir = out / "search"
    # SearchStage's fields are SearchConfig's, except the three that are no SearchConfig field
    settings = {k: v for k, v in dataclasses.asdict(cfg.search).items()
                if k not in ("space", "lrs", "engine_check", "by_w")}
    if cfg.search.by_w:  # W's argmax: no budget
        settings.update(max_latency=None, min_speedup=None, max_error=None)
    result = extract(
        cfg.teacher, st["corpus"]["paths"], cfg.search.space, out_dir=search_dir,
        thetas=tuple({"lr": lr} for lr in cfg.search.lrs), seq_len=cfg.seq_len, threads=cfg.threads, seed=cfg.seed,
        max_blocks=cfg.max_blocks, progress=cfg.progress, init=cfg.init, exclude_file=st["corpus"]["heldout"],
        unit=cfg.distill.unit,  # ê learns from what the final distillation trains on
        check=_engine_check(cfg, out), **settings,
    )
    for name in ("search.json", "pareto.png"):
        shutil.copyfile(search_dir / name, out / f".{name}.tmp")
        os.replace(out / f".{name}.tmp", out / name)
    best = result.candidates[result.best]
    per_layer = isinstance(best.arch, PerLayerArch)  # ξ* as DistillConfig.arch: "D,A,H,I" or "H=..;d=..;A=..;I=.."
    return {"arch": best.arch.spec if per_layer else ",".join(str(v) for v in best.arch.tuple),
            **({"teacher_layers": best.teacher_layers} if per_layer else {}), "params": best.params,
            "latency": best.latency, "latency_unit": result.latency_unit, "error": best.error, "W": best.w,
            "theta": result.best_theta, "trainings": result.trainings, "selection": result.selection,
            "error_param_spearman": result.error_param_spearman}


def _engine_check(cfg: RunConfig, out: Path) -> Any:
    """The deployment-engine check of a latency budget's finalists (None: no budget, or switched off). With FLOPs
    as î only the speed-up floor is checked: a budget in FLOPs has no ms to compare with."""
    s = cfg.search
    flops = s.latency != "kernel"
    if not s.engine_check or s.by_w or s.min_speedup is None and (flops or s.max_latency is None):
        return None
    from transformers import AutoConfig

    from bortfast.apps.engine_check import OrtSpeedCheck

    teacher_arch = Arch.from_config(AutoConfig.from_pretrained(cfg.teacher))
    return OrtSpeedCheck(teacher_arch, out / "work" / "engine-check", seq_len=cfg.seq_len, threads=cfg.threads,
                         seed=cfg.seed, check_latency=not flops)


def _stage_distill(cfg: RunConfig, out: Path, st: dict) -> dict:
    from bortfast.data.teacher import teacher_kind
    from bortfast.distill import DistillConfig, distill

    d = cfg.distill  # DistillStage's fields are DistillConfig's ("auto" and the recipe's None resolved)
    dcfg = DistillConfig(
        teacher=cfg.teacher, corpus=st["corpus"]["paths"], arch=st["search"]["arch"], out_dir=str(out / "distill"),
        **{**d.resolved(teacher_kind(cfg.teacher)), "seq_len": d.seq_len or cfg.seq_len},
        max_blocks=cfg.max_blocks, seed=cfg.seed, eval_every=max(1, d.steps // 4),
        checkpoint_every=max(1, d.steps // 4), progress=cfg.progress, init=cfg.init,
        exclude_file=st["corpus"]["heldout"], teacher_layers=st["search"].get("teacher_layers"),
    )  # a per-layer ξ* is cut from the teacher layers the search chose for it (None: a uniform ξ*, by rule)
    final = distill(dcfg)
    _copytree_atomic(final, out / "student")
    return {"student_dir": str(out / "student"), "arch": st["search"]["arch"], "unit": dcfg.unit,
            "batch_size": dcfg.batch_size, "lr": dcfg.lr}


def _stage_finetune(cfg: RunConfig, out: Path, st: dict) -> dict:
    f = cfg.finetune
    if f.task is None:
        return {"skipped": True}
    from bortfast.finetune.config import FinetuneConfig, TaskDistillConfig
    from bortfast.finetune.task_distill import distill_task, is_finetuned
    from bortfast.finetune.train import finetune

    if is_finetuned(cfg.teacher):  # a fine-tuned teacher: distil ξ* from it on the task (encoder and head)
        result = distill_task(TaskDistillConfig(
            task=f.task, data=f.task_data, teacher=cfg.teacher, arch=st["search"]["arch"],
            out_dir=str(out / "finetuned"), epochs=f.epochs, max_train_examples=f.max_train,
            lr=f.lr, seed=cfg.seed, progress=cfg.progress))
        return {"skipped": False, "task": f.task, "method": "task_distill", "result": result}
    result = finetune(out / "student", f.task, f.task_data, out / "finetuned",
                      FinetuneConfig(epochs=f.epochs, max_train_examples=f.max_train, learning_rate=f.lr,
                                     heldout_fraction=f.heldout_fraction, seed=cfg.seed, progress=cfg.progress))
    return {"skipped": False, "task": f.task, "method": "finetune", "result": result}


def _save_encoder(model: Any, tokenizer: Any, path: Path) -> None:
    from bortfast.models import ship_model_code

    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)
        ship_model_code(tmp)
        tokenizer.save_pretrained(tmp)


def _stage_export(cfg: RunConfig, out: Path, st: dict) -> dict:
    from transformers import AutoTokenizer

    from bortfast.data.teacher import load_teacher
    from bortfast.export.onnx import to_onnx
    from bortfast.models.perlayer import load_student

    teacher_space = _ship_teacher_space(out) if cfg.export.teacher_space else None
    # The deployed artefact is the student's encoder (BertModel): the MLM head is only for pretraining.
    work = out / "work"
    student_encoder = work / "student_encoder"
    _save_encoder(load_student(out / "student", "BertModel", add_pooling_layer=False),
                  AutoTokenizer.from_pretrained(out / "student"), student_encoder)
    teacher = load_teacher(cfg.teacher)
    teacher_encoder = work / "teacher_encoder"
    _save_encoder(teacher.model.base_model, teacher.tokenizer, teacher_encoder)
    # from the student directory itself: its sentence-transformers modules give the files' pooling and normalisation
    reports = {
        "fp32": to_onnx(out / "student", out / "model.onnx", encoder_only=True),
        "int8": to_onnx(out / "student", out / "model.int8.onnx", quantize="int8", encoder_only=True),
    }
    # sentence-transformers' ONNX backend reads onnx/model.onnx inside the model folder
    from bortfast.export.st_onnx import quantized_file_name, write_sentence_transformers_onnx

    write_sentence_transformers_onnx(out / "student", out / "model.onnx")
    write_sentence_transformers_onnx(out / "student", out / "model.int8.onnx", file_name=quantized_file_name())
    return {"student_encoder": str(student_encoder), "teacher_encoder": str(teacher_encoder),
            **{k: dataclasses.asdict(r) for k, r in reports.items()},
            **({"teacher_space": teacher_space} if teacher_space is not None else {})}


def _ship_teacher_space(out: Path) -> dict:
    """--teacher-space: the distillation's projection H_s → H_t as the student's Dense module (after Pooling, before
    Normalize: :mod:`bortfast.export.dense`), so ``SentenceTransformer(student)`` and ``model.onnx`` (through
    :class:`bortfast.runtime.Encoder`) emit vectors in the teacher's space."""
    projection = out / "student" / "projection.safetensors"
    if not projection.is_file():
        return {"applied": False, "reason": "the student has no projection (distilled at the teacher's width, whose "
                                            "vectors it learned directly, or from a masked-LM teacher)"}
    from safetensors.numpy import load_file

    from bortfast.export.dense import write_dense_module

    weights = load_file(str(projection))
    dense = write_dense_module(out / "student", weights["weight"], weights.get("bias"))
    return {"applied": True, "module": "student/2_Dense", "in_features": dense.in_features,
            "out_features": dense.out_features}


def _stage_bench(cfg: RunConfig, out: Path, st: dict) -> dict:
    from bortfast.apps.bench import SpeedupConfig, run_speedup

    sentences = _heldout_sentences(cfg, st)
    result = run_speedup(SpeedupConfig(
        out_dir=str(out), student_dir=st["export"]["student_encoder"], teacher_dir=st["export"]["teacher_encoder"],
        include_large=False, sentences=sentences, threads=cfg.threads, rounds=cfg.bench.rounds,
        seq_len=cfg.seq_len, seed=cfg.seed, work_dir=str(out / "work" / "bench"), progress=cfg.progress,
    ))
    precision = _precision_choice(cfg, out, st, result, sentences)
    return {"speedup_json": str(out / "speedup.json"), "summary": _bench_headline(result), "precision": precision,
            "busy": result["busy"]}


def _precision_choice(cfg: RunConfig, out: Path, st: dict, result: dict, sentences: list[str]) -> dict:
    """Which file to deploy: INT8 only when the bench's isolated B=1 timing shows it faster than fp32 and it agrees
    with fp32 on the held-out sentences (pooled cosine); both figures recorded (issue 15.4)."""
    from bortfast.export.precision import PrecisionConfig, decide, output_agreement, sample_batches

    config = PrecisionConfig(threads=cfg.threads, seq_len=cfg.seq_len)
    b0 = result["config"]["batch_sizes"][0]
    rows = {r["engine"].split()[2]: r for r in result["fixed"]
            if r["batch"] == b0 and r["engine"].startswith("ORT student")}  # "ORT student fp32 <...>"
    speedup = rows["fp32"]["median_ms"] / rows["int8"]["median_ms"]
    batches, sample = sample_batches(Path(st["export"]["student_encoder"]), sentences[:256], config)
    metric, agreement = output_agreement(out / "model.onnx", out / "model.int8.onnx", batches)
    chosen, reason = decide(speedup, agreement, config)
    return {"chosen": chosen, "file": "model.int8.onnx" if chosen == "int8" else "model.onnx", "reason": reason,
            "batch": b0, "int8_speedup": speedup, "agreement_metric": metric, "agreement": agreement,
            "sample": sample, "fp32": {k: rows["fp32"][k] for k in ("median_ms", "min_ms", "max_ms", "n")},
            "int8": {k: rows["int8"][k] for k in ("median_ms", "min_ms", "max_ms", "n")}}


def _bench_headline(result: dict) -> dict:
    """The speed-ups the summary shows (student over the teacher in PyTorch, per batch size and end to end; INT8
    over fp32 at the first batch size)."""
    headline = {k: v for k, v in result["speedups"].items() if isinstance(v, (int, float))}
    b0 = result["config"]["batch_sizes"][0]
    if f"student_int8_vs_torch_teacher_b{b0}" in headline:
        headline[f"student_int8_vs_student_fp32_b{b0}"] = (headline[f"student_int8_vs_torch_teacher_b{b0}"]
                                                          / headline[f"student_fp32_vs_torch_teacher_b{b0}"])
    return headline


def _stage_summary(cfg: RunConfig, out: Path, st: dict) -> dict:
    search = json.loads((out / "search.json").read_text(encoding="utf-8"))
    md = render_summary(cfg, st, search)
    with atomic_open(out / "summary.md") as f:
        f.write(md)
    card = write_run_card(cfg, out, st)
    return {"summary_md": str(out / "summary.md"), "model_card": str(card)}



STAGE_FUNCS: dict[str, Callable[[RunConfig, Path, dict], dict]] = {
    "corpus": _stage_corpus, "search": _stage_search, "distill": _stage_distill, "finetune": _stage_finetune,
    "export": _stage_export, "bench": _stage_bench, "quality": _stage_quality, "summary": _stage_summary,
}


