"""The command line: info, threads, self-check, the demo, quiet output (the scan's memory is
measured in tests/scripts/test_scan_memory.py, through benchmarks/scan.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SEQMAMBA_SCAN_BACKEND", None)
    env.pop("TRITON_INTERPRET", None)  # set by conftest for this process, not for users
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600, cwd=ROOT)


def test_cli_info_lists_backends_and_versions():
    p = _cli("info")
    assert p.returncode == 0, p.stderr
    assert "torch" in p.stdout and "triton" in p.stdout
    assert "cpu   cpu        yes  <- automatic choice" in p.stdout
    assert "cpu   reference  yes" in p.stdout


def test_cli_threads_option_and_environment():
    """--threads N (or SEQMAMBA_THREADS) sets torch's threads for any command; a bad value is
    one line and exit code 2."""
    p = _cli("--threads", "1", "info")
    assert p.returncode == 0 and "threads  1 (torch intra-op)" in p.stdout, p.stderr
    os.environ["SEQMAMBA_THREADS"] = "1"
    try:
        p = _cli("--verbose", "info")
    finally:
        del os.environ["SEQMAMBA_THREADS"]
    assert p.returncode == 0 and "threads  1 (torch intra-op)" in p.stdout, p.stderr
    for bad in ("0", "two"):
        p = _cli(f"--threads={bad}", "info")
        assert p.returncode == 2 and p.stderr.strip() == \
            f"seqmamba: --threads takes a positive number of threads or 'auto', got '{bad}'"


def test_idle_cores_from_two_proc_stat_snapshots():
    from pipelines.cores import cpu_times, idle_cores, lowered_threads

    # user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    before = cpu_times("cpu  100 0 50 800 50 0 0 0 40 0\ncpu0 50 0 25 400 25 0 0 0 20 0\n")
    assert before == (850, 1000)
    # 200 jiffies pass on 2 cores: 100 busy (one core's worth), 100 idle or waiting on disk
    after = cpu_times("cpu  180 0 70 880 70 0 0 0 90 0\nintr 5\n")
    assert idle_cores(before, after, 2) == pytest.approx(1.0)
    assert idle_cores(before, before, 2) == 2.0  # no time passed: nothing known to be busy
    with pytest.raises(ValueError):
        cpu_times("intr 5\n")
    assert lowered_threads(2, 1.0) == 1 and lowered_threads(2, 1.6) == 2
    assert lowered_threads(16, 0.1) == 1 and lowered_threads(4, 7.0) == 4
    assert lowered_threads(4, None) == 4  # not Linux: torch's default stands


def test_threads_auto_leaves_a_busy_core_to_its_job():
    """--threads auto: with another process spinning on a core, the command runs with fewer
    threads than torch's default (one per core) and says so in one line."""
    default = int(_cli("info").stdout.split("threads  ")[1].split()[0])
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        p = _cli("--threads", "auto", "info")
    finally:
        spinner.kill()
        spinner.wait()
    assert p.returncode == 0, p.stderr
    chosen = int(p.stdout.split("threads  ")[1].split()[0])
    if default == 1 or (os.cpu_count() or 1) > default:
        # one core, or more cores than torch's threads (hyperthreads): a spare core remains
        assert 1 <= chosen <= default
    else:
        assert 1 <= chosen < default, (chosen, default)
        assert p.stderr.strip().startswith("seqmamba: other processes keep ") and \
            f"running with {chosen} thread" in p.stderr


def test_cli_selfcheck_passes_on_conformance_vectors():
    p = _cli("selfcheck", "--device", "cpu")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "self-check passed" in p.stdout
    assert p.stdout.count("conformance #") == 24  # 8 cases x (reference, torch, cpu)
    assert "FAIL" not in p.stdout


def test_cli_missing_conformance_file_is_a_clear_error():
    p = _cli("selfcheck", "--conformance", "/nonexistent/vectors.pt")
    assert p.returncode == 2
    assert "/nonexistent/vectors.pt does not exist" in p.stderr
    assert "Traceback" not in p.stderr


def test_cli_demo_runs_the_three_jobs_and_ends_with_the_summary(tmp_path):
    out = tmp_path / "demo.csv"
    demo = tmp_path / "demo"
    p = _cli("demo", "--device", "cpu", "--lengths", "256", "--dim", "32", "--out", str(out),
             "--dna-steps", "4", "--splice-steps", "4", "--audio-steps", "2",
             "--workdir", str(demo))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "self-check passed" in p.stdout
    assert "held-out bits per base" in p.stdout
    assert (demo / "splice_predictions.tsv").read_text().count("\n") == 1 + 3186
    assert (demo / "hpylori_bits.tsv").read_text().count("\n") == 1 + 1
    assert (demo / "hpylori_bits.bedgraph").read_text().count("\n") > 1600  # 1 kb bins
    assert (demo / "digit_predictions.csv").read_text().count("\n") == 1 + 500  # one speaker
    # the closing table: one row per task, each naming its plot, read from the reports
    summary = (demo / "summary.txt").read_text()
    assert summary in p.stdout
    splice = json.loads((demo / "splice" / "report.json").read_text())
    assert f"{splice['model']['acc']:.4f}" in summary and f"{splice['baseline']['acc']:.4f}" in summary
    for plot in ("pretrain/loss_curve.png", "splice/confusion.png", "digits/confusion.png"):
        assert plot in summary and (demo / plot).is_file()
    assert "torch vs mamba.py pscan, L=256 fwd" in p.stdout
    rows = out.read_text().splitlines()
    assert rows[0].startswith("device,impl,mode") and len(rows) == 1 + 2 * 4  # 2 modes x 4 impls


def test_training_output_is_ours_unless_verbose(tmp_path):
    """A training command prints our results, not Lightning's accelerator lines, product tips
    or its internal deprecation; --verbose brings them back."""
    args = ["dna", "finetune", "--train", str(ROOT / "data" / "labelled" / "uci_ecoli_promoters.tsv"),
            "--max-steps", "2", "--val-every", "2", "--batch-size", "16", "--warmup-steps", "1",
            "--no-progress"]
    quiet = _cli(*args, "--out", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    text = quiet.stdout + quiet.stderr
    assert "held-out" in text and "baseline" in text
    for noise in ("GPU available", "TPU available", "Tip:", "LeafSpec", "logging interval",
                  "stopped: `max_steps"):
        assert noise not in text, noise
    loud = _cli("--verbose", *args, "--out", str(tmp_path / "loud"))
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert "GPU available" in loud.stdout + loud.stderr
