"""Agora: fine-tuning hyperparameter search-and-prune with data expansion and replay.

The Bort paper (de Wynter & Perry 2020, §5.1) fine-tunes with Agora (de Wynter 2020, "An Algorithm for Learning
Smaller Representations of Models With Scarce Data", arXiv 2010.07990), whose code was never released; alexa/bort's
README gives only the starting grid and says that "replay (i.e. re-doing some iterations of Agora)" was needed.
This module is bortfast's reconstruction (DESIGN.md §4). One *round*:

1. train one model per surviving hyperparameter set θ (from the same pretrained checkpoint, with
   :func:`bortfast.finetune.train_model`) on the current training set, and score it on a held-out split carved
   from the training data (the task's dev set is never used for any decision);
2. prune: keep the better half of Θ (⌈|Θ|/2⌉, ranked by the task's mean metric on the held-out split);
3. expand: take the training examples that the round's best model gets wrong (classification / multiple choice:
   wrong class or choice; regression: absolute error above ``regression_error``), perturb each ``copies`` times
   with a data-generating function, label the new examples with that best model's predictions, and add them to
   the training set.

Rounds repeat until one θ remains; then ``replay`` more rounds retrain that θ on the expanded data (expanding
again in between). The result is the final θ's model with the best held-out score, evaluated once on dev.

Choices the papers leave open, and what bortfast does:

* Θ: the product of ``learning_rates × weight_decays × warmup_ratios × batch_sizes × seeds``; the default is
  alexa/bort's README grid with one seed (96 θ); ``max_thetas`` takes a seeded random sample of it for CPU budgets.
  Weight decay is AdamW's decoupled decay, as in alexa/bort's ``bertadam`` — the README's 10…350 values therefore
  shrink weights fast, and pruning is what removes such θ.
* Retraining: every θ restarts from the pretrained checkpoint each round (not from its previous round's weights),
  so rounds differ only in data; only the current best model is kept in memory.
* Data-generating function: masked-LM perturbation — mask ``mask_prob`` of the word pieces of each segment and
  sample replacements from the checkpoint's own MLM head (top-k, never the original token) — when the checkpoint
  has an MLM head; otherwise word dropout (each word dropped with ``mask_prob``) plus one swap of adjacent words.
  Multiple-choice examples perturb the context only. Generated examples are never themselves expanded.
* Pseudo-labels come from the round's best model (the papers' "labels from the trained model"), which is why the
  examples it got wrong are worth expanding around: the new points sit near its decision boundary.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from bortfast._base.io import append_jsonl, atomic_open, write_json
from bortfast._base.state import quiet_transformers
from bortfast.data.tasks import (
    MULTIPLE_CHOICE,
    REGRESSION,
    Example,
    TaskSpec,
    get_task,
    load_examples,
    majority_baseline,
    primary_score,
)
from bortfast.finetune.config import AgoraConfig, Theta
from bortfast.finetune.encode import check_tokenizer, decide, encode, evaluate, load_tokenizer, predict
from bortfast.finetune.train import (
    build_model,
    fit_seq_len,
    save_checkpoint,
    split_heldout,
    subsample,
    train_model,
)
from bortfast.models.config import load_config


def prune(scored: Sequence[tuple[Theta, float]]) -> list[Theta]:
    """The better half (⌈n/2⌉) of ``scored`` by score, ties kept in their given order."""
    order = sorted(range(len(scored)), key=lambda i: (-scored[i][1], i))
    return [scored[i][0] for i in order[:math.ceil(len(scored) / 2)]]


# ---------------------------------------------------------------------------------------------------- generators


class WordPerturber:
    """Word dropout + one adjacent swap: the fallback data-generating function (no MLM head needed)."""

    kind = "words"

    def __init__(self, mask_prob: float, seed: int):
        self.mask_prob = mask_prob
        self.rng = random.Random(seed)

    def perturb(self, texts: Sequence[str]) -> list[str]:
        out = []
        for text in texts:
            words = text.split()
            kept = [w for w in words if self.rng.random() >= self.mask_prob] or words[:1]
            if len(kept) >= 2:
                i = self.rng.randrange(len(kept) - 1)
                kept[i], kept[i + 1] = kept[i + 1], kept[i]
            out.append(" ".join(kept))
        return out


class MLMPerturber:
    """Replace ``mask_prob`` of the word pieces with samples from a masked-LM head (top-k, never the original)."""

    kind = "mlm"

    def __init__(self, mlm: nn.Module, tokenizer: PreTrainedTokenizerBase, mask_prob: float, seed: int,
                 max_len: int = 128, top_k: int = 20, batch_size: int = 32):
        self.mlm, self.tok = mlm.eval(), tokenizer
        self.mask_prob, self.max_len, self.top_k, self.batch_size = mask_prob, max_len, top_k, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        # Never sample special or placeholder pieces ([CLS], [MASK], [unused17], ...).
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        banned = set(tokenizer.all_special_ids) | {i for i, t in enumerate(vocab) if t.startswith("[")
                                                   and t.endswith("]")}
        self.special = torch.tensor(sorted(banned))

    @torch.no_grad()
    def perturb(self, texts: Sequence[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tok(list(texts[start:start + self.batch_size]), truncation=True, max_length=self.max_len,
                           padding=True, return_tensors="pt", return_special_tokens_mask=True)
            ids = enc["input_ids"]  # (B, T)
            candidates = (enc["special_tokens_mask"] == 0) & (enc["attention_mask"] == 1)
            pick = (torch.rand(ids.shape, generator=self.gen) < self.mask_prob) & candidates
            # at least one masked piece per text that has any
            first = candidates.float().argmax(dim=1)
            none = ~pick.any(dim=1) & candidates.any(dim=1)
            pick[none, first[none]] = True
            masked = ids.masked_fill(pick, self.tok.mask_token_id)
            logits = self.mlm(input_ids=masked, attention_mask=enc["attention_mask"],
                              token_type_ids=enc.get("token_type_ids")).logits  # (B, T, V)
            logits[..., self.special[self.special < logits.size(-1)]] = -math.inf
            logits.scatter_(-1, ids.unsqueeze(-1), -math.inf)  # never put the original piece back
            top = logits.topk(self.top_k, dim=-1)  # (B, T, k)
            choice = torch.multinomial(top.values[pick].softmax(-1), 1, generator=self.gen).squeeze(-1)
            new = ids.clone()
            new[pick] = top.indices[pick].gather(-1, choice.unsqueeze(-1)).squeeze(-1)
            out.extend(self.tok.decode(row[m.bool()], skip_special_tokens=True).strip()
                       for row, m in zip(new, enc["attention_mask"]))
        return out


def make_generator(model_dir: str | os.PathLike, tokenizer: PreTrainedTokenizerBase, config: AgoraConfig):
    """The data-generating function: the checkpoint's MLM head when it has one (``auto``/``mlm``), else words."""
    if config.generator == "words":
        return WordPerturber(config.mask_prob, config.seed)
    bert_config = load_config(model_dir)
    has_mlm = bool({"BertForMaskedLM", "BertForPreTraining"} & set(bert_config.architectures or []))
    if has_mlm:
        from transformers import BertForMaskedLM

        with quiet_transformers(progress_bars=False):
            mlm, info = BertForMaskedLM.from_pretrained(model_dir, local_files_only=True, output_loading_info=True)
        has_mlm = not any(k.startswith("cls.") for k in info["missing_keys"])
        if has_mlm:
            return MLMPerturber(mlm, tokenizer, config.mask_prob, config.seed, config.finetune.max_seq_len)
    if config.generator == "mlm":
        raise ValueError(f"generator='mlm' needs a checkpoint with a masked-LM head; {model_dir} has "
                         f"architectures {bert_config.architectures}")
    return WordPerturber(config.mask_prob, config.seed)


def expand(model: nn.Module, tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, train: Sequence[Example],
           generator: Any, config: AgoraConfig, round_index: int) -> list[Example]:
    """New examples around the training examples ``model`` gets wrong, labelled by ``model``."""
    fc = config.finetune
    data = encode(train, tokenizer, spec, fc.max_seq_len)
    pred = decide(predict(model, data, spec.kind, tokenizer.pad_token_id, fc.eval_batch_size), spec.kind)
    if spec.kind == REGRESSION:
        wrong = np.flatnonzero(np.abs(pred - data.labels) > config.regression_error)
    else:
        wrong = np.flatnonzero(pred != data.labels)
    n_sources = min(len(wrong), config.max_new_per_round // config.copies)
    if n_sources == 0:
        return []
    rng = np.random.default_rng([config.seed, round_index])
    sources = [train[i] for i in np.sort(rng.choice(wrong, size=n_sources, replace=False))]
    sources = [e for e in sources for _ in range(config.copies)]
    new_a = generator.perturb([e.text_a for e in sources])
    if spec.kind != MULTIPLE_CHOICE and sources[0].text_b is not None:
        new_b: list[str | None] = list(generator.perturb([e.text_b or "" for e in sources]))
    else:
        new_b = [e.text_b for e in sources]
    fresh = [dataclasses.replace(e, text_a=a, text_b=b, source=f"agora round {round_index} from {e.source}")
             for e, a, b in zip(sources, new_a, new_b) if a and (a, b) != (e.text_a, e.text_b)]
    if not fresh:
        return []
    labels = decide(predict(model, encode(fresh, tokenizer, spec, fc.max_seq_len), spec.kind,
                            tokenizer.pad_token_id, fc.eval_batch_size), spec.kind)
    if spec.kind == REGRESSION:
        labels = np.clip(labels, 0.0, 5.0)
        return [dataclasses.replace(e, label=float(y)) for e, y in zip(fresh, labels)]
    return [dataclasses.replace(e, label=int(y)) for e, y in zip(fresh, labels)]


# ---------------------------------------------------------------------------------------------------- Agora


def agora(model_dir: str | os.PathLike, task: str | TaskSpec, data: str | os.PathLike,
          out_dir: str | os.PathLike | None = None, config: AgoraConfig | None = None,
          tokenizer_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run Agora for ``task``; keep the final model in ``out_dir/best``, log every run to
    ``out_dir/agora_journal.jsonl``, the generated examples to ``out_dir/generated.jsonl`` and the summary to
    ``out_dir/results.json``. Returns the summary (dev metrics of the final model under ``"dev"``)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run = _AgoraRun(model_dir, get_task(task), data, out_dir, config or AgoraConfig(), tokenizer_dir)
    run.rounds_until_one_theta()
    run.replay_rounds()
    results = run.results()
    results.update(cpu_seconds=time.process_time() - cpu0, wall_seconds=time.perf_counter() - wall0,
                   checkpoint=str(run.out_path / "best") if run.out_path is not None else None)
    if run.out_path is not None:
        write_json(run.out_path / "results.json", results)
        with atomic_open(run.out_path / "generated.jsonl") as f:
            for e in run.generated:
                f.write(json.dumps(asdict(e)) + "\n")
    return results


class _AgoraRun:
    """One Agora run's data, generator, journal and the rounds so far."""

    def __init__(self, model_dir: str | os.PathLike, spec: TaskSpec, data: str | os.PathLike,
                 out_dir: str | os.PathLike | None, config: AgoraConfig,
                 tokenizer_dir: str | os.PathLike | None) -> None:
        self.model_dir, self.spec, self.data = model_dir, spec, data
        model_config = load_config(model_dir)
        self.tokenizer = load_tokenizer(tokenizer_dir or model_dir)
        check_tokenizer(self.tokenizer, model_dir)
        self.config = config = dataclasses.replace(config, finetune=fit_seq_len(config.finetune, model_config))
        fc = config.finetune
        self.train_all = load_examples(spec, data, "train")
        self.dev = subsample(load_examples(spec, data, "dev"), fc.max_eval_examples, config.seed)
        self.train, self.heldout = split_heldout(subsample(self.train_all, fc.max_train_examples, config.seed),
                                                 config.heldout_fraction, config.seed)
        self.generator = make_generator(model_dir, self.tokenizer, config)
        self.out_path = Path(out_dir) if out_dir is not None else None
        self.journal = self.out_path / "agora_journal.jsonl" if self.out_path is not None else None
        if self.journal is not None and self.journal.exists():
            self.journal.unlink()  # a fresh run; the journal describes this run only
        self.thetas = config.grid()
        self.generated: list[Example] = []
        self.rounds: list[dict] = []
        self.final: dict[str, Any] = {"score": -math.inf}
        self.index = 0

    def run_round(self, phase: str, candidates: list[Theta]) -> tuple[list[tuple[Theta, float]], nn.Module]:
        """Train one model per θ on the training and generated examples; (θ, held-out score) and the best model."""
        index, n_train = self.index, len(self.train) + len(self.generated)
        scored, best_model, best_score = [], None, -math.inf
        runs = []
        for k, theta in enumerate(candidates):
            run_cfg = self.config.run_config(theta)
            model = build_model(self.model_dir, self.spec, run_cfg)
            outcome = train_model(model, self.tokenizer, self.spec, self.train + self.generated, self.heldout,
                                  run_cfg, desc=f"agora r{index} θ {k + 1}/{len(candidates)}")
            score = primary_score(outcome.best_metrics)
            scored.append((theta, score))
            rec = {"round": index, "phase": phase, "theta": asdict(theta), "heldout": outcome.best_metrics,
                   "score": score, "best_epoch": outcome.best_epoch, "n_train": n_train,
                   "cpu_seconds": outcome.cpu_seconds}
            runs.append(rec)
            if self.journal is not None:
                append_jsonl(self.journal, rec)
            if best_model is None or score > best_score:
                best_model, best_score = model, score
        self.rounds.append({"round": index, "phase": phase, "n_thetas": len(candidates), "n_train": n_train,
                            "n_generated": len(self.generated), "runs": runs})
        return scored, best_model

    def consider(self, model: nn.Module, theta: Theta, score: float) -> None:
        if score > self.final["score"] or "model" not in self.final:
            self.final.update(score=score, model=model, theta=theta, round=self.index)
            if self.out_path is not None:
                save_checkpoint(model, self.tokenizer, self.out_path / "best")

    def expand(self, model: nn.Module) -> None:
        self.generated += expand(model, self.tokenizer, self.spec, self.train, self.generator, self.config,
                                 self.index)

    def rounds_until_one_theta(self) -> None:
        """Prune rounds: train every remaining θ, keep the better ones, generate examples, until one θ is left."""
        while True:
            scored, best_model = self.run_round("prune", self.thetas)
            self.thetas = prune(scored) if len(self.thetas) > 1 else self.thetas
            if len(self.thetas) == 1:
                # The winner is the round's best θ; its model from this round is the first candidate result.
                self.consider(best_model, self.thetas[0], max(s for _, s in scored))
            if len(self.thetas) > 1 or self.config.replay > 0:
                self.expand(best_model)
            self.index += 1
            if len(self.thetas) == 1:
                break

    def replay_rounds(self) -> None:
        """``config.replay`` more rounds with the final θ, each on the examples the previous one generated."""
        for r in range(self.config.replay):
            scored, model = self.run_round("replay", self.thetas)
            self.consider(model, self.thetas[0], scored[0][1])
            if r + 1 < self.config.replay:
                self.expand(model)
            self.index += 1

    def results(self) -> dict[str, Any]:
        config, spec, final, fc = self.config, self.spec, self.final, self.config.finetune
        dev_metrics = evaluate(final["model"], self.tokenizer, spec, self.dev, fc.max_seq_len, fc.eval_batch_size)
        return {
            "task": spec.name, "model": str(self.model_dir), "data": str(self.data), "method": "agora",
            "config": asdict(config), "grid_size": len(config.grid()), "generator": self.generator.kind,
            "n_train": len(self.train), "n_heldout": len(self.heldout), "n_dev": len(self.dev),
            "n_generated": len(self.generated), "rounds": self.rounds, "final_theta": asdict(final["theta"]),
            "final_round": final["round"], "heldout": final["score"], "dev": dev_metrics,
            "majority_baseline_dev": majority_baseline(spec, self.train_all, self.dev),
        }
