from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared/data beside the repository; BORTFAST_SHARED_DATA overrides it (e.g. for a git worktree elsewhere).
SHARED_DATA = Path(os.environ.get("BORTFAST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data beside the repository (../shared/data); tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _session_outside_the_source_tree(tmp_path_factory):
    """Session- and module-scoped fixtures start subprocesses too: run them from a temp dir as well."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(old)


@pytest.fixture(autouse=True)
def _run_outside_the_source_tree(tmp_path, monkeypatch):
    """Run every test (and the subprocesses it starts) from a temp dir, so `python -m bortfast` and torchrun
    import the installed package with its compiled _core, not the bare source tree of the repository root."""
    monkeypatch.chdir(tmp_path)


# Tiny teachers/corpora shared by the distillation (and search / fine-tuning) tests: see tests/_tiny.py.
@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny BertForMaskedLM teacher (hidden 32, 2 layers, 4 heads, ~200-token WordPiece vocab)."""
    from _tiny import make_tiny_teacher

    return make_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher-mlm"), kind="mlm")


@pytest.fixture(scope="session")
def tiny_hidden_teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny encoder-only BertModel teacher (no MLM head), hidden 48."""
    from _tiny import make_tiny_teacher

    return make_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher-hidden"), kind="hidden", hidden=48, heads=4)


@pytest.fixture(scope="session")
def tiny_corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~400 generated sentences in one UTF-8 text file."""
    from _tiny import write_tiny_corpus

    return write_tiny_corpus(tmp_path_factory.mktemp("tiny-corpus") / "corpus.txt")
