"""The embedded default corpus: English prose that ships with every Python installation.

`bortfast demo` must run with no network (DESIGN.md §8), so its pretraining/search corpus is assembled from the
docstrings of the installed Python standard library. The source files are parsed with :mod:`ast` (nothing is
imported, so no module's import side effects run), read in sorted order, and every docstring of a module, class or
function longer than a few words becomes one paragraph. The result is deterministic for a given Python version.
"""

from __future__ import annotations

import ast
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path

from bortfast._base.io import atomic_open

# Packages of the standard library that are tests, tooling or vendored code rather than documented API.
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "lib2to3", "ensurepip", "__pycache__",
              "turtledemo", "pydoc_data", "idlelib", "tkinter"}


def stdlib_dir() -> Path:
    """The directory of the running interpreter's pure-Python standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _docstrings(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def stdlib_docstrings(root: Path | None = None, *, min_words: int = 8) -> Iterator[str]:
    """Yield the standard library's docstrings (one paragraph each, whitespace normalised), in a fixed order."""
    root = Path(root) if root is not None else stdlib_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"standard library directory not found: {root}")
    for path in sorted(root.rglob("*.py")):
        if _SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            continue
        try:
            source = path.read_text(encoding="utf-8")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)  # invalid escape sequences in old docstrings
                tree = ast.parse(source, filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a file this interpreter cannot parse is simply not part of the corpus
        for doc in _docstrings(tree):
            for paragraph in doc.split("\n\n"):
                text = " ".join(paragraph.split())
                if len(text.split()) >= min_words and not text.startswith(">>>"):
                    yield text


def write_stdlib_corpus(path: str | Path, *, max_chars: int = 2_000_000) -> dict:
    """Write the stdlib-docstring corpus to ``path`` (atomically), at most ``max_chars`` characters.

    Returns a description (source, Python version, paragraphs, characters) for the run's summary.
    """
    import platform

    n_paragraphs = 0
    n_chars = 0
    with atomic_open(path, "w") as f:
        for paragraph in stdlib_docstrings():
            if n_chars + len(paragraph) + 1 > max_chars:
                break
            f.write(paragraph + "\n")
            n_paragraphs += 1
            n_chars += len(paragraph) + 1
    if n_paragraphs == 0:
        raise ValueError(f"no docstrings found under {stdlib_dir()}; cannot build the embedded corpus")
    return {
        "source": f"docstrings of the Python {platform.python_version()} standard library ({stdlib_dir()})",
        "paragraphs": n_paragraphs,
        "characters": n_chars,
    }
