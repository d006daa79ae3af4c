"""Per-layer architectures end to end: p̂ and FLOPs exact, inheritance by importance, the one loader, ONNX export
with every fusion, the runtime, distillation, the knapsack frontier as students, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertModel

from bortfast.distill.inherit import compute_importance, inherit_student
from bortfast.distill.perlayer import check_fits_per_layer, inherit_per_layer
from bortfast.models.perlayer import load_student
from bortfast.search.knapsack import best_under_budget
from bortfast.search.perlayer import frontier_archs, layer_menus, per_layer_frontier
from bortfast.space import Arch, PerLayerArch, parse_arch

VOCAB, POS = 60, 40


def _teacher(cls=BertModel, layers=3, heads=4, hidden=32, inter=48, seed=0):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter, max_position_embeddings=POS, type_vocab_size=2,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return cls(cfg).eval()


def _ids(n=6, length=12, seed=1):
    return torch.randint(5, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def _importance(model):
    return compute_importance(model, [(_ids(), None)])


def _arch(hidden, heads, inter):
    return PerLayerArch(hidden, 8, tuple(heads), tuple(inter), vocab_size=VOCAB, max_positions=POS)


# --- the shape ------------------------------------------------------------------------------------------------------


def test_uniform_per_layer_arch_equals_arch():
    a = Arch(4, 8, 512, 768)
    p = PerLayerArch.from_arch(a)
    assert p.as_uniform() == a
    for kind in ("encoder", "encoder+pooler", "masked-lm"):
        assert p.param_count(kind) == a.param_count(kind)
    assert p.flops(2, 64) == a.flops(2, 64)
    assert PerLayerArch.parse(p.spec) == p and parse_arch(p.spec) == p and parse_arch("4,8,512,768") == a
    assert _arch(32, [4, 2], [48, 48]).as_uniform() is None


@pytest.mark.parametrize("cls,kind", [(BertModel, "encoder+pooler"), (BertForMaskedLM, "masked-lm")])
def test_param_count_is_exact_against_numel(cls, kind):
    teacher = _teacher(cls, layers=4)
    imp = _importance(teacher)
    rng = np.random.default_rng(0)
    for _ in range(4):
        d = int(rng.integers(1, 5))
        hidden = int(rng.choice([8, 16, 24, 32]))
        arch = _arch(hidden, rng.integers(1, hidden // 8 + 1, d), rng.integers(1, 49, d))
        student = inherit_per_layer(arch, teacher, imp, teacher_layers="first", model_class=cls.__name__)
        numel = sum(p.numel() for p in student.parameters())  # tied decoder weight counted once
        assert numel == arch.param_count(kind), arch


def test_layer_flops_follow_the_closed_form():
    arch = _arch(32, [4, 1, 3], [48, 7, 20])
    B, L = 2, 16
    expected = [2 * B * L * (4 * 32 * 8 * a + 2 * 32 * i) + 4 * B * L * L * 8 * a for a, i in zip((4, 1, 3),
                                                                                                   (48, 7, 20))]
    assert arch.layer_flops(B, L).tolist() == expected
    assert arch.flops(B, L) == sum(expected)


def test_bad_per_layer_shapes_name_the_values():
    with pytest.raises(ValueError, match=r"3 head counts \[4, 4, 4\] but 2 FFN widths \[48, 48\]"):
        _arch(32, [4, 4, 4], [48, 48])
    with pytest.raises(ValueError, match=r"layers \[1\] keep \[5\] heads, more than hidden/head_dim = 32/8 = 4"):
        _arch(32, [4, 5], [48, 48])
    with pytest.raises(ValueError, match=r"intermediate\[1\] must be positive, got 0"):
        _arch(32, [4, 4], [48, 0])
    with pytest.raises(ValueError, match="at least one layer"):
        _arch(32, [], [])
    with pytest.raises(ValueError, match="not divisible by head_dim"):
        PerLayerArch(30, 8, (1,), (4,))
    with pytest.raises(ValueError, match=r"'H=32;d=8;A=4' lacks \['I'\]"):
        PerLayerArch.parse("H=32;d=8;A=4")
    with pytest.raises(ValueError, match="H=HIDDEN"):
        PerLayerArch.parse("H=32;d=8;A=4;X=2")
    with pytest.raises(ValueError, match="must hold integers"):
        PerLayerArch.parse("H=32;d=8;A=4,x;I=4,4")


def test_student_too_large_for_the_teacher_is_refused():
    config = _teacher().config
    with pytest.raises(ValueError, match="layer 1 keeps 96 FFN neurons, the teacher's layers have 48"):
        check_fits_per_layer(_arch(32, [4, 4], [48, 96]), config, None)
    with pytest.raises(ValueError, match="head_dim=16 differs from the teacher's 8"):
        check_fits_per_layer(PerLayerArch(32, 16, (2,), (8,)), config, None)
    with pytest.raises(ValueError, match="4 layers, the teacher only 3"):
        check_fits_per_layer(_arch(32, [1] * 4, [4] * 4), config, None)
    with pytest.raises(ValueError, match="teacher_layers=\\[0, 0\\] must name 2 distinct"):
        check_fits_per_layer(_arch(32, [1, 1], [4, 4]), config, [0, 0])
    with pytest.raises(ValueError, match="hidden=64 is larger than the teacher's 32"):
        check_fits_per_layer(PerLayerArch(64, 8, (1,), (4,)), config, None)
    # more heads than the teacher's layer (at the teacher's head size) needs a wider hidden: refused, named
    with pytest.raises(ValueError, match="hidden=40 is larger than the teacher's 32"):
        check_fits_per_layer(PerLayerArch(40, 8, (5,), (4,)), config, None)


# --- inheritance ----------------------------------------------------------------------------------------------------


def test_full_width_per_layer_student_reproduces_the_teacher_exactly():
    teacher = _teacher()
    imp = _importance(teacher)
    student = inherit_per_layer(_arch(32, [4] * 3, [48] * 3), teacher, imp, teacher_layers=[0, 1, 2],
                                model_class="BertModel").eval()
    ids = _ids()
    assert torch.equal(student(ids).last_hidden_state, teacher(ids).last_hidden_state)


def test_per_layer_student_keeps_each_layers_most_important_heads_and_neurons():
    teacher = _teacher()
    imp = _importance(teacher)
    arch = _arch(32, [1, 3], [7, 30])
    student = inherit_per_layer(arch, teacher, imp, teacher_layers=[0, 2], model_class="BertModel")
    for s_layer, (t_index, a, i) in enumerate(zip([0, 2], arch.heads, arch.intermediate)):
        src, dst = teacher.encoder.layer[t_index], student.encoder.layer[s_layer]
        heads = np.sort(np.argsort(-imp.heads[t_index], kind="stable")[:a])
        rows = np.concatenate([np.arange(h * 8, (h + 1) * 8) for h in heads])
        assert torch.equal(dst.attention.self.query.weight, src.attention.self.query.weight[rows])
        neurons = np.sort(np.argsort(-imp.neurons[t_index], kind="stable")[:i])
        assert torch.equal(dst.intermediate.dense.weight, src.intermediate.dense.weight[neurons])
    assert student.config.bortfast_inherit["teacher_layers"] == [0, 2]


def test_uniform_per_layer_student_equals_the_uniform_inherited_one():
    teacher = _teacher()
    imp = _importance(teacher)
    uniform = inherit_student(Arch(2, 2, 16, 24, vocab_size=VOCAB, max_positions=POS), teacher, imp,
                              layers="importance", model_class="BertModel").eval()
    per = inherit_per_layer(PerLayerArch(16, 8, (2, 2), (24, 24), vocab_size=VOCAB, max_positions=POS), teacher,
                            imp, teacher_layers="importance", model_class="BertModel").eval()
    ids = _ids()
    torch.testing.assert_close(per(ids).last_hidden_state, uniform(ids).last_hidden_state, rtol=0, atol=1e-6)


# --- saving, loading, export, runtime -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_student(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    teacher = BertForMaskedLM(cfg).eval()
    imp = compute_importance(teacher, [(torch.randint(5, len(tok), (4, 16)), None)])
    arch = PerLayerArch(32, 8, (3, 1), (40, 7), vocab_size=len(tok), max_positions=64)
    student = inherit_per_layer(arch, teacher, imp, teacher_layers=[0, 2]).eval()
    directory = tmp_path_factory.mktemp("per-layer-student")
    student.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory, student, arch


def test_the_loader_restores_the_student_and_from_pretrained_refuses_it(saved_student):
    directory, student, arch = saved_student
    saved = json.loads((directory / "config.json").read_text())
    assert saved["bortfast_per_layer"] == {"heads": [3, 1], "intermediate": [40, 7]}
    assert PerLayerArch.from_config(saved) == arch
    ids = torch.randint(5, 100, (2, 10))
    loaded = load_student(directory)
    assert type(loaded) is BertForMaskedLM
    assert torch.equal(loaded(ids).logits, student(ids).logits)
    encoder = load_student(directory, "BertModel", add_pooling_layer=False)
    assert torch.equal(encoder(ids).last_hidden_state, student.bert(ids).last_hidden_state)
    with pytest.raises(RuntimeError, match="mismatched_sizes"):  # never a silently re-initialised model
        BertForMaskedLM.from_pretrained(directory)


def test_the_loader_rejects_weights_that_do_not_match_the_config(saved_student, tmp_path):
    import shutil

    directory, _, _ = saved_student
    bad = tmp_path / "bad"
    shutil.copytree(directory, bad)
    config = json.loads((bad / "config.json").read_text())
    config["bortfast_per_layer"]["intermediate"] = [40, 8]
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"encoder.layer.1.intermediate.dense.weight: \(7, 32\) in the file, "
                                         r"\(8, 32\) in the model"):
        load_student(bad)
    config["bortfast_per_layer"] = {"heads": [3], "intermediate": [40]}
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="num_hidden_layers=2 but bortfast_per_layer lists 1 layers"):
        load_student(bad)


def test_onnx_export_fuses_every_layer_and_the_runtime_serves_it(saved_student, tmp_path):
    from bortfast.export import to_onnx
    from bortfast.runtime import Encoder

    directory, student, _ = saved_student
    enc_dir = tmp_path / "encoder"
    encoder = load_student(directory, "BertModel", add_pooling_layer=False)
    encoder.save_pretrained(enc_dir)
    (enc_dir / "tokenizer.json").write_bytes((directory / "tokenizer.json").read_bytes())
    for name in ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (directory / name).is_file():
            (enc_dir / name).write_bytes((directory / name).read_bytes())
    report = to_onnx(enc_dir, tmp_path / "student.onnx")  # raises unless fully fused; parity checked
    assert report.fusion_complete
    assert report.fused_ops["Attention"] == 2 and report.fused_ops["SkipLayerNormalization"] == 4
    assert report.fused_ops["EmbedLayerNormalization"] == 1 and report.parity_max_abs_diff < 1e-4
    runtime = Encoder(tmp_path / "student.onnx")
    assert json.loads(runtime.meta["bortfast.per_layer"]) == {"heads": [3, 1], "intermediate": [40, 7]}
    texts = ["the red cat sleeps", "a small dog runs quickly near the old house"]
    got = runtime.token_states(texts)
    tokens = runtime.tokenize(texts)
    with torch.no_grad():
        want = encoder(**{k: torch.from_numpy(v) for k, v in tokens.items()}).last_hidden_state.numpy()
    for row, states in enumerate(got):
        np.testing.assert_allclose(states, want[row, : len(states)], atol=1e-4)


def test_distillation_trains_and_resumes_a_per_layer_student(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    from bortfast.distill import DistillConfig, distill

    spec = "H=16;d=8;A=2,1;I=24,9"
    base = dict(teacher=str(tiny_teacher_dir), corpus=[str(tiny_corpus_file)], arch=spec, out_dir=str(tmp_path),
                batch_size=4, seq_len=32, lr=1e-3, checkpoint_every=2, eval_every=0, progress=False,
                teacher_layers=[1, 0])
    first = distill(DistillConfig(**base, steps=2))
    student = load_student(first)
    assert PerLayerArch.from_config(student.config).spec == spec
    assert student.config.bortfast_inherit["teacher_layers"] == [0, 1]  # sorted
    final = distill(DistillConfig(**base, steps=4))  # resumes from step 2 with the per-layer loader
    assert load_student(final).config.bortfast_per_layer == {"heads": [2, 1], "intermediate": [24, 9]}
    with pytest.raises(ValueError, match="teacher_layers=\\[0\\] must name 2 distinct"):
        DistillConfig(**{**base, "teacher_layers": [0]})


# --- the frontier as students ---------------------------------------------------------------------------------------


def test_frontier_points_are_students_with_exact_costs():
    teacher = _teacher(layers=4)
    imp = _importance(teacher)
    for cost in ("params", "flops"):
        menu = layer_menus(imp.heads, imp.neurons, hidden=32, head_dim=8, layer_importance=imp.layers, cost=cost,
                           neuron_options=[6, 12, 24, 48], seq_len=16)
        assert menu.costs.shape == (4, 1 + 4 * 4) and menu.heads[0] == 0 and np.all(menu.values[:, 0] == 0)
        np.testing.assert_allclose(menu.values[:, -1], imp.layers)  # the whole layer is worth its influence
        front = per_layer_frontier(menu, 0.01)
        cands = frontier_archs(front, menu, hidden=32, head_dim=8, vocab_size=VOCAB, max_positions=POS,
                               type_vocab_size=2)
        assert len(cands) > 3 and all(c.arch.hidden == 32 for c in cands)
        assert cands[-1].arch.heads == (4,) * 4 and cands[-1].arch.intermediate == (48,) * 4  # the whole teacher
        for c in cands:
            exact = c.arch.layer_params().sum() if cost == "params" else c.arch.flops(1, 16)
            assert c.cost == exact
            student = inherit_per_layer(c.arch, teacher, imp, teacher_layers=list(c.teacher_layers),
                                        model_class="BertModel")
            assert sum(p.numel() for p in student.parameters()) == c.arch.param_count("encoder+pooler")
        i = best_under_budget(front, front.cost[-1] / 2)
        assert front.cost[i] <= front.cost[-1] / 2


def test_bad_menus_are_refused():
    with pytest.raises(ValueError, match=r"head options must be ints in \[1, 3\], got \[4\]"):
        layer_menus(np.ones((2, 4)), np.ones((2, 10)), hidden=24, head_dim=8, head_options=[4])
    with pytest.raises(ValueError, match="same layers"):
        layer_menus(np.ones((2, 4)), np.ones((3, 10)), hidden=24, head_dim=8)
    with pytest.raises(ValueError, match="layer_importance must be 2 finite values"):
        layer_menus(np.ones((2, 4)), np.ones((2, 10)), hidden=24, head_dim=8, layer_importance=[1.0, -1.0])
    with pytest.raises(ValueError, match="cost must be .params., .flops. or a table"):
        layer_menus(np.ones((2, 4)), np.ones((2, 10)), hidden=24, head_dim=8, cost="latency")


# --- the fused kernel's î -------------------------------------------------------------------------------------------


def test_fused_kernel_runs_a_per_layer_student_like_torch():
    from bortfast.profile import EncoderKernel

    teacher = _teacher(layers=3)
    imp = _importance(teacher)
    arch = _arch(32, [1, 4, 2], [7, 48, 20])
    student = inherit_per_layer(arch, teacher, imp, teacher_layers=[0, 1, 2], model_class="BertModel").eval()
    ids = _ids(n=4, length=11)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[3, 2:] = 0
    with torch.no_grad():
        emb = student.embeddings(input_ids=ids).numpy()
        ref = student(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    kernel = EncoderKernel.from_bert(student)
    assert kernel.arch == PerLayerArch(32, 8, (1, 4, 2), (7, 48, 20))
    assert kernel._encoder.layer_heads == [1, 4, 2] and kernel._encoder.layer_intermediate == [7, 48, 20]
    for threads in (1, 2):
        np.testing.assert_allclose(kernel.forward(emb, mask.numpy(), threads=threads), ref, atol=1e-4, rtol=0)


def test_per_layer_kernel_rejects_bad_widths():
    from bortfast import _core

    with pytest.raises(ValueError, match="2 head counts and 1 FFN widths"):
        _core.Encoder.per_layer(32, 8, [1, 2], [4])
    with pytest.raises(ValueError, match="layer 1 must have positive heads and intermediate, got heads=0"):
        _core.Encoder.per_layer(32, 8, [1, 0], [4, 4])
    with pytest.raises(ValueError, match="at least one layer"):
        _core.Encoder.per_layer(32, 8, [], [])
    enc = _core.Encoder.per_layer(32, 8, [1, 3], [4, 5])
    with pytest.raises(ValueError, match=r"layer 1 attention.self.query.weight must have shape \(24, 32\)"):
        enc.set_tensor(1, "attention.self.query.weight", np.zeros((32, 32), np.float32))
    with pytest.raises(IndexError, match="layer index 2"):
        enc.set_tensor(2, "output.dense.bias", np.zeros(32, np.float32))


def test_layer_latency_table_feeds_the_menus():
    from bortfast.profile.perlayer import layer_latency_table, predict_latency
    from bortfast.search.perlayer import menu_options

    heads, neurons = menu_options(4, 48, hidden=32, head_dim=8, neuron_options=[12, 48])
    assert heads.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4] and neurons.tolist() == [0] + [12, 48] * 4
    table = layer_latency_table(32, 8, heads, neurons, seq_len=16, repeats=2, warmup=0)
    assert table[0] == 0 and np.all(table[1:] > 0)
    teacher = _teacher(layers=2)
    imp = _importance(teacher)
    menu = layer_menus(imp.heads, imp.neurons, hidden=32, head_dim=8, neuron_options=[12, 48], cost=table)
    assert np.array_equal(menu.costs, np.tile(table, (2, 1)))
    arch = PerLayerArch(32, 8, (1, 4), (12, 48))
    entries = {(int(a), int(i)): float(t) for a, i, t in zip(heads, neurons, table)}
    assert predict_latency(arch, entries) == table[1] + table[8]
    with pytest.raises(KeyError, match=r"layer 0 .* \(2, 7\) is not in the latency table"):
        predict_latency(PerLayerArch(32, 8, (2,), (7,)), entries)
    with pytest.raises(ValueError, match="one cost per option"):
        layer_menus(imp.heads, imp.neurons, hidden=32, head_dim=8, neuron_options=[12, 48], cost=table[:3])


# --- Algorithm 1 over the frontier ----------------------------------------------------------------------------------


def test_search_per_layer_runs_algorithm1_on_the_frontier(tiny_teacher_dir, tiny_corpus_file, tmp_path):
    import os
    import subprocess
    import sys

    from bortfast.search import SearchResult

    out = tmp_path / "search"
    cmd = [sys.executable, "-m", "bortfast", "search", "--teacher", str(tiny_teacher_dir), "--corpus",
           str(tiny_corpus_file), "--per-layer", "--per-layer-points", "4", "--eps", "3", "--steps", "1",
           "--lr", "1e-3", "--latency", "flops", "--seq-len", "32", "--batch-size", "4",
           "--heldout-batch-size", "4", "--threads", "1", "--no-progress", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = SearchResult.load(out / "search.json")
    assert result.settings["space"] == "per-layer frontier"
    assert result.settings["per_layer"]["hidden"] == [16, 24, 32]  # 1/2, 3/4 and all of the teacher's 32
    assert 3 < len(result.candidates) <= 12 and all(isinstance(c.arch, PerLayerArch) for c in result.candidates)
    assert result.trainings == sum(c.pivot for c in result.candidates) == -(-len(result.candidates) // 3)
    for c in result.candidates:  # per-layer choices recorded, p̂ exact
        assert len(c.teacher_layers) == c.arch.layers and c.params == c.arch.param_count("encoder+pooler")
    best = result.candidates[result.best]
    assert best.w == max(c.w for c in result.candidates if c.pivot) > 0
    assert (out / "pareto.png").stat().st_size > 10_000
    assert f"xi* = {best.arch}" in proc.stdout
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)  # resumes: no training
    assert again.returncode == 0, again.stderr
    assert SearchResult.load(out / "search.json").to_dict() == result.to_dict()
    journal = (out / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 1 + result.trainings and json.loads(journal[1])["arch"].startswith("H=")
