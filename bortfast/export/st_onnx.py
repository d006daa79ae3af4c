"""Serving an exported encoder without bortfast (issue 28): place the ONNX file where sentence-transformers' ONNX
backend looks for it.

``SentenceTransformer(model_dir, backend="onnx")`` (sentence-transformers >= 3.2; checked against 6.3) loads
``model_dir/onnx/model.onnx`` through optimum's ``ORTModelForFeatureExtraction``, with ``model_dir/config.json`` as
the model's config and the directory's tokenizer, pooling and normalisation modules as for the torch backend. That
class feeds the graph the inputs it declares among ``input_ids``, ``attention_mask`` and ``token_type_ids`` and reads
the output named ``last_hidden_state`` -- exactly what :func:`bortfast.export.onnx.to_onnx` writes with
``encoder_only=True``. The fused ``com.microsoft`` operators of that file (Attention, SkipLayerNormalization,
EmbedLayerNormalization, ...) are ONNX Runtime's own, so the plain ``onnxruntime`` wheel optimum runs on executes them.

An INT8 file goes beside it under the name sentence-transformers' own quantised export gives
(``onnx/model_qint8_avx512_vnni.onnx`` and the like) and is chosen with ``model_kwargs={"file_name": ...}``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from bortfast._base.io import atomic_path
from bortfast.export.onnx import INPUT_NAMES

__all__ = ["ST_ONNX_DIR", "ST_ONNX_FILE", "write_sentence_transformers_onnx"]

ST_ONNX_DIR = "onnx"  # the backend's subfolder (sentence_transformers.backend.load: subfolder="onnx")
ST_ONNX_FILE = "model.onnx"  # optimum's ONNX_WEIGHTS_NAME, the file the backend loads by default
_FILE_NAME = re.compile(r"model(_[A-Za-z0-9_]+)?\.onnx")  # model.onnx, model_qint8_avx512_vnni.onnx, ...


def _check_encoder_graph(onnx_file: Path) -> None:
    """Raise ValueError unless ``onnx_file``'s graph is an encoder the backend can run: inputs among
    :data:`INPUT_NAMES` (``input_ids`` and ``attention_mask`` present) and an output ``last_hidden_state``."""
    import onnx

    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    outputs = [o.name for o in graph.output]
    unknown = sorted(set(inputs) - set(INPUT_NAMES))
    if unknown or not {"input_ids", "attention_mask"} <= set(inputs):
        raise ValueError(f"{str(onnx_file)!r} has inputs {inputs}; sentence-transformers' ONNX backend feeds "
                         f"{list(INPUT_NAMES)} and needs input_ids and attention_mask")
    if "last_hidden_state" not in outputs:
        raise ValueError(f"{str(onnx_file)!r} has outputs {outputs}, not last_hidden_state: export the encoder "
                         "(bortfast.export.onnx.to_onnx(..., encoder_only=True))")


def write_sentence_transformers_onnx(model_dir: str | os.PathLike, onnx_file: str | os.PathLike, *,
                                     file_name: str = ST_ONNX_FILE) -> Path:
    """Copy the encoder export ``onnx_file`` to ``model_dir/onnx/<file_name>`` atomically and return that path, so
    that ``SentenceTransformer(model_dir, backend="onnx")`` loads it (``model_kwargs={"file_name": file_name}`` for
    another name than ``model.onnx``). ``model_dir`` must be the model directory the file was exported from (its
    ``config.json``, tokenizer and sentence-transformers modules stay where they are). Raises FileNotFoundError for
    a missing file, ValueError for a directory without ``config.json``, a ``file_name`` that is not
    ``model*.onnx``, or a graph that is not an encoder (inputs ``input_ids/attention_mask[/token_type_ids]``,
    output ``last_hidden_state``)."""
    directory, source = Path(model_dir), Path(onnx_file)
    if not source.is_file():
        raise FileNotFoundError(f"ONNX file {str(source)!r} does not exist")
    if not (directory / "config.json").is_file():
        raise ValueError(f"{str(directory)!r} is not a model directory: no config.json (the backend reads the "
                         "model's config beside the onnx/ folder)")
    if not _FILE_NAME.fullmatch(file_name):
        raise ValueError(f"file_name must look like 'model.onnx' or 'model_qint8_avx512_vnni.onnx', got {file_name!r}")
    _check_encoder_graph(source)
    target = directory / ST_ONNX_DIR / file_name
    if target.exists() and os.path.samefile(source, target):
        return target
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def quantized_file_name() -> str:
    """The name sentence-transformers' own INT8 export gives a model for this CPU (``model_qint8_<config>.onnx``,
    the optimum quantisation config it would pick: arm64, avx512_vnni, avx512 or avx2)."""
    import platform

    if platform.machine().lower() in ("arm64", "aarch64"):
        return "model_qint8_arm64.onnx"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    config = "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"
    return f"model_qint8_{config}.onnx"
