"""experiments/induction_probe.py's diagnostics and synthetic.py's dt penalty, on models whose
step sizes are set by hand so that the right answer is known."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    """Import experiments/<name>.py (experiments/ is not a package; the probe imports
    ``synthetic`` by name, so experiments/ goes on the path)."""
    if str(ROOT / "experiments") not in sys.path:
        sys.path.insert(0, str(ROOT / "experiments"))
    spec = importlib.util.spec_from_file_location(f"seqmamba_bench_{name}",
                                                  ROOT / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


P = _load("induction_probe")
S = P.S


def _constant_dt(model, bias: float, layers=None):
    """Make every step size of the chosen layers softplus(bias), whatever the input."""
    for i, layer in enumerate(model.backbone.layers):
        if layers is None or i in layers:
            with torch.no_grad():
                layer.mixer.dt_proj.weight.zero_()
                layer.mixer.dt_proj.bias.fill_(bias)
    return model


def test_recorded_dt_sees_each_call_and_puts_the_method_back():
    model = S.make_model(True, seed=0, d_model=32, n_layer=2)
    ids = S.induction_heads_batch(3, 20, torch.Generator().manual_seed(0))[0]
    with torch.no_grad(), S.recorded_dt(model, (-1,)) as seen:
        model(ids)
        model(ids[:, :7])
    assert [tuple(d.shape) for d in seen] == [(3, model.backbone.layers[-1].mixer.d_inner, 20),
                                              (3, model.backbone.layers[-1].mixer.d_inner, 7)]
    assert all(float(d.min()) > 0 for d in seen)  # after softplus
    assert all("_ssm_inputs" not in vars(layer.mixer) for layer in model.backbone.layers)


@pytest.mark.parametrize("bias", [-20.0, -5.0, 2.0])
def test_half_life_is_ln2_over_dt_times_the_smallest_decay(bias):
    """With dt fixed at softplus(bias), the longest half-life of a layer is ln 2 / (dt min|A|)."""
    model = _constant_dt(S.make_model(True, seed=0, d_model=32, n_layer=2), bias)
    got = P.memory_half_lives(model, length=256, n=2)
    dt = math.log1p(math.exp(bias))
    for layer, hl in zip(model.backbone.layers, got):
        a_min = float(torch.exp(layer.mixer.A_log.detach()).min())
        assert hl == pytest.approx(math.log(2) / (dt * a_min), rel=1e-3)


def test_half_life_leaves_out_the_steps_where_the_key_is_written():
    """A large dt at the trigger and the d_conv tokens after it (where a trained model writes
    the key) must not count as decay on ordinary tokens."""
    model = _constant_dt(S.make_model(True, seed=0, d_model=32, n_layer=2), -20.0)
    quiet = P.memory_half_lives(model, length=256, n=2, seed=7)
    g = torch.Generator().manual_seed(7)
    inputs, _ = S.induction_heads_batch(2, 256, g)
    trig = inputs == S.TRIGGER
    d_conv = model.backbone.layers[0].mixer.d_conv
    near = trig.clone()
    for k in range(1, d_conv + 1):
        near |= torch.nn.functional.pad(trig[:, :-k], (k, 0))
    for layer in model.backbone.layers:  # dt 30 exactly on those steps, tiny elsewhere
        inner = layer.mixer._ssm_inputs

        def spiky(x, inner=inner):
            dt, B, C, bias = inner(x)
            return dt + 50.0 * near[:, None, :].to(dt.dtype), B, C, bias
        layer.mixer._ssm_inputs = spiky
    assert P.memory_half_lives(model, length=256, n=2, seed=7) == pytest.approx(quiet, rel=1e-3)


def test_key_readout_tells_a_forgotten_key_from_a_kept_one():
    """dt large everywhere: the key is gone by the query (no logit moves when it changes, and
    the state is wholly replaced); the readout's accuracy is a fraction."""
    model = _constant_dt(S.make_model(True, seed=0, d_model=32, n_layer=2), 8.0).eval()
    ro = P.key_readout(model, 256, 4, seed=0)
    assert ro["key_shift"] < 1e-9
    assert ro["drift"] > 0.5
    assert 0.0 <= ro["accuracy"] <= 1.0 and ro["margin"] >= 0
    # an untrained model with its initial dt (1e-3..1e-1) still holds a trace of the key
    # 100 tokens later: small, but a hundred times above rounding
    fresh = S.make_model(True, seed=0, d_model=32, n_layer=2).eval()
    assert P.key_readout(fresh, 128, 4, seed=0)["key_shift"] > 1e-6


def test_dt_penalty_lowers_the_recall_layers_step_sizes():
    """The same short run with and without the cost on log dt: with it, the last layer's
    mean log dt (floored at 1e-11, as in the cost) ends far lower."""
    spec = S.TrainSpec(steps=40, batch=8, lr=3e-2, warmup=4, weight_decay=0.0)  # Adam: ~lr a step
    ids = S.induction_heads_batch(4, 64, torch.Generator().manual_seed(9))[0]
    logs = []
    for penalty in (0.0, 1.0):
        model, _, _ = S.train_induction(spec, 0, 64, dt_penalty=penalty)
        with torch.no_grad(), S.recorded_dt(model, (-1,)) as seen:
            model(ids)
        logs.append(float(seen[0].clamp_min(1e-11).log().mean()))
    assert logs[1] < logs[0] - 1.0
