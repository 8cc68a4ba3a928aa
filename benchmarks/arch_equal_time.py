"""The Mamba comparisons again at equal training time: each rival (the Transformer++, the CNN)
trains for as many steps as Mamba's training time buys it, instead of Mamba's step count.

    python benchmarks/arch_equal_time.py                              # every comparison
    python benchmarks/arch_equal_time.py --comparisons promoters splice --seeds 0 1

1. **Step cost** (``arch_step_ratio.csv``).  For each comparison both models run a short
   probe through the same product command as in the equal-step tables (``--max-steps``
   PROBE_STEPS, no validation), one after the other, once per round with the round's seed
   (so both see the same batches, and species the same window lengths).  The training report's
   ``step_seconds`` is the mean seconds per step with its batch loading.  A round's ratio is
   Mamba's step over the rival's; a Transformer++ probe is a run of its own, a CNN probe is the
   model's run with ``--baseline cnn``, both timed in one process.
2. **Equal time** (``arch_equal_time.csv``; spoken digits: the four leave-one-speaker-out
   folds of ``experiments/audio_fsdd.py``, whose command this prints).  The rival trains with
   the recipe's steps times the median ratio (``--max-steps``, or ``--baseline-steps`` for
   the CNN), everything else as in the equal-step runs: the same command, size, split,
   schedule and seed.  The CNN run also
   retrains the Mamba model, whose figure is kept as a check on the equal-step one.

Every run has one thread (``--threads 1``), as the equal-step runs had; two runs of this
script can share the 2 cores.  The equal-step figures stay in their own CSVs
(``arch_dna_classify.csv``, ``arch_species.csv``, ``arch_dna_lm.csv``); the tables put the
two side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import arch_dna_classify  # noqa: E402
import arch_dna_lm  # noqa: E402
import arch_species  # noqa: E402
from arch_dna_lm import _merge, _read  # noqa: E402

RESULTS = HERE / "results"
RATIO_CSV, OUT = RESULTS / "arch_step_ratio.csv", RESULTS / "arch_equal_time.csv"
# a probe times training only: no validation, and species scores a token test set
PROBE_ONLY = ["--val-every", "1000000"]
PROBE_SPECIES = ["--test-lengths", "64", "--test-per-class", "2"]


def _recipe(name: str) -> list:
    from pipelines.bundled import shipped_recipe

    return ["--config", str(shipped_recipe(name))]


def _lm(seq_len: int) -> list:
    return ["dna", "pretrain", *_recipe("dna_pretrain_ecoli"), "--seq-len", str(seq_len),
            "--batch-size", str(max(1, arch_dna_lm.STEP_BASES // seq_len))]


def _species() -> list:
    return ["dna", "species", "--test-lengths", *map(str, arch_species.TEST_LENGTHS),
            "--test-per-class", str(arch_species.TEST_PER_CLASS)]


# the Transformer++ of the FSDD comparison (docs/comparison.md): flags for the probe, --set
# items for the experiment's folds
FSDD_TRANSFORMER = {"arch": "transformer", "n_layer": 3, "n_head": 4}


def _flags(settings: dict) -> list:
    from pipelines.options import flag

    return [x for k, v in settings.items() for x in (flag(k), str(v))]


# comparison -> (the command without its model options, Mamba's options, rivals -> their
# options (None: the CNN baseline of Mamba's run), probe steps)
COMPARISONS = {
    "promoters": (lambda: ["dna", "finetune", *_recipe("dna_promoters")], [],
                  {"transformer": arch_dna_classify.ARCHS["transformer"], "cnn": None}, 40),
    "splice": (lambda: ["dna", "finetune", *_recipe("dna_splice")], [],
               {"transformer": arch_dna_classify.ARCHS["transformer"], "cnn": None}, 40),
    "species": (_species, arch_species.ARCHS["mamba"],
                {"transformer": arch_species.ARCHS["transformer"]}, 60),
    "lm1024": (lambda: _lm(1024), arch_dna_lm.ARCHS["mamba"],
               {"transformer": arch_dna_lm.ARCHS["transformer"]}, 40),
    "lm4096": (lambda: _lm(4096), arch_dna_lm.ARCHS["mamba"],
               {"transformer": arch_dna_lm.ARCHS["transformer"]}, 30),
    # probed here, trained as leave-one-speaker-out folds by experiments/audio_fsdd.py
    "fsdd": (lambda: ["audio", "finetune", *_recipe("audio_fsdd"), "--baseline", "none"], [],
             {"transformer": _flags(FSDD_TRANSFORMER)}, 30),
}


def run(args: list, out: Path) -> dict:
    """One product command on one thread -> its report.json."""
    cmd = [sys.executable, "-m", "pipelines.cli", "--threads", "1", *map(str, args),
           "--out", str(out), "--no-progress"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return json.loads((out / "report.json").read_text())


def probe(name: str, rival: str, rounds: int) -> dict:
    """Mamba's step seconds over the rival's, once per round (seed = round)."""
    command, mamba, rivals, steps = COMPARISONS[name]
    ratios = []
    for seed in range(rounds):
        common = [*command(), "--seed", seed, "--max-steps", steps, *PROBE_ONLY,
                  *(PROBE_SPECIES if name == "species" else [])]
        with tempfile.TemporaryDirectory() as tmp:
            if rivals[rival] is None:
                rep = run([*common, *mamba, "--baseline", "cnn"], Path(tmp) / "m")
                ratios.append(rep["step_seconds"] / rep["baseline"]["step_seconds"])
            else:
                m = run([*common, *mamba], Path(tmp) / "m")["step_seconds"]
                r = run([*common, *rivals[rival]], Path(tmp) / "r")["step_seconds"]
                ratios.append(m / r)
        print(f"{name} {rival} round {seed}: Mamba's step / the rival's = {ratios[-1]:.3f}",
              flush=True)
    return {"comparison": name, "rival": rival, "probe_steps": steps, "rounds": rounds,
            "ratio": round(statistics.median(ratios), 4), "ratio_min": round(min(ratios), 4),
            "ratio_max": round(max(ratios), 4)}


def mamba_steps(name: str) -> int:
    """The recipe's step count, as the equal-step runs trained Mamba."""
    if name.startswith("lm"):
        rows = [r for r in _read(RESULTS / "arch_dna_lm.csv")
                if r["arch"] == "mamba" and r["seq_len"] == name[2:]]
    elif name == "fsdd":  # the recipe as audio finetune reads it (its defaults fill the rest)
        from pipelines.audio.finetune import build_parser
        from pipelines.runs import parse_with_recipe

        recipe = parse_with_recipe(build_parser(), ["--config", "audio_fsdd", "--out", "-"])
        return recipe.max_steps
    elif name == "species":
        rows = [r for r in _read(arch_species.OUT) if r["arch"] == "mamba"]
    else:
        rows = [r for r in _read(arch_dna_classify.OUT) if r["arch"] == "mamba"
                and r["task"] == name]
    if not rows:
        raise SystemExit(f"{name}: no Mamba row at equal steps to take its step count from; "
                         f"run its equal-step benchmark first")
    return int(rows[0]["steps"])


def train(name: str, rival: str, seed: int, steps: int) -> list:
    """The rival at ``steps`` -> rows of (metric, value)."""
    command, mamba, rivals, _ = COMPARISONS[name]
    args = [*command(), "--seed", seed]
    args += [*mamba, "--baseline", "cnn", "--baseline-steps", steps] if rivals[rival] is None \
        else [*rivals[rival], "--max-steps", steps]
    with tempfile.TemporaryDirectory() as tmp:
        rep = run(args, Path(tmp) / "run")
    base = {"comparison": name, "rival": rival, "seed": seed, "steps": steps}
    if name.startswith("lm"):
        return [{**base, "metric": "val_bits_per_base", "value": rep["val_bits_per_base"]}]
    if name == "species":
        return [{**base, "metric": f"acc@{r['length']}", "value": r["model_acc"]}
                for r in rep["accuracy_by_length"]]
    if rival == "cnn":
        return [{**base, "metric": "acc", "value": rep["baseline"]["acc"]},
                {**base, "metric": "mamba_acc", "value": rep["model"]["acc"]}]
    return [{**base, "metric": "acc", "value": rep["model"]["acc"]}]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--comparisons", nargs="+", default=list(COMPARISONS),
                   choices=list(COMPARISONS))
    p.add_argument("--rivals", nargs="+", default=["transformer", "cnn"],
                   choices=["transformer", "cnn"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--rounds", type=int, default=3, help="probe rounds (seeds 0..rounds-1)")
    p.add_argument("--reprobe", action="store_true", help="probe again though a ratio is stored")
    a = p.parse_args(argv)
    for name in a.comparisons:
        for rival in [r for r in a.rivals if r in COMPARISONS[name][2]]:
            key = (name, rival)
            stored = [r for r in _read(RATIO_CSV) if (r["comparison"], r["rival"]) == key]
            if a.reprobe or not stored:
                stored = [probe(name, rival, a.rounds)]
                _merge(RATIO_CSV, stored, lambda r: (r["comparison"], r["rival"]))
            steps = max(1, round(mamba_steps(name) * float(stored[0]["ratio"])))
            if name == "fsdd":  # four folds of the recipe: the experiment's own runner
                sets = " ".join(f"{k}={v}" for k, v in FSDD_TRANSFORMER.items())
                print(f"fsdd: {steps} steps at equal time; train them with\n  python "
                      f"experiments/audio_fsdd.py --set {sets} max_steps={steps} "
                      f"--tag transformer_equal_time")
                continue
            for seed in a.seeds:
                rows = train(name, rival, seed, steps)
                print(*rows, sep="\n", flush=True)
                # each run as it comes (a stop loses one); rows of other runs are kept
                _merge(OUT, rows, lambda r: (r["comparison"], r["rival"], str(r["seed"]),
                                             r["metric"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
