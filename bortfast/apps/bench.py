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
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortfast._base.checks import check_int, check_positive_ints
from bortfast._base.io import atomic_path, write_json
from bortfast.profile.timing import (
    DEFAULT_ORT_SPINNING,
    Engine,
    TimingConfig,
    fixed_feed,
    ort_session_engine,
    time_engines,
    torch_model_engine,
)
from bortfast.space import Arch, PerLayerArch

BORT = Arch(4, 8, 1024, 768)
BERT_BASE = Arch(12, 12, 768, 3072)
BERT_LARGE = Arch(24, 16, 1024, 4096)

# The paper's claims and this benchmark's pass marks.
TARGETS = {
    "int8_vs_torch_base_b1": 8.0,  # deployed student (INT8) vs HF PyTorch BERT-base, B=1
    "int8_vs_torch_large_b1": 20.0,  # ... vs HF PyTorch BERT-large, B=1
    "fp32_vs_torch_base_b1": 5.0,  # deployed student (fp32) vs HF PyTorch BERT-base, B=1
    "same_engine_vs_flop_ratio": 0.95,  # (ORT BERT-base / ORT student latency) / FLOP ratio
}


@dataclass
class SpeedupConfig:
    """Settings of one :func:`run_speedup` run."""

    out_dir: str = field(metadata={"flag": "out", "help": "output directory for speedup.json and speedup.png"})
    student_dir: str | None = field(default=None, metadata={
        "flag": "student", "help": "deployed model directory (default: random-weight Bort <4,8,1024,768>)"})
    teacher_dir: str | None = field(default=None, metadata={
        "flag": "teacher", "help": "baseline model directory (default: random-weight BERT-base)"})
    large_dir: str | None = field(default=None, metadata={
        "flag": "large", "help": "second baseline directory (default: random-weight BERT-large)"})
    include_large: bool = field(default=True, metadata={  # time the BERT-large baseline (fixed shape only)
        "flag": "no-large", "help": "skip the BERT-large baseline"})
    tokenizer: str | None = field(default=None, metadata={  # for random models' end-to-end run
        "help": "vocab.txt / tokenizer.json / directory for random models (end to end)"})
    sentences: list[str] | None = field(default=None, metadata={"cli": False})  # end-to-end inputs (None: skip c)
    batch_sizes: tuple[int, ...] = field(default=(1, 8), metadata={
        "help": "fixed-shape batch sizes (sequences per call), space-separated"})
    seq_len: int = field(default=128, metadata={"help": "fixed-shape sequence length (tokens)"})
    threads: int = field(default=2, metadata={  # torch.set_num_threads and ORT intra_op_num_threads
        "help": "the command's thread budget: torch threads and ONNX Runtime intra-op threads of every timed "
                "engine (each in its own worker) and of the export"})
    rounds: int = field(default=10, metadata={"help": "at least this many alternating timing rounds (fixed shape)"})
    min_samples: int = field(default=30, metadata={"help": "timed calls per engine, at least (fixed shape)"})
    warmup: int = 3  # untimed calls per engine before the rounds (torch's first calls are slow)
    e2e_rounds: int = 3  # alternating rounds over all sentences (one timed pass each)
    e2e_batch_size: int = 32
    spinning: bool = field(default=DEFAULT_ORT_SPINNING, metadata={  # ORT idle spinning (the runtime's default)
        "help": "let ONNX Runtime's idle threads spin (default off, as in bortfast.runtime)"})
    seed: int = 0
    work_dir: str | None = field(default=None, metadata={  # where exported ONNX files go (default: a temp dir)
        "help": "keep the exported ONNX files here (default: a temporary directory)"})
    progress: bool = field(default=True, metadata={"help": "no progress bars or stage messages"})

    def __post_init__(self) -> None:
        check_positive_ints(self, ("seq_len", "threads", "rounds", "min_samples", "e2e_rounds", "e2e_batch_size"),
                            "SpeedupConfig.")
        check_int("SpeedupConfig.warmup", self.warmup, 0)
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise ValueError(f"SpeedupConfig.batch_sizes must be positive ints, got {self.batch_sizes!r}")
        self.batch_sizes = tuple(int(b) for b in self.batch_sizes)
        if self.sentences is not None and not self.sentences:
            raise ValueError("SpeedupConfig.sentences is an empty list: pass None to skip the end-to-end part")

    def timing(self) -> TimingConfig:
        """The isolated-timing settings of the fixed-shape part."""
        return TimingConfig(rounds=self.rounds, min_samples=self.min_samples, warmup=self.warmup)

    def e2e_timing(self) -> TimingConfig:
        """End to end: one pass over all sentences per turn (they last seconds), ``e2e_rounds`` of them."""
        return TimingConfig(rounds=self.e2e_rounds, min_samples=self.e2e_rounds, warmup=1, turn_seconds=1e-9,
                            max_calls_per_turn=1)


@dataclass
class Models:
    """The models of one run: directories (saved random ones when none were given) and their architectures."""

    student_dir: Path
    teacher_dir: Path
    student_arch: Arch | PerLayerArch
    teacher_arch: Arch | PerLayerArch
    base_label: str  # "BERT-base" for the random default, else "teacher" (never "BERT-base" for another model)
    large_dir: Path | None  # BERT-large checkpoint, or None for a random one (when include_large)
    large_arch: Arch | None
    encoders: bool = True  # time the encoders (BertModel) of both; False: two sequence classifiers, heads included
    exports: dict[str, Any] = field(default_factory=dict)  # key -> ExportReport
    onnx: dict[str, Path] = field(default_factory=dict)  # key -> exported file

    @property
    def baseline_key(self) -> str:
        """The baseline in speed-up keys: ``torch_base`` for BERT-base, ``torch_teacher`` for the user's teacher."""
        return "torch_base" if self.base_label == "BERT-base" else "torch_teacher"

    @property
    def paper_baseline(self) -> bool:
        """Whether the baseline is BERT-base's shape, so the paper's targets apply to the speed-ups."""
        return isinstance(self.teacher_arch, Arch) and self.teacher_arch.tuple == BERT_BASE.tuple

    def names(self) -> dict[str, str]:
        return {
            "torch_base": f"torch {self.base_label} fp32 {self.teacher_arch}",
            "torch_large": f"torch BERT-large fp32 {self.large_arch}",
            "student_fp32": f"ORT student fp32 {self.student_arch}",
            "student_int8": f"ORT student int8 {self.student_arch}",
            "teacher_fp32": f"ORT {self.base_label} fp32 {self.teacher_arch}",
        }


def _warn_if_busy(load: dict[str, Any], what: str) -> None:
    """Say on the console, whatever the progress setting, that a timing ran on a busy machine."""
    if load["busy"]:
        print(f"[bortfast bench] warning: the machine was busy while timing {what} (other processes kept "
              f"{load['other_cores']} core(s) busy, {100 * load['steal_fraction']:.1f}% CPU stolen): its figures are "
              f"marked busy and are not a quiet measurement", file=sys.stderr, flush=True)


def _log(cfg: SpeedupConfig, msg: str) -> None:
    if cfg.progress:
        print(f"[bortfast bench] {msg}", flush=True)


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


def _arch_json(arch: Arch | PerLayerArch) -> tuple[int, ...] | str:
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

def run_speedup(config: SpeedupConfig | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); returns the result written to ``speedup.json``.

    Pass a :class:`SpeedupConfig` or its fields as keyword arguments. Every engine is timed in its own worker
    process (:mod:`bortfast.profile.timing`); torch in this process (export, FLOP counts) runs on ``threads``
    threads for the call and the caller's thread count is restored afterwards.
    """
    from bortfast._base.state import torch_threads

    cfg = config if config is not None else SpeedupConfig(**kwargs)
    with torch_threads(cfg.threads):
        return _run_speedup(cfg)


def _run_speedup(cfg: SpeedupConfig) -> dict[str, Any]:
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="bortfast-bench-") if cfg.work_dir is None else None
    work = Path(cfg.work_dir) if cfg.work_dir is not None else Path(tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    try:
        models = _prepare_models(cfg, work)
        _export_models(cfg, models, work)
        flops = _flop_counts(cfg, models)
        fixed_rows, speedups = _time_fixed_shapes(cfg, models)
        same_engine = _same_engine_ratios(cfg, models, fixed_rows, flops)
        e2e_rows = _time_end_to_end(cfg, models, speedups) if cfg.sentences is not None else []
        result = {
            "claim": "Bort <4,8,1024,768> is 7.9x faster than BERT-base and 20x faster than BERT-large on a CPU "
                     "(de Wynter & Perry 2020, §5)",
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "baseline": f"{models.base_label} {models.teacher_arch}",
            "machine": _machine(cfg, load_before),
            "timing": {"method": "each engine in its own worker process, turns alternating across engines "
                                 "(bortfast.profile.timing)", "fixed": asdict(cfg.timing()),
                       "e2e": asdict(cfg.e2e_timing())},
            "config": {k: v for k, v in cfg.__dict__.items() if k != "sentences"} |
                      {"sentences": None if cfg.sentences is None else len(cfg.sentences)},
            "archs": {"student": _arch_json(models.student_arch), "teacher": _arch_json(models.teacher_arch),
                      "large": models.large_arch.tuple if models.large_arch else None},
            "exports": {k: {"fused_ops": r.fused_ops, "fusion_complete": r.fusion_complete,
                            "parity_max_abs_diff": r.parity_max_abs_diff, "parity_cosine": r.parity_cosine,
                            "file_bytes": r.file_bytes} for k, r in models.exports.items()},
            "fixed": fixed_rows,
            "speedups": speedups,
            "flops": flops,
            "same_engine": same_engine,
            "e2e": e2e_rows,
            "baseline_key": models.baseline_key,
            "compared": "encoders (last hidden states, no task or MLM head)" if models.encoders else
                        "the models' own heads",
            "targets": _targets(cfg, speedups, same_engine) if models.paper_baseline else {},
            "busy": any(r["load"]["busy"] for r in fixed_rows + e2e_rows),
            "seconds": time.perf_counter() - t_start,
        }
        write_json(out_dir / "speedup.json", result)
        plot_speedup(result, out_dir / "speedup.png")
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def _prepare_models(cfg: SpeedupConfig, work: Path) -> Models:
    """The student and teacher directories (random-weight Bort / BERT-base saved under ``work`` when not given)."""
    hf_tokenizer = _load_hf_tokenizer(cfg.tokenizer)
    student_dir = Path(cfg.student_dir) if cfg.student_dir else None
    teacher_dir = Path(cfg.teacher_dir) if cfg.teacher_dir else None
    if student_dir is None:
        _log(cfg, f"building random-weight student {BORT}")
        student_dir = _save_random(BORT, work / "student", hf_tokenizer, cfg.seed)
    if teacher_dir is None:
        _log(cfg, f"building random-weight BERT-base {BERT_BASE}")
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


def _export_models(cfg: SpeedupConfig, models: Models, work: Path) -> None:
    from bortfast.export.onnx import to_onnx

    for key, model_dir, quant in (("student_fp32", models.student_dir, None),
                                  ("student_int8", models.student_dir, "int8"),
                                  ("teacher_fp32", models.teacher_dir, None)):
        _log(cfg, f"exporting {key} from {model_dir}")
        models.onnx[key] = work / f"{key}.onnx"
        models.exports[key] = to_onnx(model_dir, models.onnx[key], quantize=quant, encoder_only=models.encoders)


def _flop_counts(cfg: SpeedupConfig, models: Models) -> dict[str, Any]:
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


def _fixed_engines(cfg: SpeedupConfig, models: Models, batch: int) -> list[Engine]:
    """The engines of one fixed shape, each to run in its own worker."""
    names = models.names()
    vocab = min(models.student_arch.vocab_size, models.teacher_arch.vocab_size)
    feed = fixed_feed(vocab, batch, cfg.seq_len, cfg.seed + batch)
    engines = [Engine(names["torch_base"], str(models.teacher_dir), torch_model_engine,
                      {"feed": feed, "threads": cfg.threads, "model_dir": str(models.teacher_dir),
                       "encoder_only": models.encoders})]
    if models.large_arch is not None:
        if models.large_dir is not None:
            spec: dict[str, Any] = {"model_dir": str(models.large_dir)}
        else:
            spec = {"config": models.large_arch.to_bert_config().to_dict(), "seed": cfg.seed + 2}
        engines.append(Engine(names["torch_large"], str(models.large_dir or f"random {models.large_arch}"),
                              torch_model_engine, {"feed": feed, "threads": cfg.threads, **spec}))
    for key in ("student_fp32", "student_int8", "teacher_fp32"):
        engines.append(Engine(names[key], str(models.onnx[key]), ort_session_engine,
                              {"path": str(models.onnx[key]), "feed": feed, "threads": cfg.threads,
                               "spinning": cfg.spinning}))
    return engines


def _time_fixed_shapes(cfg: SpeedupConfig, models: Models) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(a) every engine at each fixed shape, isolated; rows per engine and the speed-ups over torch."""
    names = models.names()
    rows: list[dict[str, Any]] = []
    speedups: dict[str, float] = {}
    for batch in cfg.batch_sizes:
        _log(cfg, f"fixed shape B={batch}, L={cfg.seq_len}, {cfg.threads} threads: each engine in its own "
                  f"process, >= {cfg.rounds} alternating rounds, >= {cfg.min_samples} samples")
        got = time_engines(_fixed_engines(cfg, models, batch), cfg.timing(), progress=cfg.progress)
        timings = got["timings"]
        _warn_if_busy(got["load"], f"fixed shape B={batch}")
        base = timings[names["torch_base"]]
        large = timings.get(names["torch_large"])
        for key in ("student_fp32", "student_int8", "teacher_fp32"):
            speedups[f"{key}_vs_{models.baseline_key}_b{batch}"] = base.median_ms / timings[names[key]].median_ms
            if large is not None:
                speedups[f"{key}_vs_torch_large_b{batch}"] = large.median_ms / timings[names[key]].median_ms
        for t in timings.values():
            rows.append(t.summary() | {
                "batch": batch, "seq_len": cfg.seq_len, "times_ms": t.samples_ms,
                "speedup_vs_baseline": base.median_ms / t.median_ms,
                "speedup_vs_baseline_min": base.min_ms / t.min_ms,
                "speedup_vs_torch_large": (large.median_ms / t.median_ms) if large is not None else None,
                "load": got["load"]})
        _log(cfg, ", ".join(f"{t.name}: {t.median_ms:.2f} ms (n={t.n})" for t in timings.values()))
    return rows, speedups


def _same_engine_ratios(cfg: SpeedupConfig, models: Models, rows: list[dict[str, Any]],
                        flops: dict[str, Any]) -> dict[str, Any]:
    """(b) ORT teacher / ORT student latency against the FLOP ratios, per batch size."""
    names = models.names()

    def median(name: str, batch: int) -> float:
        return next(r["median_ms"] for r in rows if r["engine"] == name and r["batch"] == batch)

    same_engine = {}
    for batch in cfg.batch_sizes:
        ratio = median(names["teacher_fp32"], batch) / median(names["student_fp32"], batch)
        same_engine[f"b{batch}"] = {"latency_ratio": ratio,
                                    "vs_encoder_flop_ratio": ratio / flops["encoder_formula"]["ratio"],
                                    "vs_full_model_flop_ratio": ratio / flops["full_model_counted"]["ratio"]}
    return same_engine


def _torch_e2e_engine(model_dir: str, sentences: list[str], batch_size: int, threads: int,
                      encoder_only: bool = False) -> Callable[[], Any]:
    """HF tokenizer + torch model (with ``encoder_only`` its encoder) in padded batches over all sentences (runs in a
    timing worker)."""
    import torch
    import transformers

    from bortfast.profile.timing import load_torch_model

    torch.set_num_threads(threads)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = load_torch_model(model_dir, encoder_only)
    max_len = model.config.max_position_embeddings

    def run() -> np.ndarray:
        outs = []
        with torch.inference_mode():
            for start in range(0, len(sentences), batch_size):
                batch = tok(sentences[start:start + batch_size], padding=True, truncation=True, max_length=max_len,
                            return_tensors="pt")
                out = model(**batch, return_dict=False)[0]
                outs.append((out if out.ndim == 2 else out[:, 0]).numpy())
        return np.concatenate(outs)

    return run


def _deployed_e2e_engine(onnx_path: str, sentences: list[str], batch_size: int, threads: int, spinning: bool,
                         classifier: bool) -> Callable[[], Any]:
    """:class:`bortfast.runtime.Encoder` / :class:`~bortfast.runtime.Classifier` over all sentences (runs in a
    timing worker)."""
    from bortfast.runtime import Classifier, Encoder

    if classifier:
        deployed = Classifier(onnx_path, threads=threads, batch_size=batch_size, spinning=spinning)
        return lambda: deployed.logits(sentences)
    encoder = Encoder(onnx_path, threads=threads, batch_size=batch_size, spinning=spinning)
    return lambda: encoder.encode(sentences)


def _time_end_to_end(cfg: SpeedupConfig, models: Models, speedups: dict[str, float]) -> list[dict[str, Any]]:
    """(c) all sentences, tokenization included: torch teacher vs the deployed student fp32 / INT8, isolated."""
    names = models.names()
    sentences = list(cfg.sentences or [])
    is_classifier = models.exports["student_fp32"].output_name == "logits"
    common = {"sentences": sentences, "batch_size": cfg.e2e_batch_size, "threads": cfg.threads}
    engines = [Engine(names["torch_base"], str(models.teacher_dir), _torch_e2e_engine,
                      {"model_dir": str(models.teacher_dir), "encoder_only": models.encoders, **common})]
    engines += [Engine(names[key], str(models.onnx[key]), _deployed_e2e_engine,
                       {"onnx_path": str(models.onnx[key]), "spinning": cfg.spinning, "classifier": is_classifier,
                        **common})
                for key in ("student_fp32", "student_int8")]
    _log(cfg, f"end to end: {len(sentences)} sentences, batch {cfg.e2e_batch_size}, {cfg.e2e_rounds} rounds")
    got = time_engines(engines, cfg.e2e_timing(), progress=cfg.progress,
                       outputs=[e.name for e in engines[1:]] if is_classifier else ())
    timings = got["timings"]
    _warn_if_busy(got["load"], "end to end")
    base = timings[names["torch_base"]].median_ms / 1e3
    rows = []
    for engine in engines:
        t = timings[engine.name]
        row = {"engine": t.name, "sentences": len(sentences), "median_s": t.median_ms / 1e3,
               "min_s": t.min_ms / 1e3, "max_s": t.max_ms / 1e3, "n": t.n, "pid": t.pid,
               "sentences_per_s": len(sentences) / (t.median_ms / 1e3),
               "speedup_vs_baseline": base / (t.median_ms / 1e3), "load": got["load"]}
        if is_classifier and engine.name in got["outputs"]:
            row["predictions"] = np.asarray(got["outputs"][engine.name]).argmax(1).tolist()
        rows.append(row)
    speedups[f"e2e_student_fp32_vs_{models.baseline_key}"] = rows[1]["speedup_vs_baseline"]
    speedups[f"e2e_student_int8_vs_{models.baseline_key}"] = rows[2]["speedup_vs_baseline"]
    return rows


def _targets(cfg: SpeedupConfig, speedups: dict[str, float], same_engine: dict[str, Any]) -> dict[str, Any]:
    b0 = cfg.batch_sizes[0]
    measured = {
        "int8_vs_torch_base_b1": speedups.get(f"student_int8_vs_torch_base_b{b0}"),
        "int8_vs_torch_large_b1": speedups.get(f"student_int8_vs_torch_large_b{b0}"),
        "fp32_vs_torch_base_b1": speedups.get(f"student_fp32_vs_torch_base_b{b0}"),
        "same_engine_vs_flop_ratio": same_engine[f"b{b0}"]["vs_encoder_flop_ratio"],
    }
    return {k: {"target": TARGETS[k], "measured": v, "met": (v is not None and v >= TARGETS[k]), "batch": b0}
            for k, v in measured.items()}


def _machine(cfg: SpeedupConfig, load_before: tuple[float, float, float]) -> dict[str, Any]:
    import onnxruntime as ort
    import torch
    import transformers

    from bortfast.profile.latency import cpu_model

    return {"platform": platform.platform(), "processor": cpu_model(), "cpu_count": os.cpu_count(),
            "threads": cfg.threads, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "torch": torch.__version__, "transformers": transformers.__version__, "onnxruntime": ort.__version__}


def plot_speedup(result: dict[str, Any], path: str | Path) -> None:
    """Bar chart: speed-up over the HF PyTorch baseline (BERT-base, or the teacher when given, named by its
    architecture) per engine and batch size (and end to end)."""
    from bortfast._base.plot import new_figure

    groups: dict[str, dict[str, float]] = {}
    for row in result["fixed"]:
        groups.setdefault(f"B={row['batch']}, L={row['seq_len']}", {})[row["engine"]] = row["speedup_vs_baseline"]
    for row in result["e2e"]:
        groups.setdefault(f"end to end ({row['sentences']} sent.)", {})[row["engine"]] = row["speedup_vs_baseline"]
    engines = list(dict.fromkeys(e for g in groups.values() for e in g))
    fig, ax = new_figure(figsize=(10, 4.8), dpi=100)
    width = 0.8 / max(1, len(engines))
    for j, engine in enumerate(engines):
        xs = [i + j * width for i, g in enumerate(groups.values()) if engine in g]
        ys = [g[engine] for g in groups.values() if engine in g]
        bars = ax.bar(xs, ys, width, label=engine)
        ax.bar_label(bars, fmt="%.1fx", fontsize=7)
    ax.axhline(7.9, color="grey", ls="--", lw=1)
    ax.text(len(groups) - 0.5, 7.9, "paper: 7.9x", va="bottom", ha="right", fontsize=8, color="grey")
    ax.set_xticks([i + width * (len(engines) - 1) / 2 for i in range(len(groups))], list(groups))
    ax.set_ylabel(f"speed-up over HF PyTorch {result.get('baseline', 'BERT-base')} (x)", fontsize=8)
    machine = result["machine"]
    ax.set_title(f"bortfast CPU speed-up, {machine['threads']} threads, {result['date_utc']} UTC "
                 f"(load avg {machine['loadavg_before'][0]:.1f})", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def read_sentences_tsv(path: str | Path, limit: int | None = None) -> list[str]:
    """The ``sentence`` column of a GLUE-style TSV with a header row."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or "sentence" not in lines[0].split("\t"):
        raise ValueError(f"{str(path)!r} has no 'sentence' column in its header row")
    col = lines[0].split("\t").index("sentence")
    sentences = [line.split("\t")[col].strip() for line in lines[1:] if line.strip()]
    if not sentences:
        raise ValueError(f"{str(path)!r} has no sentences")
    return sentences[:limit] if limit else sentences


def format_summary(result: dict[str, Any]) -> str:
    """A readable table of the fixed-shape and end-to-end results and the targets."""
    lines = [f"{'engine':44s} {'B':>3s} {'median ms':>10s} {'min':>8s} {'max':>8s} {'n':>4s} {'x base':>7s} "
             f"{'x large':>8s}"]
    for row in result["fixed"]:
        large = row["speedup_vs_torch_large"]
        lines.append(f"{row['engine']:44s} {row['batch']:3d} {row['median_ms']:10.2f} {row['min_ms']:8.2f} "
                     f"{row['max_ms']:8.2f} {row['n']:4d} {row['speedup_vs_baseline']:7.2f} "
                     f"{large if large is None else f'{large:8.2f}'}")
    for row in result["e2e"]:
        lines.append(f"{row['engine'] + ' (e2e)':44s} {'':3s} {row['median_s'] * 1e3:10.0f} "
                     f"{row['speedup_vs_baseline']:7.2f}")
    for key, entry in result["same_engine"].items():
        lines.append(f"same engine {key}: ORT base/student {entry['latency_ratio']:.2f} vs FLOP ratio "
                     f"{result['flops']['encoder_formula']['ratio']:.2f} (encoder) / "
                     f"{result['flops']['full_model_counted']['ratio']:.2f} (full model)")
    if result.get("busy"):
        lines.append("WARNING: timed while other processes loaded the machine (rows' load.busy): not quiet figures")
    if not result["targets"]:
        lines.append(f"baseline: {result['baseline']} (not BERT-base: the paper's targets do not apply)")
    for key, t in result["targets"].items():
        measured = "n/a" if t["measured"] is None else f"{t['measured']:.2f}"
        lines.append(f"target {key}: {measured} (target {t['target']}) {'met' if t['met'] else 'MISSED'}")
    return "\n".join(lines)
