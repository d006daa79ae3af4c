"""recall@k of the teacher's own top-k neighbours (bortfast.evaluation.retrieval) on small hand-made examples."""

from __future__ import annotations

import numpy as np
import pytest

from bortfast.evaluation import neighbour_recall, top_k_neighbours

# Five sentences on a circle (angles in degrees): the teacher's neighbours by angle, worked out by hand below.
ANGLES = np.radians([0.0, 10.0, 30.0, 100.0, 200.0])
TEACHER = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1)  # (5, 2)


def test_top_k_by_hand():
    # 0: nearest 10° (1), then 30° (2); 3 (100°): nearest 30° (70° away), then 10° (90°); never itself
    got = top_k_neighbours(TEACHER, TEACHER, 2)
    assert got[0].tolist() == [1, 2] and got[1].tolist() == [0, 2] and got[3].tolist() == [2, 1]
    assert all(i not in row for i, row in enumerate(got.tolist()))


def test_recall_reference_values():
    # the same vectors, rotated and scaled (cosine ranks unchanged) and in another width: recall 1
    rot = np.array([[0.6, -0.8], [0.8, 0.6]])
    wide = np.concatenate([3 * TEACHER @ rot, np.zeros((5, 3))], axis=1)  # (5, 5)
    assert neighbour_recall(wide, TEACHER, k=2) == 1.0
    # a student that swaps sentences 0 and 4: hand count of the top-1 lists
    # teacher top-1: 0→1, 1→0, 2→1, 3→2, 4→3 (4 at 200°: 100° is 100° away, 0° is 160° away)
    student = TEACHER[[4, 1, 2, 3, 0]]
    # student top-1: row 0 (at 200°) → 3; row 1 (10°) → 2 (30°); row 2 → 1; row 3 → 2; row 4 (0°) → 1
    # hits: row 2 (1 = 1) and row 3 (2 = 2): 2 of 5
    assert neighbour_recall(student, TEACHER, k=1) == pytest.approx(2 / 5)


def test_recall_against_the_teachers_index():
    # queries in the teacher's space searching the teacher's own vectors: the teacher itself scores 1
    assert neighbour_recall(TEACHER, TEACHER, k=3, index=TEACHER) == 1.0
    rng = np.random.default_rng(0)
    noisy = TEACHER + rng.normal(scale=2.0, size=TEACHER.shape)
    assert neighbour_recall(noisy, TEACHER, k=1, index=TEACHER) < 1.0


def test_recall_refuses_bad_input():
    with pytest.raises(ValueError, match="more than 5 sentences"):
        neighbour_recall(TEACHER, TEACHER, k=5)
    with pytest.raises(ValueError, match="same sentences"):
        neighbour_recall(TEACHER[:4], TEACHER, k=2)
    with pytest.raises(ValueError, match="width 3 cannot search an index of width 2"):
        neighbour_recall(np.ones((5, 3)), TEACHER, k=2, index=TEACHER)
    with pytest.raises(ValueError, match="positive int"):
        neighbour_recall(TEACHER, TEACHER, k=0)
