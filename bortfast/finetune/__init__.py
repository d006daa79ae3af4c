"""Fine-tuning on GLUE/SuperGLUE/RACE-format tasks: settings (:mod:`.config`), heads, encoding and the trainer
(:mod:`.train`), and Agora (:mod:`.agora`). ``from bortfast.finetune import finetune`` as before."""

from bortfast.finetune.config import AgoraConfig, FinetuneConfig, TaskDistillConfig, Theta
from bortfast.finetune.train import (
    BortForSequenceClassification,
    Encoded,
    TrainOutcome,
    build_model,
    check_tokenizer,
    collate,
    decide,
    encode,
    evaluate,
    finetune,
    fit_seq_len,
    load_finetuned,
    load_tokenizer,
    predict,
    save_checkpoint,
    seed_everything,
    split_heldout,
    subsample,
    train_model,
)

__all__ = ["AgoraConfig", "BortForSequenceClassification", "Encoded", "FinetuneConfig", "TaskDistillConfig", "Theta",
           "TrainOutcome",
           "build_model", "check_tokenizer", "collate", "decide", "encode", "evaluate", "finetune", "fit_seq_len",
           "load_finetuned", "load_tokenizer", "predict", "save_checkpoint", "seed_everything", "split_heldout",
           "subsample", "train_model"]
