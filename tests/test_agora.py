import json

import numpy as np
import pytest
from _tiny import make_tiny_bert, write_keyword_sst2

from bortfast.data.tasks import get_task, load_examples
from bortfast.finetune import FinetuneConfig, build_model, decide, encode, load_tokenizer, predict, train_model
from bortfast.finetune.agora import (
    AgoraConfig,
    MLMPerturber,
    Theta,
    WordPerturber,
    agora,
    expand,
    make_generator,
    prune,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny") / "mlm")


@pytest.fixture(scope="module")
def keyword_task(tmp_path_factory):
    return write_keyword_sst2(tmp_path_factory.mktemp("kw"))


def test_default_grid_is_alexa_borts_readme_grid():
    cfg = AgoraConfig()
    grid = cfg.grid()
    assert len(grid) == 3 * 4 * 4 * 2
    assert {t.learning_rate for t in grid} == {1e-4, 1e-5, 9e-6}
    assert {t.weight_decay for t in grid} == {0, 10, 100, 350}
    assert {t.warmup_ratio for t in grid} == {0.35, 0.40, 0.45, 0.50}
    assert {t.batch_size for t in grid} == {8, 16}
    small = AgoraConfig(max_thetas=6).grid()
    assert len(small) == 6 and set(small) <= set(grid) and small == AgoraConfig(max_thetas=6).grid()
    run = cfg.run_config(grid[5])
    assert (run.learning_rate, run.weight_decay, run.warmup_ratio, run.batch_size) == (
        grid[5].learning_rate, grid[5].weight_decay, grid[5].warmup_ratio, grid[5].batch_size)


def test_prune_keeps_the_better_half():
    t = [Theta(lr, 0, 0.1, 8) for lr in (1, 2, 3, 4, 5)]
    assert prune([(t[0], 0.1), (t[1], 0.9), (t[2], 0.5), (t[3], 0.5), (t[4], float("-inf"))]) == [t[1], t[2], t[3]]
    assert prune([(t[0], 0.3), (t[1], 0.3)]) == [t[0]]


def test_agora_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"heldout_fraction=0.*copies=0.*generator='gpt'"):
        AgoraConfig(heldout_fraction=0, copies=0, generator="gpt")
    with pytest.raises(ValueError, match="learning_rates is empty"):
        AgoraConfig(learning_rates=())


def test_word_perturber_changes_text_reproducibly():
    texts = ["the movie was good and long", "bad"]
    a = WordPerturber(0.3, seed=1).perturb(texts)
    assert a == WordPerturber(0.3, seed=1).perturb(texts)
    assert a[0] != texts[0] and sorted(a[0].split()) != [] and set(a[0].split()) <= set(texts[0].split())
    assert a[1] == "bad"


def test_generator_uses_the_mlm_head_when_there_is_one(tiny, tmp_path):
    tok = load_tokenizer(tiny)
    gen = make_generator(tiny, tok, AgoraConfig())
    assert isinstance(gen, MLMPerturber)
    texts = ["the movie was good", "a very long and rather bad film"]
    out = gen.perturb(texts)
    assert len(out) == 2 and all(o != t for o, t in zip(out, texts))
    assert not any("[" in o for o in out)  # no [MASK], [CLS], [unused..] pieces
    enc = make_tiny_bert(tmp_path / "enc", mlm_head=False)
    assert isinstance(make_generator(enc, tok, AgoraConfig()), WordPerturber)
    with pytest.raises(ValueError, match="generator='mlm' needs a checkpoint with a masked-LM head"):
        make_generator(enc, tok, AgoraConfig(generator="mlm"))


def test_expand_labels_new_examples_with_the_model(tiny, keyword_task):
    spec, tok = get_task("sst2"), load_tokenizer(tiny)
    train = load_examples(spec, keyword_task, "train")[:40]
    cfg = AgoraConfig(copies=2, max_new_per_round=100, finetune=FinetuneConfig(progress=False, max_seq_len=64))
    model = build_model(tiny, spec)  # untrained: it gets about half the examples wrong
    new = expand(model, tok, spec, train, WordPerturber(0.2, 0), cfg, round_index=0)
    wrong = decide(predict(model, encode(train, tok, spec, 64), spec.kind, tok.pad_token_id), spec.kind) != \
        np.array([e.label for e in train])
    assert 0 < len(new) <= 2 * wrong.sum()
    assert all(e.source.startswith("agora round 0 from ") for e in new)
    relabel = decide(predict(model, encode(new, tok, spec, 64), spec.kind, tok.pad_token_id), spec.kind)
    assert [e.label for e in new] == relabel.tolist()


def test_agora_prunes_to_the_theta_that_learns(tiny, keyword_task, tmp_path):
    # Two θ: a learning rate that learns the keyword task in 3 epochs and one far too small to. Agora must prune
    # the second, expand the data, replay the winner, and keep the winner's model.
    cfg = AgoraConfig(learning_rates=(5e-3, 1e-7), weight_decays=(0.0,), warmup_ratios=(0.1,), batch_sizes=(8,),
                      heldout_fraction=0.2, replay=1, copies=1, max_new_per_round=32,
                      finetune=FinetuneConfig(epochs=3, progress=False, max_seq_len=64))
    res = agora(tiny, "sst2", keyword_task, tmp_path / "agora", cfg)
    assert res["final_theta"]["learning_rate"] == 5e-3
    assert [(r["phase"], r["n_thetas"]) for r in res["rounds"]] == [("prune", 2), ("replay", 1)]
    # The replay trains on what round 0's winner generated: copies per training example it got wrong, which on
    # some CPUs is none (test_expand_labels_new_examples_with_the_model covers generation itself).
    assert res["rounds"][1]["n_train"] == res["n_train"] + res["n_generated"]
    assert res["n_generated"] <= cfg.copies * res["n_train"]
    assert res["heldout"] >= 0.9 and res["dev"]["accuracy"] >= 0.9
    assert res["generator"] == "mlm" and res["grid_size"] == 2
    journal = [json.loads(line) for line in (tmp_path / "agora/agora_journal.jsonl").read_text().splitlines()]
    assert len(journal) == 3 and journal[1]["score"] < journal[0]["score"]
    generated = (tmp_path / "agora/generated.jsonl").read_text().splitlines()
    assert len(generated) == res["n_generated"]
    assert json.loads((tmp_path / "agora/results.json").read_text())["dev"] == res["dev"]
    from bortfast.finetune import evaluate, load_finetuned

    model = load_finetuned(tmp_path / "agora/best")
    dev = load_examples("sst2", keyword_task, "dev")
    assert evaluate(model, load_tokenizer(tmp_path / "agora/best"), "sst2", dev, 64) == res["dev"]


def test_train_model_rejects_empty_inputs(tiny):
    spec, tok = get_task("sst2"), load_tokenizer(tiny)
    model = build_model(tiny, spec)
    with pytest.raises(ValueError, match="no training examples"):
        train_model(model, tok, spec, [], [], FinetuneConfig(progress=False))
