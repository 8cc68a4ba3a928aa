"""Training cost of the shipped FSDD recipe against the recipe before it, as a ratio measured in
one run.

    python experiments/audio_recipe_speed.py      # -> experiments/results/audio_recipe_speed.csv
    python experiments/audio_recipe_speed.py --recipes audio_fsdd \
        experiments/recipes/audio_fsdd_max.yaml --steps 100 --repeats 2

Each recipe trains for ``--steps`` steps exactly as a fold of ``experiments/audio_fsdd.py`` does
(its own training sets, nicolas held out, no baseline), on this machine's cores; the recipes
alternate ``--repeats`` times, so a machine that slows down part way (other processes share
the cores) slows them alike.  ``train_seconds`` comes from each run's report.json.  The last
recipe is the reference: each row gives the median seconds per step, the ratio to the
reference, and the recipe's full training (its ``max_steps``) projected from the reference's
measured full folds (the mean ``train_seconds`` of ``--reference-results``, folds that had
two idle cores) times that ratio and the ratio of the recipes' step counts.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (ROOT, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from audio_fsdd import mixed_manifest, recipe_path, training_sets  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402


def max_steps(recipe: Path) -> int:
    from pipelines.audio.finetune import build_parser
    from pipelines.runs import parse_with_recipe

    return parse_with_recipe(build_parser(), ["--config", str(recipe), "--out", "-"]).max_steps


def seconds_per_step(recipe: str, steps: int, work: Path, held_out: str) -> float:
    """One short fold of ``recipe`` (a fresh run directory), its training seconds per step."""
    sets = training_sets(recipe_path(recipe), None)
    manifest = sets[0] if len(sets) == 1 else mixed_manifest(sets, work / "train_manifest.csv")
    run = Path(tempfile.mkdtemp(dir=work))
    subprocess.run([sys.executable, "-m", "pipelines.cli", "audio", "finetune", "--config",
                    recipe, "--train", str(manifest), "--split", "group", "--val-groups",
                    held_out, "--out", str(run / "run"), "--no-progress", "--baseline", "none",
                    "--max-steps", str(steps), "--val-every", str(steps)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((run / "run" / "report.json").read_text())["train_seconds"] / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", nargs="+",
                   default=["audio_fsdd", str(HERE / "recipes" / "audio_fsdd_max.yaml")],
                   help="shipped recipe names or recipe files; the last is the reference")
    p.add_argument("--reference-results", default="audio_fsdd_loso_max.csv",
                   help="experiments/results file of the reference recipe's full folds")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--held-out", default="nicolas")
    p.add_argument("--out", type=Path, default=HERE / "results" / "audio_recipe_speed.csv")
    a = p.parse_args(argv)
    for r in a.recipes:
        recipe_path(r)  # an unknown recipe stops here, before any training
    times = {r: [] for r in a.recipes}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeats):
            for r in a.recipes:
                times[r].append(seconds_per_step(r, a.steps, Path(tmp), a.held_out))
                print(f"repeat {rep}: {Path(r).stem} {times[r][-1]:.3f} s/step", flush=True)
    with open(HERE / "results" / a.reference_results, newline="") as f:
        full = next(float(r["train_seconds"]) for r in csv.DictReader(f) if r["held_out"] == "mean")
    ref = float(np.median(times[a.recipes[-1]]))
    ref_steps = max_steps(recipe_path(a.recipes[-1]))
    rows = []
    for r in a.recipes:
        per_step, n = float(np.median(times[r])), max_steps(recipe_path(r))
        rows.append({"recipe": Path(r).stem, "steps": a.steps, "repeats": a.repeats,
                     "seconds_per_step": round(per_step, 4),
                     "ratio_to_reference": round(per_step / ref, 3), "max_steps": n,
                     "projected_full_seconds": round(full * per_step * n / (ref * ref_steps))})
    write_csv_atomic(rows, a.out)
    for row in rows:
        print(row)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
