"""bortfast.profile.timing: every engine in its own worker process, turns alternating, failures bounded and named.
Speed is not asserted here (benchmarks/bench_isolation.py compares the ratios)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from bortfast.profile.timing import (
    Engine,
    EngineError,
    TimingConfig,
    kernel_engine,
    ort_session_engine,
    time_engines,
    torch_model_engine,
)

FAST = TimingConfig(rounds=3, min_samples=6, turn_seconds=0.005, warmup=1, settle_s=0.0, load_timeout_s=120,
                    call_timeout_s=20)


# Module-level factories: a spawned worker imports them by name.
def _logging_engine(log: str, name: str):
    def run():
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{name} {os.getpid()}\n")
        return os.getpid()
    return run


def _crashing_engine(after: int):
    calls = [0]

    def run():
        calls[0] += 1
        if calls[0] > after:
            os._exit(3)  # a hard death, as a segfault or the OOM killer would leave it
        return 0
    return run


def _hanging_engine():
    return lambda: time.sleep(3600)


def _pid_file_then_hang(path: str):
    Path(path).write_text(str(os.getpid()))
    return lambda: time.sleep(3600)


def _raising_factory(path: str):
    raise FileNotFoundError(f"cannot read {path}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_each_engine_runs_alone_in_its_own_process_in_alternating_turns(tmp_path):
    log = tmp_path / "calls.log"
    engines = [Engine(n, f"model-{n}", _logging_engine, {"log": str(log), "name": n}) for n in ("A", "B", "C")]
    result = time_engines(engines, FAST, outputs=["B"])
    timings = result["timings"]
    pids = {name: t.pid for name, t in timings.items()}
    assert len(set(pids.values())) == 3 and os.getpid() not in pids.values()
    assert result["outputs"]["B"] == pids["B"]  # the output came from B's own worker
    for t in timings.values():
        assert t.n >= FAST.min_samples and t.min_ms <= t.median_ms <= t.max_ms
        assert len(t.round_medians_ms) == t.n // t.calls_per_turn
        assert t.summary()["n"] == t.n and t.summary()["pid"] == t.pid
    lines = [line.split() for line in log.read_text().splitlines()]
    assert all(int(pid) == pids[name] for name, pid in lines)  # every call ran in its engine's worker
    blocks = [name for i, (name, _) in enumerate(lines) if i == 0 or lines[i - 1][0] != name]
    # warm-up turns A B C, then rounds A B C A B C ...: never two turns of one engine in a row
    assert blocks[:6] == ["A", "B", "C", "A", "B", "C"] and all(a != b for a, b in zip(blocks, blocks[1:]))
    time.sleep(0.5)
    assert not any(_alive(pid) for pid in pids.values())  # every worker stopped


def test_real_engines_on_tiny_models_return_their_outputs(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Cast", ["input_ids"], ["y"], to=TensorProto.FLOAT)], "g",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "L"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "L"])])
    path = tmp_path / "cast.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    ids = np.arange(8, dtype=np.int64).reshape(1, 8)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    config = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 37, "max_position_embeddings": 16}
    engines = [Engine("ort", str(path), ort_session_engine, {"path": str(path), "feed": feed, "threads": 1}),
               Engine("torch", "tiny BertModel", torch_model_engine, {"feed": feed, "threads": 1, "config": config}),
               Engine("kernel", "tiny kernel", kernel_engine,
                      {"arch": (2, 4, 32, 37), "batch": 1, "seq_len": 8, "threads": 1})]
    result = time_engines(engines, FAST, outputs=["ort", "torch", "kernel"])
    out = result["outputs"]
    np.testing.assert_array_equal(out["ort"], ids.astype(np.float32))
    assert out["torch"].shape == (1, 8, 32) and out["kernel"].shape == (1, 8, 32)
    assert all(t.n >= FAST.min_samples for t in result["timings"].values())


def test_a_worker_that_cannot_build_its_engine_names_engine_and_model(tmp_path):
    missing = str(tmp_path / "nope.onnx")
    engines = [Engine("ok", "m", _logging_engine, {"log": str(tmp_path / "l"), "name": "ok"}),
               Engine("ORT student fp32", missing, ort_session_engine,
                      {"path": missing, "feed": {}, "threads": 1})]
    with pytest.raises(EngineError, match=r"'ORT student fp32' \(model .*nope\.onnx\).*failed"):
        time_engines(engines, FAST)
    with pytest.raises(EngineError, match=r"'reader' \(model /x/y\).*cannot read /x/y"):
        time_engines([Engine("reader", "/x/y", _raising_factory, {"path": "/x/y"})], FAST)


def test_a_worker_that_dies_mid_run_ends_it_with_a_clear_error():
    engines = [Engine("steady", "m1", _crashing_engine, {"after": 10**9}),
               Engine("crasher", "model-c", _crashing_engine, {"after": 4})]
    with pytest.raises(EngineError, match=r"'crasher' \(model model-c\): worker pid (\d+) died with exit code 3") \
            as info:
        time_engines(engines, FAST)
    assert not _alive(int(re.search(r"pid (\d+)", str(info.value)).group(1)))


def test_a_hung_worker_is_stopped_within_the_timeout():
    config = TimingConfig(rounds=2, min_samples=2, warmup=1, settle_s=0.0, call_timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(EngineError, match=r"'sleeper' \(model m\).*did not answer within \d+ s") as info:
        time_engines([Engine("sleeper", "m", _hanging_engine)], config)
    assert time.monotonic() - t0 < 30
    pid = int(re.search(r"pid (\d+)", str(info.value)).group(1))
    time.sleep(0.2)
    assert not _alive(pid)


def test_a_worker_ends_when_its_parent_is_killed(tmp_path):
    """SIGKILL leaves no chance to clean up: the worker's own watchdog must end it (no orphan)."""
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "worker.pid"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from test_timing import _pid_file_then_hang; "
            "from bortfast.profile.timing import Engine, time_engines; "
            "time_engines([Engine('h', 'm', _pid_file_then_hang, {'path': sys.argv[2]})])")
    parent = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), str(pid_file)])
    try:
        deadline = time.monotonic() + 120
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline and parent.poll() is None, "the worker never started"
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        time.sleep(0.5)  # the parent is now waiting for the (hanging) warm-up turn
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), f"worker {worker} outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_bad_input_is_rejected_before_any_worker_starts():
    with pytest.raises(ValueError, match="at least one engine"):
        time_engines([])
    with pytest.raises(ValueError, match="names must be unique"):
        time_engines([Engine("a", "m", _hanging_engine), Engine("a", "m", _hanging_engine)])
    with pytest.raises(ValueError, match=r"outputs names engines that are not timed: \['b'\]"):
        time_engines([Engine("a", "m", _hanging_engine)], outputs=["b"])
    with pytest.raises(ValueError, match="module-level function"):
        time_engines([Engine("a", "m", lambda: (lambda: 0))])
    with pytest.raises(ValueError, match="TimingConfig.rounds must be a positive int, got 0"):
        TimingConfig(rounds=0)
    with pytest.raises(ValueError, match="TimingConfig.settle_s"):
        TimingConfig(settle_s=-1)
    assert Path(__file__).name == "test_timing.py"
