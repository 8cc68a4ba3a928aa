"""Training: the Lightning tasks (``tasks``), the Trainer and its callbacks (``trainer``), resuming
(``resume``), held-out scoring (``evaluate``) and the run skeleton every training command calls
(``run``)."""

from .evaluate import heldout_bits, masked_bits, predict_probs, score_classifier
from .resume import ResumableSampler, training_loader
from .run import Job, check_step_memory, run_training, uses_gpu
from .tasks import ClassifierTask, LMTask, MaskedLMTask, TokenTask
from .trainer import RankAudit, ema_callback, make_trainer, trainer_from_args

__all__ = ["ClassifierTask", "Job", "LMTask", "MaskedLMTask", "RankAudit", "ResumableSampler",
           "TokenTask", "check_step_memory", "ema_callback", "heldout_bits", "make_trainer",
           "masked_bits", "predict_probs", "run_training", "score_classifier",
           "trainer_from_args", "training_loader", "uses_gpu"]
