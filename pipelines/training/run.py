"""The skeleton of every training command: run directory, memory check, fit, resume, export,
report."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import lightning as L
import torch

from seqmamba import MambaConfig, MambaPreTrainedModel
from seqmamba.atomic import write_json_atomic

from ..errors import InputError
from ..plots import plot_curves
from .resume import fold_metrics_before_resume, merge_metrics_after_fit
from .tasks import build_task
from .trainer import trainer_from_args


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
    # the task's own training options, never saved with the model (TokenTask's class_weights)
    task_options: dict = field(default_factory=dict)


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

    from ..io.tables import OutputLock
    from ..runs import run_dir_checkpoint

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
    from ..runs import best_or_last, export_final

    if trainer.global_rank != 0:
        return 0
    seconds, start = task.seconds_trained(), getattr(task, "session_start", 0)
    session = seconds - task.seconds_before
    resumed = {"resumed_from_step": start, "session_seconds": round(session, 1)} if start else {}
    merge_metrics_after_fit(a.out, start)
    export_final(task.model, a.out)
    fields, lines = report(task.model.eval())  # RUN/final is written
    body = {"task": fields.pop("task"), "steps": trainer.global_step,
            "train_seconds": round(seconds, 1), "step_seconds": task.step_seconds(), **resumed,
            "hardware": _hardware(trainer),
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
