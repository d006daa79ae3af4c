"""The settings of one speed-up run (:class:`SpeedupConfig`), the models it times (:class:`Models`), the paper's
architectures and targets, and its inputs (:func:`read_sentences_tsv`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bortfast._base.checks import check_int, check_positive_ints
from bortfast.profile.timing import DEFAULT_ORT_SPINNING, TimingConfig
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


def log_progress(cfg: SpeedupConfig, msg: str) -> None:
    if cfg.progress:
        print(f"[bortfast bench] {msg}", flush=True)


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
