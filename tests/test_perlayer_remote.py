"""Per-layer students load outside bortfast (issue 26, item 5): the directory ships the model's one source file and
names its classes in ``auto_map``, so ``AutoModel`` / ``AutoModelForMaskedLM`` / ``SentenceTransformer`` with
``trust_remote_code=True`` build the same model as :func:`bortfast.load_student`, which never runs that copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _tiny import dress_as_sentence_transformer

from bortfast.distill import DistillConfig, distill
from bortfast.models import AUTO_MAP, MODELING_FILE, ship_model_code
from bortfast.models.perlayer import load_student
from bortfast.space import PER_LAYER_KEY

SENTENCES = ["the red cat sleeps near the river", "a dog runs", "two old kings read and write today at night"]


def _distil(teacher: Path, corpus: Path, out: Path, spec: str) -> Path:
    return distill(DistillConfig(teacher=str(teacher), corpus=[str(corpus)], arch=spec, out_dir=str(out), steps=2,
                                 batch_size=4, seq_len=32, lr=1e-3, checkpoint_every=2, eval_every=0,
                                 progress=False, calibration_blocks=8))


def _inputs(directory: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    return dict(AutoTokenizer.from_pretrained(directory)(SENTENCES, padding=True, return_tensors="pt"))


@pytest.fixture(scope="module")
def mlm_student(tiny_teacher_dir, tiny_corpus_file, tmp_path_factory) -> Path:
    """A per-layer student distilled the normal way from the tiny masked-LM teacher."""
    return _distil(tiny_teacher_dir, tiny_corpus_file, tmp_path_factory.mktemp("remote-mlm"), "H=16;d=8;A=2,1;I=24,9")


@pytest.fixture(scope="module")
def st_student(tiny_hidden_teacher_dir, tiny_corpus_file, tmp_path_factory) -> Path:
    """A per-layer student of the tiny encoder-only teacher dressed as a sentence-transformers model (mean pooling,
    then Normalize)."""
    root = tmp_path_factory.mktemp("remote-st")
    teacher = root / "teacher"
    shutil.copytree(tiny_hidden_teacher_dir, teacher)
    dress_as_sentence_transformer(teacher, legacy=True, max_seq_length=32)
    return _distil(teacher, tiny_corpus_file, root / "distill", "H=36;d=12;A=3,1;I=30,7")


def _ships_the_file(directory: Path) -> None:
    copy = directory / MODELING_FILE.name
    assert copy.is_file(), f"{directory} does not ship {MODELING_FILE.name}"
    assert copy.read_bytes() == MODELING_FILE.read_bytes()  # verbatim
    assert json.loads((directory / "config.json").read_text())["auto_map"] == AUTO_MAP


def test_every_written_per_layer_directory_ships_the_model_file(mlm_student):
    _ships_the_file(mlm_student)
    checkpoints = sorted((mlm_student.parent / "checkpoints").glob("step-*"))
    assert checkpoints
    for checkpoint in checkpoints:
        _ships_the_file(checkpoint)


def test_automodel_with_remote_code_equals_load_student(mlm_student):
    from transformers import AutoModel, AutoModelForMaskedLM

    inputs = _inputs(mlm_student)
    encoder = AutoModel.from_pretrained(mlm_student, trust_remote_code=True).eval()
    masked_lm = AutoModelForMaskedLM.from_pretrained(mlm_student, trust_remote_code=True).eval()
    assert type(encoder).__name__ == "BortfastPerLayerModel"
    assert type(encoder).__module__ != "bortfast.models.modeling_bortfast_perlayer"  # the directory's copy ran
    with torch.no_grad():
        want = load_student(mlm_student, "BertModel").eval()(**inputs).last_hidden_state
        got = encoder(**inputs).last_hidden_state
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        torch.testing.assert_close(masked_lm(**inputs).logits, load_student(mlm_student)(**inputs).logits,
                                   atol=1e-5, rtol=0)


def test_stock_from_pretrained_still_refuses_without_remote_code(mlm_student):
    from transformers import BertModel

    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        BertModel.from_pretrained(mlm_student)


def test_sentence_transformers_with_remote_code_equals_load_student(st_student):
    from sentence_transformers import SentenceTransformer

    _ships_the_file(st_student)
    model = SentenceTransformer(str(st_student), trust_remote_code=True, device="cpu")
    assert type(model[0].auto_model).__name__ == "BortfastPerLayerModel"
    got = torch.as_tensor(model.encode(SENTENCES))
    inputs = _inputs(st_student)
    with torch.no_grad():
        states = load_student(st_student, "BertModel").eval()(**inputs).last_hidden_state  # (B, L, H)
    mask = inputs["attention_mask"].unsqueeze(-1).to(states.dtype)
    want = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)  # mean pooling, Normalize
    assert got.shape == (len(SENTENCES), 36)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_load_student_never_executes_the_directory_copy(mlm_student, tmp_path):
    from transformers import AutoModel

    student = tmp_path / "student"
    shutil.copytree(mlm_student, student)
    with open(student / MODELING_FILE.name, "a", encoding="utf-8") as f:
        f.write('\nraise RuntimeError("the directory copy of the model file ran")\n')
    inputs = _inputs(student)
    with torch.no_grad():
        got = load_student(student, "BertModel")(**inputs).last_hidden_state
        want = load_student(mlm_student, "BertModel")(**inputs).last_hidden_state
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    with pytest.raises(RuntimeError, match="directory copy of the model file ran"):  # the marker does fire
        AutoModel.from_pretrained(student, trust_remote_code=True)


def test_ship_model_code_leaves_uniform_directories_alone(tmp_path):
    from _tiny import save_tiny_bert

    uniform = save_tiny_bert(tmp_path / "uniform")
    before = (uniform / "config.json").read_bytes()
    assert ship_model_code(uniform) is False
    assert (uniform / "config.json").read_bytes() == before and not (uniform / MODELING_FILE.name).exists()
    with pytest.raises(ValueError, match="no config.json"):
        ship_model_code(tmp_path / "missing")


def test_the_model_file_stands_alone():
    """The copied file may import only torch and transformers, and names the classes auto_map promises."""
    import ast

    from bortfast.models import modeling_bortfast_perlayer as modeling

    tree = ast.parse(MODELING_FILE.read_text(encoding="utf-8"))
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert roots <= {"__future__", "typing", "torch", "transformers"}, roots
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))
    assert modeling.PER_LAYER_KEY == PER_LAYER_KEY
    for ref in AUTO_MAP.values():
        module, _, name = ref.partition(".")
        assert module == MODELING_FILE.stem and hasattr(modeling, name), ref


def test_the_model_file_rejects_bad_widths():
    from bortfast.models.modeling_bortfast_perlayer import BortfastPerLayerConfig, BortfastPerLayerModel

    config = BortfastPerLayerConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=8, **{PER_LAYER_KEY: {"heads": [2], "intermediate": [8, 4]}})
    with pytest.raises(ValueError, match="num_hidden_layers=2 but bortfast_per_layer lists 1 head counts"):
        BortfastPerLayerModel(config)
