"""Render the manual's results tables (docs/results/*.md) from the JSON under benchmarks/results/, so a page cannot
drift from the measurements it reports (issue 28; house style 12).

A page holds each rendered table between two marker lines,

    <!-- rendered: NAME (benchmarks/render_results.py; edit the JSON, not this table) -->
    ...
    <!-- end rendered: NAME -->

and everything outside the markers (the prose: command, date, machine, what it means) stays hand-written. NAME is
one of :data:`TABLES`. ``python benchmarks/render_results.py`` rewrites the tables in place; ``--check`` changes
nothing and exits 1 naming every table that differs from its rendering (tests/test_results_pages.py runs the same
check in CI).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from _harness import parser

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PAGES = REPO / "docs" / "results"

BEGIN = "<!-- rendered: {name} (benchmarks/render_results.py; edit the JSON, not this table) -->"
END = "<!-- end rendered: {name} -->"
_BLOCK = re.compile(r"^<!-- rendered: (?P<name>[\w-]+) .*?-->\n(?P<body>.*?)^<!-- end rendered: (?P=name) -->$",
                    re.MULTILINE | re.DOTALL)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _arch(text: str) -> str:
    """An architecture as the JSON writes it (``<1, 4, 64, 64>``) in the manual's brackets (``⟨1, 4, 64, 64⟩``)."""
    return text.replace("<", "⟨").replace(">", "⟩")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


# ------------------------------------------------------------------------------------------------- the tables
def general_distill(results: Path, folder_name: str = "general-distill-2026-12-03") -> list[str]:
    """Recipes chosen on a selection split (benchmarks/general_distill_recipes.py): one row per variant, in the
    order they were run; the selection score in bold where its 95 % interval against the baseline lies above 0."""
    folder = results / folder_name
    rows = [r for r in (_load(p) for p in sorted(folder.glob("*.json")) if not p.name.endswith(".cos.json"))
            if isinstance(r, dict) and "student" in r and "name" in r]  # a variant's row (not teacher / deltas / ...)
    teacher, deltas = _load(folder / "teacher.json")["scores"], _load(folder / "deltas.json")
    out = [f"| variant | change | selection ρ | kept | Δ selection vs {deltas['baseline']} [95 % CI] | dev ρ | kept | "
           "steps | distil wall s | options beyond `--name N --change … --out DIR` |",
           "|---|---|---|---|---|---|---|---|---|---|",
           f"| teacher | all-MiniLM-L6-v2, mean pooling | {teacher['selection']:.4f} | 100 % | – | "
           f"{teacher['report']:.4f} | 100 % | – | – | – |"]
    for r in sorted(rows, key=lambda r: (r["date_utc"], r["name"])):
        d = deltas["delta"][r["name"]]
        lo, hi = d["ci95"]
        selection = f"{r['student']['selection']:.4f}"
        if lo > 0:
            selection = f"**{selection}**"
        words = shlex.split(r["script"])[2:]  # after `python benchmarks/general_distill_recipes.py`
        options, i = [], 0
        while i < len(words):
            if words[i] in ("--name", "--change", "--out"):
                i += 2
                continue
            options.append(words[i])
            i += 1
        out.append(f"| {r['name']} | {r['change']} | {selection} | {_pct(r['kept']['selection'])} | "
                   f"{d['delta']:+.4f} [{lo:+.4f}, {hi:+.4f}] | {r['student']['report']:.4f} | "
                   f"{_pct(r['kept']['report'])} | {r['steps']} | {r['distill_wall_s']:.0f} | "
                   f"{f'`{shlex.join(options)}`' if options else '(none)'} |")
    return out


def science_search(results: Path) -> list[str]:
    """Algorithm 1 at ε against the exhaustive ε = 1 run (benchmarks/science_search.py), then the re-check that
    retrained pivots reproduce their journal's ê."""
    res = _load(results / "science_search.json")
    out = ["| ε | trainings | ξ* found | θ | W(ξ*_ε) / W(ξ*_1) | rank of all (ξ, θ) pairs | ê | parameters | "
           "search s |", "|---|---|---|---|---|---|---|---|---|"]
    for run in res["runs"]:
        theta = ", ".join(f"{k} {v:g}" for k, v in run["best_theta"].items())
        out.append(f"| {run['eps']} | {run['trainings']} | {_arch(run['best'])} | {theta} | {run['ratio']:.5f} | "
                   f"{run['rank_in_exhaustive']} of {2 * res['space']['size']} | {run['best_error']:.4f} | "
                   f"{run['best_params']:,} | {run['seconds']:.1f} |")
    out += ["", "| retrained pivot | θ | ê in the journal | ê retrained | equal |", "|---|---|---|---|---|"]
    for check in res["reproducibility_recheck"]:
        theta = ", ".join(f"{k} {v:g}" for k, v in check["theta"].items())
        out.append(f"| {_arch(check['arch'])} | {theta} | {check['journal']!r} | {check['retrained']!r} | "
                   f"{'yes' if check['journal'] == check['retrained'] else '**no**'} |")
    return out


def int8_sst2(results: Path) -> list[str]:
    """INT8 vs fp32 on SST-2 dev (benchmarks/int8_sst2_accuracy.py), one row per classifier, smallest first."""
    rows = []
    for path in sorted((results / "int8_sst2").glob("int8_sst2_*.json")):
        arch = tuple(int(x) for x in path.stem.removeprefix("int8_sst2_").split("-"))
        rows.append((arch, _load(path)))
    out = ["| classifier (trained here) | torch | ORT fp32 | ORT INT8 | INT8 drop | INT8 = fp32 predictions | "
           "file fp32 → INT8 |", "|---|---|---|---|---|---|---|"]
    for arch, r in sorted(rows):
        acc, size = r["accuracy"], r["file_bytes"]
        drop = r["int8_drop_points"]
        out.append(f"| ⟨{', '.join(map(str, arch))}⟩ | {acc['torch']:.2f} | {acc['fp32']:.2f} | {acc['int8']:.2f} | "
                   f"{drop:+.2f} points | {_pct(r['agreement_int8_fp32'])} | "
                   f"{size['fp32'] / 1e6:.1f} → {size['int8'] / 1e6:.1f} MB |")
    return out


# name -> (page under docs/results/, renderer over the results folder)
TABLES: dict[str, tuple[str, Callable[[Path], list[str]]]] = {
    "general-distill-2026-12-03": ("general-distillation.md", general_distill),
    "general-distill-2026-12-07": ("general-distillation.md",
                                   lambda results: general_distill(results, "general-distill-2026-12-07")),
    "general-distill-2026-12-08": ("general-distillation.md",
                                   lambda results: general_distill(results, "general-distill-2026-12-08")),
    "science-search": ("search.md", science_search),
    "int8-sst2": ("speed.md", int8_sst2),
}


# ------------------------------------------------------------------------------------------------- pages
def render_page(text: str, results: Path = RESULTS) -> str:
    """``text`` with every marked table replaced by its rendering from ``results``. Raises ValueError for a marker
    naming no table in :data:`TABLES`."""
    def block(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ValueError(f"rendered table {name!r} is not one of {sorted(TABLES)}")
        body = "\n".join(TABLES[name][1](results))
        return f"{BEGIN.format(name=name)}\n{body}\n{END.format(name=name)}"

    return _BLOCK.sub(block, text)


def rendered_names(text: str) -> list[str]:
    """The names of the marked tables in a page, in order."""
    return [m["name"] for m in _BLOCK.finditer(text)]


def main() -> int:
    ap = parser(__doc__, out_default=PAGES, threads=None, out_help="the results pages to render into")
    ap.add_argument("--results", type=Path, default=RESULTS, help="the JSON folder (default %(default)s)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page differs from its rendering")
    args = ap.parse_args()
    from bortfast._base.io import atomic_open

    stale = []
    for page in sorted({page for page, _ in TABLES.values()}):
        path = args.out / page
        text = path.read_text(encoding="utf-8")
        rendered = render_page(text, args.results)
        missing = [name for name, (p, _) in TABLES.items() if p == page and name not in rendered_names(text)]
        if missing:
            print(f"{path}: no markers for {missing}", file=sys.stderr)
            return 1
        if rendered != text:
            stale.append(str(path))
            if not args.check:
                with atomic_open(path) as f:
                    f.write(rendered)
    if stale:
        print(("differs from its rendering: " if args.check else "rendered: ") + ", ".join(stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
