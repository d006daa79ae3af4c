"""ξ* under a latency budget, re-measured in the deployment engine (choose_for_user's check)."""

from __future__ import annotations

import pytest
from test_inherit_pipeline import _result

from bortfast.search.choice import choose_for_user


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


def test_no_check_for_w_or_an_error_ceiling_and_a_clear_error_when_all_fail():
    r = _result([0.5, 0.3, None, 0.1], [1.0, 2.0, 3.0, 5.0])

    def must_not_run(*args):
        raise AssertionError("checked without a latency budget")

    assert choose_for_user(r, check=must_not_run).best == 0  # W's argmax
    assert choose_for_user(r, max_error=0.35, check=must_not_run).best == 1
    with pytest.raises(ValueError, match=r"3 trained architecture\(s\) meet min_speedup=1.5 by î but none.*"
                                         r"⟨4, 2, 32, 64⟩: speedup=1.2"):
        choose_for_user(r, min_speedup=1.5, check=lambda a, m, s: {"ok": False, "speedup": 1.2})
