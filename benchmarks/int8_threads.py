"""INT8 vs fp32 in ONNX Runtime, 1 and 2 threads, isolated (issue 15.4 / 18): is INT8 really slower at 2 threads
than at 1, and which quantisation format is fastest on this CPU?

One random-weight model (default Bort ⟨4, 8, 1024, 768⟩, vocabulary 30522; speed does not depend on the weights),
exported once by :func:`bortfast.export.to_onnx` (fp32, fused) and quantised from that graph with ORT's
``quantize_dynamic`` in the formats ORT's guidance distinguishes:

- ``int8_s8``: uint8 activations x int8 weights (U8S8) -- bortfast's INT8 export; ORT's choice with AVX-512 VNNI;
- ``int8_u8``: U8U8 weights (ORT's advice for AVX2/AVX-512 *without* VNNI, where U8S8 can saturate);
- ``int8_s8_reduce_range``: 7-bit weights (the other no-VNNI workaround);
- ``int8_s8_per_channel``: per-channel weight scales.

Every (file, threads, spinning) is its own engine in its own worker process (bortfast.profile.timing), turns
alternating. B=1, L=128. JSON to OUT/int8_threads.json. It also records whether the CPU has AVX-512 VNNI.

Run (~2-3 min on a quiet 2-core box):
    flock /tmp/bortfast-bench.lock python benchmarks/int8_threads.py --out benchmarks/results
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from _harness import parser, write_result  # benchmarks/ is on sys.path when run as a script

from bortfast.export.onnx import to_onnx
from bortfast.profile.timing import Engine, TimingConfig, fixed_feed, ort_session_engine, time_engines
from bortfast.space import Arch

FORMATS = {
    "int8_s8": {"weight_type": "QInt8"},
    "int8_u8": {"weight_type": "QUInt8"},
    "int8_s8_reduce_range": {"weight_type": "QInt8", "reduce_range": True},
    "int8_s8_per_channel": {"weight_type": "QInt8", "per_channel": True},
}


def cpu_flags() -> dict[str, bool]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return {f: f in flags for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")}


def quantize(fp32: Path, out: Path, weight_type: str, **options: bool) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=getattr(QuantType, weight_type),
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}, **options)
    return out


def main() -> None:
    ap = parser(__doc__, threads=None)
    ap.add_argument("--arch", default="4,8,1024,768")
    ap.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts (default %(default)s)")
    ap.add_argument("--min-samples", type=int, default=30)
    args = ap.parse_args()
    import torch
    from transformers import BertModel

    arch = Arch.parse(args.arch)
    threads = [int(t) for t in args.threads.split(",")]
    t0, load = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="int8-threads-") as tmp:
        model_dir = Path(tmp) / "model"
        torch.manual_seed(0)
        BertModel(arch.to_bert_config()).save_pretrained(model_dir)
        files = {"fp32": Path(tmp) / "fp32.onnx"}
        to_onnx(model_dir, files["fp32"], check_parity=False)
        for name, spec in FORMATS.items():
            files[name] = quantize(files["fp32"], Path(tmp) / f"{name}.onnx", **spec)
        feed = fixed_feed(arch.vocab_size, 1, 128)
        engines = [Engine(f"{name} t{t}", str(path), ort_session_engine,
                          {"path": str(path), "feed": feed, "threads": t, "spinning": False})
                   for name, path in files.items() for t in threads]
        engines += [Engine(f"{name} t{t} spinning", str(files[name]), ort_session_engine,
                           {"path": str(files[name]), "feed": feed, "threads": t, "spinning": True})
                    for name in ("fp32", "int8_s8") for t in threads]
        timings = time_engines(engines, TimingConfig(min_samples=args.min_samples), progress=True)["timings"]
    rows = [t.summary() for t in timings.values()]
    for r in rows:
        print(f"{r['engine']:<32} median {r['median_ms']:8.2f} ms  min {r['min_ms']:8.2f}  max {r['max_ms']:8.2f}  "
              f"n={r['n']}")
    med = {r["engine"]: r["median_ms"] for r in rows}
    result = {"flags": cpu_flags(),
              "arch": list(arch.tuple), "batch": 1, "seq_len": 128, "loadavg_before": load,
              "loadavg_after": os.getloadavg(), "rows": rows,
              "int8_over_fp32": {f"t{t}": med[f"fp32 t{t}"] / med[f"int8_s8 t{t}"] for t in threads},
              "two_over_one_thread": {name: med[f"{name} t1"] / med[f"{name} t2"] for name in files}
              if set(threads) >= {1, 2} else None,
              "seconds": time.perf_counter() - t0}
    write_result(args.out, result)
    print(json.dumps({k: result[k] for k in ("flags", "int8_over_fp32", "two_over_one_thread")}, indent=1))


if __name__ == "__main__":
    main()
