"""Lightning modules shared by the DNA and audio pipelines, and the Trainer they run under.

Lightning provides the loop, checkpoints and ``--resume``, the CSV logger, precision,
devices and DDP; these modules only say what a step computes and which metrics to log.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
import numpy as np
import torch
import torch.nn.functional as F

from seqmamba import (MambaConfig, MambaForSequenceClassification, MambaForTokenClassification,
                      MambaLMHeadModel,
                      MambaPreTrainedModel)
from seqmamba.atomic import atomic_output, write_json_atomic
from seqmamba.schedule import warmup_cosine

from .errors import InputError
from .model_dirs import load_pretrained

LN2 = math.log(2.0)


class _Task(L.LightningModule):
    model_cls = MambaPreTrainedModel

    def __init__(self, model_config: dict, lr: float = 2e-3, weight_decay: float = 0.1,
                 warmup_steps: int = 100, max_steps: int = 1000, init: Optional[str] = None):
        super().__init__()
        self.save_hyperparameters()
        if init:
            overrides = {k: model_config[k] for k in ("num_labels", "pooling", "extra", "scan_backend",
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

    def on_train_start(self):
        self._session_t0 = time.perf_counter()
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


# ---- one loss curve across resumes: Lightning's CSV logger starts logs/metrics.csv afresh in
# every process, so the rows of earlier sessions are kept in logs/metrics.history.csv, each
# session's rows replacing those an interrupted session logged past the point it resumed from.

def _metrics_rows(path: Path) -> Tuple[list, List[dict]]:
    import csv

    if not path.is_file():
        return [], []
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames or []), list(r)


def _step(row: dict) -> int:
    try:
        return int(float(row.get("step") or 0))
    except ValueError:
        return 0


def _write_metrics(path: Path, fields: list, rows: List[dict]) -> None:
    from seqmamba.atomic import write_csv_atomic

    write_csv_atomic(sorted(rows, key=_step), path, fields)


def _write_session_start(run: Path, step: int) -> None:
    (run / "logs").mkdir(parents=True, exist_ok=True)
    write_json_atomic({"step": step}, run / "logs" / "session_start.json")


def fold_metrics_before_resume(run: Path) -> None:
    """Move the rows of the last session's metrics.csv into metrics.history.csv (dropping
    history rows that session redid), before a resumed session starts a new metrics.csv."""
    logs = run / "logs"
    hf, hist = _metrics_rows(logs / "metrics.history.csv")
    cf, cur = _metrics_rows(logs / "metrics.csv")
    if not cur:
        return
    start_file = logs / "session_start.json"
    start = json.loads(start_file.read_text())["step"] if start_file.is_file() else 0
    rows = [r for r in hist if _step(r) < start] + cur
    _write_metrics(logs / "metrics.history.csv", list(dict.fromkeys(hf + cf)), rows)
    (logs / "metrics.csv").unlink()


def merge_metrics_after_fit(run: Path, session_start: int) -> None:
    """metrics.csv = the history before this session's first step + this session's rows."""
    logs = run / "logs"
    hf, hist = _metrics_rows(logs / "metrics.history.csv")
    cf, cur = _metrics_rows(logs / "metrics.csv")
    if hist:
        rows = [r for r in hist if _step(r) < session_start] + cur
        _write_metrics(logs / "metrics.csv", list(dict.fromkeys(hf + cf)), rows)
        (logs / "metrics.history.csv").unlink()
    (logs / "session_start.json").unlink(missing_ok=True)


class ResumableSampler(torch.utils.data.Sampler):
    """The order of a training epoch as a pure function of (seed, epoch): a seeded permutation
    with ``shuffle``, else 0..n-1.  ``skip`` drops the first items of the next epoch iterated
    (set when a run resumes mid-epoch), so a resumed run reads what an uninterrupted one
    would have read next."""

    def __init__(self, n: int, seed: int, shuffle: bool):
        self.n, self.seed, self.shuffle, self.epoch, self.skip = n, seed, shuffle, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n - self.skip

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.n) \
            if self.shuffle else np.arange(self.n)
        start, self.skip = self.skip, 0
        return iter(order[start:].tolist())


def training_loader(dataset, batch_size: int, seed: int, shuffle: bool, **kw):
    """The DataLoader every training command reads its batches from (resumable order)."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size,
                      sampler=ResumableSampler(len(dataset), seed, shuffle), **kw)


def _resumable_sampler(loader) -> Optional[ResumableSampler]:
    """Our sampler, also when Lightning has wrapped it for DDP."""
    s = getattr(loader, "sampler", None)
    inner = getattr(getattr(s, "dataset", None), "_sampler", None)
    for cand in (s, inner):
        if isinstance(cand, ResumableSampler):
            return cand
    return None


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
    (label -100 is ignored), weighted per class by ``extra["class_weights"]`` when given; logs
    per-base accuracy and macro-F1 from a confusion matrix accumulated over the held-out set."""

    model_cls = MambaForTokenClassification

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        w = (self.model.config.extra or {}).get("class_weights")
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


def confusion_scores(cm: np.ndarray) -> dict:
    """Confusion matrix (classes, classes), rows = truth -> acc, per-class F1 (list; 0 for a
    class neither present nor predicted), macro-F1."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1)
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return {"acc": float(tp.sum() / max(cm.sum(), 1)), "f1": f1.tolist(),
            "macro_f1": float(f1.mean())}


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """labels (n,), probs (n, classes) -> acc, mcc, macro_f1, auroc (one-vs-rest), confusion."""
    from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, matthews_corrcoef,
                                 roc_auc_score)

    pred = probs.argmax(1)
    k = probs.shape[1]
    out = {"acc": float(accuracy_score(labels, pred)),
           "mcc": float(matthews_corrcoef(labels, pred)),
           "macro_f1": float(f1_score(labels, pred, average="macro", labels=list(range(k)),
                                      zero_division=0)),
           "confusion": confusion_matrix(labels, pred, labels=list(range(k)))}
    present = np.unique(labels)
    try:
        if k == 2 and len(present) == 2:
            out["auroc"] = float(roc_auc_score(labels, probs[:, 1]))
        elif len(present) == k:
            out["auroc"] = float(roc_auc_score(labels, probs, multi_class="ovr"))
        else:
            out["auroc"] = float("nan")  # undefined when a class is absent from the labels
    except ValueError:
        out["auroc"] = float("nan")
    return out


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


def build_task(job: "Job", a) -> "_Task":
    """The job's Lightning task with the command's optimiser settings and ``init`` weights,
    keeping the command's ``extra`` metadata on the model even when ``init`` brought its own."""
    task = job.task_cls(job.model_config, lr=a.lr, weight_decay=a.weight_decay,
                        warmup_steps=a.warmup_steps, max_steps=a.max_steps,
                        init=str(job.init) if job.init else None)
    extra = job.model_config.get("extra")
    if extra:
        task.model.config.extra = {**(task.model.config.extra or {}), **extra}
    return task


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


def trainer_from_args(a, callbacks=()) -> L.Trainer:
    """make_trainer with the options of :func:`pipelines.runs.add_trainer_args`."""
    if not 0.0 <= getattr(a, "ema", 0.0) < 1.0:
        from .errors import InputError

        raise InputError(f"--ema is a decay in [0, 1) (e.g. 0.995; 0 turns it off), got {a.ema}")
    if getattr(a, "ema", 0):
        callbacks = [*callbacks, ema_callback(a.ema, a.warmup_steps)]
    try:
        return make_trainer(a.out, a.max_steps, min(a.val_every, a.max_steps),
                            devices=a.devices, num_nodes=a.num_nodes, strategy=a.strategy,
                            accelerator=a.accelerator, precision=a.precision,
                            progress=not a.no_progress, callbacks=callbacks)
    except (ValueError, RuntimeError, MisconfigurationException) as e:
        from .errors import InputError

        raise InputError(f"the hardware options --accelerator {a.accelerator} --devices "
                         f"{a.devices} --strategy {a.strategy} --precision {a.precision} "
                         f"cannot run here: {str(e).strip().splitlines()[0][:200]}") from None


def plot_curves(metrics_csv: Path, out_png: Path, keys=("train_loss", "val_loss")) -> None:
    """Loss curves from Lightning's metrics.csv, as a PNG (written atomically)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k: ([], []) for k in keys}
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            for k in keys:
                if row.get(k):
                    series[k][0].append(int(row["step"]))
                    series[k][1].append(float(row[k]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (x, y) in series.items():
        if x:
            ax.plot(x, y, marker="o" if k.startswith("val") else None, ms=3, label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    if any(x for x, _ in series.values()):
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_png)


def save_figure(fig, out_png: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_output(out_png, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)


NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve")


def natural_order(names) -> list:
    """Indices of ``names`` in the order a reader expects: numbers and number words by value
    ("zero" ... "nine", "2" before "10"), then the rest alphabetically."""
    def key(i):
        n = str(names[i]).strip().lower()
        if n in NUMBER_WORDS:
            return (0, NUMBER_WORDS.index(n), "")
        try:
            return (0, float(n), "")
        except ValueError:
            return (1, 0.0, n)

    return sorted(range(len(names)), key=key)


def plot_confusion(confusion: np.ndarray, names, out_png: Path) -> None:
    """The confusion matrix (true rows, predicted columns), classes in natural order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = natural_order(names)
    confusion = np.asarray(confusion)[np.ix_(order, order)]
    names = [names[i] for i in order]
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * k, 1.0 + 0.6 * k))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_png)


@torch.no_grad()
def predict_probs(model, loader) -> tuple:
    """Class probabilities of a classifier over a loader of {input_ids, label[, attention_mask]}
    batches -> (probs (n, classes) float32, labels (n,)) as numpy arrays."""
    model.eval()
    device = next(model.parameters()).device
    probs, labels = [], []
    for b in loader:
        mask = b.get("attention_mask")
        out = model(b["input_ids"].to(device),
                    attention_mask=None if mask is None else mask.to(device))
        probs.append(out.logits.float().softmax(-1).cpu())
        labels.append(b["label"])
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


@torch.no_grad()
def heldout_bits(model, loader) -> float:
    """Bits per token of a language model over a loader of {input_ids[, attention_mask]}
    windows: every position t >= 1 whose token is real (mask 1), pooled over the whole set (not
    a mean of batch means, so it does not depend on how the windows are batched)."""
    model.eval()
    device = next(model.parameters()).device
    total, n = 0.0, 0
    for b in loader:
        ids = b["input_ids"].to(device)
        mask = b.get("attention_mask")
        logits = model(ids, attention_mask=None if mask is None else mask.to(device)).logits
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2),
                                                ids[:, 1:], reduction="none")  # (batch, L - 1)
        if mask is not None:
            nll = nll[mask[:, 1:].to(device).bool()]
        total += float(nll.sum())
        n += nll.numel()
    return total / n / LN2 if n else math.nan


def score_classifier(model, loader, names, out: Path) -> tuple:
    """Score a classifier on a held-out loader and draw RUN/confusion.png.  Returns the
    metrics (accuracy, MCC, macro-F1, AUROC; without the confusion matrix) and the predicted
    class of each held-out example (n,)."""
    probs, labels = predict_probs(model, loader)
    m = classification_metrics(labels, probs)
    plot_confusion(m.pop("confusion"), names, out / "confusion.png")
    return m, probs.argmax(-1)


@dataclass
class Job:
    """What a training command trains: the Lightning task class (LMTask, ClassifierTask), the
    model's config, the data, and optionally the weights it starts from."""

    task_cls: type
    model_config: dict
    loader: object
    val_loader: object
    init: Optional[Path] = None
    callbacks: Sequence = ()
    step_positions: int = 0  # model positions in one training batch (batch x length)


# Peak bytes of one float32 training step (forward + backward) per position and per
# (d_model x layer): measured 78-89 with the fused CPU scan over d_model 64-256, 2-4 layers,
# 2^16-2^18 positions (peak resident set growth per position); rounded up.
STEP_BYTES_PER_UNIT = 96


def uses_gpu(accelerator: str = "auto") -> bool:
    """Whether training with ``--accelerator`` runs on a CUDA GPU."""
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def available_memory(accelerator: str = "auto") -> Optional[int]:
    """Free bytes where training will run: the GPU's (torch.cuda.mem_get_info) or the
    machine's MemAvailable; None when unknown."""
    if uses_gpu(accelerator):
        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_step_memory(cfg: MambaConfig, positions: int, accelerator: str = "auto") -> None:
    """Refuse before the first step a batch that cannot fit (a step that would swap for
    minutes, or be killed), with the estimate and the fix."""
    if positions <= 0:
        return
    width = cfg.d_model * cfg.n_layer * (2 if cfg.bidirectional else 1)
    per_position = STEP_BYTES_PER_UNIT * width + 12 * cfg.padded_vocab_size
    need = positions * per_position
    free = available_memory(accelerator)
    if free is not None and need > 0.9 * free:
        raise InputError(f"one training step needs about {need / 2**30:.1f} GiB "
                         f"({positions:,} positions per batch, d_model {cfg.d_model}, "
                         f"{cfg.n_layer} layers) and {free / 2**30:.1f} GiB are free",
                         fix="lower --seq-len (or --seconds) or --batch-size: memory grows "
                             "with both")


def run_training(a, make_job: Callable[[], Job],
                 report: Callable[[MambaPreTrainedModel], Tuple[dict, List[str]]]) -> int:
    """The skeleton of every training command, after it has read and checked its inputs
    (so that bad input leaves no run directory behind):

    make RUN (or find RUN's last checkpoint with --resume), seed everything, build the job,
    fit it; then on rank 0 only: export RUN/final, call ``report(model) -> (fields, lines)``,
    write RUN/report.json ({task, steps, train_seconds, checkpoint} + fields, atomically), draw
    RUN/loss_curve.png, and print the lines and what was written.  Returns the exit code."""

    from .runs import OutputLock, run_dir_checkpoint

    ckpt = run_dir_checkpoint(a.out, a.resume)  # checks only: nothing is written yet
    L.seed_everything(a.seed, workers=True, verbose=False)
    job = make_job()
    task = build_task(job, a)  # an --init that cannot be loaded fails here, before RUN exists
    check_step_memory(task.model.config, job.step_positions, a.accelerator)
    trainer = trainer_from_args(a, job.callbacks)
    a.out.mkdir(parents=True, exist_ok=True)
    # one training per run directory; DDP's worker ranks (LOCAL_RANK > 0) join the first's
    lock = OutputLock(a.out / "run", "run directory") \
        if os.environ.get("LOCAL_RANK", "0") == "0" else None
    try:
        _fit(trainer, task, job, ckpt)
        return _finish(a, trainer, task, report)
    finally:
        if lock is not None:
            lock.release()


def _fit(trainer, task, job, ckpt) -> None:
    """trainer.fit, loading a --resume checkpoint with weights_only=True explicitly: a
    crafted last.ckpt cannot run code even where TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 is set
    (which only changes the default), and a damaged one is one line, not a traceback."""
    import pickle

    if ckpt is not None:
        _check_checkpoint_file(Path(ckpt))
        if trainer.is_global_zero:
            fold_metrics_before_resume(Path(trainer.default_root_dir))
    try:
        trainer.fit(task, job.loader, job.val_loader, ckpt_path=ckpt, weights_only=True)
    except pickle.UnpicklingError as e:
        if ckpt is None:
            raise
        raise InputError(f"refused to load: it holds objects other than tensors and plain data "
                         f"({str(e).strip().splitlines()[0][:160]})", path=ckpt,
                         fix="it was not written by seqmamba; remove it or start a new run") \
            from None


def _check_checkpoint_file(ckpt: Path) -> None:
    """A checkpoint is a zip archive (torch.save): one cut short by a crash or a full disk has
    no central directory at its end, which is found without reading the rest."""
    import zipfile

    try:
        with zipfile.ZipFile(ckpt) as z:
            z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"damaged checkpoint ({e})", path=ckpt,
                         fix="it was cut short; remove it (and resume from another) or start a "
                             "new run") from None


def _hardware(trainer) -> dict:
    """What the (last session of the) training ran on, for report.json: the seconds it reports
    mean little without it."""
    import platform

    cuda = trainer.strategy.root_device.type == "cuda"
    return {"device": torch.cuda.get_device_name(trainer.strategy.root_device) if cuda
            else f"cpu ({platform.machine()})",
            "devices": trainer.num_devices * trainer.num_nodes,
            "precision": str(trainer.precision), "threads": torch.get_num_threads()}


def _finish(a, trainer, task, report) -> int:
    """On rank 0: RUN/final, report.json, loss curve, summary lines."""
    from .runs import best_or_last, export_final

    if trainer.global_rank != 0:
        return 0
    seconds, start = task.seconds_trained(), getattr(task, "session_start", 0)
    session = seconds - task.seconds_before
    resumed = {"resumed_from_step": start, "session_seconds": round(session, 1)} if start else {}
    merge_metrics_after_fit(a.out, start)
    export_final(task.model, a.out)
    fields, lines = report(task.model.eval())  # RUN/final is written
    body = {"task": fields.pop("task"), "steps": trainer.global_step,
            "train_seconds": round(seconds, 1), **resumed, "hardware": _hardware(trainer),
            "checkpoint": best_or_last(trainer), **fields}
    write_json_atomic(body, a.out / "report.json")
    metrics_csv = a.out / "logs" / "metrics.csv"
    if metrics_csv.exists():
        plot_curves(metrics_csv, a.out / "loss_curve.png")
    for line in lines:
        print(line)
    written = [a.out / "final", a.out / "report.json"] + [
        p for p in (a.out / "loss_curve.png", a.out / "confusion.png") if p.exists()]
    this = f" ({session:.0f} s since resuming at step {start})" if start else ""
    print(f"trained {trainer.global_step} steps in {seconds:.0f} s{this}; wrote "
          f"{', '.join(map(str, written))}")
    return 0


def accuracy_by_group(pred, labels, groups) -> dict:
    """Accuracy within each group (speaker, accent, voice) of a held-out set, sorted by name."""
    pred, labels, groups = np.asarray(pred), np.asarray(labels), np.asarray(groups)
    return {str(g): round(float((pred[groups == g] == labels[groups == g]).mean()), 4)
            for g in sorted(set(groups.tolist()))}
