"""Behaviour-identity check for refactorings: a fixed tiny ``bortfast run`` and sha256s of what it computed.

Run it before and after a change that should not change behaviour (e.g. issue 13's package layout) and compare
the printed hashes:

    python benchmarks/layout_identity.py [--fixtures DIR] [--out DIR]

The tiny teachers are built once into ``--fixtures`` (default /tmp/bortfast-layout-identity) and reused by later
runs: ``tokenizers``' WordPiece trainer orders equal-frequency tokens differently from process to process, so a
teacher rebuilt per run would change every hash. Delete the folder to build new ones.

Two runs, one per teacher kind (a masked-LM teacher: MLM + KL distillation; an encoder-only teacher: hidden-state
distillation with a projection), each on a tiny teacher built in-process (tests/_tiny.py), a generated corpus and
a keyword SST-2 task (tests/_tiny.py), so all three training loops run: the short trainings ê of the search,
the final distillation and fine-tuning. Settings are fixed: ``--latency flops`` (no timing enters the search),
``--seed 0``, ``--threads 1``. Hashed: ``search.json`` (it holds no timing field with flops latency; any key named
``seconds``/``*_s`` would be dropped; the fixtures' folder is replaced by ``<root>``), the student's
``model.safetensors`` (and ``projection.safetensors``), and the fine-tuned model's ``model.safetensors``. Export
and bench run too, but their outputs hold timings and are not hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import parser, write_result  # benchmarks/ is on sys.path when run as a script

TESTS = Path(__file__).resolve().parents[1] / "tests"
TIMING_KEYS = ("seconds", "elapsed", "wall")


def _strip_timing(obj):
    if isinstance(obj, dict):
        return {k: _strip_timing(v) for k, v in obj.items()
                if not (k in TIMING_KEYS or k.endswith("_s") or k.endswith("_seconds"))}
    if isinstance(obj, list):
        return [_strip_timing(v) for v in obj]
    return obj


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashes(out: Path, root: Path) -> dict[str, str]:
    # The fixtures' folder appears in the settings (teacher and corpus paths): name it "<root>".
    text = (out / "search.json").read_text(encoding="utf-8").replace(str(root), "<root>")
    search = _strip_timing(json.loads(text))
    if os.environ.get("LAYOUT_IDENTITY_DUMP"):
        Path(os.environ["LAYOUT_IDENTITY_DUMP"], f"{out.name}.search.json").write_text(
            json.dumps(search, sort_keys=True, indent=1), encoding="utf-8")
    result = {"search.json": _sha(json.dumps(search, sort_keys=True).encode())}
    for rel in ("student/model.safetensors", "student/projection.safetensors", "finetuned/model.safetensors",
                "finetuned/best/model.safetensors"):
        if (out / rel).is_file():
            result[rel] = _sha((out / rel).read_bytes())
    return result


def fixtures(kind: str, directory: Path) -> tuple[Path, Path, Path]:
    """(teacher, corpus, SST-2 task dir) in ``directory``, built on first use."""
    sys.path.insert(0, str(TESTS))
    from _tiny import make_tiny_teacher, write_keyword_sst2, write_tiny_corpus

    teacher = directory / f"teacher-{kind}"
    if not (teacher / "config.json").is_file():
        make_tiny_teacher(teacher, kind=kind, hidden=32 if kind == "mlm" else 48)
    corpus = write_tiny_corpus(directory / "corpus.txt")
    task = write_keyword_sst2(directory / "glue") / "SST-2"
    return teacher, corpus, task


def run_case(kind: str, root: Path, fixture_dir: Path) -> dict[str, str]:
    teacher, corpus, task = fixtures(kind, fixture_dir)
    out = root / f"run-{kind}"
    cmd = [sys.executable, "-m", "bortfast", "run", "--teacher", str(teacher), "--corpus", str(corpus),
           "--out", str(out), "--eps", "8", "--steps", "2", "--seq-len", "32", "--distill-steps", "6",
           "--distill-batch-size", "4", "--bench-rounds", "1", "--threads", "1", "--latency", "flops",
           "--seed", "0", "--task", "sst2", "--task-data", str(task), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=1200)
    if proc.returncode != 0:
        raise SystemExit(f"bortfast run ({kind}) failed:\n{proc.stderr[-3000:]}")
    return hashes(out, fixture_dir)


def main() -> int:
    ap = parser(__doc__, out_required=False, threads=None,
                out_help="optional output folder: the hashes also go to OUT/layout_identity.json")
    ap.add_argument("--fixtures", default="/tmp/bortfast-layout-identity",
                    help="folder of the tiny teachers, built on first use (default %(default)s)")
    args = ap.parse_args()
    fixture_dir = Path(args.fixtures).resolve()
    fixture_dir.mkdir(parents=True, exist_ok=True)
    digests: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("mlm", "hidden"):
            digests[kind] = run_case(kind, Path(tmp), fixture_dir)
            for name, digest in digests[kind].items():
                print(f"{kind:6s} {name:36s} {digest}")
    if args.out is not None:
        write_result(args.out, {"fixtures": str(fixture_dir), "sha256": digests})
    return 0


if __name__ == "__main__":
    sys.exit(main())
