"""The model code: BERT students and teachers as bortfast builds, loads and ships them.

* :mod:`.config`: :func:`load_config` (the one reader of a model directory's ``config.json``), the kinds of task
  head and :func:`head_kind`, :func:`is_per_layer`.
* :mod:`.perlayer`: students whose layers differ in width — :func:`build_per_layer_model`, :func:`load_student`
  (per-layer or uniform) — and :func:`bert_encoder`, the ``BertModel`` inside any BERT model.
* :mod:`.heads`: the task heads (:class:`BortForSequenceClassification`, the paper's CoLA head) and
  :func:`load_finetuned`.
* :mod:`.modeling_bortfast_perlayer`: the per-layer BERT student in one file that imports only torch and
  transformers. :func:`ship_model_code` copies it verbatim into a per-layer student directory and names its classes
  in the directory's ``config.json`` (``auto_map``), as transformers' remote-code models do, so that
  ``AutoModel.from_pretrained(directory, trust_remote_code=True)`` and ``SentenceTransformer(directory,
  trust_remote_code=True)`` load it. bortfast's own loader (:func:`load_student`) imports the file from this package
  and never runs a directory's copy.

Models sit low in the package (just above :mod:`bortfast.space`): distillation, fine-tuning, export and the apps
import them, never the reverse. This package stays torch-free: importing it imports neither the modeling file nor
torch; the names of :mod:`.perlayer` and :mod:`.heads` load on first use.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bortfast._base.io import write_json
from bortfast._base.lazy import lazy_attributes
from bortfast.models.config import head_kind, is_per_layer, load_config
from bortfast.space import PER_LAYER_KEY

__all__ = ["AUTO_MAP", "MODELING_FILE", "BortForSequenceClassification", "bert_encoder", "build_per_layer_model",
           "head_kind", "is_per_layer", "load_config", "load_finetuned", "load_student", "ship_model_code"]

# Names whose modules import torch / transformers: loaded on first use.
_LAZY = {
    "BortForSequenceClassification": "bortfast.models.heads",
    "load_finetuned": "bortfast.models.heads",
    "bert_encoder": "bortfast.models.perlayer",
    "build_per_layer_model": "bortfast.models.perlayer",
    "load_student": "bortfast.models.perlayer",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


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
