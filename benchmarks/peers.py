"""The peers a user would pick instead of a distilled student (issue 29, item 6): one table, one plot, JSON.

Every point embeds STS-B dev with the teacher's pooling (mean, cosine) and is timed end to end (tokenization
included) on real sentences (the first ``--timing-sentences`` distinct sentences of STS-B *train*), at B=1 and at
B=32, each engine in its own worker process with turns alternating (:func:`bortfast.profile.timing.time_engines`),
the ONNX engines at ``--threads`` intra-op threads:

* the teacher (all-MiniLM-L6-v2, the demo's) in ONNX Runtime fp32: the speed-up baseline;
* the teacher in ONNX Runtime INT8 (``quantize_dynamic``, what a user tries first);
* the teacher cut to its first k layers with no training (k = the first student's depth);
* every ``--run NAME=DIR`` (a ``bortfast demo`` / ``run`` output directory): its ``student/`` exported fp32 and, when
  different, the ``model.onnx`` the run shipped;
* a model2vec static model distilled from the same teacher (``--m2v DIR``; distil it first, in its own environment,
  because ``model2vec[distill]`` pins packages that break this one's ``transformers``)::

      python3 -m venv /tmp/m2v && /tmp/m2v/bin/pip install torch==2.13.0 'model2vec[distill]' scikit-learn
      python benchmarks/peers.py --distill-m2v /tmp/m2v/bin/python --out DIR     # writes DIR/model2vec/
      pip install model2vec                                                        # loading it needs no extra
      python benchmarks/peers.py --run demo=demo-run --m2v DIR/model2vec --out DIR

Writes ``OUT/peers.json`` and ``OUT/peers.png`` (quality kept vs speed-up at B=1) and prints the markdown table.
Time it alone on the machine.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from _harness import machine, parser, teacher_dir, write_result

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "glue" / "STS-B"
M2V_DISTILL = ("import sys\nfrom model2vec.distill import distill\n"
               "distill(model_name=sys.argv[1], pca_dims=256).save_pretrained(sys.argv[2])\n")


def encoder_engine(onnx_path: str, tokenizer: str, sentences: list[str], batch_size: int, threads: int):
    """bortfast.runtime.Encoder over all ``sentences`` (runs in a timing worker)."""
    from bortfast.runtime import Encoder

    encoder = Encoder(onnx_path, tokenizer=tokenizer, threads=threads, batch_size=batch_size)
    return lambda: encoder.encode(sentences, pooling="mean")


def static_engine(model_dir: str, sentences: list[str], batch_size: int):
    """model2vec's StaticModel over all ``sentences`` (runs in a timing worker)."""
    from model2vec import StaticModel

    model = StaticModel.from_pretrained(model_dir)
    return lambda: model.encode(sentences, batch_size=batch_size, show_progress_bar=False,
                                use_multiprocessing=False)


def onnx_points(work: Path, runs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """name -> {"file", "tokenizer", "label"} for the teacher fp32 / INT8, the k-layer cut and every run."""
    from bortfast.export.onnx import quantize_int8, to_onnx
    from bortfast.models.config import load_config
    from bortfast.pipeline.references import cut_teacher

    teacher = str(teacher_dir())
    fp32 = to_onnx(teacher, work / "teacher_fp32.onnx", encoder_only=True).out_path
    points = {"teacher_fp32": {"file": str(fp32), "tokenizer": teacher, "label": "teacher, ORT fp32"},
              "teacher_int8": {"file": str(quantize_int8(fp32, work / "teacher_int8.onnx")), "tokenizer": teacher,
                               "label": "teacher, ORT INT8"}}
    depths = [load_config(d / "student").num_hidden_layers for d in runs.values()]
    if depths:
        k = depths[0]
        cut = to_onnx(cut_teacher(teacher, k, work / f"cut{k}"), work / f"cut{k}.onnx", encoder_only=True).out_path
        points["cut"] = {"file": str(cut), "tokenizer": teacher, "label": f"teacher's first {k} layers, untrained"}
    for name, run in runs.items():
        student = to_onnx(run / "student", work / f"{name}_fp32.onnx", encoder_only=True).out_path
        arch = ",".join(str(v) for v in json.loads((run / "pipeline.json").read_text())["stages"]["search"]
                        ["outputs"]["arch"].split(","))
        points[name] = {"file": str(student), "tokenizer": str(run / "student"), "label": f"{name} ⟨{arch}⟩ fp32"}
        shipped = run / "model.onnx"
        if shipped.is_file():
            points[f"{name}_shipped"] = {"file": str(shipped), "tokenizer": str(run / "student"),
                                         "label": f"{name} ⟨{arch}⟩ as shipped (model.onnx)"}
    return points


def sts_scores(points: dict[str, dict[str, Any]], m2v: Path | None) -> dict[str, float]:
    from bortfast.evaluation import read_sts, sts_spearman
    from bortfast.runtime import Encoder

    pairs = read_sts(DATA / "dev.tsv")
    scores = {}
    for name, p in points.items():
        encoder = Encoder(p["file"], tokenizer=p["tokenizer"])
        scores[name] = sts_spearman(lambda texts, e=encoder: e.encode(list(texts), pooling="mean"), pairs)
    if m2v is not None:
        from model2vec import StaticModel

        model = StaticModel.from_pretrained(str(m2v))
        scores["model2vec"] = sts_spearman(lambda texts: model.encode(list(texts), show_progress_bar=False), pairs)
    return scores


def timings(points: dict[str, dict[str, Any]], m2v: Path | None, sentences: list[str], batch: int,
            threads: int) -> tuple[dict[str, float], bool]:
    """ms per sentence of every point at batch size ``batch``, and whether the machine was busy meanwhile."""
    from bortfast.profile.timing import Engine, TimingConfig, time_engines

    engines = [Engine(name, p["file"], encoder_engine, {"onnx_path": p["file"], "tokenizer": p["tokenizer"],
                                                        "sentences": sentences, "batch_size": batch,
                                                        "threads": threads}) for name, p in points.items()]
    if m2v is not None:
        engines.append(Engine("model2vec", str(m2v), static_engine,
                              {"model_dir": str(m2v), "sentences": sentences, "batch_size": batch}))
    got = time_engines(engines, TimingConfig(rounds=5, min_samples=10, turn_seconds=0.5))
    return ({name: t.median_ms / len(sentences) for name, t in got["timings"].items()},
            bool(got["load"]["busy"]))


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a file, no screen (the backend is chosen before pyplot is imported)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for p in result["points"].values():
        ax.scatter(p["speedup_b1"], 100 * p["kept"], s=30)
        ax.annotate(p["label"], (p["speedup_b1"], 100 * p["kept"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("speed-up over the teacher in ORT fp32, B=1, real sentences (log)")
    ax.set_ylabel("STS-B dev Spearman kept (%)")
    ax.set_title(f"{result['machine']['cpu']}, {result['threads']} thread(s), {result['date_utc']}", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(result: dict[str, Any]) -> str:
    rows = ["| model | STS-B dev ρ | kept | ms / sentence B=1 | speed-up B=1 | ms / sentence B=32 | speed-up B=32 |",
            "|---|---|---|---|---|---|---|"]
    for p in sorted(result["points"].values(), key=lambda p: -p["kept"]):
        rows.append(f"| {p['label']} | {p['sts']:.4f} | {100 * p['kept']:.1f} % | {p['ms_b1']:.3f} | "
                    f"{p['speedup_b1']:.1f}x | {p['ms_b32']:.3f} | {p['speedup_b32']:.1f}x |")
    return "\n".join(rows)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--run", action="append", default=[], metavar="NAME=DIR", help="a bortfast run directory")
    ap.add_argument("--m2v", type=Path, help="a saved model2vec StaticModel distilled from the teacher")
    ap.add_argument("--distill-m2v", metavar="PYTHON", help="only distil the model2vec model into OUT/model2vec "
                    "with this interpreter (an environment with model2vec[distill])")
    ap.add_argument("--timing-sentences", type=int, default=100)
    args = ap.parse_args()
    out = Path(args.out)
    if args.distill_m2v:
        t0 = time.perf_counter()
        subprocess.run([args.distill_m2v, "-c", M2V_DISTILL, str(teacher_dir()), str(out / "model2vec")],
                       check=True)
        print(f"model2vec distilled into {out / 'model2vec'} in {time.perf_counter() - t0:.0f} s")
        return
    runs = {}
    for spec in args.run:
        name, _, directory = spec.partition("=")
        if not name.isidentifier() or not (Path(directory) / "student").is_dir():
            ap.error(f"--run {spec!r}: expected NAME=DIR with a run's student/ in DIR")
        runs[name] = Path(directory)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    points = onnx_points(work, runs)
    scores = sts_scores(points, args.m2v)
    from bortfast.evaluation import read_sts

    train = read_sts(DATA / "train.tsv")
    sentences = list(dict.fromkeys(train.first + train.second))[:args.timing_sentences]
    speed = {b: timings(points, args.m2v, sentences, b, args.threads) for b in (1, 32)}
    labels = {**{n: p["label"] for n, p in points.items()}, "model2vec": "model2vec from the teacher (256 dims)"}
    result = {"threads": args.threads, "timing_sentences": len(sentences), "machine": machine(),
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "busy": {f"B={b}": busy for b, (_, busy) in speed.items()}, "points": {}}
    for name, sts in scores.items():
        ms1, ms32 = speed[1][0][name], speed[32][0][name]
        result["points"][name] = {"label": labels[name], "sts": sts, "kept": sts / scores["teacher_fp32"],
                                  "ms_b1": ms1, "speedup_b1": speed[1][0]["teacher_fp32"] / ms1,
                                  "ms_b32": ms32, "speedup_b32": speed[32][0]["teacher_fp32"] / ms32}
    write_result(out, result)
    plot(result, out / "peers.png")
    print(table(result))


if __name__ == "__main__":
    main()
