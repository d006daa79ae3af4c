"""Latency profiler: stats, the on-disk cache (keyed by arch, B, L, threads, repeats, warm-up, CPU, kernel version;
locked against concurrent writers; older formats refused), and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bortfast.profile.latency as profile
from bortfast import Arch, LatencyStats, SearchSpace, measure_latency, profile_space
from bortfast.cli import main

TINY = [Arch(1, 2, 16, 32), Arch(2, 2, 32, 64), Arch(1, 4, 64, 16)]


def test_measure_latency_stats():
    s = measure_latency(TINY[1], batch=2, seq_len=8, threads=1, repeats=3, warmup=0)
    assert isinstance(s, LatencyStats)
    assert (s.repeats, s.batch, s.seq_len, s.threads) == (3, 2, 8, 1)
    assert 0 < s.min_ms <= s.median_ms <= s.max_ms
    with pytest.raises(AttributeError):
        s.median_ms = 1.0  # frozen


def test_bigger_architecture_is_slower():
    small = measure_latency(Arch(1, 2, 64, 64), seq_len=32, threads=1, repeats=5)
    large = measure_latency(Arch(4, 4, 256, 1024), seq_len=32, threads=1, repeats=5)
    assert large.min_ms > small.min_ms


def test_profile_space_cache(tmp_path, monkeypatch):
    archs = TINY + [TINY[0]]  # a duplicate is measured once and reported twice
    calls = []
    real = profile._time_kernel

    def counting(kernel, *args):
        calls.append(kernel.arch)
        return real(kernel, *args)

    monkeypatch.setattr(profile, "_time_kernel", counting)
    first = profile_space(archs, seq_len=8, threads=1, repeats=2, cache_dir=tmp_path, progress=False)
    assert first.shape == (4,) and first.dtype == np.float64 and (first > 0).all()
    assert first[0] == first[3]
    assert sorted(calls) == sorted(TINY)
    cache = json.loads((tmp_path / profile.CACHE_FILE).read_text())
    assert len(cache["entries"]) == 3
    assert cache["format"] == profile.CACHE_FORMAT
    kernel = f"kernel={profile.kernel_version()}"
    assert all(profile.cpu_model() in k and "|T=1|R=2|W=1|" in k and k.endswith(kernel) for k in cache["entries"])

    calls.clear()
    again = profile_space(archs, seq_len=8, threads=1, repeats=2, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first, again)  # all from the cache
    assert calls == []
    profile_space(TINY[:1], seq_len=8, threads=2, repeats=2, cache_dir=tmp_path, progress=False)
    profile_space(TINY[:1], seq_len=16, threads=1, repeats=2, cache_dir=tmp_path, progress=False)
    assert calls == [TINY[0], TINY[0]]  # other threads / seq_len are other keys
    profile_space(TINY[:1], seq_len=8, threads=1, repeats=3, cache_dir=tmp_path, progress=False)
    profile_space(TINY[:1], seq_len=8, threads=1, repeats=2, warmup=0, cache_dir=tmp_path, progress=False)
    assert calls == [TINY[0]] * 4  # so are other repeats / warm-up
    assert len(json.loads((tmp_path / profile.CACHE_FILE).read_text())["entries"]) == 7
    # Another kernel build (csrc/ edited, or another bortfast version) measures again instead of reusing.
    monkeypatch.setattr(profile._core, "kernel_hash", "0123456789abcdef", raising=False)
    profile_space(TINY[:1], seq_len=8, threads=1, repeats=2, cache_dir=tmp_path, progress=False)
    assert calls == [TINY[0]] * 5


def test_kernel_version_names_package_and_sources():
    from bortfast import __version__, _core

    assert profile.kernel_version() == f"{__version__}+{_core.kernel_hash}"
    assert len(_core.kernel_hash) == 16 and int(_core.kernel_hash, 16) >= 0  # a SHA-256 prefix (CMakeLists.txt)


def test_old_format_cache_is_refused_not_reused(tmp_path):
    old_key = f"1,2,16,32|B=1|L=8|T=1|{profile.cpu_model()}"  # the format-1 key (no repeats, warm-up, kernel)
    old = {"cpu": profile.cpu_model(), "entries": {old_key: {"median_ms": 1.0, "min_ms": 1.0, "max_ms": 1.0,
                                                             "repeats": 7, "batch": 1, "seq_len": 8, "threads": 1}}}
    (tmp_path / profile.CACHE_FILE).write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"latency cache .* is format 1, this bortfast reads format 2.*delete it"):
        profile_space(TINY[:1], seq_len=8, threads=1, cache_dir=tmp_path, progress=False)
    assert json.loads((tmp_path / profile.CACHE_FILE).read_text()) == old  # left as it was


_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dataclasses import asdict
    from bortfast.profile import latency

    cache, tag, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not go.exists():  # start together, so the two writers interleave
        time.sleep(0.005)
    stats = latency.LatencyStats(1.0, 1.0, 1.0, 1, 1, 1, 1)
    for i in range(40):
        latency.merge_cache(cache, {f"{tag}-{i}": asdict(stats)}, cpu="cpu")
""")


def test_concurrent_writers_lose_no_entries(tmp_path):
    cache, go = tmp_path / profile.CACHE_FILE, tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(cache), tag, str(go)]) for tag in ("a", "b")]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    entries = json.loads(cache.read_text())["entries"]
    assert sorted(entries) == sorted(f"{tag}-{i}" for tag in ("a", "b") for i in range(40))


def test_profile_space_accepts_space_and_array():
    space = SearchSpace(layers=(1,), heads=(2,), hidden=(16,), intermediate=(8, 16))
    a = profile_space(space, seq_len=4, threads=1, repeats=1, progress=False)
    b = profile_space(space.as_array(), seq_len=4, threads=1, repeats=1, progress=False)
    assert a.shape == b.shape == (2,)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="batch must be positive, got 0"):
        profile_space(TINY, batch=0, progress=False)
    with pytest.raises(ValueError, match="seq_len must be positive, got -1"):
        measure_latency(TINY[0], seq_len=-1)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        measure_latency(TINY[0], threads=0)
    with pytest.raises(ValueError, match="repeats must be positive"):
        measure_latency(TINY[0], repeats=0)
    with pytest.raises(TypeError, match="bortfast.Arch"):
        profile_space([(1, 2, 16, 32)], progress=False)
    with pytest.raises(TypeError, match="bortfast.Arch"):
        measure_latency("1,2,16,32")
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        profile_space(np.zeros((2, 3), np.int64), progress=False)
    (tmp_path / profile.CACHE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        profile_space(TINY, seq_len=4, threads=1, cache_dir=tmp_path, progress=False)


def test_cli_profile(tmp_path, capsys):
    out = tmp_path / "latency.json"
    assert main(["profile", "--arch", "1,2,16,32", "--arch", "2,2,32,64", "--seq-len", "8", "--threads", "1",
                 "--repeats", "2", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                 "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert result["threads"] == 1 and result["seq_len"] == 8 and len(result["archs"]) == 2
    row = result["archs"][1]
    assert (row["layers"], row["heads"], row["hidden"], row["intermediate"]) == (2, 2, 32, 64)
    assert row["median_ms"] > 0 and row["flops"] == Arch(2, 2, 32, 64).flops(1, 8)
    assert "OpenBLAS" in result["blas"]
    assert main(["profile", "--arch", "1,3,16,32", "--no-progress"]) == 2
    assert "bortfast profile: error" in capsys.readouterr().err
