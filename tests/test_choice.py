"""ξ* under a latency budget, re-measured in the deployment engine (choose_for_user's check)."""

from __future__ import annotations

import pytest
from test_inherit_pipeline import _result

from bortfast.search.choice import choose_for_user
from bortfast.space import Arch


def test_check_walks_the_finalists_in_order_and_records_every_measurement():
    r = _result([0.5, 0.3, None, 0.1], [1.0, 2.0, 3.0, 5.0])  # teacher î = 10 ms
    seen = []

    def check(arch, max_latency, min_speedup):
        seen.append((arch.layers, max_latency, min_speedup))
        return {"ok": arch.layers != 4, "speedup": 9.0 if arch.layers != 4 else 1.1}

    chosen = choose_for_user(r, min_speedup=1.5, check=check)
    # By î, candidates 3 (ê 0.1), 1 (ê 0.3), 0 (ê 0.5) qualify; 3 fails its check, so 1 is ξ*.
    assert chosen.best == 1 and seen == [(4, None, 1.5), (2, None, 1.5)]
    assert [c["candidate"] for c in chosen.selection["checks"]] == [3, 1]
    assert chosen.selection["checks"][0] == {"candidate": 3, "arch": [4, 2, 32, 64], "ok": False, "speedup": 1.1}
    assert chosen.best_theta == r.candidates[1].theta and chosen.best_w == r.candidates[1].w


def test_with_a_check_finalists_include_xi_that_the_proxy_puts_slightly_over_the_budget():
    from bortfast.search.choice import CHECK_SLACK

    r = _result([0.5, 0.3, 0.05, 0.1], [1.0, 2.0, 8.0, 5.0])  # budget 10 / 1.5 = 6.67 ms by î
    assert choose_for_user(r, min_speedup=1.5).best == 3  # î alone: candidate 2 (8 ms) is over the budget
    assert 8.0 * CHECK_SLACK <= 10 / 1.5 < 8.0
    chosen = choose_for_user(r, min_speedup=1.5, check=lambda a, m, s: {"ok": True, "speedup": 2.0})
    assert chosen.best == 2 and chosen.selection["finalists_within"] == pytest.approx(10 / 1.5 / CHECK_SLACK)
    # ... but never ξ beyond the slack (candidate 2 at 10 ms would need î 7 ms to be timed).
    far = _result([0.5, 0.3, 0.05, 0.1], [1.0, 2.0, 10.0, 5.0])
    assert choose_for_user(far, min_speedup=1.5, check=lambda a, m, s: {"ok": True, "speedup": 2.0}).best == 3


def test_no_check_for_w_or_an_error_ceiling_and_a_clear_error_when_all_fail():
    r = _result([0.5, 0.3, None, 0.1], [1.0, 2.0, 3.0, 5.0])

    def must_not_run(*args):
        raise AssertionError("checked without a latency budget")

    assert choose_for_user(r, check=must_not_run).best == 0  # W's argmax
    assert choose_for_user(r, max_error=0.35, check=must_not_run).best == 1
    with pytest.raises(ValueError, match=r"3 trained architecture\(s\) meet min_speedup=1.5 by î but none.*"
                                         r"⟨4, 2, 32, 64⟩: speedup=1.2"):
        choose_for_user(r, min_speedup=1.5, check=lambda a, m, s: {"ok": False, "speedup": 1.2})


def test_ort_speed_check_times_both_shapes_in_workers_and_applies_the_budget(tmp_path):
    from bortfast.apps.engine_check import OrtSpeedCheck
    from bortfast.profile.timing import TimingConfig
    from bortfast.space import Arch

    teacher = Arch(2, 4, 64, 128, vocab_size=300, max_positions=64)
    student = Arch(1, 2, 32, 64, vocab_size=300, max_positions=64)
    check = OrtSpeedCheck(teacher, tmp_path, seq_len=32, threads=1,
                          timing=TimingConfig(rounds=2, min_samples=5, turn_seconds=0.02))
    report = check(student, None, 1000.0)
    assert report["ok"] is False and report["speedup"] > 0 and report["samples"] >= 5  # 1000x is out of reach
    assert report["speedup"] == pytest.approx(report["teacher_ms"] / report["student_ms"])
    assert "onnxruntime fp32 B=1 L=32 T=1" == report["engine"]
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["1-2-32-64.onnx", "2-4-64-128.onnx"]
    assert check(student, 1e9, None)["ok"] is True  # a latency budget nobody misses
    flops = OrtSpeedCheck(teacher, tmp_path, seq_len=32, threads=1, check_latency=False,
                          timing=TimingConfig(rounds=2, min_samples=5, turn_seconds=0.02))
    assert flops(student, 1e-9, None)["ok"] is True  # î in FLOPs: a max_latency is no ms budget, not checked
    with pytest.raises(TypeError, match="bortfast.Arch"):
        OrtSpeedCheck((2, 4, 64, 128), tmp_path)


def test_pipeline_checks_a_latency_budget_and_with_flops_only_the_speedup_floor(tmp_path, tiny_hidden_teacher_dir):
    from bortfast.apps.engine_check import OrtSpeedCheck
    from bortfast.pipeline import RunConfig, SearchStage
    from bortfast.pipeline.stages import _engine_check

    def cfg(**kw):
        return RunConfig(teacher=str(tiny_hidden_teacher_dir), out_dir=str(tmp_path / "run"), search=SearchStage(**kw))

    assert _engine_check(cfg(by_w=True), tmp_path) is None  # W's argmax: nothing to check
    default = _engine_check(cfg(), tmp_path)  # the default: >= 5x by FLOPs, checked in ONNX Runtime
    assert isinstance(default, OrtSpeedCheck) and default.check_latency is False
    # FLOPs with only a FLOPs budget: no ms to compare
    assert _engine_check(cfg(max_latency=1e6, min_speedup=None, latency="flops"), tmp_path) is None
    by_flops = _engine_check(cfg(min_speedup=2.0, latency="flops"), tmp_path)
    assert isinstance(by_flops, OrtSpeedCheck) and by_flops.check_latency is False
    assert _engine_check(cfg(min_speedup=2.0, engine_check=False), tmp_path) is None
    check = _engine_check(cfg(min_speedup=2.0, latency="kernel"), tmp_path)
    assert isinstance(check, OrtSpeedCheck) and check.teacher_arch.hidden == 48 and check.check_latency is True


def _with_twins():
    import dataclasses

    from bortfast.space import Arch

    r = _result([0.5, 0.3, None, 0.1], [1.0, 2.0, 3.0, 5.0])
    twin = dataclasses.replace(r.candidates[1], arch=Arch(2, 4, 32, 64), pivot=False, error=None, theta=None,
                               w=None, latency=2.5)
    other = dataclasses.replace(twin, arch=Arch(2, 4, 32, 96), params=r.candidates[1].params + 1)  # not a twin
    return dataclasses.replace(r, candidates=[*r.candidates, twin, other])


def test_a_finalist_with_more_heads_than_a_twin_is_checked_and_chosen_as_that_twin():
    import dataclasses

    r = _with_twins()  # finalist 1 is ⟨2, 2, 32, 64⟩, twin 4 is ⟨2, 4, 32, 64⟩: 1 has the fewest heads already
    seen = []

    def check(arch, max_latency, min_speedup):
        seen.append(arch)
        return {"ok": arch.layers != 4, "speedup": 3.0}

    chosen = choose_for_user(r, min_speedup=1.5, check=check)
    assert chosen.best == 1 and Arch(2, 4, 32, 64) not in seen and "twin_of" not in chosen.selection
    # swap the head counts: now the twin (2 heads) stands in for the finalist (4 heads)
    cands = list(r.candidates)
    cands[1] = dataclasses.replace(cands[1], arch=Arch(2, 4, 32, 64))
    cands[4] = dataclasses.replace(cands[4], arch=Arch(2, 2, 32, 64))
    chosen = choose_for_user(dataclasses.replace(r, candidates=cands), min_speedup=1.5, check=check)
    assert chosen.best == 4 and chosen.best_arch == Arch(2, 2, 32, 64)
    assert (chosen.candidates[4].error, chosen.best_w) == (0.3, r.candidates[1].w) and cands[4].error is None
    assert chosen.selection["checks"][-1]["twin_of"] == 1 and chosen.selection["twin_of"]["candidate"] == 1
    assert [c["candidate"] for c in chosen.selection["checks"]] == [3, 4]  # candidate 5 is no twin, never timed


def test_head_twins_are_untrained_uniform_and_of_equal_params():
    from bortfast.search.choice import head_twins

    r = _with_twins()
    assert head_twins(r.candidates, 1) == [4] and head_twins(r.candidates, 0) == []


def test_a_finalist_is_checked_as_its_twin_and_passed_over_when_that_fails():
    import dataclasses

    r = _result([0.5, 0.3, None, 0.1], [1.0, 2.0, 3.0, 5.0])
    r.candidates[3] = dataclasses.replace(r.candidates[3], arch=Arch(4, 4, 32, 64))
    twin = dataclasses.replace(r.candidates[3], arch=Arch(4, 2, 32, 64), pivot=False, error=None, theta=None, w=None)
    r = dataclasses.replace(r, candidates=[*r.candidates, twin])
    speed = {(4, 2): 1.8, (4, 4): 1.6, (2, 2): 9.0}

    def check(arch, max_latency, min_speedup):
        s = speed[(arch.layers, arch.heads)]
        return {"ok": s >= min_speedup, "speedup": s}

    chosen = choose_for_user(r, min_speedup=1.5, check=check)
    # finalist 3 (ê 0.1) is checked as its 2-head twin 4, which passes and is ξ*
    assert [(c["candidate"], c.get("twin_of")) for c in chosen.selection["checks"]] == [(4, 3)]
    assert chosen.best == 4 and chosen.candidates[4].error == 0.1
    speed[(4, 2)] = 1.2  # the representative fails: the finalist's group is passed over, the next finalist checked
    chosen = choose_for_user(r, min_speedup=1.5, check=check)
    assert [c["candidate"] for c in chosen.selection["checks"]] == [4, 1] and chosen.best == 1


def test_a_finalist_is_chosen_as_its_twin_nearest_the_teachers_head_size():
    import dataclasses

    from bortfast.search.choice import _head_size_gap

    r = _result([0.5, 0.3, None, 0.1], [1.0, 2.0, 3.0, 5.0])  # teacher ⟨9, 2, 32, 64⟩: head size 16
    r.candidates[3] = dataclasses.replace(r.candidates[3], arch=Arch(4, 4, 32, 64))  # head size 8
    twins = [dataclasses.replace(r.candidates[3], arch=Arch(4, a, 32, 64), pivot=False, error=None, theta=None,
                                 w=None) for a in (1, 2)]  # head sizes 32 and 16
    r = dataclasses.replace(r, candidates=[*r.candidates, *twins])

    def check(arch, max_latency, min_speedup):
        return {"ok": True, "speedup": 3.0}

    chosen = choose_for_user(r, min_speedup=1.5, check=check)
    # the fewest heads (A = 1, head size 32) is not chosen: A = 2 keeps the teacher's head size 16
    assert chosen.best_arch == Arch(4, 2, 32, 64) and chosen.selection["twin_of"]["candidate"] == 3
    assert _head_size_gap(Arch(4, 4, 32, 64), 16) == _head_size_gap(Arch(4, 1, 32, 64), 16) == 1.0
    # without the A = 2 twin, 8 and 32 are equally far from 16: the tie goes to fewer heads (faster)
    r2 = dataclasses.replace(r, candidates=r.candidates[:-1])
    assert choose_for_user(r2, min_speedup=1.5, check=check).best_arch == Arch(4, 1, 32, 64)
