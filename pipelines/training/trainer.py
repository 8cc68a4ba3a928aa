"""The Lightning Trainer of a run, and the callbacks the commands add to it."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
import torch

from ..errors import InputError


def make_trainer(run_dir: Path, max_steps: int, val_every: int, devices="auto", num_nodes: int = 1,
                 strategy="auto", accelerator="auto", precision=None, progress: bool = True,
                 log_every: int = 10, limit_val_batches=None, callbacks=()) -> L.Trainer:
    """A Trainer writing checkpoints to RUN/checkpoints (``last.ckpt`` for --resume) and
    metrics to RUN/logs/metrics.csv."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    run_dir = Path(run_dir)
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=1,
                           monitor="val_loss", mode="min", filename="best")
    logger = CSVLogger(str(run_dir), name="logs", version="")
    if precision is None:
        precision = "bf16-mixed" if torch.cuda.is_available() else "32-true"
    return L.Trainer(default_root_dir=str(run_dir), max_steps=max_steps, max_epochs=-1,
                     val_check_interval=val_every, check_val_every_n_epoch=None,
                     devices=devices, num_nodes=num_nodes, strategy=strategy,
                     accelerator=accelerator, precision=precision, logger=logger,
                     callbacks=[ckpt, *callbacks], enable_progress_bar=progress, log_every_n_steps=log_every,
                     limit_val_batches=limit_val_batches, enable_model_summary=False,
                     num_sanity_val_steps=0)


def trainer_from_args(a, callbacks=()) -> L.Trainer:
    """make_trainer with the options of :func:`pipelines.runs.add_trainer_args`."""
    if not 0.0 <= getattr(a, "ema", 0.0) < 1.0:
        raise InputError(f"--ema is a decay in [0, 1) (e.g. 0.995; 0 turns it off), got {a.ema}")
    if getattr(a, "ema", 0):
        callbacks = [*callbacks, ema_callback(a.ema, a.warmup_steps)]
    try:
        return make_trainer(a.out, a.max_steps, min(a.val_every, a.max_steps),
                            devices=a.devices, num_nodes=a.num_nodes, strategy=a.strategy,
                            accelerator=a.accelerator, precision=a.precision,
                            progress=not a.no_progress, callbacks=callbacks)
    except (ValueError, RuntimeError, MisconfigurationException) as e:
        raise InputError(f"the hardware options --accelerator {a.accelerator} --devices "
                         f"{a.devices} --strategy {a.strategy} --precision {a.precision} "
                         f"cannot run here: {str(e).strip().splitlines()[0][:200]}") from None


def ema_callback(decay: float, start_step: int = 0):
    """Lightning's WeightAveraging as an exponential moving average of the weights, updated
    after every optimizer step from ``start_step`` on (after warm-up, so the random
    initialisation does not linger in the average).  Validation runs on the averaged weights
    and they replace the trained ones when training ends (so RUN/final holds them)."""
    from lightning.pytorch.callbacks import WeightAveraging
    from torch.optim.swa_utils import get_ema_multi_avg_fn

    class EMA(WeightAveraging):
        def should_update(self, step_idx=None, epoch_idx=None):
            return step_idx is not None and step_idx >= start_step

    return EMA(multi_avg_fn=get_ema_multi_avg_fn(decay))


class RankAudit(L.Callback):
    """Records, per rank, which windows it trained on and a digest of its final weights
    (``--audit-dir``): the proof that DDP ranks read different data yet stay in sync."""

    def __init__(self, directory):
        self.dir, self.seen = Path(directory), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if "window" in batch:
            self.seen.extend(batch["window"])
            # also one line per step as it happens, so a killed run leaves its record
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.dir / f"rank{trainer.global_rank}.jsonl", "a") as f:
                f.write(json.dumps({"step": trainer.global_step,
                                    "windows": list(batch["window"])}) + "\n")

    def on_train_end(self, trainer, pl_module):
        import hashlib

        h = hashlib.sha256()
        for k, v in sorted(pl_module.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes())
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(
            {"rank": trainer.global_rank, "world_size": trainer.world_size,
             "windows": self.seen, "weights_sha256": h.hexdigest()}))
