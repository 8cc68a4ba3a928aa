"""Training utilities shared by the pipelines: schedule, weight averaging, per-group accuracy."""

import argparse

import lightning as L
import numpy as np
import pytest
import torch

from pipelines.errors import InputError
from pipelines.metrics import accuracy_by_group
from pipelines.training import ema_callback, trainer_from_args
from seqmamba.schedule import warmup_cosine


class _Toy(L.LightningModule):
    """A linear model trained by plain SGD; records its weights after every step."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)
        self.seen = []

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.mse_loss(self.lin(x), y)

    def on_train_batch_end(self, *args):
        self.seen.append(self.lin.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_ema_averages_weights_from_the_start_step_and_exports_them(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, generator=g), torch.randn(64, 1, generator=g)
    loader = torch.utils.data.DataLoader(list(zip(x, y)), batch_size=8)
    toy = _Toy()
    decay, start = 0.7, 3
    trainer = L.Trainer(max_steps=8, callbacks=[ema_callback(decay, start)], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(toy, loader)
    # the callback runs after the module's hook, so toy.seen holds the raw weights of steps 0..7
    expected = toy.seen[start]
    for w in toy.seen[start + 1:]:
        expected = decay * expected + (1 - decay) * w
    assert torch.allclose(toy.lin.weight, expected, atol=1e-6)
    assert not torch.allclose(toy.lin.weight, toy.seen[-1], atol=1e-4)  # not the raw weights


def test_ema_decay_out_of_range_is_an_input_error(tmp_path):
    a = argparse.Namespace(ema=1.5, warmup_steps=0, out=tmp_path, max_steps=2, val_every=1)
    with pytest.raises(InputError, match="--ema is a decay"):
        trainer_from_args(a)


def test_warmup_cosine_shape():
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.1)
    mids = [warmup_cosine(s, 10, 100) for s in range(10, 101, 10)]
    assert all(a > b for a, b in zip(mids, mids[1:]))


def test_accuracy_by_group():
    pred = np.array([0, 1, 1, 2, 0, 0])
    labels = np.array([0, 1, 0, 2, 1, 0])
    groups = ["b", "b", "a", "a", "c", "c"]
    assert accuracy_by_group(pred, labels, groups) == {"a": 0.5, "b": 1.0, "c": 0.5}


def test_confusion_classes_in_natural_order():
    from pipelines.plots import natural_order

    words = ["eight", "five", "four", "nine", "one", "seven", "six", "three", "two", "zero"]
    assert [words[i] for i in natural_order(words)] == [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert [["10", "2", "b", "a"][i] for i in natural_order(["10", "2", "b", "a"])] == \
        ["2", "10", "a", "b"]


def test_reports_name_checkpoints_relative_to_the_run(tmp_path):
    from types import SimpleNamespace

    from pipelines.runs import best_or_last

    run = tmp_path / "run"
    cb = SimpleNamespace(best_model_path=str(run / "checkpoints" / "best.ckpt"), last_model_path="")
    assert best_or_last(SimpleNamespace(checkpoint_callback=cb, default_root_dir=str(run))) == \
        "checkpoints/best.ckpt"
    cb.best_model_path = "/elsewhere/x.ckpt"  # outside the run: kept as it is
    assert best_or_last(SimpleNamespace(checkpoint_callback=cb, default_root_dir=str(run))) == \
        "/elsewhere/x.ckpt"
    assert best_or_last(SimpleNamespace(checkpoint_callback=None, default_root_dir=str(run))) is None


def test_token_task_weighs_the_loss_by_its_class_weights_and_saves_none():
    """TokenTask's class weights are a training option: the loss is the weighted
    cross-entropy over labelled positions (label -100 ignored), and the model keeps no trace
    of them (they travel in the task, not in the model's config)."""
    from pipelines.training import TokenTask
    from seqmamba import MambaConfig

    cfg = MambaConfig(d_model=16, n_layer=1, vocab_size=8, d_state=4, num_labels=3).to_dict()
    torch.manual_seed(0)
    weighted = TokenTask(cfg, class_weights=[0.2, 1.0, 5.0])
    torch.manual_seed(0)
    plain = TokenTask(cfg)
    g = torch.Generator().manual_seed(1)
    batch = {"input_ids": torch.randint(0, 8, (2, 12), generator=g),
             "labels": torch.randint(0, 3, (2, 12), generator=g)}
    batch["labels"][0, :3] = -100
    loss_w, logits, labels = weighted._loss(batch)
    loss_p, _, _ = plain._loss(batch)
    ok = labels != -100
    nll = torch.nn.functional.cross_entropy(logits.float()[ok], labels[ok], reduction="none")
    w = torch.tensor([0.2, 1.0, 5.0])[labels[ok]]
    assert torch.allclose(loss_w, (w * nll).sum() / w.sum(), atol=1e-6)
    assert torch.allclose(loss_p, nll.mean(), atol=1e-6)
    assert "class_weights" not in (weighted.model.config.extra or {})
    assert not any("class_weights" in k for k in weighted.model.state_dict())
