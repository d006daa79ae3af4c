"""Same-engine speed-up of a few student shapes over the demo teacher all-MiniLM-L6-v2 (issue 29, the shape family):
ONNX Runtime fp32, B=1, L=128, random weights (speed does not depend on them), the teacher and each shape timed
alternately in their own worker processes -- the pipeline's engine check (bortfast.apps.engine_check).

    python benchmarks/shape_speed.py --out DIR [--threads 2] [--shape 2,6,192,1152 --shape 1,12,384,1536 ...]

Writes OUT/shape_speed.json. Run it with nothing else on the machine.
"""

from __future__ import annotations

from _harness import parser, teacher_dir, write_result

SHAPES = ("2,6,192,1152", "1,12,384,1536", "1,12,384,1152", "1,6,384,1536", "2,12,384,384")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--shape", action="append", help=f"D,A,H,I (repeatable; default {' '.join(SHAPES)})")
    args = ap.parse_args()
    from transformers import AutoConfig

    from bortfast.apps.engine_check import OrtSpeedCheck
    from bortfast.space import Arch

    teacher = Arch.from_config(AutoConfig.from_pretrained(teacher_dir()))
    check = OrtSpeedCheck(teacher, args.out / "work", seq_len=128, threads=args.threads, seed=0)
    rows = {}
    for spec in args.shape or SHAPES:
        d, a, h, i = (int(v) for v in spec.split(","))
        arch = Arch(d, a, h, i, vocab_size=teacher.vocab_size, max_positions=teacher.max_positions,
                    type_vocab_size=teacher.type_vocab_size)
        rows[spec] = check(arch, None, None)
        print(spec, f"{rows[spec]['speedup']:.2f}x", flush=True)
    write_result(args.out, {"teacher": str(teacher), "shapes": rows})


if __name__ == "__main__":
    main()
