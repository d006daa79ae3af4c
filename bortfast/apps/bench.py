"""The CPU speed-up benchmark behind the Bort paper's claim (de Wynter & Perry 2020, §5: Bort ⟨4, 8, 1024, 768⟩ is
7.9x faster than BERT-base and 20x faster than BERT-large on a CPU — hardware and settings unstated).

:func:`run_speedup` measures, in one process with interleaved rounds (every engine timed once per round, so load
changes on a shared machine hit all engines alike):

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

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortfast._base.io import atomic_path, write_json
from bortfast.space import Arch

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

    out_dir: str  # where speedup.json / speedup.png go
    student_dir: str | None = None  # deployed model (default: random-weight Bort <4,8,1024,768>)
    teacher_dir: str | None = None  # baseline (default: random-weight BERT-base)
    large_dir: str | None = None  # second baseline (default: random-weight BERT-large; see include_large)
    include_large: bool = True  # time the BERT-large baseline (fixed shape only)
    tokenizer: str | None = None  # vocab.txt / tokenizer.json / directory, for random models' end-to-end run
    sentences: list[str] | None = None  # end-to-end inputs (None: skip part c)
    batch_sizes: tuple[int, ...] = (1, 8)  # fixed-shape batch sizes
    seq_len: int = 128  # fixed-shape sequence length
    threads: int = 2  # torch.set_num_threads and ORT intra_op_num_threads
    rounds: int = 5  # interleaved timing rounds (fixed shape)
    warmup: int = 2  # untimed calls per case before the rounds (torch's first calls are slow)
    e2e_rounds: int = 1  # interleaved rounds over all sentences
    e2e_batch_size: int = 32
    seed: int = 0
    work_dir: str | None = None  # where exported ONNX files go (default: a temporary directory)
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("seq_len", "threads", "rounds", "e2e_rounds", "e2e_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SpeedupConfig.{name} must be a positive int, got {value!r}")
        if self.warmup < 0:
            raise ValueError(f"SpeedupConfig.warmup must be >= 0, got {self.warmup}")
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise ValueError(f"SpeedupConfig.batch_sizes must be positive ints, got {self.batch_sizes!r}")
        self.batch_sizes = tuple(int(b) for b in self.batch_sizes)
        if self.sentences is not None and not self.sentences:
            raise ValueError("SpeedupConfig.sentences is an empty list: pass None to skip the end-to-end part")


@dataclass
class Case:
    """One timed engine × input shape."""

    name: str  # engine, e.g. "torch BERT-base fp32"
    part: str  # "fixed" or "e2e"
    batch: int | None  # fixed-shape batch size (None for e2e)
    run: Callable[[], Any] = field(repr=False)
    times: list[float] = field(default_factory=list)
    last: Any = field(default=None, repr=False)  # the output of the last timed call

    @property
    def median(self) -> float:
        return statistics.median(self.times)


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


def _arch_of(model_dir: str | Path) -> Arch:
    from bortfast.export.onnx import _load_config

    return Arch.from_config(_load_config(Path(model_dir)))


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


def _torch_forward(model: Any, inputs: dict[str, Any]) -> Any:
    import torch

    with torch.inference_mode():
        return model(**inputs)


def _interleave(cases: Sequence[Case], rounds: int, warmup: int, cfg: SpeedupConfig, label: str) -> None:
    for case in cases:
        for _ in range(warmup):
            case.run()
    for r in range(rounds):
        for case in cases:
            t0 = time.perf_counter()
            case.last = case.run()
            case.times.append(time.perf_counter() - t0)
        _log(cfg, f"{label} round {r + 1}/{rounds}: " +
             ", ".join(f"{c.name} B={c.batch}: {c.times[-1] * 1e3:.0f} ms" if c.batch else
                       f"{c.name}: {c.times[-1]:.2f} s" for c in cases))


def run_speedup(config: SpeedupConfig | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); returns the result written to ``speedup.json``.

    Pass a :class:`SpeedupConfig` or its fields as keyword arguments. torch runs on ``threads`` threads for the
    call; the caller's thread count is restored afterwards.
    """
    from bortfast._base.state import torch_threads

    cfg = config if config is not None else SpeedupConfig(**kwargs)
    with torch_threads(cfg.threads):
        return _run_speedup(cfg)


def _run_speedup(cfg: SpeedupConfig) -> dict[str, Any]:
    import onnxruntime as ort
    import torch
    import transformers

    from bortfast.export.onnx import to_onnx
    from bortfast.runtime import Classifier, Encoder

    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    hf_tokenizer = _load_hf_tokenizer(cfg.tokenizer)
    tmp = tempfile.TemporaryDirectory(prefix="bortfast-bench-") if cfg.work_dir is None else None
    work = Path(cfg.work_dir) if cfg.work_dir is not None else Path(tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    try:
        # ---- models ----------------------------------------------------------------------------------------
        student_dir = Path(cfg.student_dir) if cfg.student_dir else None
        teacher_dir = Path(cfg.teacher_dir) if cfg.teacher_dir else None
        if student_dir is None:
            _log(cfg, f"building random-weight student {BORT}")
            student_dir = _save_random(BORT, work / "student", hf_tokenizer, cfg.seed)
        if teacher_dir is None:
            _log(cfg, f"building random-weight BERT-base {BERT_BASE}")
            teacher_dir = _save_random(BERT_BASE, work / "teacher", hf_tokenizer, cfg.seed + 1)
        student_arch, teacher_arch = _arch_of(student_dir), _arch_of(teacher_dir)
        base_label = "BERT-base" if cfg.teacher_dir is None else "teacher"  # never "BERT-base" for another model
        exports = {}
        for key, model_dir, quant in (("student_fp32", student_dir, None), ("student_int8", student_dir, "int8"),
                                      ("teacher_fp32", teacher_dir, None)):
            _log(cfg, f"exporting {key} from {model_dir}")
            exports[key] = to_onnx(model_dir, work / f"{key}.onnx", quantize=quant)

        def torch_model(model_dir: Path) -> Any:
            cfg_ = transformers.AutoConfig.from_pretrained(model_dir)
            name = (cfg_.architectures or ["BertModel"])[0]
            return getattr(transformers, name).from_pretrained(model_dir).eval()

        teacher_torch = torch_model(teacher_dir)
        large_torch, large_arch = None, None
        if cfg.include_large:
            if cfg.large_dir:
                large_torch, large_arch = torch_model(Path(cfg.large_dir)), _arch_of(cfg.large_dir)
            else:
                _log(cfg, f"building random-weight BERT-large {BERT_LARGE}")
                torch.manual_seed(cfg.seed + 2)
                large_torch = transformers.BertModel(BERT_LARGE.to_bert_config()).eval()
                large_arch = BERT_LARGE

        def session(path: Path) -> Any:
            options = ort.SessionOptions()
            options.intra_op_num_threads = cfg.threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        sessions = {key: session(work / f"{key}.onnx") for key in exports}
        names = {
            "torch_base": f"torch {base_label} fp32 {teacher_arch}",
            "torch_large": f"torch BERT-large fp32 {large_arch}",
            "student_fp32": f"ORT student fp32 {student_arch}",
            "student_int8": f"ORT student int8 {student_arch}",
            "teacher_fp32": f"ORT {base_label} fp32 {teacher_arch}",
        }

        # ---- (a)+(b) fixed shape -----------------------------------------------------------------------------
        rng = np.random.default_rng(cfg.seed)
        fixed: list[Case] = []
        for batch in cfg.batch_sizes:
            vocab = min(student_arch.vocab_size, teacher_arch.vocab_size)
            feed = {"input_ids": rng.integers(min(1000, vocab // 2), vocab, (batch, cfg.seq_len)).astype(np.int64),
                    "attention_mask": np.ones((batch, cfg.seq_len), dtype=np.int64),
                    "token_type_ids": np.zeros((batch, cfg.seq_len), dtype=np.int64)}
            tfeed = {k: torch.from_numpy(v) for k, v in feed.items()}

            fixed.append(Case(names["torch_base"], "fixed", batch,
                              lambda m=teacher_torch, f=tfeed: _torch_forward(m, f)))
            if large_torch is not None:
                fixed.append(Case(names["torch_large"], "fixed", batch,
                                  lambda m=large_torch, f=tfeed: _torch_forward(m, f)))
            for key in ("student_fp32", "student_int8", "teacher_fp32"):
                fixed.append(Case(names[key], "fixed", batch, lambda s=sessions[key], f=feed: s.run(None, f)))
        _log(cfg, f"fixed shape L={cfg.seq_len}, B={list(cfg.batch_sizes)}, {cfg.threads} threads, "
                  f"{cfg.rounds} interleaved rounds")
        _interleave(fixed, cfg.rounds, cfg.warmup, cfg, "fixed")

        def times_of(name: str, batch: int) -> list[float]:
            return next(c.times for c in fixed if c.name == name and c.batch == batch)

        def median_of(name: str, batch: int) -> float | None:
            hit = [c for c in fixed if c.name == name and c.batch == batch]
            return hit[0].median if hit else None

        fixed_rows, speedups = [], {}
        for batch in cfg.batch_sizes:
            base, large = median_of(names["torch_base"], batch), median_of(names["torch_large"], batch)
            for key in ("student_fp32", "student_int8", "teacher_fp32"):
                t = median_of(names[key], batch)
                speedups[f"{key}_vs_torch_base_b{batch}"] = base / t
                if large is not None:
                    speedups[f"{key}_vs_torch_large_b{batch}"] = large / t
            for c in fixed:
                if c.batch == batch:
                    fixed_rows.append({"engine": c.name, "batch": batch, "seq_len": cfg.seq_len,
                                       "median_ms": c.median * 1e3, "min_ms": min(c.times) * 1e3,
                                       "times_ms": [t * 1e3 for t in c.times],
                                       "speedup_vs_torch_base": base / c.median,
                                       "speedup_vs_torch_base_min": min(times_of(names["torch_base"], batch))
                                       / min(c.times),
                                       "speedup_vs_torch_large": (large / c.median) if large else None})

        # FLOP ratios: encoder closed form and full-model counts (at the fixed shape, B=1)
        student_torch = torch_model(student_dir)
        flops = {
            "encoder_formula": {"teacher": teacher_arch.flops(1, cfg.seq_len),
                                "student": student_arch.flops(1, cfg.seq_len)},
            "full_model_counted": {"teacher": full_model_flops(teacher_torch, 1, cfg.seq_len),
                                   "student": full_model_flops(student_torch, 1, cfg.seq_len)},
        }
        for entry in flops.values():
            entry["ratio"] = entry["teacher"] / entry["student"]
        if large_torch is not None and large_arch is not None:
            flops["encoder_formula"]["large"] = large_arch.flops(1, cfg.seq_len)
        same_engine = {}
        for batch in cfg.batch_sizes:
            ratio = median_of(names["teacher_fp32"], batch) / median_of(names["student_fp32"], batch)
            same_engine[f"b{batch}"] = {"latency_ratio": ratio,
                                        "vs_encoder_flop_ratio": ratio / flops["encoder_formula"]["ratio"],
                                        "vs_full_model_flop_ratio": ratio / flops["full_model_counted"]["ratio"]}
        del student_torch

        # ---- (c) end to end ---------------------------------------------------------------------------------
        e2e_rows: list[dict[str, Any]] = []
        if cfg.sentences is not None:
            sentences = list(cfg.sentences)
            teacher_tok = transformers.AutoTokenizer.from_pretrained(teacher_dir)
            is_classifier = exports["student_fp32"].output_name == "logits"
            deployed_cls = Classifier if is_classifier else Encoder
            deployed = {key: deployed_cls(work / f"{key}.onnx", threads=cfg.threads,
                                          batch_size=cfg.e2e_batch_size)
                        for key in ("student_fp32", "student_int8")}
            max_len = teacher_torch.config.max_position_embeddings

            def torch_e2e() -> np.ndarray:
                outs = []
                with torch.inference_mode():
                    for start in range(0, len(sentences), cfg.e2e_batch_size):
                        batch = teacher_tok(sentences[start:start + cfg.e2e_batch_size], padding=True,
                                            truncation=True, max_length=max_len, return_tensors="pt")
                        out = teacher_torch(**batch, return_dict=False)[0]
                        outs.append((out if out.ndim == 2 else out[:, 0]).numpy())
                return np.concatenate(outs)

            def deployed_e2e(model: Any) -> np.ndarray:
                return model.logits(sentences) if is_classifier else model.encode(sentences)

            cases = [Case(names["torch_base"], "e2e", None, torch_e2e)]
            cases += [Case(names[key], "e2e", None, lambda m=deployed[key]: deployed_e2e(m)) for key in deployed]
            _log(cfg, f"end to end: {len(sentences)} sentences, batch {cfg.e2e_batch_size}, "
                      f"{cfg.e2e_rounds} rounds")
            _interleave(cases, cfg.e2e_rounds, 0, cfg, "e2e")
            base = cases[0].median
            for c in cases:
                row = {"engine": c.name, "sentences": len(sentences), "median_s": c.median,
                       "sentences_per_s": len(sentences) / c.median, "speedup_vs_torch_base": base / c.median}
                if is_classifier:
                    row["predictions"] = np.asarray(c.last).argmax(1).tolist()
                e2e_rows.append(row)
            speedups["e2e_student_fp32_vs_torch_base"] = e2e_rows[1]["speedup_vs_torch_base"]
            speedups["e2e_student_int8_vs_torch_base"] = e2e_rows[2]["speedup_vs_torch_base"]

        # ---- targets ----------------------------------------------------------------------------------------
        b0 = cfg.batch_sizes[0]
        measured = {
            "int8_vs_torch_base_b1": speedups.get(f"student_int8_vs_torch_base_b{b0}"),
            "int8_vs_torch_large_b1": speedups.get(f"student_int8_vs_torch_large_b{b0}"),
            "fp32_vs_torch_base_b1": speedups.get(f"student_fp32_vs_torch_base_b{b0}"),
            "same_engine_vs_flop_ratio": same_engine[f"b{b0}"]["vs_encoder_flop_ratio"],
        }
        targets = {k: {"target": TARGETS[k], "measured": v, "met": (v is not None and v >= TARGETS[k]),
                       "batch": b0} for k, v in measured.items()}
        result = {
            "claim": "Bort <4,8,1024,768> is 7.9x faster than BERT-base and 20x faster than BERT-large on a CPU "
                     "(de Wynter & Perry 2020, §5)",
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "baseline": f"{base_label} {teacher_arch}",
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "threads": cfg.threads,
                        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                        "torch": torch.__version__, "transformers": transformers.__version__,
                        "onnxruntime": ort.__version__},
            "config": {k: v for k, v in cfg.__dict__.items() if k != "sentences"} |
                      {"sentences": None if cfg.sentences is None else len(cfg.sentences)},
            "archs": {"student": student_arch.tuple, "teacher": teacher_arch.tuple,
                      "large": large_arch.tuple if large_arch else None},
            "exports": {k: {"fused_ops": r.fused_ops, "fusion_complete": r.fusion_complete,
                            "parity_max_abs_diff": r.parity_max_abs_diff, "parity_cosine": r.parity_cosine,
                            "file_bytes": r.file_bytes} for k, r in exports.items()},
            "fixed": fixed_rows,
            "speedups": speedups,
            "flops": flops,
            "same_engine": same_engine,
            "e2e": e2e_rows,
            "targets": targets,
            "seconds": time.perf_counter() - t_start,
        }
        write_json(out_dir / "speedup.json", result)
        plot_speedup(result, out_dir / "speedup.png")
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def plot_speedup(result: dict[str, Any], path: str | Path) -> None:
    """Bar chart: speed-up over the HF PyTorch baseline (BERT-base, or the teacher when given, named by its
    architecture) per engine and batch size (and end to end)."""
    from bortfast._base.plot import new_figure

    groups: dict[str, dict[str, float]] = {}
    for row in result["fixed"]:
        groups.setdefault(f"B={row['batch']}, L={row['seq_len']}", {})[row["engine"]] = row["speedup_vs_torch_base"]
    for row in result["e2e"]:
        groups.setdefault(f"end to end ({row['sentences']} sent.)", {})[row["engine"]] = row["speedup_vs_torch_base"]
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
    lines = [f"{'engine':44s} {'B':>3s} {'median ms':>10s} {'x base':>7s} {'x large':>8s}"]
    for row in result["fixed"]:
        large = row["speedup_vs_torch_large"]
        lines.append(f"{row['engine']:44s} {row['batch']:3d} {row['median_ms']:10.1f} "
                     f"{row['speedup_vs_torch_base']:7.2f} {large if large is None else f'{large:8.2f}'}")
    for row in result["e2e"]:
        lines.append(f"{row['engine'] + ' (e2e)':44s} {'':3s} {row['median_s'] * 1e3:10.0f} "
                     f"{row['speedup_vs_torch_base']:7.2f}")
    for key, entry in result["same_engine"].items():
        lines.append(f"same engine {key}: ORT base/student {entry['latency_ratio']:.2f} vs FLOP ratio "
                     f"{result['flops']['encoder_formula']['ratio']:.2f} (encoder) / "
                     f"{result['flops']['full_model_counted']['ratio']:.2f} (full model)")
    for key, t in result["targets"].items():
        measured = "n/a" if t["measured"] is None else f"{t['measured']:.2f}"
        lines.append(f"target {key}: {measured} (target {t['target']}) {'met' if t['met'] else 'MISSED'}")
    return "\n".join(lines)
