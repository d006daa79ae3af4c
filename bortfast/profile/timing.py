"""Isolated latency timing: every engine in its own worker process, turns alternating A B A B across them.

Why (DESIGN.md §2, issue 18): ONNX Runtime's intra-op threads and torch's OpenMP pool spin after each run, so
engines that share a process steal each other's cores; on 2 cores that moved a reported speed-up by 1.6-2x. Here
no engine shares a process with another one, and only one worker runs at a time:

- each :class:`Engine` names a *factory* (a module-level function, so the ``spawn`` start method can import it in
  the worker) that builds the engine there and returns a zero-argument callable: one call is one timed sample;
- the parent hands out turns in a fixed order A B C A B C ...; a worker not on its turn sleeps in a blocking
  ``recv`` (no thread of its pools runs). Before each turn the parent waits ``settle_s`` so the previous engine's
  idle threads stop spinning, and the first call of every turn is untimed;
- each turn times ``calls`` consecutive calls, chosen per engine from its warm-up so that a turn lasts about
  ``turn_seconds``; the rounds are repeated until every engine has ``min_samples`` samples (at least ``rounds``);
- a worker that cannot build its engine, dies (segfault, out of memory) or does not answer in time ends the run
  with :class:`EngineError` naming the engine and the model; every worker is stopped (terminate, then kill)
  before :func:`time_engines` returns or raises, so no process outlives it.

Built-in factories need only torch/transformers, onnxruntime or the fused kernel (:func:`ort_session_engine`,
:func:`torch_model_engine`, :func:`kernel_engine`); callers higher in the package pass their own (e.g. the
deployed :class:`bortfast.runtime.Encoder` end to end).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import statistics
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bortfast._base.checks import check_int, check_positive_ints

# ``spawn``: a fresh interpreter per worker. A forked child would inherit the parent's torch/OpenMP state (unsafe
# after the parent ran torch) and its memory.
_CONTEXT = mp.get_context("spawn")

# ONNX Runtime's idle intra-op spinning in every session bortfast creates (bortfast.runtime, the timing engines).
# Off: an idle spinning pool steals the cores of everything else in the process -- measured in README "Runtime".
DEFAULT_ORT_SPINNING = False


class EngineError(RuntimeError):
    """A timing worker failed: it could not build its engine, died, or did not answer in time."""


@dataclass(frozen=True)
class Engine:
    """One engine to time: ``factory(**kwargs)`` runs in the worker and returns the callable that is timed."""

    name: str  # label in the results (unique within one run)
    model: str  # what it runs (a path or a description), named in errors
    factory: Callable[..., Callable[[], Any]]  # module-level function (the worker imports it by name)
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # picklable arguments of the factory


@dataclass(frozen=True)
class TimingConfig:
    """How :func:`time_engines` samples."""

    rounds: int = 10  # at least this many A B A B rounds
    min_samples: int = 30  # ... and more rounds until every engine has this many timed calls
    turn_seconds: float = 0.25  # timed work per engine per turn (sets the calls per turn)
    max_calls_per_turn: int = 50
    warmup: int = 3  # untimed calls per engine after it is built
    settle_s: float = 0.02  # idle gap before each turn: the previous engine's pools stop spinning
    load_timeout_s: float = 900.0  # building one engine (loading a model, creating a session)
    call_timeout_s: float = 300.0  # one call; a turn may take calls x this

    def __post_init__(self) -> None:
        check_positive_ints(self, ("rounds", "min_samples", "max_calls_per_turn"), "TimingConfig.")
        check_int("TimingConfig.warmup", self.warmup, 0)
        for name in ("turn_seconds", "load_timeout_s", "call_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"TimingConfig.{name} must be a positive number, got {value!r}")
        if not isinstance(self.settle_s, (int, float)) or isinstance(self.settle_s, bool) or self.settle_s < 0:
            raise ValueError(f"TimingConfig.settle_s must be a number >= 0, got {self.settle_s!r}")


@dataclass
class Timing:
    """The samples of one engine (milliseconds)."""

    name: str
    model: str
    pid: int  # the worker process that ran it
    calls_per_turn: int
    samples_ms: list[float] = field(default_factory=list)
    round_medians_ms: list[float] = field(default_factory=list)  # one per round: shows drift during the run

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)

    @property
    def max_ms(self) -> float:
        return max(self.samples_ms)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: median/min/max/n, the worker pid and the per-round medians."""
        return {"engine": self.name, "model": self.model, "median_ms": self.median_ms, "min_ms": self.min_ms,
                "max_ms": self.max_ms, "n": self.n, "calls_per_turn": self.calls_per_turn, "pid": self.pid,
                "round_medians_ms": self.round_medians_ms}


def _describe(err: BaseException) -> str:
    """``Type: message`` and where it was raised (the last frame), for the parent's error."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


# ---- the worker ------------------------------------------------------------------------------------------------
def _exit_with_parent(parent: int) -> None:
    """A daemon thread: end this worker when its parent is gone, even in the middle of a hung call."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="bortfast-timing-parent-watch", daemon=True).start()


def _worker_main(conn: Any, factory: Callable[..., Callable[[], Any]], kwargs: Mapping[str, Any], parent: int
                 ) -> None:
    """Build the engine, then answer commands until told to stop (or the parent goes away)."""
    _exit_with_parent(parent)
    try:
        run = factory(**dict(kwargs))
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the parent as text
        conn.send(("error", _describe(err)))
        return
    conn.send(("ready", os.getpid()))
    last: Any = None
    while True:
        try:
            command, arg = conn.recv()
        except (EOFError, OSError):  # the parent is gone: exit instead of lingering
            return
        try:
            if command == "stop":
                return
            if command == "time":  # (untimed first call, then ``arg`` timed calls)
                last = run()
                times = []
                for _ in range(arg):
                    t0 = time.perf_counter()
                    last = run()
                    times.append(time.perf_counter() - t0)
                conn.send(("times", times))
            elif command == "output":
                conn.send(("output", last if last is not None else run()))
            else:
                conn.send(("error", f"unknown command {command!r}"))
        except BaseException as err:  # noqa: BLE001
            conn.send(("error", _describe(err)))
            return


class _Worker:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_worker_main, name=f"bortfast-timing:{engine.name}", daemon=True,
                                        args=(child, engine.factory, dict(engine.kwargs), os.getpid()))
        self.process.start()
        child.close()
        self.pid: int = self.process.pid or 0

    def _fail(self, what: str) -> EngineError:
        return EngineError(f"timing engine {self.engine.name!r} (model {self.engine.model}): worker pid "
                           f"{self.pid} {what}")

    def receive(self, expect: str, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while not self.conn.poll(min(1.0, max(0.0, deadline - time.monotonic()))):
            if not self.process.is_alive():
                code = self.process.exitcode
                how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                hint = " (killed: out of memory?)" if code == -9 else ""
                raise self._fail(f"died with {how}{hint} before answering")
            if time.monotonic() >= deadline:
                raise self._fail(f"did not answer within {timeout_s:.0f} s (hung?); it was stopped")
        try:
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(5)
            raise self._fail(f"died with exit code {self.process.exitcode} before answering") from None
        if kind == "error":
            raise self._fail(f"failed: {value}")
        if kind != expect:
            raise self._fail(f"answered {kind!r}, expected {expect!r}")
        return value

    def send(self, command: str, arg: Any = None) -> None:
        try:
            self.conn.send((command, arg))
        except (BrokenPipeError, OSError):
            self.process.join(5)
            raise self._fail(f"died with exit code {self.process.exitcode}") from None

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(("stop", None))
            except (BrokenPipeError, OSError):
                pass
            self.process.join(2)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


class EngineWorkers:
    """The worker processes of one timing run (a context manager: leaving it stops every worker)."""

    def __init__(self, engines: Sequence[Engine], config: TimingConfig | None = None) -> None:
        names = [e.name for e in engines]
        if not engines:
            raise ValueError("time_engines needs at least one engine")
        if len(set(names)) != len(names):
            raise ValueError(f"engine names must be unique, got {names}")
        for engine in engines:
            if not callable(engine.factory) or "<" in getattr(engine.factory, "__qualname__", "<"):
                raise ValueError(f"engine {engine.name!r}: factory must be a module-level function (the worker "
                                 f"imports it by name), got {engine.factory!r}")
        self.engines = list(engines)
        self.config = config or TimingConfig()
        self.workers: list[_Worker] = []

    def __enter__(self) -> EngineWorkers:
        try:
            for engine in self.engines:
                self.workers.append(_Worker(engine))
            for worker in self.workers:  # built in parallel (untimed); answered in order
                worker.pid = worker.receive("ready", self.config.load_timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()

    def turn(self, worker: _Worker, calls: int) -> list[float]:
        """One turn: ``settle_s`` idle, one untimed call, ``calls`` timed calls (seconds)."""
        time.sleep(self.config.settle_s)
        worker.send("time", calls)
        return worker.receive("times", self.config.call_timeout_s * (calls + 1))

    def output(self, name: str) -> Any:
        """The last output of engine ``name`` (after timing), e.g. to check what was timed."""
        worker = next(w for w in self.workers if w.engine.name == name)
        worker.send("output")
        return worker.receive("output", self.config.call_timeout_s)


def time_engines(engines: Sequence[Engine], config: TimingConfig | None = None, *, progress: bool = False,
                 outputs: Sequence[str] = ()) -> dict[str, Any]:
    """Time every engine in its own process, turns alternating across them (see the module docstring).

    Returns ``{"timings": {name: Timing}, "outputs": {name: last output}}`` (outputs only for the names in
    ``outputs``). Raises :class:`EngineError` when a worker fails; no worker outlives the call.
    """
    config = config or TimingConfig()
    unknown = sorted(set(outputs) - {e.name for e in engines})
    if unknown:
        raise ValueError(f"outputs names engines that are not timed: {unknown}")
    with EngineWorkers(engines, config) as pool:
        pids = [os.getpid(), *(w.pid for w in pool.workers)]
        before = machine_counters(pids)
        timings = _sample(pool, config, progress)
        after = machine_counters(pids)
        got = {name: pool.output(name) for name in outputs}
    return {"timings": timings, "outputs": got, "load": machine_load(before, after)}


def _process_ticks(pid: int) -> int | None:
    """User + system CPU clock ticks of a process so far (``/proc/PID/stat``), None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
        return int(fields[11]) + int(fields[12])  # utime, stime (the stat file's fields 14 and 15)
    except (OSError, ValueError, IndexError):
        return None


def machine_counters(pids: Sequence[int] = ()) -> dict[str, Any]:
    """The load average and, where ``/proc`` exists (Linux), the machine's busy / steal / total CPU clock ticks and
    the ticks the processes ``pids`` (ours: the timing process and its workers) have used."""
    counters: dict[str, Any] = {"loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return counters
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])
    own = [_process_ticks(pid) for pid in pids]
    counters.update(busy=total - idle - steal, steal=steal, total=total,
                    own=None if None in own else sum(own))  # type: ignore[arg-type]
    return counters


# A timing is marked busy when other processes used more than a quarter of a core on average while it ran, or the
# hypervisor stole more than 5 % of the CPU time: either moves a latency on these 2-core machines.
BUSY_OTHER_CORES = 0.25
BUSY_STEAL_FRACTION = 0.05


def machine_load(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What the machine did while a timing ran: load averages before and after, the cores that processes other than
    ours kept busy on average, the share of CPU time stolen by the hypervisor, and ``busy`` (either above its
    threshold). Without ``/proc``, only the load averages and ``busy: None``."""
    load: dict[str, Any] = {"loadavg_before": before.get("loadavg"), "loadavg_after": after.get("loadavg"),
                            "busy": None}
    if before.get("own") is None or after.get("own") is None or not after["total"] > before["total"]:
        return load
    total, cores = after["total"] - before["total"], os.cpu_count() or 1
    others = (after["busy"] - before["busy"]) - (after["own"] - before["own"])
    load["other_cores"] = round(max(0.0, cores * others / total), 3)
    load["steal_fraction"] = round((after["steal"] - before["steal"]) / total, 4)
    load["busy"] = bool(load["other_cores"] > BUSY_OTHER_CORES or load["steal_fraction"] > BUSY_STEAL_FRACTION)
    return load


def _sample(pool: EngineWorkers, config: TimingConfig, progress: bool) -> dict[str, Timing]:
    calls: dict[str, int] = {}
    for worker in pool.workers:  # warm-up turns, one engine at a time; they also size the turns
        per_call = statistics.median(pool.turn(worker, max(1, config.warmup)))  # sizes this engine's turns
        calls[worker.engine.name] = max(1, min(config.max_calls_per_turn, round(config.turn_seconds / per_call)))
    rounds = max(config.rounds, math.ceil(config.min_samples / min(calls.values())))
    timings = {w.engine.name: Timing(w.engine.name, w.engine.model, w.pid, calls[w.engine.name])
               for w in pool.workers}
    bar = _progress_bar(rounds, progress)
    try:
        for _ in range(rounds):
            for worker in pool.workers:
                timing = timings[worker.engine.name]
                if timing.n >= max(config.min_samples, config.rounds * timing.calls_per_turn):
                    continue  # a fast engine has its samples; the slow ones keep alternating
                got = [t * 1e3 for t in pool.turn(worker, timing.calls_per_turn)]
                timing.samples_ms += got
                timing.round_medians_ms.append(statistics.median(got))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return timings


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="timing rounds", unit="round", leave=False)


def ratio_stats(numerator: Timing, denominator: Timing) -> dict[str, float]:
    """Speed-up of ``denominator`` over ``numerator``: the ratio of medians, and of the minima."""
    return {"median_ratio": numerator.median_ms / denominator.median_ms,
            "min_ratio": numerator.min_ms / denominator.min_ms}


def fixed_feed(vocab_size: int, batch: int, seq_len: int, seed: int = 0) -> dict[str, Any]:
    """Random token ids (B, L) without padding, the fixed-shape input every engine gets."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(min(1000, vocab_size // 2), vocab_size, (batch, seq_len)).astype(np.int64),
            "attention_mask": np.ones((batch, seq_len), dtype=np.int64),
            "token_type_ids": np.zeros((batch, seq_len), dtype=np.int64)}


# ---- built-in engine factories (each runs in its worker) --------------------------------------------------------
def ort_session_engine(path: str, feed: Mapping[str, Any], threads: int, spinning: bool = DEFAULT_ORT_SPINNING,
                       output: str | None = None) -> Callable[[], Any]:
    """``session.run`` of the ONNX file ``path`` on ``feed`` (numpy arrays), ``threads`` intra-op threads,
    ORT's idle spinning on or off (``session.intra_op.allow_spinning``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [output] if output else None
    feed = {i.name: feed[i.name] for i in session.get_inputs()}
    return lambda: session.run(names, feed)[0]


def load_torch_model(model_dir: str, encoder_only: bool = False) -> Any:
    """The transformers model saved in ``model_dir`` (its ``architectures`` class; with ``encoder_only`` its encoder,
    a ``BertModel`` without pooler), in eval mode."""
    import transformers

    name = (transformers.AutoConfig.from_pretrained(model_dir).architectures or ["BertModel"])[0]
    if encoder_only:
        return transformers.BertModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
    return getattr(transformers, name).from_pretrained(model_dir).eval()


def torch_model_engine(feed: Mapping[str, Any], threads: int, model_dir: str | None = None,
                       config: Mapping[str, Any] | None = None, seed: int = 0,
                       encoder_only: bool = False) -> Callable[[], Any]:
    """HF transformers PyTorch fp32 forward (``inference_mode``) on ``feed`` (numpy int64 arrays): the model
    saved in ``model_dir`` (see :func:`load_torch_model`), or a random-weight ``BertModel`` from the BertConfig
    fields ``config``. Sets the worker's torch threads (the worker is this engine's alone)."""
    import torch
    import transformers

    torch.set_num_threads(threads)
    if model_dir is not None:
        model = load_torch_model(model_dir, encoder_only)
    elif config is not None:
        torch.manual_seed(seed)
        model = transformers.BertModel(transformers.BertConfig(**config)).eval()
    else:
        raise ValueError("torch_model_engine needs model_dir or config")
    tfeed = {k: torch.from_numpy(v) for k, v in feed.items()}

    def forward() -> Any:
        with torch.inference_mode():
            return model(**tfeed, return_dict=False)[0].numpy()

    return forward


def kernel_engine(arch: Sequence[int], batch: int, seq_len: int, threads: int, seed: int = 0
                  ) -> Callable[[], Any]:
    """The fused C++ encoder kernel, random weights, on a random (B, L, H) input."""
    import numpy as np

    from bortfast.profile.kernel import EncoderKernel
    from bortfast.space import Arch

    a = Arch(*arch)
    kernel = EncoderKernel.random(a, seed=seed)
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((batch, seq_len, a.hidden), dtype=np.float32)  # (B, L, H)
    mask = np.ones((batch, seq_len), dtype=np.int64)
    return lambda: kernel.forward(hidden, mask, threads)
