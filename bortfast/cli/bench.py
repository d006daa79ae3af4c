"""``bortfast bench``: CPU speed-up of the deployed student (ONNX Runtime) over PyTorch BERT-base/large."""

from __future__ import annotations

import argparse

from bortfast.apps.bench import format_summary, read_sentences_tsv, run_speedup


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory for speedup.json and speedup.png")
    parser.add_argument("--student", help="deployed model directory (default: random-weight Bort <4,8,1024,768>)")
    parser.add_argument("--teacher", help="baseline model directory (default: random-weight BERT-base)")
    parser.add_argument("--large", help="second baseline directory (default: random-weight BERT-large)")
    parser.add_argument("--no-large", action="store_true", help="skip the BERT-large baseline")
    parser.add_argument("--tokenizer", help="vocab.txt / tokenizer.json / dir for random models (end to end)")
    parser.add_argument("--sentences-tsv", help="TSV with a 'sentence' column (e.g. SST-2 dev.tsv) for end to end")
    parser.add_argument("--max-sentences", type=int, help="use only the first N sentences")
    parser.add_argument("--batch-sizes", default="1,8", help="fixed-shape batch sizes (default 1,8)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10, help="at least this many alternating timing rounds")
    parser.add_argument("--min-samples", type=int, default=30, help="timed calls per engine, at least (default 30)")
    parser.add_argument("--e2e-rounds", type=int, default=3)
    parser.add_argument("--spinning", action="store_true", help="let ONNX Runtime's idle threads spin (default off, "
                        "as in bortfast.runtime)")
    parser.add_argument("--work-dir", help="keep the exported ONNX files here")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars or stage messages")


def run_cli(args: argparse.Namespace) -> int:
    try:
        batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    except ValueError:
        raise ValueError(f"--batch-sizes must be comma-separated ints, got {args.batch_sizes!r}") from None
    sentences = read_sentences_tsv(args.sentences_tsv, args.max_sentences) if args.sentences_tsv else None
    result = run_speedup(out_dir=args.out, student_dir=args.student, teacher_dir=args.teacher,
                         large_dir=args.large, include_large=not args.no_large, tokenizer=args.tokenizer,
                         sentences=sentences, batch_sizes=batch_sizes, seq_len=args.seq_len, threads=args.threads,
                         rounds=args.rounds, min_samples=args.min_samples, e2e_rounds=args.e2e_rounds,
                         spinning=args.spinning, work_dir=args.work_dir, progress=args.progress)
    print(format_summary(result))
    return 0


