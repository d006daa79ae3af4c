"""Fine-tuning on GLUE/SuperGLUE/RACE-format tasks: settings (:mod:`.config`), encoding and prediction
(:mod:`.encode`), the training loop (:mod:`.train`), Agora (:mod:`.agora`) and task distillation
(:mod:`.task_distill`). The heads are model code (:mod:`bortfast.models.heads`), re-exported here.
``from bortfast.finetune import finetune`` as before."""

from bortfast.finetune.config import AgoraConfig, FinetuneConfig, TaskDistillConfig, Theta
from bortfast.finetune.encode import (
    Encoded,
    check_tokenizer,
    collate,
    decide,
    encode,
    evaluate,
    load_tokenizer,
    predict,
)
from bortfast.finetune.train import (
    TrainOutcome,
    build_model,
    finetune,
    fit_seq_len,
    save_checkpoint,
    seed_everything,
    split_heldout,
    subsample,
    train_model,
)
from bortfast.models.heads import BortForSequenceClassification, load_finetuned

__all__ = ["AgoraConfig", "BortForSequenceClassification", "Encoded", "FinetuneConfig", "TaskDistillConfig", "Theta",
           "TrainOutcome",
           "build_model", "check_tokenizer", "collate", "decide", "encode", "evaluate", "finetune", "fit_seq_len",
           "load_finetuned", "load_tokenizer", "predict", "save_checkpoint", "seed_everything", "split_heldout",
           "subsample", "train_model"]
