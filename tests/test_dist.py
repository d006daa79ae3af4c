"""bortfast._base.dist with a real 2-rank gloo group on localhost: a rank that raises ends every rank with an
error, and a rank that never reaches a collective ends the others at the timeout -- each job bounded in time by
the subprocess timeout, never left to hang."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from bortfast._base import dist

# Each rank joins through dist.process_group (the path the trainer and the search take), then runs the scenario.
_RANK = textwrap.dedent("""
    import os, sys, time
    from bortfast._base import dist

    rank, scenario = int(os.environ["RANK"]), sys.argv[1]
    try:
        with dist.process_group():
            dist.barrier()  # both ranks are up
            if scenario == "raise" and rank == 1:
                raise ValueError("injected failure on rank 1")
            if scenario == "stall" and rank == 1:
                time.sleep(float(os.environ["BORTFAST_DIST_TIMEOUT"]) + 4)  # misses rank 0's all_gather
            print("gathered", dist.all_gather(rank), flush=True)
            dist.barrier()
    except Exception as err:
        print(f"rank {rank} ended: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        sys.exit(3)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_ranks(scenario: str, timeout_s: float, bound_s: float = 120) -> list[tuple[int, str, str]]:
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), BORTFAST_DIST_TIMEOUT=str(timeout_s), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-c", _RANK, scenario], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=bound_s)  # a hang fails the test here instead of hanging the suite
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def _ended(err: str, rank: int) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"rank {rank} ended: ")]
    assert lines, err[-3000:]
    return lines[0]


def test_two_ranks_without_failure_gather_and_exit_cleanly():
    results = _run_two_ranks("ok", timeout_s=60)
    assert [code for code, _, _ in results] == [0, 0], [e[-2000:] for _, _, e in results]
    assert all("gathered [0, 1]" in out for _, out, _ in results)


def test_a_rank_that_raises_ends_every_rank_with_an_error():
    # The collective timeout is far longer than the test's bound: rank 0 must end because rank 1 failed, not
    # because it waited the timeout out.
    (code0, out0, err0), (code1, _, err1) = _run_two_ranks("raise", timeout_s=600, bound_s=120)
    assert code1 == 3 and "ValueError: injected failure on rank 1" in _ended(err1, 1)
    assert code0 == 3 and "gathered" not in out0
    assert "RuntimeError: rank 0 of 2: all_gather failed: another rank raised or stopped" in _ended(err0, 0)


def test_a_rank_that_stalls_ends_the_others_at_the_timeout():
    (code0, out0, err0), (code1, out1, err1) = _run_two_ranks("stall", timeout_s=3, bound_s=120)
    assert code0 == 3 and "gathered" not in out0
    assert "rank 0 of 2: all_gather failed" in _ended(err0, 0) and "within 3 s (BORTFAST_DIST_TIMEOUT)" in err0
    # The late rank finds its peer gone when it reaches the collective: it ends with an error too.
    assert code1 == 3 and "gathered" not in out1 and "rank 1 of 2" in _ended(err1, 1)


def test_single_process_helpers_and_bad_timeout(monkeypatch):
    assert dist.rank_world() == (0, 1)
    assert dist.all_gather({"a": 1}) == [{"a": 1}] and dist.broadcast(1, "x") == [1, "x"]
    assert dist.mean_over_ranks([1.0, 3.0]) == [1.0, 3.0]
    monkeypatch.setenv("BORTFAST_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="BORTFAST_DIST_TIMEOUT must be a number of seconds, got 'soon'"):
        dist.timeout()
    monkeypatch.setenv("BORTFAST_DIST_TIMEOUT", "0")
    with pytest.raises(ValueError, match="BORTFAST_DIST_TIMEOUT must be positive, got '0'"):
        dist.timeout()
