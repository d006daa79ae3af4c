"""Module paths from before the layered layout (issue 13) keep importing: ``bortfast.pipeline`` *is*
``bortfast.apps.pipeline`` (the same module object, so attributes and monkeypatches are shared).

A meta-path finder answers only for the names in :data:`MOVED`; it loads the new module and hands it out under
the old name. No file stands at the old path, so the package's folders show only the new layout.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import Any

# old module path -> where it lives now
MOVED: dict[str, str] = {
    "bortfast._io": "bortfast._base.io",
    "bortfast.kernel": "bortfast.profile.kernel",
    "bortfast.selection": "bortfast.search.selection",
    "bortfast.corpus": "bortfast.data.stdlib",
    "bortfast.tasks": "bortfast.data.tasks",
    "bortfast.agora": "bortfast.finetune.agora",
    "bortfast.finetune_config": "bortfast.finetune.config",
    "bortfast.pipeline": "bortfast.apps.pipeline",
    "bortfast.bench": "bortfast.apps.bench",
    "bortfast.space_cli": "bortfast.cli.space",
    "bortfast.search_cli": "bortfast.cli.search",
    "bortfast.distill_cli": "bortfast.cli.distill",
    "bortfast.finetune_cli": "bortfast.cli.finetune",
    "bortfast.pipeline_cli": "bortfast.cli.run",
    "bortfast.demo_cli": "bortfast.cli.demo",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return importlib.import_module(self.target)

    def exec_module(self, module: Any) -> None:  # the target module is already executed
        pass


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
