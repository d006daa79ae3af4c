"""Science check of Algorithm 1: how close does the interval rule (ε > 1) get to the exhaustive search (ε = 1)?

A real, tiny search: a small BERT teacher <4, 4, 128, 512> trained here by masked-LM on WikiText-2 text (with a
WordPiece vocabulary of 2,000 tokens trained on the same text), a search space of 96 architectures below it, and
short distillations (``bortfast.distill.short_train_error``) of about a second each. The exhaustive run (ε = 1)
trains every (ξ, θ); the runs for ε = 2, 4, 8 reuse its journal — each (ξ, θ) training is deterministic for a fixed
seed and thread count, which this script re-checks by retraining a few pivots from scratch — so they cost no new
training. It reports the approximation ratio W(ξ*_ε) / W(ξ*_1) and the number of trainings each ε needs.

Run (needs the shared data; about 10 minutes on 2 cores):

    python benchmarks/science_search.py --data /work/shared/data --work /tmp/bortfast-science --out DIR
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from _harness import parser, write_json, write_result  # benchmarks/ is on sys.path when run as a script


def train_tokenizer(text_file: Path, out_dir: Path, vocab_size: int):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    lines = [ln for ln in text_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=2, show_progress=False,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok = BertTokenizerFast(tokenizer_object=wp._tokenizer, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                            cls_token="[CLS]", mask_token="[MASK]", do_lower_case=True)
    tok.save_pretrained(out_dir)
    return tok


def train_teacher(text_file: Path, out_dir: Path, *, steps: int, seq_len: int, seed: int) -> float:
    """MLM-pretrain a small BertForMaskedLM teacher; returns its final held-out MLM loss."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling

    from bortfast.distill import load_corpus

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(text_file, out_dir, vocab_size=2000)
    corpus = load_corpus([text_file], tok, seq_len=seq_len, seed=seed)
    config = BertConfig(vocab_size=len(tok), hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=512, max_position_embeddings=seq_len, pad_token_id=tok.pad_token_id,
                        architectures=["BertForMaskedLM"])
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        rows = torch.randint(len(corpus.train), (32,), generator=g)
        batch = collator([{"input_ids": x} for x in corpus.train[rows]])
        loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  teacher step {step:4d}  mlm loss {loss.item():.3f}", flush=True)
    model.eval()
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        batch = collator([{"input_ids": x} for x in corpus.heldout[:256]])
        heldout = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss.item()
    model.save_pretrained(out_dir)
    return heldout


def main() -> None:
    ap = parser(__doc__, threads=None, out_help="output folder for science_search.json")
    ap.add_argument("--data", type=Path, required=True, help="the shared data directory")
    ap.add_argument("--work", type=Path, required=True, help="scratch directory (teacher, search outputs)")
    ap.add_argument("--teacher-steps", type=int, default=600)
    ap.add_argument("--steps", type=int, default=20, help="short-training steps s")
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3], help="Θ (learning rates)")
    ap.add_argument("--eps", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--max-blocks", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from bortfast.apps.extract import extract
    from bortfast.distill import load_corpus, load_teacher, short_train_error
    from bortfast.search import SearchConfig
    from bortfast.space import SearchSpace

    torch.set_num_threads(1)  # a fixed thread count makes every short training bit-reproducible
    text = args.data / "corpus" / "wikitext-2-raw" / "wiki.test.raw"
    teacher_dir = args.work / "teacher"
    teacher_info: dict = {}
    if not (teacher_dir / "model.safetensors").exists():
        print(f"training the teacher on {text} ...", flush=True)
        start = time.perf_counter()
        heldout = train_teacher(text, teacher_dir, steps=args.teacher_steps, seq_len=args.seq_len, seed=args.seed)
        teacher_info = {"heldout_mlm_loss": heldout, "train_seconds": time.perf_counter() - start,
                        "steps": args.teacher_steps}
        write_json(args.work / "teacher.json", teacher_info)
    elif (args.work / "teacher.json").exists():
        teacher_info = json.loads((args.work / "teacher.json").read_text())
    teacher = load_teacher(teacher_dir)
    T = teacher.arch
    space = SearchSpace(layers=(1, 2, 3, 4), heads=(2, 4), hidden=(32, 64, 128), intermediate=(64, 128, 256, 512),
                        vocab_size=T.vocab_size, max_positions=T.max_positions, type_vocab_size=T.type_vocab_size,
                        name="science-96")
    corpus = load_corpus([text], teacher.tokenizer, seq_len=args.seq_len, seed=args.seed, max_blocks=args.max_blocks)
    config = SearchConfig(steps=args.steps, thetas=tuple({"lr": lr} for lr in args.lrs), latency="flops",
                          batch=1, seq_len=args.seq_len, train_batch_size=8, heldout_batch_size=32, seed=args.seed)

    runs = {}
    base = args.work / "eps1"
    for eps in sorted(args.eps):
        out = args.work / f"eps{eps}"
        if eps != 1 and (base / "journal.jsonl").exists():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(base / "journal.jsonl", out / "journal.jsonl")  # reuse the exhaustive run's trainings
        start = time.perf_counter()
        result = extract(teacher, corpus, space, out_dir=out, config=config, eps=eps, progress=True)
        runs[eps] = (result, time.perf_counter() - start)
        print(f"eps={eps}: xi*={result.best_arch} theta*={result.best_theta} W={result.best_w:.5g} "
              f"({result.trainings} trainings)", flush=True)

    # Reuse is legitimate only if a training is reproducible: retrain three eps=8 pivots and compare bit for bit.
    r8 = runs[max(runs)][0]
    recheck = []
    for trial in r8.trials[:3]:
        c = r8.candidates[trial.candidate]
        theta = config.thetas[trial.theta]
        again = short_train_error(c.arch, teacher, corpus, steps=args.steps, batch_size=8, seed=args.seed,
                                  heldout_batch_size=32, **theta)
        recheck.append({"arch": str(c.arch), "theta": theta, "journal": trial.error, "retrained": again})
    exact = runs[1][0]
    table = []
    for eps, (result, seconds) in sorted(runs.items()):
        # the rank of xi*_eps among all (xi, theta) of the exhaustive run
        all_w = sorted((t.w for t in exact.trials), reverse=True)
        table.append({
            "eps": eps,
            "trainings": result.trainings,
            "best": str(result.best_arch),
            "best_theta": result.best_theta,
            "best_w": result.best_w,
            "ratio": result.best_w / exact.best_w,
            "rank_in_exhaustive": 1 + sum(w > result.best_w for w in all_w),
            "best_params": result.candidates[result.best].params,
            "best_error": result.candidates[result.best].error,
            "seconds": seconds,
        })
    errors = np.array([t.error for t in exact.trials])
    summary = {
        "teacher": {"arch": str(T), "params": exact.teacher_params, "vocab_size": T.vocab_size, **teacher_info},
        "space": {"name": space.name, "size": len(space)},
        "settings": {"steps": args.steps, "thetas": list(config.thetas), "seq_len": args.seq_len,
                     "latency": "flops", "train_batch_size": 8, "heldout_batch_size": 32, "seed": args.seed},
        "exhaustive_seconds_per_training": runs[1][1] / exact.trainings,
        "error_range": [float(errors.min()), float(errors.max())],
        "runs": table,
        "reproducibility_recheck": recheck,
        "reproducible": all(r["journal"] == r["retrained"] for r in recheck),
    }
    write_result(args.out, summary)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
