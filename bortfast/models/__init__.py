"""Model code that travels with bortfast's students (issue 26, item 5).

:mod:`bortfast.models.modeling_bortfast_perlayer` is the per-layer BERT student in one file that imports only torch
and transformers. :func:`ship_model_code` copies it verbatim into a per-layer student directory and names its classes
in the directory's ``config.json`` (``auto_map``), as transformers' remote-code models do, so that
``AutoModel.from_pretrained(directory, trust_remote_code=True)`` and ``SentenceTransformer(directory,
trust_remote_code=True)`` load it. bortfast's own loader (:func:`bortfast.distill.perlayer.load_student`) imports the
file from this package and never runs a directory's copy.

This package stays torch-free: importing it does not import the modeling file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bortfast._base.io import write_json
from bortfast.space import PER_LAYER_KEY

__all__ = ["AUTO_MAP", "MODELING_FILE", "ship_model_code"]

MODELING_FILE = Path(__file__).with_name("modeling_bortfast_perlayer.py")
_MODULE = MODELING_FILE.stem
# transformers resolves "file stem.class name" against the directory holding config.json.
AUTO_MAP = {
    "AutoConfig": f"{_MODULE}.BortfastPerLayerConfig",
    "AutoModel": f"{_MODULE}.BortfastPerLayerModel",
    "AutoModelForMaskedLM": f"{_MODULE}.BortfastPerLayerForMaskedLM",
    "AutoModelForSequenceClassification": f"{_MODULE}.BortfastPerLayerForSequenceClassification",
}


def ship_model_code(directory: str | os.PathLike) -> bool:
    """When ``directory``'s ``config.json`` records per-layer widths (``bortfast_per_layer``), copy the modeling file
    into ``directory`` byte for byte and set ``auto_map`` in ``config.json`` to its classes; returns whether it did.
    A uniform model directory is left as it is (stock transformers loads it). Call it after ``save_pretrained``,
    inside the same atomic write."""
    directory = Path(directory)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{str(directory)!r} is not a model directory: no config.json")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get(PER_LAYER_KEY) is None:
        return False
    shutil.copyfile(MODELING_FILE, directory / MODELING_FILE.name)
    if config.get("auto_map") != AUTO_MAP:
        write_json(config_file, {**config, "auto_map": AUTO_MAP})
    return True
