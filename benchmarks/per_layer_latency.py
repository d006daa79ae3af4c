"""How well the per-layer latency table predicts a whole per-layer stack (issue 17, part 2: the fused kernel's î).

The table (bortfast.profile.perlayer.layer_latency_table) times every option of a MiniLM-shaped layer menu
(head size 32, 1..H/32 heads x 1/16..16/16 of 1,536 FFN neurons) as a one-layer encoder through the fused C++
kernel; an architecture's prediction is the sum of its layers' entries. Here ``--archs`` random per-layer
architectures (1-6 layers, widths drawn from the menu, hidden 192/288/384) are also timed whole, and the JSON reports
the ratio predicted / measured (median, min, max) and the Spearman rank correlation between them.

Run (about 3 minutes on 2 shared cores):
    python benchmarks/per_layer_latency.py --out /tmp/bortfast-per-layer-latency
"""

from __future__ import annotations

import time

import numpy as np
from _harness import parser, write_result  # benchmarks/ is on sys.path when run as a script
from scipy.stats import spearmanr

from bortfast.profile import measure_latency
from bortfast.profile.kernel import default_threads
from bortfast.profile.perlayer import layer_latency_table, predict_latency
from bortfast.search.perlayer import menu_options
from bortfast.space import PerLayerArch


def main() -> None:
    ap = parser(__doc__, threads=None)
    ap.add_argument("--archs", type=int, default=30)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="kernel threads (default: the kernel's default)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    threads = args.threads or default_threads()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    tables, rows = {}, []
    for hidden in (192, 288, 384):
        heads, neurons = menu_options(12, 1536, hidden=hidden, head_dim=32)
        ms = layer_latency_table(hidden, 32, heads, neurons, seq_len=args.seq_len, threads=threads,
                                 repeats=args.repeats, progress=True)
        tables[hidden] = {(int(a), int(i)): float(t) for a, i, t in zip(heads, neurons, ms)}
    for _ in range(args.archs):
        hidden = int(rng.choice([192, 288, 384]))
        keys = [k for k in tables[hidden] if k != (0, 0)]
        picks = [keys[int(j)] for j in rng.integers(0, len(keys), int(rng.integers(1, 7)))]
        arch = PerLayerArch(hidden, 32, tuple(a for a, _ in picks), tuple(i for _, i in picks))
        measured = measure_latency(arch, 1, args.seq_len, threads, repeats=args.repeats).median_ms
        rows.append({"arch": arch.spec, "predicted_ms": predict_latency(arch, tables[hidden]),
                     "measured_ms": measured})
    ratio = np.array([r["predicted_ms"] / r["measured_ms"] for r in rows])
    rho = spearmanr([r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows]).statistic
    result = {"ratio_median": float(np.median(ratio)), "ratio_min": float(ratio.min()),
              "ratio_max": float(ratio.max()), "spearman": float(rho), "threads": threads,
              "seq_len": args.seq_len, "seconds": time.perf_counter() - t0, "archs": rows}
    write_result(args.out, result)
    print(f"predicted/measured: median {result['ratio_median']:.3f} (min {result['ratio_min']:.3f}, max "
          f"{result['ratio_max']:.3f}); Spearman {rho:.3f} over {len(rows)} archs")


if __name__ == "__main__":
    main()
