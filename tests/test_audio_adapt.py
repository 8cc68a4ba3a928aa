"""The new-voice path of `seqmamba audio`: the check `audio predict` runs on a batch
(pipelines/audio/voice_check.py) and `audio adapt` (pipelines/audio/adapt.py).

The commands run in this process (``pipelines.cli.main``) on a tiny classifier of low against
high tones, which learns its task in a few seconds; a batch of tones between the two bands is
what an unheard voice is to a digit classifier: the model is less sure of every clip.
"""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipelines.audio import run_options, voice_check
from pipelines.cli import main

BANDS = {"low": (200, 400), "high": (1500, 3000)}
SR = 16000


def tone(f, rng, seconds=0.5):
    t = np.arange(int(seconds * SR)) / SR
    x = rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return (x + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def write_tones(folder: Path, freqs, rng) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(freqs):
        sf.write(str(folder / f"{i:03d}.wav"), tone(f, rng), SR)
    return folder


def in_bands(n, rng):
    """n tone frequencies, half from each class's band."""
    return [rng.uniform(*BANDS["low" if i % 2 else "high"]) for i in range(n)]


def between_bands(n, rng):
    """n tone frequencies between the two classes' bands: neither class, as a new voice is."""
    return list(rng.uniform(600, 1000, n))


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def cli(capsys):
    def run(*args):
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err
    return run


@pytest.fixture(scope="module")
def tones_run(tmp_path_factory):
    """`audio finetune` on 40 low and 40 high tones (a stratified quarter held out)."""
    tmp = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    for label, (lo, hi) in BANDS.items():
        write_tones(tmp / "tones" / label, rng.uniform(lo, hi, 40), rng)
    run = tmp / "run"
    rc = main([str(x) for x in (
        "audio", "finetune", "--train", tmp / "tones", "--out", run, "--seconds", 0.5,
        "--max-steps", 60, "--val-every", 60, "--d-model", 16, "--n-layer", 1, "--d-state", 4,
        "--batch-size", 8, "--warmup-steps", 4, "--lr", 5e-3, "--no-progress", "--baseline",
        "none")])
    assert rc == 0
    return run


def predict_note(cli, run, folder, out, *extra):
    """`audio predict` on a folder -> (the table's rows, the stderr lines of the check)."""
    rc, _, err = cli("audio", "predict", "--model", run, folder, "--out", out, "--no-progress",
                     *extra)
    assert rc == 0, err
    return rows(out), [line for line in err.splitlines() if "look like a voice" in line]


def expected_to_fire(table, ref) -> bool:
    """The check's definition applied to the table: at least MIN_FILES files, and a mean top
    probability SHORTFALL below the reference or predicted labels whose counts a chi-square
    test rejects (p < ALPHA) under the training prior."""
    from scipy.stats import chisquare

    top = [max(float(r["p_low"]), float(r["p_high"])) for r in table]
    labels = sorted(ref["prior"])
    counts = [sum(r["label"] == c for r in table) for c in labels]
    p = chisquare(counts, [len(table) * ref["prior"][c] for c in labels]).pvalue
    return len(top) >= voice_check.MIN_FILES and (
        ref["mean_top_probability"] - float(np.mean(top)) >= voice_check.SHORTFALL
        or p < voice_check.ALPHA)


def test_finetune_stores_the_checks_reference_and_its_own_options(tones_run):
    """report.json holds the held-out clips' mean top probability (the mean over the held-out
    clips of the largest class probability), the training prior, and the options adapt reads."""
    rep = json.loads((tones_run / "report.json").read_text())
    ref = rep[voice_check.FIELD]
    assert ref["held_out_clips"] == rep["split"]["val_clips"] == 20
    assert ref["prior"] == {"high": 0.5, "low": 0.5}
    assert 0.5 <= ref["mean_top_probability"] <= 1.0
    opts = run_options.stored(tones_run)
    assert opts["train"] == [str((tones_run.parent / "tones").resolve())]
    assert opts["max_steps"] == 60 and opts["seconds"] == 0.5 and "out" not in opts


def test_predict_names_the_new_voice_path_on_a_shifted_batch_only(tmp_path, tones_run, cli):
    """The note is printed exactly when the definition says so (at least MIN_FILES files, mean
    top probability SHORTFALL below the reference): on tones between the bands, not on tones of
    the trained bands, not on a batch too small to judge, and not for a run without the
    reference (an older run: no crash either)."""
    rng = np.random.default_rng(1)
    n = voice_check.MIN_FILES + 10
    ref = voice_check.stored_reference(tones_run / "final")
    same = write_tones(tmp_path / "same", in_bands(n, rng), rng)
    shifted = write_tones(tmp_path / "shifted", between_bands(n, rng), rng)
    table, notes = predict_note(cli, tones_run, same, tmp_path / "same.csv")
    assert not expected_to_fire(table, ref) and notes == []
    table, notes = predict_note(cli, tones_run, shifted, tmp_path / "shifted.csv")
    assert expected_to_fire(table, ref) and len(notes) == 1
    assert notes[0].startswith("seqmamba: ") and "--balance --balance-by folder" in notes[0]
    assert f"seqmamba audio adapt --model {tones_run} {shifted} --out" in notes[0]
    # with --balance already given, the note names adaptation alone
    _, notes = predict_note(cli, tones_run, shifted, tmp_path / "b.csv", "--balance")
    assert len(notes) == 1 and "--balance-by" not in notes[0] and "audio adapt" in notes[0]
    # too few files to judge: the same shifted tones, fewer than MIN_FILES
    few = tmp_path / "few"
    few.mkdir()
    for f in sorted(shifted.glob("*.wav"))[:voice_check.MIN_FILES - 1]:
        shutil.copy(f, few / f.name)
    table, notes = predict_note(cli, tones_run, few, tmp_path / "few.csv")
    assert not expected_to_fire(table, ref) and notes == []
    # a run trained before the reference was stored: predicted as before, no note
    old = tmp_path / "old_run"
    shutil.copytree(tones_run / "final", old / "final")
    rep = json.loads((tones_run / "report.json").read_text())
    rep.pop(voice_check.FIELD)
    (old / "report.json").write_text(json.dumps(rep))
    table, notes = predict_note(cli, old, shifted, tmp_path / "old.csv")
    assert len(table) == n and notes == []


def test_adapt_runs_finetune_with_the_new_voice_settings_and_resumes(tmp_path, tones_run, cli):
    """`audio adapt` is `audio finetune --init RUN --teacher RUN --unlabelled INPUTS
    --pseudo-balance` (per folder for several folders) with the run's own recorded options and
    500 steps at lr 0.001 by default; --resume continues it on the pseudo-labels it wrote."""
    rng = np.random.default_rng(2)
    a = write_tones(tmp_path / "voices" / "a", between_bands(30, rng), rng)
    b = write_tones(tmp_path / "voices" / "b", in_bands(30, rng), rng)
    out = tmp_path / "adapted"
    rc, stdout, err = cli("audio", "adapt", "--model", tones_run, a, b, "--out", out,
                          "--max-steps", 2, "--no-progress")
    assert rc == 0, err
    assert "--pseudo-balance --pseudo-balance-by folder" in stdout
    rep = json.loads((out / "report.json").read_text())
    assert rep["steps"] == 2 and rep["init"] == str((tones_run / "final"))
    info = rep["pseudo_labels"]
    assert (info["clips"], info["balance"], info["balance_by"]) == (60, 1.0, "folder")
    assert info["teachers"] == [str(tones_run / "final")]
    # trained with the init run's recipe: same clips, split and augmentation; adapt's own steps
    mine, init = run_options.stored(out), run_options.stored(tones_run)
    differ = {k for k in set(mine) | set(init) if mine.get(k) != init.get(k)}
    assert differ == {"max_steps", "lr", "warmup_steps"}
    assert (mine["max_steps"], mine["lr"], mine["warmup_steps"]) == (2, 1e-3, 50)
    table = rows(out / "pseudo_labels.csv")
    assert len(table) == 60 and 0 < sum(int(r["kept"]) for r in table) < 60
    # a crash after step 2: --resume trains on to 4 from the same pseudo-labels (the table as
    # written, not a fresh labelling: marking every clip kept shows which one it read)
    with open(out / "pseudo_labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows([dict(r, kept=1) for r in table])
    rc, _, err = cli("audio", "adapt", "--model", tones_run, a, b, "--out", out, "--max-steps", 4,
                     "--resume", "--no-progress")
    assert rc == 0, err
    rep = json.loads((out / "report.json").read_text())
    assert rep["steps"] == 4 and rep["resumed_from_step"] == 2
    assert rep["pseudo_labels"]["kept"] == 60


def test_adapt_refuses_in_one_line_and_leaves_no_run(tmp_path, tones_run, cli):
    """Too few clips to balance (per voice folder), a model that is not an audio classifier, a
    run that recorded no options (unless --config names its recipe), a finished run as --out."""
    from pipelines.audio.adapt import MIN_PER_CLASS

    rng = np.random.default_rng(3)
    need = MIN_PER_CLASS * 2  # two classes
    small = write_tones(tmp_path / "small", in_bands(need - 1, rng), rng)
    enough = write_tones(tmp_path / "enough", in_bands(need, rng), rng)
    few_in_one = write_tones(tmp_path / "v" / "few", in_bands(need - 1, rng), rng)
    plenty = write_tones(tmp_path / "v" / "plenty", in_bands(3 * need, rng), rng)
    old = tmp_path / "old_run"
    shutil.copytree(tones_run / "final", old / "final")
    lm = tmp_path / "lm"
    rc = main([str(x) for x in ("audio", "pretrain", "--train", tmp_path / "v", "--out", lm,
                                "--seq-len", 64, "--max-steps", 1, "--val-every", 1,
                                "--val-windows", 2, "--d-model", 8, "--n-layer", 1,
                                "--batch-size", 2, "--no-progress")])
    assert rc == 0
    finished = tmp_path / "finished"
    shutil.copytree(tones_run, finished)
    out = tmp_path / "out"
    for model, inputs, extra, needle in (
            (tones_run, [small], [], f"number {need - 1} clips"),
            (tones_run, [few_in_one, plenty], [], f"{few_in_one} holds {need - 1} clips"),
            (lm, [enough], [], "needs an audio classifier"),
            (old, [enough], [], "records no training options"),
            (tones_run, [tmp_path / "nothing"], [], "no such file"),
            (tones_run, [enough], ["--out", finished], "already holds a run")):
        args = extra or ["--out", out]
        rc, _, err = cli("audio", "adapt", "--model", model, *inputs, *args, "--no-progress")
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("seqmamba: "), err
        assert needle in lines[0] and "Traceback" not in err, (needle, lines[0])
        assert not out.exists()
    # an old run is adapted once its recipe is named
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"train: {tones_run.parent / 'tones'}\nseconds: 0.5\nbatch_size: 8\n")
    rc, _, err = cli("audio", "adapt", "--model", old, enough, "--out", out, "--config", recipe,
                     "--max-steps", 1, "--no-progress")
    assert rc == 0, err
    assert json.loads((out / "report.json").read_text())["pseudo_labels"]["balance_by"] == "all"
