"""Log-mel + logistic regression on spoken digits, holding out one group (accent or voice) at a time.

    python data/audio/make_digits.py                  # the mixed espeak-ng + flite set (~1 min)
    python experiments/audio_holdout.py                # leave-one-group-out table (~2 min)
    python experiments/audio_holdout.py --train data/audio/spoken_digits_espeak

This is the classic baseline the issue quotes (97.5% holding out one espeak-ng accent at a time),
computed on our own data with ``pipelines.audio.baselines.logmel_baseline`` — the same function
``seqmamba audio finetune --baseline logmel`` fits beside the model — and with the fixed held-out
groups of the ``audio_digits_mixed`` recipe as one more row.  Writes
``experiments/results/audio_holdout.csv``: one row per held-out set with its clip count and
accuracy / macro-F1, plus the clip-weighted mean over the leave-one-out rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines.audio.baselines import logmel_baseline  # noqa: E402
from pipelines.audio.datasets import AudioClips, label_names, read_clips  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402

RECIPE = ROOT / "pipelines" / "recipes" / "audio_digits_mixed.yaml"


def recipe_held_out() -> tuple:
    """The recipe's held-out groups, read from the recipe itself (one place to change them)."""
    import yaml

    return tuple(yaml.safe_load(RECIPE.read_text())["val_groups"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=Path, default=ROOT / "data/audio/generated/manifest.csv",
                    help="manifest CSV with a group column (or its folder)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "audio_holdout.csv")
    a = ap.parse_args(argv)
    clips = read_clips(a.train)
    names = label_names(clips)
    t0 = time.perf_counter()
    data = AudioClips(clips, names, 16000, 16000, train=False)
    items = [data[i] for i in range(len(data))]  # read once, reused by every fold
    waves = [it["waveform"] for it in items]
    labels = [it["label"] for it in items]
    groups = sorted({c.group for c in clips})
    held_sets = [(g,) for g in groups]
    recipe_held = recipe_held_out()
    if set(recipe_held) <= set(groups):
        held_sets.append(recipe_held)
    rows = []
    for held in held_sets:
        tr = [i for i, c in enumerate(clips) if c.group not in held]
        va = [i for i, c in enumerate(clips) if c.group in held]
        m = logmel_baseline([waves[i] for i in tr], [labels[i] for i in tr],
                            [waves[i] for i in va], [labels[i] for i in va], len(names), 16000)
        rows.append({"held_out": "+".join(held), "train_clips": len(tr), "val_clips": len(va),
                     "acc": round(m["acc"], 4), "macro_f1": round(m["macro_f1"], 4)})
        print(f"{rows[-1]['held_out']:45s} {len(va):5d} clips  acc {m['acc']:.4f}", flush=True)
    loo = [r for r in rows if "+" not in r["held_out"]]
    n = sum(r["val_clips"] for r in loo)
    mean = sum(r["acc"] * r["val_clips"] for r in loo) / n
    rows.append({"held_out": "mean of leave-one-group-out (clip-weighted)", "train_clips": "",
                 "val_clips": n, "acc": round(mean, 4), "macro_f1": ""})
    print(f"leave-one-group-out mean accuracy {mean:.4f} over {n} clips "
          f"({time.perf_counter() - t0:.0f} s)")
    write_csv_atomic(rows, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
