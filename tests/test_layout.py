"""The package's imports point one way (DESIGN.md §2): a module may import its own layer and the layers below it,
never one above. ``bortfast.runtime``, ``bortfast.models`` and ``bortfast.evaluation`` stay torch-free at import;
importing the package changes no process-wide import state, and the module paths from before the layered layout are
gone (no alias hook keeps them alive). No module is over 500 lines, and no module imports a private (``_x``) name
from another subpackage."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bortfast"

# Bottom to top. `search` must not reach `data`/`distill`: ê comes in as a function (apps/extract wires it).
# `models` holds the model code (building, loading, heads, load_config): everything above imports it, it imports
# only `_base` and `space`. `evaluation` holds the quality metrics (STS, embeddings, agreement with the teacher):
# above `distill` (its masking scores MLM accuracy), below every stage that reports quality.
LAYERS = ("_base", "space", "models", "profile", "search", "data", "distill", "evaluation", "finetune", "export",
          "runtime", "apps", "pipeline", "cli")
# Modules outside the layers: the BLAS loader and the compiled core sit at the bottom; the entry point at the top.
EXTRA = {"_openblas": "_base", "_core": "_base", "__main__": "cli"}
# The public surface may name anything (it imports lazily, on first use).
EXEMPT = {"bortfast"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "bortfast" or len(parts) < 2:
        return None
    top = EXTRA.get(parts[1], parts[1])
    return LAYERS.index(top) if top in LAYERS else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every bortfast module ``path`` imports, anywhere in the file (function-local imports count too)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    return _imports_in(path.read_text(encoding="utf-8"), package)


def _imports_in(code: str, package: str) -> list[tuple[int, str]]:
    tree = ast.parse(code)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from bortfast import x` / `from bortfast.search import selection` may name submodules
            found += [(node.lineno, f"{module}.{a.name}") if _is_module(f"{module}.{a.name}") else (node.lineno, module)
                      for a in node.names]
    return [(line, m) for line, m in found if m == "bortfast" or m.startswith("bortfast.")]


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (PACKAGE.parent / rel / "__init__.py").is_file() \
        or name == "bortfast._core"


def test_every_library_module_belongs_to_a_layer():
    unplaced = [_module_name(p) for p in PACKAGE.rglob("*.py")
                if _module_name(p) not in EXEMPT and _layer(_module_name(p)) is None]
    assert not unplaced, f"modules outside the layers {LAYERS}: {unplaced}"


def test_imports_point_only_downward():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        if importer in EXEMPT:
            continue
        for line, imported in _imports(path):
            if imported == "bortfast":  # the public surface imports every layer: only the CLI stands above it
                if _layer(importer) != LAYERS.index("cli"):
                        upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports the package root")
                continue
            if _layer(imported) is not None and _layer(imported) > _layer(importer):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({LAYERS[_layer(importer)]}) imports "
                              f"{imported} ({LAYERS[_layer(imported)]})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walk above must catch a function-local import too (a search module reaching for distillation)."""
    code = "def f():\n    from ..distill import short_train_error\n    import bortfast.cli\n"
    found = [m for _, m in _imports_in(code, "bortfast.search")]
    assert found == ["bortfast.distill", "bortfast.cli"]
    assert all(_layer(m) > _layer("bortfast.search.runner") for m in found)


def test_library_modules_never_import_the_cli():
    names = {p: _module_name(p) for p in PACKAGE.rglob("*.py")}
    top = ("bortfast.cli", "bortfast.__main__")
    library = [p for p, n in names.items() if not n.startswith(top) and n not in EXEMPT]
    offenders = [f"{names[p]} imports {m}" for p in library for _, m in _imports(p) if m.startswith("bortfast.cli")]
    assert not offenders, offenders


def test_models_import_nothing_above_them():
    """The model code sits under every stage that uses it: it may import `_base`, `space` and itself, nothing else."""
    allowed = {LAYERS.index(name) for name in ("_base", "space", "models")}
    found = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}"
             for path in sorted((PACKAGE / "models").rglob("*.py")) for line, imported in _imports(path)
             if imported == "bortfast" or _layer(imported) not in allowed]
    assert not found, "models imports from above:\n" + "\n".join(found)


@pytest.mark.parametrize("module", ["bortfast.runtime", "bortfast.models", "bortfast.evaluation", "bortfast"])
def test_torch_free_modules_do_not_import_torch(module):
    code = (f"import sys, {module}\n"
            "bad = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
            "print(','.join(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "", f"{module} imported {proc.stdout.strip()}"


def _subpackage(module: str) -> str:
    """The top-level room of a bortfast module: ``bortfast.finetune.train`` -> ``finetune``."""
    parts = module.split(".")
    return EXTRA.get(parts[1], parts[1]) if len(parts) > 1 else ""


def _private_imports(code: str, package: str) -> list[tuple[int, str, str]]:
    """(line, module, name) for every ``from bortfast.x import _name`` in ``code`` (modules such as ``_core`` aside)."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        if module == "bortfast" or module.startswith("bortfast."):
            found += [(node.lineno, module, a.name) for a in node.names if a.name.startswith("_")
                      and not a.name.startswith("__") and not _is_module(f"{module}.{a.name}")]
    return found


def test_no_private_name_is_imported_across_subpackages():
    """A name another room needs is public; a leading underscore means "this room only"."""
    crossing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        if importer in EXEMPT:
            continue
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for line, module, name in _private_imports(path.read_text(encoding="utf-8"), package):
            if _subpackage(module) != _subpackage(importer):
                crossing.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} from {module}")
    assert not crossing, "private names imported across subpackages:\n" + "\n".join(crossing)


def test_the_private_import_check_sees_one():
    code = "from bortfast.export.onnx import _load_config, to_onnx\nfrom bortfast import _core\nfrom . import _x\n"
    found = _private_imports(code, "bortfast.apps")
    assert found == [(1, "bortfast.export.onnx", "_load_config"), (3, "bortfast.apps", "_x")]
    assert _subpackage("bortfast.export.onnx") != _subpackage("bortfast.apps.bench")


MAX_MODULE_LINES = 500  # no exceptions (the last one, apps/bench.py, was split by job in issue 27)


def _module_lines() -> dict[str, int]:
    return {_module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_is_over_500_lines():
    """A module over 500 lines holds more than one job: split it by job (issue 27)."""
    lines = _module_lines()
    long = [f"{name} ({n} lines)" for name, n in lines.items() if n > MAX_MODULE_LINES]
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


# Module paths from before the layered layout (issue 13), served by an import hook until issue 27. A new module
# may take one of these names only by a deliberate edit here (bortfast.pipeline: the pipeline package, issue 27).
OLD_PATHS = ("bortfast._io", "bortfast.kernel", "bortfast.selection", "bortfast.corpus", "bortfast.tasks",
             "bortfast.agora", "bortfast.finetune_config", "bortfast.bench", "bortfast.space_cli",
             "bortfast.search_cli", "bortfast.distill_cli", "bortfast.finetune_cli", "bortfast.pipeline_cli",
             "bortfast.demo_cli",
             # issue 27: the quality metrics moved to their own room, bortfast.evaluation
             "bortfast.apps.quality")


@pytest.mark.parametrize("old", OLD_PATHS)
def test_old_module_paths_do_not_import(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_importing_the_package_leaves_the_import_machinery_alone():
    """`import bortfast` must not install a finder or a path hook: that is process-wide state."""
    code = ("import sys\n"
            "before = (list(sys.meta_path), list(sys.path_hooks))\n"
            "import bortfast\n"
            "after = (list(sys.meta_path), list(sys.path_hooks))\n"
            "print('same' if after == before else f'changed: {before!r} -> {after!r}')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "same", proc.stdout[-2000:]


def _reference_functions(code: str) -> list[str]:
    return [node.name for node in ast.walk(ast.parse(code))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.endswith("_reference")]


def test_no_test_oracle_ships_in_the_package():
    """Plain-Python references of the C++ core are test oracles: they live in tests/reference.py."""
    found = [f"{_module_name(p)}.{name}" for p in sorted(PACKAGE.rglob("*.py"))
             for name in _reference_functions(p.read_text(encoding="utf-8"))]
    assert not found, f"*_reference functions in the package (move them to tests/reference.py): {found}"


def test_the_oracle_check_sees_a_reference_function():
    assert _reference_functions("class A:\n    def argmax_reference(self):\n        pass\n") == ["argmax_reference"]


def test_public_names_still_work():
    import bortfast
    import bortfast.search
    from bortfast.distill import DistillConfig, distill, short_train_error  # noqa: F401
    from bortfast.finetune import finetune  # noqa: F401
    from bortfast.pipeline import RunConfig, run  # noqa: F401

    assert callable(bortfast.extract) and not hasattr(bortfast.search, "extract")
    assert callable(bortfast.to_onnx) and bortfast.Encoder.__name__ == "Encoder"
    assert importlib.import_module("bortfast.finetune.agora").agora.__module__ == "bortfast.finetune.agora"


MAX_FUNCTION_LINES = 80


def _long_functions(code: str, limit: int) -> list[tuple[str, int]]:
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(code))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_is_over_80_lines():
    long = [f"{_module_name(p)}.{name} ({n} lines)" for p in sorted(PACKAGE.rglob("*.py"))
            for name, n in _long_functions(p.read_text(encoding="utf-8"), MAX_FUNCTION_LINES)]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_length_check_counts_a_function_from_def_to_last_line():
    code = "def short():\n    return 1\n\n\ndef long():\n" + "    x = 1\n" * 81
    assert _long_functions(code, 80) == [("long", 82)]
