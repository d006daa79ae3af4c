"""The manual's results tables cannot drift from the JSON they report (issue 28): every table
benchmarks/render_results.py knows sits between its markers in its page under docs/results/ and equals the rendering
of benchmarks/results/ byte for byte, and a changed measurement changes the rendering."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def render():
    sys.path.insert(0, str(BENCHMARKS))  # the script finds _harness beside itself
    try:
        spec = importlib.util.spec_from_file_location("render_results", BENCHMARKS / "render_results.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_committed_pages_equal_their_rendering(render):
    pages = sorted({page for page, _ in render.TABLES.values()})
    assert pages, "no rendered tables"
    for page in pages:
        text = (ROOT / "docs" / "results" / page).read_text(encoding="utf-8")
        rendered = render.render_page(text)
        assert rendered == text, f"docs/results/{page} differs from its rendering: run benchmarks/render_results.py"


def test_every_table_is_on_its_page_once(render):
    for name, (page, _) in render.TABLES.items():
        names = render.rendered_names((ROOT / "docs" / "results" / page).read_text(encoding="utf-8"))
        assert names.count(name) == 1, (name, page, names)


def test_tables_hold_the_json_figures(render):
    table = "\n".join(render.int8_sst2(render.RESULTS))
    assert "| ⟨2, 2, 64, 256⟩ | 78.21 | 78.21 | 78.33 | -0.11 points | 99.9 % | 9.0 → 2.8 MB |" in table
    table = "\n".join(render.general_distill(render.RESULTS))
    assert "| steps100 | 100 steps (half the tokens) | **0.7265** | 90.3 % | +0.0031 [+0.0002, +0.0061] |" in table
    assert "| base | demo recipe (baseline) | 0.7234 | 90.0 % | +0.0000 [+0.0000, +0.0000] |" in table  # not bold
    table = "\n".join(render.science_search(render.RESULTS))
    assert "| 8 | 24 | ⟨1, 2, 32, 64⟩ | lr 0.003 | 0.94992 | 5 of 192 |" in table


def test_a_changed_measurement_changes_the_page(render, tmp_path):
    results = shutil.copytree(render.RESULTS, tmp_path / "results")
    path = results / "int8_sst2" / "int8_sst2_2-2-64-256.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["accuracy"]["int8"] = 12.5
    path.write_text(json.dumps(data), encoding="utf-8")
    page = (ROOT / "docs" / "results" / "speed.md").read_text(encoding="utf-8")
    rendered = render.render_page(page, results)
    assert rendered != page and "| 12.50 |" in rendered
    assert rendered.replace("| 12.50 |", "| 78.33 |", 1) == page  # only that figure moved


def test_unknown_table_is_refused(render):
    text = "<!-- rendered: no-such-table (x) -->\n| a |\n<!-- end rendered: no-such-table -->\n"
    with pytest.raises(ValueError, match="no-such-table"):
        render.render_page(text)


def test_check_fails_on_a_stale_page_and_render_fixes_it(tmp_path):
    pages = shutil.copytree(ROOT / "docs" / "results", tmp_path / "pages")
    page = pages / "speed.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| 78.33 |", "| 99.99 |", 1), encoding="utf-8")
    script = [sys.executable, str(BENCHMARKS / "render_results.py"), "--out", str(pages)]
    check = subprocess.run([*script, "--check"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert check.returncode == 1 and "speed.md" in check.stdout, (check.returncode, check.stdout, check.stderr)
    assert "| 99.99 |" in page.read_text(encoding="utf-8")  # --check wrote nothing
    fix = subprocess.run(script, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert fix.returncode == 0, fix.stderr
    assert page.read_text(encoding="utf-8") == (ROOT / "docs" / "results" / "speed.md").read_text(encoding="utf-8")
