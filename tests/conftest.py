from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real public data (GLUE TSVs, BERT vocabularies, ...) in ../shared/data beside the repository;
# BORTFAST_SHARED_DATA overrides the location (e.g. for a git worktree elsewhere).
#
# Convention: a test that reads it takes the `shared_data` fixture (it is then marked `shared_data` automatically)
# or carries `@pytest.mark.shared_data` itself (e.g. on one parameter: pytest.param("real",
# marks=pytest.mark.shared_data)) and calls request.getfixturevalue("shared_data"). When the data is present
# (.ci/run on the project machines) these tests run with the rest; on a bare clone they are *deselected*, never
# skipped, so the suite reports 0 skipped there. Everything else builds its own inputs with tests/_tiny.py.
SHARED_DATA = Path(os.environ.get("BORTFAST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)
    if SHARED_DATA.is_dir():
        return
    deselected = [item for item in items if item.get_closest_marker("shared_data")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("shared_data")]


def pytest_report_header(config: pytest.Config) -> str:
    if SHARED_DATA.is_dir():
        return f"shared data: {SHARED_DATA} (tests marked shared_data run)"
    return f"shared data: none at {SHARED_DATA}; tests marked shared_data are deselected (BORTFAST_SHARED_DATA)"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data beside the repository (../shared/data). Tests that use it are marked shared_data and
    deselected when it is absent (see above), so this never skips."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}, but a test not marked shared_data asked for it")
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
