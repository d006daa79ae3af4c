"""Stability of the kernel profiler's î (issue 31): profile the demo's search space (every ξ below the bundled
teacher all-MiniLM-L6-v2) ``--passes`` times back to back, each ξ timed against the teacher in alternating rounds
(:mod:`bortfast.profile.relative`), and report how much each ξ's î / î(T) moves between passes (median and 95th
percentile of the relative spread, max/min − 1), the Spearman correlation of the passes, and the wall time of one
pass. Run it alone on the machine: ``python benchmarks/profiler_stability.py --out DIR``.
"""

from __future__ import annotations

import time

import numpy as np
from _harness import parser, teacher_dir, write_result


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--passes", type=int, default=3, help="back-to-back profiles of the space (default 3)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence L (default 128)")
    p.add_argument("--limit", type=int, default=None, help="profile only every k-th ξ so that at most this many "
                                                            "remain (default: the whole space)")
    args = p.parse_args()

    from scipy.stats import spearmanr
    from transformers import AutoConfig

    from bortfast.profile.relative import relative_profile
    from bortfast.space import Arch, SearchSpace

    teacher = Arch.from_config(AutoConfig.from_pretrained(teacher_dir()))
    archs = [a for a in SearchSpace.below(AutoConfig.from_pretrained(teacher_dir())).archs() if a != teacher]
    if args.limit and len(archs) > args.limit:
        archs = archs[:: -(-len(archs) // args.limit)]
    ratios, seconds = [], []
    for _ in range(args.passes):
        t0 = time.perf_counter()
        rel = relative_profile(archs, teacher, seq_len=args.seq_len, threads=args.threads)
        seconds.append(time.perf_counter() - t0)
        ratios.append([r.ratio for r in rel])
    r = np.array(ratios)  # (passes, ξ)
    spread = r.max(0) / r.min(0) - 1.0
    result = {
        "teacher": list(teacher.tuple), "archs": len(archs), "seq_len": args.seq_len, "threads": args.threads,
        "pass_seconds": seconds, "spread_median": float(np.median(spread)),
        "spread_p95": float(np.quantile(spread, 0.95)),
        "spearman_between_passes": [float(spearmanr(r[0], r[k]).statistic) for k in range(1, len(r))],
        "targets": {"spread_median": 0.02, "spread_p95": 0.05, "pass_seconds": 60.0},
        "rows": [{"arch": list(a.tuple), "ratios": r[:, j].tolist()} for j, a in enumerate(archs)],
    }
    path = write_result(args.out, result)
    print(f"{len(archs)} ξ, {args.passes} passes of {', '.join(f'{s:.0f}' for s in seconds)} s: spread of î/î(T) "
          f"median {100 * result['spread_median']:.2f}%, p95 {100 * result['spread_p95']:.2f}% -> {path}")


if __name__ == "__main__":
    main()
