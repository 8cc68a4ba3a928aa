"""The PNGs the commands draw (matplotlib, Agg, written atomically): loss curves and confusion
matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqmamba.atomic import atomic_output


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
