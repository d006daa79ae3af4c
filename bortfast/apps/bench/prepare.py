"""The models a speed-up run times: random-weight ones saved when no directory is given, their ONNX exports (fp32
and INT8) and their FLOP counts (closed form and counted by ``torch.utils.flop_counter``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bortfast.apps.bench.config import BERT_BASE, BERT_LARGE, BORT, Models, SpeedupConfig, log_progress
from bortfast.space import Arch, PerLayerArch


def _save_random(arch: Arch, path: Path, tokenizer: Any | None, seed: int) -> Path:
    import torch
    from transformers import BertModel

    torch.manual_seed(seed)
    BertModel(arch.to_bert_config()).save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


def _load_hf_tokenizer(spec: str | None) -> Any | None:
    if spec is None:
        return None
    from transformers import AutoTokenizer, BertTokenizerFast

    path = Path(spec)
    if path.is_file() and path.suffix == ".txt":
        tok = BertTokenizerFast(vocab=str(path))  # transformers 5: `vocab`, not `vocab_file`
    elif path.is_file() and path.suffix == ".json":
        tok = BertTokenizerFast(tokenizer_file=str(path))
    elif path.is_dir():
        tok = AutoTokenizer.from_pretrained(path)
    else:
        raise FileNotFoundError(f"tokenizer {spec!r} is not a vocab.txt, a tokenizer.json or a directory")
    if len(tok) <= len(tok.all_special_tokens):
        raise ValueError(f"tokenizer {spec!r} loaded with only {len(tok)} tokens: not a usable vocabulary")
    return tok


def _arch_of(model_dir: str | Path) -> Arch | PerLayerArch:
    """The model's shape: a per-layer student's PerLayerArch (its config's ``bortfast_per_layer``), else the Arch."""
    from bortfast.models.config import load_config

    config = load_config(Path(model_dir))
    return PerLayerArch.from_config(config) or Arch.from_config(config)


def arch_json(arch: Arch | PerLayerArch) -> tuple[int, ...] | str:
    """``speedup.json``'s name of a shape: (D, A, H, I), or a per-layer student's spec."""
    return arch.spec if isinstance(arch, PerLayerArch) else arch.tuple


def full_model_flops(model: Any, batch: int, seq_len: int) -> int:
    """FLOPs of one forward of a torch model as counted by ``torch.utils.flop_counter`` (every matmul, incl. the
    pooler/head; a multiply-add is 2 FLOPs like :meth:`Arch.flops`)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.ones((batch, seq_len), dtype=torch.long)
    counter = FlopCounterMode(display=False)
    # the counter does not see inside the CPU SDPA kernel: count with the eager (matmul + softmax) attention
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with counter, torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
    finally:
        model.set_attn_implementation(previous)
    return int(counter.get_total_flops())


def prepare_models(cfg: SpeedupConfig, work: Path) -> Models:
    """The student and teacher directories (random-weight Bort / BERT-base saved under ``work`` when not given)."""
    hf_tokenizer = _load_hf_tokenizer(cfg.tokenizer)
    student_dir = Path(cfg.student_dir) if cfg.student_dir else None
    teacher_dir = Path(cfg.teacher_dir) if cfg.teacher_dir else None
    if student_dir is None:
        log_progress(cfg, f"building random-weight student {BORT}")
        student_dir = _save_random(BORT, work / "student", hf_tokenizer, cfg.seed)
    if teacher_dir is None:
        log_progress(cfg, f"building random-weight BERT-base {BERT_BASE}")
        teacher_dir = _save_random(BERT_BASE, work / "teacher", hf_tokenizer, cfg.seed + 1)
    large_dir, large_arch = None, None
    if cfg.include_large:
        large_dir = Path(cfg.large_dir) if cfg.large_dir else None
        large_arch = _arch_of(large_dir) if large_dir else BERT_LARGE
    return Models(student_dir=student_dir, teacher_dir=teacher_dir, student_arch=_arch_of(student_dir),
                  teacher_arch=_arch_of(teacher_dir), base_label="BERT-base" if cfg.teacher_dir is None else "teacher",
                  large_dir=large_dir, large_arch=large_arch,
                  encoders=not (_is_classifier(student_dir) and _is_classifier(teacher_dir)))


def _is_classifier(model_dir: Path) -> bool:
    """A sequence classifier (its head is part of what it deploys); anything else is timed as its encoder."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def export_models(cfg: SpeedupConfig, models: Models, work: Path) -> None:
    from bortfast.export.onnx import to_onnx

    for key, model_dir, quant in (("student_fp32", models.student_dir, None),
                                  ("student_int8", models.student_dir, "int8"),
                                  ("teacher_fp32", models.teacher_dir, None)):
        log_progress(cfg, f"exporting {key} from {model_dir}")
        models.onnx[key] = work / f"{key}.onnx"
        models.exports[key] = to_onnx(model_dir, models.onnx[key], quantize=quant, encoder_only=models.encoders)


def flop_counts(cfg: SpeedupConfig, models: Models) -> dict[str, Any]:
    """FLOP ratios teacher / student: the encoder closed form and full-model counts (B=1, the fixed length)."""
    import transformers

    from bortfast.models.config import is_per_layer
    from bortfast.models.perlayer import load_student

    def counted(model_dir: Path) -> int:
        config = transformers.AutoConfig.from_pretrained(model_dir)
        if is_per_layer(config):  # layer widths differ: only bortfast's loader builds the model
            return full_model_flops(load_student(model_dir).eval(), 1, cfg.seq_len)
        name = (config.architectures or ["BertModel"])[0]
        model = getattr(transformers, name).from_pretrained(model_dir).eval()
        return full_model_flops(model, 1, cfg.seq_len)

    flops: dict[str, Any] = {
        "encoder_formula": {"teacher": models.teacher_arch.flops(1, cfg.seq_len),
                            "student": models.student_arch.flops(1, cfg.seq_len)},
        "full_model_counted": {"teacher": counted(models.teacher_dir), "student": counted(models.student_dir)},
    }
    for entry in flops.values():
        entry["ratio"] = entry["teacher"] / entry["student"]
    if models.large_arch is not None:
        flops["encoder_formula"]["large"] = models.large_arch.flops(1, cfg.seq_len)
    return flops
