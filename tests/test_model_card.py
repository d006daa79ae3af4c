"""Model cards (issue 28): :func:`bortfast.export.card.write_model_card` writes a Hugging Face model card into a
student directory, with the architecture read from the directory, only the figures it is given, the right loading
instructions for a uniform and a per-layer student, and it never replaces a README.md bortfast did not write."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from _tiny import save_tiny_bert, save_tiny_sentence_teacher

from bortfast.export.card import (
    BORT_CITATION,
    CARD_MARKER,
    ModelCardInfo,
    QualityRow,
    SpeedRow,
    is_bortfast_card,
    render_model_card,
    write_model_card,
)
from bortfast.space import PER_LAYER_KEY, PerLayerArch


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    head, sep, _ = text[4:].partition("\n---\n")
    assert sep, "front matter is not closed"
    return yaml.safe_load(head)


def _section(text: str, heading: str) -> str:
    _, sep, rest = text.partition(f"\n## {heading}\n")
    assert sep, f"no section {heading!r}"
    return rest.split("\n## ", 1)[0]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    from transformers import BertForMaskedLM

    return save_tiny_bert(tmp_path_factory.mktemp("card") / "teacher", BertForMaskedLM, hidden=32, layers=4,
                          heads=4, intermediate=64)


@pytest.fixture(scope="module")
def uniform_student(tmp_path_factory) -> Path:
    """A uniform sentence-transformers student (⟨2, 4, 32, 64⟩)."""
    return save_tiny_sentence_teacher(tmp_path_factory.mktemp("card") / "student-uniform", seed=1)


@pytest.fixture(scope="module")
def per_layer_student(tmp_path_factory) -> Path:
    """A per-layer transformers student saved as bortfast saves one (weights, config, shipped model code)."""
    from bortfast.models import ship_model_code
    from bortfast.models.perlayer import build_per_layer_model

    arch = PerLayerArch.parse("H=32;d=8;A=3,1;I=40,9", vocab_size=99, max_positions=64)
    directory = tmp_path_factory.mktemp("card") / "student-perlayer"
    build_per_layer_model(arch.to_bert_config(), "BertForMaskedLM").save_pretrained(directory)
    ship_model_code(directory)
    return directory


def _info(teacher: Path, **overrides) -> ModelCardInfo:
    fields = dict(
        teacher_name="google-bert/bert-base-uncased", teacher_path=str(teacher), license="apache-2.0",
        corpus="tiny pseudo-English, 400 sentences", steps=1200,
        command="bortfast run --teacher google-bert/bert-base-uncased --corpus wiki.txt --out out",
        quality=[QualityRow("spearman", "STS-B dev", 0.80, 0.76, dataset="sentence-transformers/stsb"),
                 QualityRow("mlm loss", "wiki.valid.txt", 2.0, 2.5, higher_is_better=False)],
        speed=[SpeedRow("ONNX Runtime 1.32 fp32", 1, 4.5, "Intel Xeon 8480+, 1 thread", "2026-12-04", seq_len=128,
                        teacher_ms=9.0, student_ms=2.0)])
    fields.update(overrides)
    return ModelCardInfo(**fields)


def test_uniform_sentence_student_card(uniform_student, teacher_dir):
    path = write_model_card(uniform_student, _info(teacher_dir))
    assert path == uniform_student / "README.md"
    text = path.read_text(encoding="utf-8")

    meta = _front_matter(text)
    assert meta["library_name"] == "sentence-transformers"
    assert meta["pipeline_tag"] == "sentence-similarity"
    assert {"bortfast", "bert", "distillation", "sentence-similarity", "feature-extraction"} <= set(meta["tags"])
    assert meta["base_model"] == "google-bert/bert-base-uncased"
    assert meta["license"] == "apache-2.0"
    (result,) = meta["model-index"][0]["results"]  # only the row with a dataset id
    assert result["dataset"] == {"type": "sentence-transformers/stsb", "name": "sentence-transformers/stsb",
                                 "split": "STS-B dev"}
    assert result["metrics"] == [{"type": "spearman", "value": 0.76}]
    assert text.splitlines()[text.splitlines()[1:].index("---") + 2] == CARD_MARKER  # right after the front matter

    model = _section(text, "Model")
    assert "⟨2, 4, 32, 64⟩" in model
    from transformers import BertModel

    encoder = BertModel.from_pretrained(uniform_student, add_pooling_layer=False)
    assert f"Parameters: {sum(p.numel() for p in encoder.parameters()):,}" in model  # what the file holds

    teacher = _section(text, "Distilled from")
    assert "google-bert/bert-base-uncased" in teacher and str(teacher_dir) in teacher
    assert "⟨4, 4, 32, 64⟩" in teacher  # read from the teacher's config.json

    made = _section(text, "How it was made")
    assert "bortfast 0.1.0" in made and "400 sentences" in made and "1200" in made and "--corpus wiki.txt" in made

    quality = _section(text, "Quality kept")
    assert "| spearman | STS-B dev | 0.8 | 0.76 | 95.0 % |" in quality
    assert "| mlm loss | wiki.valid.txt | 2 | 2.5 | 80.0 % |" in quality  # lower is better: teacher / student
    speed = _section(text, "Speed")
    assert "| ONNX Runtime 1.32 fp32 | 1 | 128 | 9.00 | 2.00 | 4.50× | Intel Xeon 8480+, 1 thread | 2026-12-04 |" \
        in speed

    usage = _section(text, "How to use it")
    assert "SentenceTransformer('student-uniform')" in usage
    assert "AutoModel.from_pretrained('student-uniform')" in usage
    assert "trust_remote_code" not in usage
    assert "backend=" not in usage and "bortfast.Encoder" not in usage  # no ONNX file in the directory

    assert BORT_CITATION in _section(text, "Citation") and "2010.10499" in text


def test_per_layer_student_card_needs_remote_code(per_layer_student):
    text = write_model_card(per_layer_student, ModelCardInfo(onnx_file="student.onnx")).read_text(encoding="utf-8")
    assert json.loads((per_layer_student / "config.json").read_text())[PER_LAYER_KEY]

    meta = _front_matter(text)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "fill-mask"
    assert "base_model" not in meta and "license" not in meta and "model-index" not in meta  # nothing given
    model = _section(text, "Model")
    assert "H=32;d=8;A=3,1;I=40,9" in model and "[3, 1]" in model and "[40, 9]" in model
    from transformers import AutoModelForMaskedLM

    loaded = AutoModelForMaskedLM.from_pretrained(per_layer_student, trust_remote_code=True)
    params = sum(p.numel() for p in loaded.parameters())  # tied decoder weight counted once, as in the file
    assert f"Parameters: {params:,}" in model

    assert "Not recorded." in _section(text, "Distilled from")
    assert "Not measured" in _section(text, "Quality kept") and "Not measured" in _section(text, "Speed")
    usage = _section(text, "How to use it")
    assert "AutoModelForMaskedLM.from_pretrained('student-perlayer', trust_remote_code=True)" in usage
    assert "modeling_bortfast_perlayer.py" in usage
    assert "SentenceTransformer" not in usage  # no modules.json
    assert "bortfast.Encoder('student-perlayer/student.onnx')" in usage


def test_refuses_a_foreign_readme(uniform_student, tmp_path):
    import shutil

    directory = shutil.copytree(uniform_student, tmp_path / "model")
    (directory / "README.md").write_text("# My own notes\n", encoding="utf-8")
    with pytest.raises(FileExistsError, match="README.md"):
        write_model_card(directory)
    assert (directory / "README.md").read_text(encoding="utf-8") == "# My own notes\n"
    assert not [p for p in directory.iterdir() if p.name.startswith(".README")]  # no temp file left

    write_model_card(directory, overwrite=True)
    assert is_bortfast_card(directory / "README.md")
    # bortfast's own card is replaced without being told
    write_model_card(directory, ModelCardInfo(title="Second"))
    assert "# Second" in (directory / "README.md").read_text(encoding="utf-8")


def test_rejects_a_directory_without_config(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        render_model_card(tmp_path)
    assert not (tmp_path / "README.md").exists()


def test_card_mode_follows_the_umask(uniform_student, tmp_path):
    import shutil

    directory = shutil.copytree(uniform_student, tmp_path / "model")
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        old = os.umask(umask)
        try:
            path = write_model_card(directory, overwrite=True)
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == mode, (oct(umask), oct(path.stat().st_mode))


def _copy_with_card(source: Path, target: Path, front_matter: str | None) -> Path:
    import shutil

    directory = shutil.copytree(source, target)
    if front_matter is not None:
        (directory / "README.md").write_text(f"---\n{front_matter}---\n\n# The teacher\n", encoding="utf-8")
    return directory


def test_card_inherits_the_teachers_license(uniform_student, teacher_dir, tmp_path):
    student = _copy_with_card(uniform_student, tmp_path / "student", None)
    teacher = _copy_with_card(teacher_dir, tmp_path / "teacher-mit", "language: en\nlicense: mit\ntags: [bert]\n")
    meta = _front_matter(render_model_card(student, ModelCardInfo(teacher_path=str(teacher))))
    assert meta["license"] == "mit"
    assert "license_name" not in meta

    # a custom licence keeps its name and link
    other = _copy_with_card(teacher_dir, tmp_path / "teacher-other",
                            "license: other\nlicense_name: acme-1.0\nlicense_link: https://example.com/LICENSE\n")
    meta = _front_matter(render_model_card(student, ModelCardInfo(teacher_path=str(other))))
    assert (meta["license"], meta["license_name"], meta["license_link"]) == \
        ("other", "acme-1.0", "https://example.com/LICENSE")

    # the caller's licence wins over the teacher's
    meta = _front_matter(render_model_card(student, ModelCardInfo(teacher_path=str(teacher), license="apache-2.0")))
    assert meta["license"] == "apache-2.0"


@pytest.mark.parametrize("card", [None, "# no front matter\n", "---\nlanguage: en\n---\n", "---\n: [unclosed\n---\n"])
def test_card_has_no_license_when_the_teacher_states_none(uniform_student, teacher_dir, tmp_path, card):
    teacher = _copy_with_card(teacher_dir, tmp_path / "teacher", None)
    if card is not None:
        (teacher / "README.md").write_text(card, encoding="utf-8")
    meta = _front_matter(render_model_card(uniform_student, ModelCardInfo(teacher_path=str(teacher))))
    assert "license" not in meta
    assert meta["library_name"] == "sentence-transformers"  # the card itself is still written


def test_demo_teacher_license_is_apache():
    from bortfast.distill import bundled_teacher_path
    from bortfast.export.card import teacher_license

    # the packaged all-MiniLM-L6-v2 carries the hub's model card, whose licence is Apache-2.0 (the package's own
    # MIT licence covers its wrapper code, not the weights)
    assert teacher_license(bundled_teacher_path()) == {"license": "apache-2.0"}


def test_a_hub_id_teacher_becomes_base_model(uniform_student, tmp_path):
    from bortfast.export.card import ModelCardInfo, hub_id, render_model_card

    assert hub_id("sentence-transformers/all-MiniLM-L6-v2") and hub_id("bert-base-uncased")
    assert not hub_id(str(tmp_path)) and not hub_id("./teacher") and not hub_id(None) and not hub_id("a b/c")
    card = render_model_card(uniform_student, ModelCardInfo(teacher_path="sentence-transformers/all-MiniLM-L6-v2"))
    assert yaml.safe_load(card.split("---")[1])["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    local = render_model_card(uniform_student, ModelCardInfo(teacher_path=str(tmp_path)))
    assert "base_model" not in local.split("---")[1]  # a local directory's own hub id is unknown: none is guessed
