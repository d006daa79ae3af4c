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


@pytest.fixture(autouse=True)
def _run_outside_the_source_tree(tmp_path, monkeypatch):
    """Run every test (and the subprocesses it starts) from a temp dir, so `python -m bortfast` and torchrun
    import the installed package with its compiled _core, not the bare source tree of the repository root."""
    monkeypatch.chdir(tmp_path)
