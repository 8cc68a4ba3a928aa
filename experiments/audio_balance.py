"""When balancing a batch of predictions helps an unheard voice, and when it hurts.

    python experiments/audio_balance.py                      # seed 0, and the 3 seeds averaged
    python experiments/audio_balance.py --members '' --draws 50

``seqmamba audio predict --balance`` re-weights a batch's class probabilities so that every
class is predicted equally often on average (``pipelines/balance.py``).  That is right when the
batch holds the classes about equally often, and wrong when it does not.  This scores the
held-out speaker's clips of each trained fold of ``experiments/audio_fsdd.py``
(``runs/fsdd_loso[_TAG]/<speaker>``; several tags: their probabilities averaged, an ensemble)
in batches drawn from his 500 clips (50 of each digit):

- ``all``: all 500;
- ``stratified N``: N clips, the same number of each digit;
- ``random N``: N clips drawn at random (each digit about equally often);
- ``skewed``: 500 clips drawn with replacement, the digits' shares drawn from a flat Dirichlet
  (some digits several times as frequent as others);
- ``seven digits``: 200 clips of 7 of the 10 digits.

Each batch is scored as predicted and balanced at each ``--strengths`` value, the mean over
``--draws`` draws per fold and over the four folds.  Writes
``experiments/results/audio_balance.csv`` (members, batch, clips, strength, acc_before,
acc_after, draws).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from audio_fsdd import SPEAKERS, clip_arrays, load_fold_models, model_probs  # noqa: E402
from pipelines.audio.datasets import bundled_set, read_clips  # noqa: E402
from pipelines.balance import balance, class_weights  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402

OUT = HERE / "results" / "audio_balance.csv"


def batches(y: np.ndarray, rng: np.random.Generator, draws: int):
    """Yield (batch name, clip indices into y) for every kind of batch, ``draws`` of each
    (one of ``all``)."""
    k = int(y.max()) + 1
    by_class = [np.flatnonzero(y == c) for c in range(k)]
    yield "all", np.arange(len(y))
    for _ in range(draws):
        for per in (10, 2):
            yield f"stratified {per * k}", np.concatenate(
                [rng.choice(ix, per, replace=False) for ix in by_class])
        yield "random 100", rng.choice(len(y), 100, replace=False)
        share = rng.dirichlet(np.ones(k))[y]
        yield "skewed", rng.choice(len(y), len(y), replace=True, p=share / share.sum())
        seven = np.concatenate([by_class[c] for c in rng.choice(k, 7, replace=False)])
        yield "seven digits", rng.choice(seven, 200, replace=False)


def score(probs: torch.Tensor, y: np.ndarray, strengths, draws: int, seed: int) -> dict:
    """{(batch, strength): [(acc_before, acc_after, clips) per draw]} for one fold."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    for name, ix in batches(y, rng, draws):
        p, t = probs[ix], y[ix]
        before = float((p.argmax(-1).numpy() == t).mean())
        w = class_weights(p)
        for s in strengths:
            after = float((balance(p, s, w).argmax(-1).numpy() == t).mean())
            out.setdefault((name, s), []).append((before, after, len(ix)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--members", nargs="+", action="append", default=None, metavar="TAG",
                   help="runs averaged (one ensemble per --members; '' is the untagged run); "
                        "default: --members '' and --members '' band_limit band_limit_s2")
    p.add_argument("--strengths", type=float, nargs="+", default=[1.0, 0.5, 0.3])
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "fsdd_loso")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    ensembles = a.members or [[""], ["", "band_limit", "band_limit_s2"]]
    clips = read_clips(bundled_set("fsdd")["manifest"])
    rows = []
    for tags in ensembles:
        runs = [a.workdir.with_name(a.workdir.name + (f"_{t}" if t else "")) for t in tags]
        missing = [r / s for r in runs for s in SPEAKERS if not (r / s / "report.json").is_file()]
        if missing:
            raise SystemExit(f"{missing[0]}: no finished run; train it with "
                             f"experiments/audio_fsdd.py first")
        per: dict = {}
        for i, speaker in enumerate(SPEAKERS):
            models, extra = load_fold_models([r / speaker for r in runs])
            waves, y = clip_arrays([c for c in clips if c.group == speaker], extra["labels"],
                                   int(extra["sample_rate"]))
            for key, got in score(model_probs(models, extra, waves), y, a.strengths, a.draws,
                                  seed=i).items():
                per.setdefault(key, []).extend(got)
        name = "+".join(t or "recipe" for t in tags)
        for (batch, s), got in per.items():
            g = np.array(got)
            rows.append({"members": name, "batch": batch, "clips": int(round(g[:, 2].mean())),
                         "strength": s, "acc_before": round(float(g[:, 0].mean()), 4),
                         "acc_after": round(float(g[:, 1].mean()), 4), "draws": len(g)})
            print(f"{name:28s} {batch:15s} strength {s:g}: {g[:, 0].mean():.4f} -> "
                  f"{g[:, 1].mean():.4f}", flush=True)
    write_csv_atomic(rows, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
