"""``bortfast run`` (the whole pipeline on your teacher and corpus) and ``bortfast demo`` (the embedded default)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Demo defaults: sized so the whole pipeline finishes in about 20 minutes on 2 CPU cores.
# Chosen by measurement (README, "Quality"): inherited students, short trainings at 1e-4 (1e-3 undoes the
# inheritance in 10 steps), ξ* = the best ê at >= 5.5x the teacher's speed by î and again when timed in ONNX
# Runtime fp32 (the engine check), 200 steps on 64-token blocks.
DEMO_DEFAULTS = dict(space="below-teacher", eps=16, steps=10, lrs=(1e-4,), distill_steps=200, max_blocks=2000,
                     min_speedup=5.5, distill_seq_len=64, distill_batch_size=32, distill_lr=1e-4)


def _add_common(parser: argparse.ArgumentParser, defaults: dict) -> None:
    from bortfast.apps.pipeline import RunConfig

    base = RunConfig(teacher="-", out_dir="-")
    d = {**{k: getattr(base, k) for k in base.identity()}, **defaults}
    parser.add_argument("--out", required=True, help="report directory (re-run the same command to resume)")
    parser.add_argument("--space", choices=["below-teacher", "bert-paper"], default=d["space"],
                        help=f"search space (default {d['space']})")
    parser.add_argument("--eps", type=int, default=d["eps"], help=f"ε: train one pivot every eps (default {d['eps']})")
    parser.add_argument("--steps", type=int, default=d["steps"],
                        help=f"short-training steps per pivot (default {d['steps']})")
    parser.add_argument("--lr", type=float, nargs="+", default=list(d["lrs"]), dest="lrs",
                        help=f"Θ: learning rates of the short trainings (default {list(d['lrs'])})")
    parser.add_argument("--latency", choices=["kernel", "flops"], default=d["latency"],
                        help="î proxy (default kernel: measured C++ latency on this CPU)")
    parser.add_argument("--seq-len", type=int, default=d["seq_len"], help=f"default {d['seq_len']}")
    parser.add_argument("--max-blocks", type=int, default=d["max_blocks"],
                        help=f"corpus blocks used (default {d['max_blocks']})")
    parser.add_argument("--distill-steps", type=int, default=d["distill_steps"],
                        help=f"steps of the final distillation (default {d['distill_steps']})")
    parser.add_argument("--distill-batch-size", type=int, default=d["distill_batch_size"])
    parser.add_argument("--distill-seq-len", type=int, default=d["distill_seq_len"],
                        help="tokens per block of the final distillation (default: --seq-len)")
    parser.add_argument("--distill-lr", type=float, default=d["distill_lr"])
    parser.add_argument("--task", help="optional fine-tuning task, e.g. sst2 (needs --task-data)")
    parser.add_argument("--task-data", help="the task's data directory (GLUE TSVs)")
    parser.add_argument("--bench-rounds", type=int, default=d["bench_rounds"])
    parser.add_argument("--threads", type=int, default=d["threads"], help=f"CPU threads (default {d['threads']})")
    parser.add_argument("--seed", type=int, default=d["seed"])
    parser.add_argument("--init", choices=["inherit", "random"], default=d["init"],
                        help="students cut out of the teacher (inherit, default) or random (the paper's setting)")
    from bortfast.cli.search import add_choice_arguments

    add_choice_arguments(parser)
    parser.set_defaults(**{k: d[k] for k in ("max_latency", "min_speedup", "max_error")})
    parser.add_argument("--no-engine-check", action="store_false", dest="engine_check",
                        help="trust î alone for --min-speedup / --max-latency-ms (default: the finalists are also "
                             "timed against the teacher in ONNX Runtime fp32 and must meet the budget there)")
    parser.add_argument("--sts", default=d["sts"], metavar="TSV",
                        help="STS-B style TSV (sentence1, sentence2, score): STS Spearman of teacher and student")
    parser.add_argument("--overwrite", action="store_true", help="discard a previous run in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars / stage messages")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, help="teacher: local transformers directory or hub id")
    parser.add_argument("--corpus", nargs="+", default=[],
                        help="text files / directories / hf:NAME (default: the embedded stdlib-docstring corpus)")
    _add_common(parser, {})


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser, DEMO_DEFAULTS)
    parser.set_defaults(teacher=None, corpus=[])


def _config(args: argparse.Namespace, teacher: str):
    from bortfast.apps.pipeline import RunConfig

    return RunConfig(
        teacher=teacher, out_dir=args.out, corpus=list(args.corpus), space=args.space, eps=args.eps,
        steps=args.steps, lrs=tuple(args.lrs), latency=args.latency, seq_len=args.seq_len, max_blocks=args.max_blocks,
        distill_steps=args.distill_steps, distill_batch_size=args.distill_batch_size,
        distill_seq_len=args.distill_seq_len, distill_lr=args.distill_lr,
        task=args.task, task_data=args.task_data, bench_rounds=args.bench_rounds, threads=args.threads,
        seed=args.seed, overwrite=args.overwrite, progress=not args.no_progress, init=args.init,
        max_latency=args.max_latency, min_speedup=args.min_speedup, max_error=args.max_error, sts=args.sts,
        engine_check=args.engine_check,
    )


def _speedup_label(key: str) -> str:
    """speedup.json's keys name the baseline "torch_base" (BERT-base in `bortfast bench`); here it is the teacher."""
    return key.replace("torch_base", "teacher(PyTorch)").replace("teacher_fp32", "teacher(ORT fp32)")


def print_console_summary(state: dict, out: str) -> None:
    st = {k: v["outputs"] for k, v in state["stages"].items()}
    search = st["search"]
    rows = [("chosen ξ*", f"<{search['arch']}>"),
            ("parameters", f"{search['params']:,}"),
            (f"î ({search['latency_unit']})", f"{search['latency']:.4g}"),
            ("ê (distillation loss)", f"{search['error']:.4g}"),
            ("short trainings", str(search["trainings"]))]
    checks = (search.get("selection") or {}).get("checks")
    if checks:
        c = checks[-1]
        rows.append(("engine check of ξ*", f"{c['speedup']:.2f}x the teacher in {c['engine']} "
                                           f"({len(checks)} finalist(s) timed)"))
    rows += [(f"speed-up {_speedup_label(k)}", f"{v:.2f}x") for k, v in st["bench"]["summary"].items()]
    q = st["quality"]
    rows.append(("similarity Spearman ρ vs teacher", f"{q['similarity_spearman']:.3f}"))
    if "cosine" in q:
        rows.append(("embedding cosine vs teacher", f"{q['cosine']:.3f}"))
    if "sts" in q:
        rows.append(("STS Spearman teacher / student", f"{q['sts']['teacher']:.3f} / {q['sts']['student']:.3f} "
                                                       f"({100 * q['sts']['retained']:.1f}% kept)"))
    if search.get("error_param_spearman") is not None:
        rows.append(("Spearman(ê, p̂) over pivots", f"{search['error_param_spearman']:.3f}"))
    width = max(len(k) for k, _ in rows)
    print("\n" + "\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(f"\nreport: {Path(out) / 'summary.md'}")


def run_cli(args: argparse.Namespace) -> int:
    from bortfast.apps.pipeline import StageError, run

    if args.command == "demo":
        from bortfast.data.teacher import bundled_teacher_path

        teacher = str(bundled_teacher_path())
    else:
        teacher = args.teacher
    try:
        state = run(_config(args, teacher))
    except StageError as err:
        print(f"bortfast {args.command}: error: {err}", file=sys.stderr)
        return 2
    print_console_summary(state, args.out)
    if args.no_progress:
        json.dump({k: v["seconds"] for k, v in state["stages"].items()}, sys.stdout)
        print()
    return 0
