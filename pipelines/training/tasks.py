"""The Lightning modules every training command runs: what a step computes and which metrics it
logs.  Lightning provides the loop, checkpoints and ``--resume``, the CSV logger, precision,
devices and DDP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F

from seqmamba import (MambaConfig, MambaForMaskedLM, MambaForSequenceClassification,
                      MambaForTokenClassification, MambaLMHeadModel, MambaPreTrainedModel)
from seqmamba.schedule import warmup_cosine
from seqmamba.streaming import LN2

from ..errors import InputError
from ..metrics import classification_metrics, confusion_scores
from ..model_dirs import load_pretrained
from .resume import _resumable_sampler, _write_session_start


def mean_step(gaps: list) -> Optional[float]:
    """The mean of the seconds between consecutive step starts, ``gaps``; None without any."""
    return round(sum(gaps) / len(gaps), 5) if gaps else None


class _Task(L.LightningModule):
    model_cls = MambaPreTrainedModel

    def __init__(self, model_config: dict, lr: float = 2e-3, weight_decay: float = 0.1,
                 warmup_steps: int = 100, max_steps: int = 1000, init: Optional[str] = None):
        super().__init__()
        self.save_hyperparameters()
        if init:
            overrides = {k: model_config[k] for k in ("num_labels", "pooling", "extra",
                                                      "dropout", "label_complement")
                         if k in model_config}
            self.model = load_pretrained(self.model_cls, Path(init), **overrides)
            # the checkpoint's config is authoritative from here on (it is what resume rebuilds)
            self.hparams.model_config = self.model.config.to_dict()
            self.hparams.init = None
        else:
            self.model = self.model_cls(MambaConfig.from_dict(model_config))

    def configure_optimizers(self):
        h = self.hparams
        groups = self.model.param_groups(h.weight_decay)
        opt = torch.optim.AdamW(groups, lr=h.lr, betas=(0.9, 0.95))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: warmup_cosine(s, h.warmup_steps, h.max_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # Training time across sessions: each checkpoint carries the seconds trained to reach it,
    # so a run resumed after a crash (or moved to another machine) reports its whole cost.
    seconds_before = 0.0  # trained in earlier sessions, up to the checkpoint resumed from

    def seconds_trained(self) -> float:
        t0 = getattr(self, "_session_t0", None)
        return self.seconds_before + (time.perf_counter() - t0 if t0 is not None else 0.0)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["train_seconds"] = self.seconds_trained()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.seconds_before = float(checkpoint.get("train_seconds", 0.0))

    # Seconds per step, for the report: what a run's training time buys, so two models run on
    # the same cores can be compared at equal time.  A step runs from one batch's start to the
    # next's (its batch loading included); the steps a validation (and the checkpoint written
    # with it) follows are left out.
    def step_seconds(self) -> Optional[float]:
        """This session's mean seconds per training step."""
        return mean_step(getattr(self, "_step_gaps", []))

    def on_train_batch_start(self, batch, batch_idx):
        now = time.perf_counter()
        if self._step_start is not None:
            self._step_gaps.append(now - self._step_start)
        self._step_start = now

    def on_validation_start(self):
        self._step_start = None

    def on_train_start(self):
        self._session_t0 = time.perf_counter()
        self._step_gaps, self._step_start = [], None
        # A resumed run continues its data where the checkpoint stopped: the batches of the
        # current epoch already trained on are skipped, so the run sees the same batches in
        # the same order as one that was never interrupted (one process; under DDP the epoch
        # restarts, as Lightning does).
        self.session_start = self.trainer.global_step
        if self.trainer.is_global_zero:
            _write_session_start(Path(self.trainer.default_root_dir), self.session_start)
        # Lightning does not call on_train_epoch_start for an epoch it resumes in the middle
        self._set_epoch(self.trainer.train_dataloader)
        sampler = _resumable_sampler(self.trainer.train_dataloader)
        if sampler is None or self.trainer.global_step == 0 or self.trainer.world_size > 1:
            return
        per_epoch = self.trainer.num_training_batches
        done = self.trainer.global_step - self.current_epoch * per_epoch
        if 0 < done < per_epoch:
            sampler.skip = done * self.trainer.train_dataloader.batch_size

    def on_train_epoch_start(self):
        self._set_epoch(self.trainer.train_dataloader)

    def _set_epoch(self, loader) -> None:
        # windows, crops and shuffles are functions of (seed, epoch, index): tell them the epoch
        ds = getattr(loader, "dataset", None)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(self.current_epoch)
        sampler = _resumable_sampler(loader)
        if sampler is not None:
            sampler.set_epoch(self.current_epoch)


class LMTask(_Task):
    """Next-token pretraining; logs loss and bits per token (= bits per base for DNA)."""

    model_cls = MambaLMHeadModel

    def training_step(self, batch, _):
        out = self.model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                         labels=batch["input_ids"])
        n = batch["input_ids"].shape[0]
        self.log("train_loss", out.loss, prog_bar=True, batch_size=n)
        self.log("train_bits", out.loss / LN2, batch_size=n)
        return out.loss

    def validation_step(self, batch, _):
        out = self.model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                         labels=batch["input_ids"])
        n = batch["input_ids"].shape[0]
        self.log("val_loss", out.loss, prog_bar=True, sync_dist=True, batch_size=n)
        self.log("val_bits", out.loss / LN2, prog_bar=True, sync_dist=True, batch_size=n)


class MaskedLMTask(_Task):
    """Masked-LM pretraining on batches of {input_ids (corrupted), labels (-100 where not
    chosen)}; logs loss and bits per masked base."""

    model_cls = MambaForMaskedLM

    def _step(self, batch, stage: str):
        out = self.model(batch["input_ids"], labels=batch["labels"])
        n = batch["input_ids"].shape[0]
        sync = stage == "val"
        self.log(f"{stage}_loss", out.loss, prog_bar=True, sync_dist=sync, batch_size=n)
        self.log(f"{stage}_bits", out.loss / LN2, prog_bar=sync, sync_dist=sync, batch_size=n)
        return out.loss

    def training_step(self, batch, _):
        return self._step(batch, "train")

    def validation_step(self, batch, _):
        self._step(batch, "val")


class ClassifierTask(_Task):
    """Sequence classification; logs accuracy, MCC, macro-F1 and AUROC (scikit-learn)."""

    model_cls = MambaForSequenceClassification

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._val = []

    def training_step(self, batch, _):
        x, y = batch["input_ids"], batch["label"]
        out = self.model(x, attention_mask=batch.get("attention_mask"), labels=y)
        acc = (out.logits.argmax(-1) == y).float().mean()
        n = x.shape[0]
        self.log("train_loss", out.loss, prog_bar=True, batch_size=n)
        self.log("train_acc", acc, prog_bar=True, batch_size=n)
        return out.loss

    def validation_step(self, batch, _):
        out = self.model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                         labels=batch["label"])
        self.log("val_loss", out.loss, prog_bar=True, sync_dist=True,
                 batch_size=batch["input_ids"].shape[0])
        self._val.append((out.logits.float().softmax(-1).detach(), batch["label"].detach()))

    def on_validation_epoch_end(self):
        if not self._val:
            return
        probs = torch.cat([p for p, _ in self._val])
        labels = torch.cat([y for _, y in self._val])
        self._val.clear()
        if self.trainer.world_size > 1:
            probs = self.all_gather(probs).flatten(0, 1)
            labels = self.all_gather(labels).flatten(0, 1)
        m = classification_metrics(labels.cpu().numpy(), probs.cpu().numpy())
        for k, v in m.items():
            if k != "confusion":
                self.log(f"val_{k}", v, prog_bar=k == "acc", rank_zero_only=True)


class TokenTask(_Task):
    """Per-position classification (gene annotation): cross-entropy over labelled positions
    (label -100 is ignored), weighted per class by ``class_weights`` (classes,) when given; logs
    per-base accuracy and macro-F1 from a confusion matrix accumulated over the held-out set."""

    model_cls = MambaForTokenClassification

    def __init__(self, *args, class_weights: Optional[list] = None, **kw):
        super().__init__(*args, **kw)
        w = class_weights
        self.register_buffer("class_weights", torch.tensor(w, dtype=torch.float32)
                             if w else None, persistent=False)
        self._confusion = None

    def _loss(self, batch):
        mask = batch.get("attention_mask")
        logits = self.model(batch["input_ids"], attention_mask=mask).logits
        labels = batch["labels"]
        if mask is not None:
            labels = labels.masked_fill(mask == 0, -100)
        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(),
                               weight=self.class_weights, ignore_index=-100)
        return loss, logits, labels

    def training_step(self, batch, _):
        loss, logits, labels = self._loss(batch)
        ok = labels != -100
        acc = (logits.argmax(-1)[ok] == labels[ok]).float().mean()
        n = batch["input_ids"].shape[0]
        self.log("train_loss", loss, prog_bar=True, batch_size=n)
        self.log("train_acc", acc, prog_bar=True, batch_size=n)
        return loss

    def validation_step(self, batch, _):
        loss, logits, labels = self._loss(batch)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True,
                 batch_size=batch["input_ids"].shape[0])
        k = logits.shape[-1]
        ok = labels != -100
        cm = torch.bincount(labels[ok] * k + logits.argmax(-1)[ok], minlength=k * k).view(k, k)
        self._confusion = cm if self._confusion is None else self._confusion + cm

    def on_validation_epoch_end(self):
        if self._confusion is None:
            return
        cm = self._confusion
        self._confusion = None
        if self.trainer.world_size > 1:
            cm = self.all_gather(cm).sum(0)
        m = confusion_scores(cm.cpu().numpy())
        self.log("val_acc", m["acc"], prog_bar=True, rank_zero_only=True)
        self.log("val_macro_f1", m["macro_f1"], prog_bar=True, rank_zero_only=True)


def build_task(job, a) -> "_Task":
    """The job's Lightning task with the command's optimiser settings and ``init`` weights,
    keeping the command's ``extra`` metadata on the model even when ``init`` brought its own.
    Model options that make no model (--n-head not dividing --d-model) are one line here."""
    if not job.init:
        try:
            MambaConfig.from_dict(job.model_config)
        except ValueError as e:
            raise InputError(f"the model options make no model: {e}",
                             fix="see --help's model options") from None
    task = job.task_cls(job.model_config, lr=a.lr, weight_decay=a.weight_decay,
                        warmup_steps=a.warmup_steps, max_steps=a.max_steps,
                        init=str(job.init) if job.init else None, **job.task_options)
    extra = job.model_config.get("extra")
    if extra:
        task.model.config.extra = {**(task.model.config.extra or {}), **extra}
    return task
