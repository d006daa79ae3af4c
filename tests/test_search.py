"""Algorithm 1 (bortfast.search.run_algorithm1) with a deterministic synthetic error function: pivots, W, argmax,
Pareto front, sharding, journal/resume (including SIGKILL of a real process) and bad input."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from bortfast.search import Journal, SearchResult, format_top, run_algorithm1, write_outputs
from bortfast.space import Arch, SearchSpace, encoder_flops, param_counts

THETAS = [{"lr": 1e-4}, {"lr": 1e-3}]


def synthetic_error(arch: Arch, theta) -> float:
    """Deterministic ê: bigger models distil better; lr 1e-3 suits deep models, 1e-4 shallow ones."""
    base = 8.0 / math.log(arch.param_count("encoder+pooler"))
    penalty = 0.05 * abs(math.log10(theta["lr"]) + 3.0 + 1.0 / arch.layers)
    return base + penalty


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace(layers=(1, 2, 3, 4), heads=(2, 4), hidden=(32, 64, 96), intermediate=(32, 64, 128),
                       vocab_size=500, max_positions=64, name="toy")


@pytest.fixture(scope="module")
def teacher() -> Arch:
    return Arch(6, 4, 128, 256, vocab_size=500, max_positions=64)


def inputs(space, teacher):
    archs = space.archs()
    p = param_counts([*archs, teacher], "encoder+pooler").astype(np.float64)
    i = encoder_flops([*archs, teacher], 1, 32).astype(np.float64)
    return archs, p[:-1], i[:-1], p[-1], i[-1]


def w_brute(p, i, e, p_T, i_T, eps_small=1e-12):
    return max(0.0, (p_T - p) / p_T) * max(0.0, (i_T - i) / i_T) / (e + eps_small)


def run(space, teacher, error_fn=synthetic_error, **kwargs):
    archs, p, i, p_T, i_T = inputs(space, teacher)
    kwargs.setdefault("eps", 1)
    kwargs.setdefault("thetas", THETAS)
    return run_algorithm1(archs, p, i, p_T, i_T, error_fn, teacher=teacher, **kwargs)


def test_exhaustive_search_finds_the_brute_force_argmax(space, teacher):
    archs, p, i, p_T, i_T = inputs(space, teacher)
    result = run(space, teacher, eps=1)
    assert len(space) == 72
    assert result.trainings == len(archs) * len(THETAS)
    assert all(c.pivot for c in result.candidates)
    scores = {(k, t): w_brute(p[k], i[k], synthetic_error(a, th), p_T, i_T)
              for k, a in enumerate(archs) for t, th in enumerate(THETAS)}
    (k_best, t_best), w_best = max(scores.items(), key=lambda kv: kv[1])
    assert result.best == k_best
    assert result.best_arch == archs[k_best]
    assert result.best_theta == THETAS[t_best]
    assert result.best_w == pytest.approx(w_best, rel=1e-12)
    for k, c in enumerate(result.candidates):
        assert c.w == pytest.approx(max(scores[(k, 0)], scores[(k, 1)]), rel=1e-12)
        assert c.error == pytest.approx(synthetic_error(c.arch, c.theta))


@pytest.mark.parametrize("eps", [2, 5, 72])
def test_interval_search_trains_exactly_the_pivots(space, teacher, eps):
    archs, p, *_ = inputs(space, teacher)
    calls = []

    def error_fn(arch, theta):
        calls.append((arch, theta["lr"]))
        return synthetic_error(arch, theta)

    result = run(space, teacher, error_fn, eps=eps)
    order = sorted(range(len(archs)), key=lambda k: (p[k], k))
    pivots = [order[pos] for pos in range(0, len(archs), eps)]
    assert result.trainings == len(THETAS) * math.ceil(len(archs) / eps) == len(calls)
    # trainings run pivot by pivot in increasing p-hat order, each under every theta
    assert calls == [(archs[k], th["lr"]) for k in pivots for th in THETAS]
    assert [k for k, c in enumerate(result.candidates) if c.pivot] == sorted(pivots)
    assert all(c.error is None and c.w is None for c in result.candidates if not c.pivot)
    assert result.candidates[result.best].pivot
    exhaustive = run(space, teacher, eps=1)
    assert result.best_w <= exhaustive.best_w


def test_pareto_front_is_the_brute_force_front_over_trained(space, teacher):
    result = run(space, teacher, eps=3)
    pts = {k: (c.params, c.latency, c.error) for k, c in enumerate(result.candidates) if c.pivot}

    def dominated(b):
        return any(all(x <= y for x, y in zip(a, b)) and a != b for a in pts.values())

    assert result.pareto_front == sorted(k for k, b in pts.items() if not dominated(b))
    assert set(result.approx_pareto_front) <= set(result.pareto_front)
    assert result.best in result.pareto_front  # argmax W is never dominated (W is monotone in each metric)


def test_sharded_ranks_give_the_single_process_result(space, teacher):
    single = run(space, teacher, eps=2)
    world = 3
    parts: list = [None] * world
    barrier = threading.Barrier(world)
    results: list = [None] * world
    calls: list[list] = [[] for _ in range(world)]

    def worker(rank):
        def gather(mine):
            parts[rank] = mine
            barrier.wait()
            return list(parts)

        def error_fn(arch, theta):
            calls[rank].append(arch)
            return synthetic_error(arch, theta)

        results[rank] = run(space, teacher, error_fn, eps=2, rank=rank, world_size=world, gather=gather)

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(c) for c in calls) == single.trainings
    assert all(len(c) > 0 for c in calls)
    assert len({a for c in calls for a in c}) == single.trainings // len(THETAS)  # each pivot on one rank only
    for r in range(world):
        assert results[r].to_dict() == single.to_dict()


def test_journal_resumes_after_an_interruption(space, teacher, tmp_path):
    settings = {"steps": 3, "seed": 0}
    fresh = run(space, teacher, eps=4, journal=Journal(tmp_path / "fresh", settings), settings=settings)

    class Killed(Exception):
        pass

    count = 0

    def dies_after_5(arch, theta):
        nonlocal count
        count += 1
        if count > 5:
            raise Killed
        return synthetic_error(arch, theta)

    with pytest.raises(Killed):
        run(space, teacher, dies_after_5, eps=4, journal=Journal(tmp_path / "run", settings), settings=settings)
    assert len((tmp_path / "run" / "journal.jsonl").read_text().splitlines()) == 1 + 5  # header + 5 trials

    calls = []

    def counting(arch, theta):
        calls.append(arch)
        return synthetic_error(arch, theta)

    resumed = run(space, teacher, counting, eps=4, journal=Journal(tmp_path / "run", settings), settings=settings)
    assert len(calls) == fresh.trainings - 5
    assert resumed.to_dict() == fresh.to_dict()
    # a different eps reuses the same trainings (the journal is keyed by (xi, theta))
    calls.clear()
    run(space, teacher, counting, eps=8, journal=Journal(tmp_path / "run", settings), settings=settings)
    assert calls == []


def test_journal_refuses_different_settings_and_repairs_a_torn_line(tmp_path):
    Journal(tmp_path, {"steps": 3, "seed": 0}).record(Arch(1, 1, 8, 8), {"lr": 1e-3}, 1.5, 0.1)
    with pytest.raises(ValueError, match=r"different settings \(steps: journal has 3, this run has 4\).*--overwrite"):
        Journal(tmp_path, {"steps": 4, "seed": 0})
    with open(tmp_path / "journal.jsonl", "a") as f:
        f.write('{"kind": "trial", "arch": [2, 1')  # died mid-write
    j = Journal(tmp_path, {"steps": 3, "seed": 0})
    assert j.get(Arch(1, 1, 8, 8), {"lr": 1e-3}) == 1.5
    j.record(Arch(2, 1, 8, 8), {"lr": 1e-3}, 2.5, 0.1)
    assert Journal(tmp_path, {"steps": 3, "seed": 0}).get(Arch(2, 1, 8, 8), {"lr": 1e-3}) == 2.5
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "journal.jsonl").write_text('{"x": 1}\n')
    with pytest.raises(ValueError, match="not a bortfast search journal"):
        Journal(tmp_path / "other", {})


def test_result_json_round_trip_plot_and_table(space, teacher, tmp_path):
    result = run(space, teacher, eps=3)
    write_outputs(result, tmp_path)
    loaded = SearchResult.load(tmp_path / "search.json")
    assert loaded == result
    assert loaded.best_arch == result.best_arch
    data = json.loads((tmp_path / "search.json").read_text())
    row = data["candidates"][result.best]
    assert set(row) == {"arch", "params", "flops", "latency", "pivot", "error", "theta", "w", "teacher_layers"}
    assert row["teacher_layers"] is None  # set only for per-layer candidates (bortfast search --per-layer)
    assert data["best"] == result.best and data["settings"]["eps"] == 3
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = format_top(result, 10).splitlines()
    assert len(table) == 2 + 10
    assert str(result.best_arch) in table[2] and table[2].endswith("*")
    ws = [c.w for c in result.top(10)]
    assert ws == sorted(ws, reverse=True)


def test_bad_input_is_rejected_with_the_value(space, teacher):
    archs, p, i, p_T, i_T = inputs(space, teacher)
    n = len(archs)
    ok = dict(eps=1, thetas=THETAS)
    with pytest.raises(ValueError, match=rf"eps must be in \[1, \|Xi\| = {n}\], got 0"):
        run_algorithm1(archs, p, i, p_T, i_T, synthetic_error, **(ok | {"eps": 0}))
    with pytest.raises(ValueError, match=rf"got {n + 1}"):
        run_algorithm1(archs, p, i, p_T, i_T, synthetic_error, **(ok | {"eps": n + 1}))
    with pytest.raises(ValueError, match="search space is empty"):
        run_algorithm1([], [], [], p_T, i_T, synthetic_error, **ok)
    with pytest.raises(ValueError, match="thetas .* is empty"):
        run_algorithm1(archs, p, i, p_T, i_T, synthetic_error, **(ok | {"thetas": []}))
    bad = i.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=rf"latency of candidate 3 {re.escape(str(archs[3]))} is nan"):
        run_algorithm1(archs, p, bad, p_T, i_T, synthetic_error, **ok)
    bad = p.copy()
    bad[5] = np.inf
    with pytest.raises(ValueError, match="params of candidate 5 .* is inf"):
        run_algorithm1(archs, bad, i, p_T, i_T, synthetic_error, **ok)
    with pytest.raises(ValueError, match=r"error \(distillation loss\) of <1, 2, 32, 32> under theta=.* is nan"):
        run_algorithm1(archs, p, i, p_T, i_T, lambda a, t: float("nan"), **ok)
    with pytest.raises(ValueError, match="teacher_latency must be finite and positive, got inf"):
        run_algorithm1(archs, p, i, p_T, float("inf"), synthetic_error, **ok)
    with pytest.raises(ValueError, match="no architecture in the space is both smaller"):
        run_algorithm1(archs, p, i, float(p.min()), i_T, synthetic_error, **ok)


# --- a real process killed with SIGKILL resumes to the identical search.json ------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import math, sys, time
    from bortfast.search import Journal, run_algorithm1, write_outputs
    from bortfast.space import Arch, SearchSpace, encoder_flops, param_counts

    out, delay = sys.argv[1], float(sys.argv[2])
    space = SearchSpace(layers=(1, 2, 3), heads=(2, 4), hidden=(32, 64), intermediate=(32, 64), vocab_size=500)
    teacher = Arch(6, 4, 128, 256, vocab_size=500)
    archs = space.archs()
    p = param_counts([*archs, teacher]).astype(float)
    i = encoder_flops([*archs, teacher], 1, 32).astype(float)

    def error_fn(arch, theta):
        time.sleep(delay)
        return 8.0 / math.log(arch.param_count()) + theta["lr"] * arch.layers

    settings = {"steps": 1, "seed": 0}
    result = run_algorithm1(archs, p[:-1], i[:-1], p[-1], i[-1], error_fn, eps=2, thetas=[{"lr": 1e-3}, {"lr": 0.1}],
                            teacher=teacher, journal=Journal(out, settings), settings=settings)
    write_outputs(result, out)
    """
)


def test_sigkill_mid_search_then_rerun_gives_identical_result(tmp_path):
    script = tmp_path / "search_script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONHASHSEED="0")
    subprocess.run([sys.executable, str(script), str(tmp_path / "fresh"), "0"], check=True, env=env, timeout=120)

    run_dir = tmp_path / "killed"
    journal = run_dir / "journal.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir), "0.3"], env=env)
    k = 3
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= 1 + k:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(journal.read_text().splitlines()) - 1
    assert k <= done < 24, f"{done} trainings journaled before the kill"
    assert not (run_dir / "search.json").exists()

    subprocess.run([sys.executable, str(script), str(run_dir), "0"], check=True, env=env, timeout=120)
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(records) == 1 + 24  # no training repeated: 12 pivots x 2 thetas
    assert len({(tuple(r["arch"]), r["theta"]["lr"]) for r in records[1:]}) == 24
    assert (run_dir / "search.json").read_bytes() == (tmp_path / "fresh" / "search.json").read_bytes()


def test_trials_follow_the_p_hat_order(space, teacher):
    result = run(space, teacher, eps=1, thetas=[{"lr": 1e-3}])
    assert sorted(t.candidate for t in result.trials) == list(range(len(space)))  # each xi exactly once
    params = [result.candidates[t.candidate].params for t in result.trials]
    assert params == sorted(params)


def test_candidate_error_is_the_smallest_over_thetas_even_when_w_is_zero(space, teacher):
    archs, p, i, p_T, i_T = inputs(space, teacher)
    p_mid = float(np.median(p))  # half the space is now "larger than T": W = 0 under every theta
    result = run_algorithm1(archs, p, i, p_mid, i_T, synthetic_error, eps=1, thetas=THETAS)
    zero = [c for c in result.candidates if c.params >= p_mid]
    assert zero and all(c.w == 0 for c in zero)
    for c in result.candidates:
        assert c.error == min(synthetic_error(c.arch, th) for th in THETAS)
