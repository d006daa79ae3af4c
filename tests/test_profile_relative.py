"""The relative profiler (issue 31): î(ξ) / î(T) timed in alternating rounds, cached, and the search's î built on it."""

from __future__ import annotations

import numpy as np
import pytest

from bortfast.profile import relative
from bortfast.profile.relative import relative_profile
from bortfast.search.runner import latencies
from bortfast.space import Arch

TEACHER = Arch(2, 4, 64, 256)
SMALL, BIG = Arch(1, 2, 32, 64), Arch(6, 8, 256, 1024)


def test_ratios_rank_architectures_against_the_teacher_and_are_cached(tmp_path, monkeypatch):
    rel = relative_profile([SMALL, TEACHER, BIG], TEACHER, seq_len=32, threads=1, rounds=3, block=2,
                           cache_dir=tmp_path)
    small, same, big = (r.ratio for r in rel)
    assert small < same < big and 0.5 < same < 2.0  # T against itself: about 1, even on a busy machine
    assert big > 4 * small  # ~100x the FLOPs
    assert all(r.rounds == 3 and r.reference_ms > 0 and r.ms > 0 and "UTC" in r.measured for r in rel)

    def must_not_time(*args, **kwargs):
        raise AssertionError("a cached ratio was timed again")

    monkeypatch.setattr(relative, "block_latency", must_not_time)
    again = relative_profile([BIG, SMALL], TEACHER, seq_len=32, threads=1, rounds=3, cache_dir=tmp_path)
    assert [r.ratio for r in again] == [big, small]


def test_search_latencies_are_ratios_times_the_teachers_ms(tmp_path):
    ms, unit = latencies([SMALL, BIG, TEACHER], "kernel", batch=1, seq_len=32, threads=1, cache_dir=tmp_path,
                         reference=TEACHER)
    rel = relative_profile([SMALL, BIG], TEACHER, seq_len=32, threads=1, cache_dir=tmp_path)  # from the cache
    t_ms = float(np.median([r.reference_ms for r in rel]))
    assert unit == "ms" and ms[2] == pytest.approx(t_ms)
    np.testing.assert_allclose(ms[:2] / ms[2], [r.ratio for r in rel])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="rounds must be a positive int, got 0"):
        relative_profile([SMALL], TEACHER, rounds=0)
    with pytest.raises(ValueError, match="block must be a positive int"):
        relative_profile([SMALL], TEACHER, block=0)
    with pytest.raises(TypeError, match="bortfast.Arch or PerLayerArch"):
        relative_profile([(1, 2, 32, 64)], TEACHER)
