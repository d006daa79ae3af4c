import json
import math

import numpy as np
import pytest
from _tiny import write_tiny_glue
from scipy.stats import rankdata

from bortfast.data.tasks import TASKS, compute_metrics, get_task, load_examples, majority_baseline, primary_score


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- real GLUE files


@pytest.mark.parametrize("task,dirname,n_train,n_dev", [
    ("cola", "CoLA", 8551, 1043), ("sst2", "SST-2", 67349, 872), ("mrpc", "MRPC", 3668, 408),
    ("stsb", "STS-B", 5749, 1500)])
def test_glue_files_load_with_published_row_counts(shared_data, task, dirname, n_train, n_dev):
    glue = shared_data / "glue"
    dev = load_examples(task, glue, "dev")
    assert len(dev) == n_dev
    assert load_examples(task, glue / dirname, "dev") == dev  # the task directory itself works too
    assert len(load_examples(task, glue, "train")) == n_train


def test_glue_columns_and_labels(shared_data):
    glue = shared_data / "glue"
    cola = load_examples("CoLA", glue, "dev")  # no header: the first line is data
    assert cola[0].text_a == "The sailors rode the breeze clear of the rocks." and cola[0].label == 1
    assert np.bincount([e.label for e in cola]).tolist() == [322, 721]
    mrpc = load_examples("mrpc", glue, "dev")  # header with a BOM is skipped, strings are columns 3 and 4
    assert mrpc[0].text_a.startswith("He said the foodservice pie business")
    assert mrpc[0].text_b.startswith('"The foodservice pie business does not fit')  # quotechar=None keeps quotes
    assert mrpc[0].source.endswith("MRPC/dev.tsv:2")
    stsb = load_examples("sts-b", glue, "dev")
    assert (stsb[0].text_a, stsb[0].text_b, stsb[0].label) == (
        "A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0)
    sst2 = load_examples("SST-2", glue, "dev")
    assert np.bincount([e.label for e in sst2]).tolist() == [428, 444]


def test_majority_baseline_on_real_dev(shared_data):
    glue = shared_data / "glue"
    train, dev = load_examples("mrpc", glue, "train"), load_examples("mrpc", glue, "dev")
    base = majority_baseline("mrpc", train, dev)
    assert base["accuracy"] == pytest.approx(279 / 408)
    assert base["f1"] == pytest.approx(2 * 279 / (2 * 279 + 129))
    assert majority_baseline("cola", load_examples("cola", glue, "train"),
                             load_examples("cola", glue, "dev")) == {"mcc": 0.0}


# ---------------------------------------------------------------- tiny files in each GLUE layout (tests/_tiny.py)


def test_tiny_glue_files_in_each_format(tmp_path):
    glue = write_tiny_glue(tmp_path, n_train=10, n_dev=6)
    assert (glue / "MRPC/dev.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality\t")  # the BOM, as GLUE's file
    assert not (glue / "CoLA/dev.tsv").read_text().startswith("source")  # no header: the first line is data
    for task, dirname in (("sst2", "SST-2"), ("cola", "CoLA"), ("mrpc", "MRPC"), ("stsb", "STS-B")):
        dev = load_examples(task, glue, "dev")
        assert len(dev) == 6 and len(load_examples(task, glue, "train")) == 10
        assert load_examples(task, glue / dirname, "dev") == dev  # the task directory itself works too
    cola = load_examples("cola", glue, "dev")
    assert [e.label for e in cola] == [int("good" in e.text_a.rstrip(".").split()) for e in cola] == [0, 1] * 3
    assert cola[0].source.endswith("CoLA/dev.tsv:1")
    mrpc = load_examples("mrpc", glue, "dev")
    assert all(e.text_b and e.label == int(("good" in e.text_a) == ("good" in e.text_b)) for e in mrpc)
    assert mrpc[0].source.endswith("MRPC/dev.tsv:2")  # the BOM header is skipped
    stsb = load_examples("stsb", glue, "dev")
    assert {e.label for e in stsb} <= {0.0, 2.5, 5.0} and len({e.label for e in stsb}) > 1
    assert majority_baseline("sst2", load_examples("sst2", glue, "train"), load_examples("sst2", glue, "dev")) == {
        "accuracy": 0.5}


# ---------------------------------------------------------------- the other GLUE layouts (files as GLUE ships them)


def test_qqp_mnli_qnli_rte_wnli_layouts(tmp_path):
    _write(tmp_path / "QQP/train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
           "1\t2\t3\tHow old?\tWhat age?\t1\n")
    mnli_head = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
                 "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n")
    _write(tmp_path / "MNLI/dev_matched.tsv", mnli_head + "0\t1\t1e\tgov\t(a)\t(b)\t(A)\t(B)\tP.\tH.\t"
           "neutral\tneutral\tneutral\tneutral\tneutral\tneutral\n")
    _write(tmp_path / "QNLI/dev.tsv", "index\tquestion\tsentence\tlabel\n0\tWho?\tHim.\tnot_entailment\n")
    _write(tmp_path / "RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n")
    _write(tmp_path / "WNLI/dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\t1\n")
    (q,) = load_examples("qqp", tmp_path, "train")
    assert (q.text_a, q.text_b, q.label) == ("How old?", "What age?", 1)
    (m,) = load_examples("mnli", tmp_path, "dev")
    assert (m.text_a, m.text_b, m.label) == ("P.", "H.", 2)
    assert load_examples("qnli", tmp_path, "dev")[0].label == 1
    assert load_examples("rte", tmp_path, "dev")[0].label == 0
    assert load_examples("wnli", tmp_path, "dev")[0].text_b == "B."


# ---------------------------------------------------------------- SuperGLUE JSONL and RACE JSON


def _jsonl(path, *records):
    return _write(path, "".join(json.dumps(r) + "\n" for r in records))


def test_superglue_jsonl(tmp_path):
    _jsonl(tmp_path / "BoolQ/val.jsonl", {"question": "is it", "passage": "It is.", "idx": 0, "label": True})
    _jsonl(tmp_path / "CB/val.jsonl", {"premise": "P", "hypothesis": "H", "label": "neutral", "idx": 0})
    _jsonl(tmp_path / "COPA/val.jsonl", {"premise": "It rained.", "choice1": "Wet.", "choice2": "Dry.",
                                         "question": "effect", "label": 0, "idx": 0})
    _jsonl(tmp_path / "RTE/val.jsonl", {"premise": "P", "hypothesis": "H", "label": "not_entailment", "idx": 0})
    _jsonl(tmp_path / "WiC/val.jsonl", {"word": "bank", "sentence1": "A bank.", "sentence2": "The bank.",
                                        "label": False, "idx": 0})
    _jsonl(tmp_path / "WSC/val.jsonl", {"text": "Tom said he left.", "label": True, "idx": 0,
                                        "target": {"span1_text": "Tom", "span2_text": "he"}})
    assert load_examples("boolq", tmp_path, "dev")[0].label == 1
    assert load_examples("cb", tmp_path, "dev")[0].label == 2
    (copa,) = load_examples("copa", tmp_path, "dev")
    assert copa.label == 0 and copa.choices == ("What happened as a result? Wet.", "What happened as a result? Dry.")
    assert load_examples("superglue-rte", tmp_path, "dev")[0].label == 1
    assert load_examples("wic", tmp_path, "dev")[0].text_a == "bank : A bank."
    assert load_examples("wsc", tmp_path, "dev")[0].text_b == "he refers to Tom"


def test_race_directory_and_jsonl(tmp_path):
    rec = {"article": "Ann has a cat.", "questions": ["Ann has a _.", "Who has a cat?"],
           "options": [["dog", "cat", "cow", "pig"], ["Ann", "Bob", "Cy", "Di"]], "answers": ["B", "A"], "id": "1"}
    _write(tmp_path / "RACE/dev/high/1.txt", json.dumps(rec))
    _write(tmp_path / "RACE/dev/middle/2.txt", json.dumps(rec))
    dev = load_examples("race", tmp_path, "dev")
    assert len(dev) == 4 and [e.label for e in dev[:2]] == [1, 0]
    assert dev[0].choices[1] == "Ann has a cat." and dev[1].choices[0] == "Who has a cat? Ann"
    _jsonl(tmp_path / "RACE/train.jsonl", rec)
    assert len(load_examples("race", tmp_path, "train")) == 2


# ---------------------------------------------------------------- bad input


def test_unknown_task_and_split(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'glue-nope'.*known tasks: boolq"):
        get_task("glue-nope")
    with pytest.raises(ValueError, match="unknown split 'test' for task sst2"):
        load_examples("sst2", write_tiny_glue(tmp_path / "glue"), "test")
    _write(tmp_path / "SST-2/train.tsv", "sentence\tlabel\ngood\t1\n")
    with pytest.raises(FileNotFoundError, match="split 'dev' of task sst2 not found.*dev.tsv"):
        load_examples("sst2", tmp_path, "dev")


def test_labels_outside_the_task_set(tmp_path):
    p = _write(tmp_path / "CoLA/train.tsv", "src\t1\t\tFine.\nsrc\t2\t*\tBad label.\n")
    with pytest.raises(ValueError, match=r"CoLA/train.tsv:2: label '2' is not one of task cola's labels \['0', '1'\]"):
        load_examples("cola", tmp_path, "train")
    p.write_text("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                 "0\tg\tf\ty\t0\tn\tn\tA.\tB.\t7.5\n")
    (tmp_path / "STS-B").mkdir()
    p.rename(tmp_path / "STS-B/train.tsv")
    with pytest.raises(ValueError, match=r"STS-B/train.tsv:2: score '7.5' is outside"):
        load_examples("stsb", tmp_path, "train")
    _jsonl(tmp_path / "CB/train.jsonl", {"premise": "P", "hypothesis": "H", "label": "maybe"})
    with pytest.raises(ValueError, match=r"CB/train.jsonl:1: label 'maybe'"):
        load_examples("cb", tmp_path, "train")


def test_empty_files(tmp_path):
    _write(tmp_path / "SST-2/train.tsv", "")
    with pytest.raises(ValueError, match="train.tsv: empty file"):
        load_examples("sst2", tmp_path, "train")
    _write(tmp_path / "SST-2/dev.tsv", "sentence\tlabel\n")
    with pytest.raises(ValueError, match="dev.tsv: no examples"):
        load_examples("sst2", tmp_path, "dev")
    _write(tmp_path / "BoolQ/train.jsonl", "\n")
    with pytest.raises(ValueError, match="no examples"):
        load_examples("boolq", tmp_path, "train")


def test_malformed_rows_name_file_and_line(tmp_path):
    _write(tmp_path / "MRPC/train.tsv", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
           "1\t1\t2\tA.\tB.\n0\t3\t4\tonly four\n")
    with pytest.raises(ValueError, match=r"MRPC/train.tsv:3: expected 5 tab-separated columns .* found 4"):
        load_examples("mrpc", tmp_path, "train")
    _write(tmp_path / "STS-B/train.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
           "sentence2\tscore\n0\tg\tf\ty\t0\tn\tn\tA.\tB.\thigh\n")
    with pytest.raises(ValueError, match=r"STS-B/train.tsv:2: score 'high' is not a number"):
        load_examples("stsb", tmp_path, "train")
    _write(tmp_path / "CB/train.jsonl", json.dumps({"premise": "P", "hypothesis": "H", "label": "neutral"})
           + "\n{not json\n")
    with pytest.raises(ValueError, match=r"CB/train.jsonl:2: not valid JSON"):
        load_examples("cb", tmp_path, "train")
    _jsonl(tmp_path / "COPA/train.jsonl", {"premise": "P", "choice1": "a", "label": 0})
    with pytest.raises(ValueError, match=r"COPA/train.jsonl:1: record lacks field\(s\) \['choice2', 'question'\]"):
        load_examples("copa", tmp_path, "train")
    _write(tmp_path / "RACE/train/x.txt", json.dumps({"article": "A", "questions": ["q"], "options": [["a", "b"]],
                                                      "answers": ["A"]}))
    with pytest.raises(ValueError, match=r"x.txt:1 question 0: 2 options, task race expects 4"):
        load_examples("race", tmp_path, "train")


def test_datasets_name_offline_is_a_clear_error():
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(FileNotFoundError, match="install the 'datasets' package"):
            load_examples("sst2", "nyu-mll/glue-not-a-local-dir", "train")
    else:  # pragma: no cover - only where datasets is installed
        with pytest.raises(OSError, match="could not load datasets name"):
            load_examples("sst2", "nyu-mll/glue-not-a-local-dir-or-hub-name", "train")
    with pytest.raises(FileNotFoundError, match="can only be read from files"):
        load_examples("copa", "super_glue", "train")


# ---------------------------------------------------------------- metrics


def test_metrics_match_their_definitions():
    gold = np.array([1, 1, 0, 0, 1, 0, 1, 1])
    pred = np.array([1, 0, 0, 1, 1, 0, 1, 0])
    tp, tn, fp, fn = 3, 2, 1, 2
    m = compute_metrics("mrpc", pred, gold)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert compute_metrics("cola", pred, gold) == {"mcc": pytest.approx(mcc)}
    assert set(compute_metrics("sst2", pred, gold)) == {"accuracy"}
    x = np.array([0.1, 2.0, 3.5, 1.0, 4.9])
    y = np.array([0.0, 2.5, 3.0, 1.5, 5.0])
    s = compute_metrics("stsb", x, y)
    assert s["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert s["spearman"] == pytest.approx(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    assert math.isnan(compute_metrics("stsb", np.full(5, 2.0), y)["pearson"])
    cb = compute_metrics("cb", np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]))
    assert cb["f1_macro"] == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))
    assert primary_score({"accuracy": 0.5, "f1": 0.7}) == pytest.approx(0.6)
    assert primary_score({"pearson": float("nan"), "spearman": 0.1}) == float("-inf")
    with pytest.raises(ValueError, match="equal length"):
        compute_metrics("sst2", [1, 0], [1])


def test_registry_is_consistent():
    for spec in TASKS.values():
        assert spec.metrics and spec.splits
        assert spec.kind != "classification" or len(spec.labels) >= 2
