"""INT8 dynamic quantisation vs fp32 on SST-2 dev: accuracy of the deployed classifier (ONNX Runtime).

With --model, evaluates a fine-tuned BertForSequenceClassification directory (e.g. from bortfast finetune).
Without it, trains a small classifier from scratch on SST-2 train first (no pretraining: a weak but real
classifier, enough to see whether quantisation changes its decisions), saved under OUT/model.

    BORTFAST_SHARED_DATA=/work/shared/data python benchmarks/int8_sst2_accuracy.py --out /tmp/int8 [--model DIR]

Writes OUT/int8_sst2_accuracy.json: dev accuracy of torch, ORT fp32, ORT INT8, the drop in points, and agreement.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
from _harness import parser, write_result  # benchmarks/ is on sys.path when run as a script

from bortfast.space import Arch

# torch and transformers are imported where used, so --help answers at once

SHARED = Path(os.environ.get("BORTFAST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def read_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    return [r[0].strip() for r in rows], np.array([int(r[1]) for r in rows])


def train_small(out: Path, steps: int, arch: Arch, threads: int, seed: int = 0) -> Path:
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast

    torch.manual_seed(seed)
    random.seed(seed)
    tok = BertTokenizerFast.from_pretrained(SHARED / "vocab" / "bert-base-uncased")
    texts, labels = read_tsv(SHARED / "glue" / "SST-2" / "train.tsv")
    config = arch.to_bert_config(vocab_size=len(tok), max_position_embeddings=128, num_labels=2,
                                 id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    model = BertForSequenceClassification(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-4, total_steps=steps, pct_start=0.1)
    order = list(range(len(texts)))
    random.shuffle(order)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = [order[(step * 32 + i) % len(order)] for i in range(32)]
        batch = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=64, return_tensors="pt")
        loss = model(**batch, labels=torch.from_numpy(labels[idx])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 200 == 0 or step == steps - 1:
            print(f"step {step}/{steps} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main() -> None:
    ap = parser(__doc__, out_help="output folder: int8_sst2_accuracy.json, the ONNX files, the model trained here")
    ap.add_argument("--model", help="fine-tuned BertForSequenceClassification directory")
    ap.add_argument("--steps", type=int, default=1500, help="training steps (batch 32) without --model")
    ap.add_argument("--arch", default="2,4,256,512", help="architecture trained without --model")
    args = ap.parse_args()
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast

    from bortfast.export import to_onnx
    from bortfast.runtime import Classifier

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    model_dir = Path(args.model) if args.model else train_small(out / "model", args.steps, Arch.parse(args.arch),
                                                                args.threads)
    texts, labels = read_tsv(SHARED / "glue" / "SST-2" / "dev.tsv")
    reports = {q or "fp32": to_onnx(model_dir, out / f"{q or 'fp32'}.onnx", quantize=q) for q in (None, "int8")}
    tok = BertTokenizerFast.from_pretrained(model_dir)
    model = BertForSequenceClassification.from_pretrained(model_dir).eval()
    preds = {}
    with torch.no_grad():
        preds["torch"] = np.concatenate([
            model(**tok(texts[i:i + 64], padding=True, truncation=True, return_tensors="pt")).logits.argmax(1).numpy()
            for i in range(0, len(texts), 64)])
    for key in ("fp32", "int8"):
        preds[key] = Classifier(out / f"{key}.onnx", threads=args.threads).predict(texts)
    acc = {k: float((p == labels).mean() * 100) for k, p in preds.items()}
    result = {
        "model": str(model_dir), "trained_here": args.model is None, "dev_examples": len(texts),
        "accuracy": acc, "int8_drop_points": acc["fp32"] - acc["int8"],
        "agreement_int8_fp32": float((preds["int8"] == preds["fp32"]).mean()),
        "agreement_fp32_torch": float((preds["fp32"] == preds["torch"]).mean()),
        "int8_parity_cosine": reports["int8"].parity_cosine,
        "file_bytes": {k: r.file_bytes for k, r in reports.items()},
    }
    write_result(out, result)
    print(result)


if __name__ == "__main__":
    main()
