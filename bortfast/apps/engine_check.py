"""ξ*'s speed checked in the deployment engine: a latency-budget finalist of the search is exported to ONNX and
timed against the teacher in ONNX Runtime (fp32), each in its own worker process (:mod:`bortfast.profile.timing`).

The search ranks ξ by î, the fused kernel's latency, a proxy: ξ of equal î can differ in ORT by 10-30 % (head size,
per-node overheads), and a budget such as "5x faster than the teacher" is a statement about the deployed model.
:class:`OrtSpeedCheck` is the ``check`` of :func:`bortfast.search.choose_for_user`: random weights of each shape
(speed does not depend on the values), B=1, the search's L and threads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bortfast.profile.timing import Engine, TimingConfig, fixed_feed, ort_session_engine, ratio_stats, time_engines
from bortfast.space import Arch, PerLayerArch

CHECK_TIMING = TimingConfig(rounds=8, min_samples=40)


class OrtSpeedCheck:
    """``check(arch, max_latency_ms, min_speedup)``: ξ's and the teacher's ORT fp32 latency, timed alternately in
    two worker processes; ``ok`` when ξ is at least ``min_speedup`` times faster and within ``max_latency_ms``."""

    def __init__(self, teacher_arch: Arch, work_dir: str | os.PathLike, *, seq_len: int = 128, threads: int = 2,
                 timing: TimingConfig = CHECK_TIMING, seed: int = 0, check_latency: bool = True) -> None:
        if not isinstance(teacher_arch, Arch):
            raise TypeError(f"teacher_arch must be a bortfast.Arch, got {type(teacher_arch).__name__}")
        self.teacher_arch, self.work = teacher_arch, Path(work_dir)
        self.seq_len, self.threads, self.timing, self.seed = seq_len, threads, timing, seed
        self.check_latency = check_latency  # False: î is FLOPs, so max_latency is no ms budget; only the speed-up

    def _onnx(self, arch: Arch | PerLayerArch) -> Path:
        """A random-weight encoder of ``arch`` as ONNX (ORT-optimised, fused), exported once per shape; a per-layer
        ξ is built as :func:`bortfast.models.perlayer.build_per_layer_model` builds its students."""
        import torch
        from transformers import BertModel

        from bortfast._base.io import atomic_dir
        from bortfast.export.onnx import to_onnx
        from bortfast.models import ship_model_code
        from bortfast.models.perlayer import build_per_layer_model

        name = _file_name(arch)
        path = self.work / f"{name}.onnx"
        if not path.is_file():
            model_dir = self.work / name
            with atomic_dir(model_dir) as tmp:
                if isinstance(arch, PerLayerArch):
                    model = build_per_layer_model(arch.to_bert_config(architectures=["BertModel"]), "BertModel",
                                                  seed=self.seed, add_pooling_layer=False)
                else:
                    torch.manual_seed(self.seed)
                    model = BertModel(arch.to_bert_config(), add_pooling_layer=False)
                model.save_pretrained(tmp)
                ship_model_code(tmp)
            to_onnx(model_dir, path, check_parity=False, embed_tokenizer=False)
        return path

    def __call__(self, arch: Arch | PerLayerArch, max_latency: float | None,
                 min_speedup: float | None) -> dict[str, Any]:
        if not isinstance(arch, (Arch, PerLayerArch)):
            raise ValueError(f"the engine check times an Arch or a PerLayerArch, got {arch!r}")
        feed = fixed_feed(self.teacher_arch.vocab_size, 1, self.seq_len, self.seed)
        engines = [Engine(label, str(path), ort_session_engine, {"path": str(path), "feed": feed,
                                                                 "threads": self.threads})
                   for label, path in (("teacher", self._onnx(self.teacher_arch)), ("student", self._onnx(arch)))]
        t = time_engines(engines, self.timing)["timings"]
        speedup = ratio_stats(t["teacher"], t["student"])["median_ratio"]
        latency_ok = max_latency is None or not self.check_latency or t["student"].median_ms <= max_latency
        ok = (min_speedup is None or speedup >= min_speedup) and latency_ok
        return {"ok": bool(ok), "engine": f"onnxruntime fp32 B=1 L={self.seq_len} T={self.threads}",
                "teacher_ms": t["teacher"].median_ms, "student_ms": t["student"].median_ms, "speedup": speedup,
                "samples": min(t["teacher"].n, t["student"].n)}


def _file_name(arch: Arch | PerLayerArch) -> str:
    """``2-4-32-64`` for ⟨2, 4, 32, 64⟩; ``H32-d8-A4.2-I64.32`` for the per-layer ``H=32;d=8;A=4,2;I=64,32``."""
    if isinstance(arch, Arch):
        return "-".join(map(str, arch.tuple))
    return arch.spec.replace("=", "").replace(",", ".").replace(";", "-")
