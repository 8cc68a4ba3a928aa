"""The fused CPU scan (backend="cpu") beside the portable torch backend, in one run.

    python benchmarks/cpu_scan.py                     # every part (about 15 minutes)
    python benchmarks/cpu_scan.py --parts speed       # kernel speed and roofline only
    python benchmarks/cpu_scan.py --parts shared e2e
    python benchmarks/cpu_scan.py --readme            # only rewrite the README's tables from the CSVs

Parts (each writes its own CSV in benchmarks/results/, atomically):

``speed`` -> cpu_scan_speed.csv
    Forward and forward+backward, fp32, state 16, at (batch 1, dim 512, length 16384) and
    (batch 32, dim 128, length 128) (a training shape), on ``--threads`` threads.  The two
    backends alternate call by call and the best of ``--repeats`` is kept, so a change in the
    machine's load hits both.  Beside them, G state-updates/s (batch*dim*length*state / s) and
    the roofline: the same arithmetic per state update (one exp, three FMAs) with every
    operand in registers (``seqmamba_kernels.cpu_scan.roofline_gups``), measured in the same run.

``shared`` -> cpu_scan_shared.csv
    The same forward call (batch 1, dim 512, length 4096) in a loop: alone; as two processes
    at once, each with torch's default threads; and beside two busy-looping non-torch processes
    (a neighbour that takes the whole machine).  Reports per-call time over the time alone; a
    fair share of a 2-core machine is 2x.

``e2e`` -> cpu_scan_e2e.csv
    Seconds per training step of ``pipelines/recipes/audio_digits.yaml`` (the difference of a
    long and a short run over the steps between them, so start-up and the final validation
    cancel), and bases/s of ``seqmamba dna predict`` over the whole H. pylori genome (1.65 Mb)
    with the demo's promoter-classifier architecture: as a user sees it (the command's wall
    time, start-up included), and at the margin (the E. coli genome, 4.64 Mb, minus H. pylori,
    over the difference of their times), with ``SEQMAMBA_SCAN_BACKEND`` = torch, then cpu.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _proc import ROOT, write_csv_atomic

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SHAPES = [(1, 512, 16384), (32, 128, 128)]
STATE = 16


def _inputs(batch, dim, length, grad, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, shift=0.0):
        return (torch.randn(*shape, generator=g) + shift).requires_grad_(grad)

    A = (-torch.arange(1, STATE + 1, dtype=torch.float32).repeat(dim, 1)).requires_grad_(grad)
    return dict(u=rnd(batch, dim, length), delta=rnd(batch, dim, length, shift=-2.0), A=A,
                B=rnd(batch, STATE, length), C=rnd(batch, STATE, length), D=rnd(dim),
                z=rnd(batch, dim, length))


def _call(x, backend, grad):
    import torch

    from seqmamba_kernels import selective_scan

    with torch.set_grad_enabled(grad):
        out = selective_scan(**x, delta_softplus=True, backend=backend)
        if grad:
            out.backward(torch.ones_like(out))
            for v in x.values():
                v.grad = None


def part_speed(a) -> list:
    import torch

    from seqmamba_kernels.cpu_scan import roofline_gups

    torch.set_num_threads(a.threads)
    rows = []
    roof = roofline_gups(seconds=2.0, threads=a.threads)
    print(f"roofline (registers only, {a.threads} threads): {roof:.2f} G state-updates/s")
    for batch, dim, length in SHAPES:
        for mode in ("fwd", "fwd+bwd"):
            grad = mode == "fwd+bwd"
            x = _inputs(batch, dim, length, grad)
            times = {"cpu": [], "torch": []}
            for b in times:  # warm-up (builds the kernel, touches the memory)
                _call(x, b, grad)
            for _ in range(a.repeats):
                for b in times:
                    t0 = time.perf_counter()
                    _call(x, b, grad)
                    times[b].append(time.perf_counter() - t0)
            updates = batch * dim * length * STATE
            best = {b: min(t) for b, t in times.items()}
            row = dict(batch=batch, dim=dim, length=length, state=STATE, mode=mode,
                       threads=a.threads, cpu_s=best["cpu"], torch_s=best["torch"],
                       speedup=best["torch"] / best["cpu"],
                       cpu_gups=updates / best["cpu"] / 1e9,
                       torch_gups=updates / best["torch"] / 1e9, roofline_gups=roof)
            row["cpu_fraction_of_roofline"] = row["cpu_gups"] / roof
            if not grad:  # the recurrence alone: no softplus, no z gate (where the rest goes)
                core = {k: v for k, v in x.items() if k != "z"}
                core["delta"] = torch.nn.functional.softplus(core["delta"])
                from seqmamba_kernels import selective_scan

                selective_scan(**core, backend="cpu")
                ts = []
                for _ in range(a.repeats):
                    t0 = time.perf_counter()
                    selective_scan(**core, backend="cpu")
                    ts.append(time.perf_counter() - t0)
                row["cpu_core_gups"] = updates / min(ts) / 1e9
                row["cpu_core_fraction_of_roofline"] = row["cpu_core_gups"] / roof
            rows.append(row)
            print(f"  b={batch} dim={dim} L={length} {mode:>7}: cpu {best['cpu'] * 1e3:8.1f} ms "
                  f"({row['cpu_gups']:.2f} G/s, {100 * row['cpu_fraction_of_roofline']:.0f}% of "
                  f"roofline)  torch {best['torch'] * 1e3:8.1f} ms ({row['torch_gups']:.2f} G/s)"
                  f"  {row['speedup']:.1f}x", flush=True)
    return rows


# ----------------------------------------------------------------------------- shared machine

_LOOP = """
import json, sys, time, torch
sys.path.insert(0, {root!r})
from seqmamba_kernels import selective_scan
g = torch.Generator().manual_seed(0)
x = dict(u=torch.randn(1, 512, 4096, generator=g), delta=torch.randn(1, 512, 4096, generator=g) - 2,
         A=-torch.arange(1, 17.).repeat(512, 1), B=torch.randn(1, 16, 4096, generator=g),
         C=torch.randn(1, 16, 4096, generator=g), D=torch.randn(512), z=torch.randn(1, 512, 4096, generator=g))
with torch.no_grad():
    selective_scan(**x, delta_softplus=True, backend={backend!r})
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    ts, t_end = [], time.perf_counter() + {seconds}
    while len(ts) < 3 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        selective_scan(**x, delta_softplus=True, backend={backend!r})
        ts.append(time.perf_counter() - t0)
print(json.dumps(ts))
"""

_SPIN = "import sys\nsys.stdin.readline()\nwhile True: pass\n"


def _start(code: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    return p


def _loop_together(backend: str, copies: int, spinners: int, seconds: float) -> list:
    """Per-call times (median of each process) of ``copies`` scan loops run at once."""
    procs = [_start(_LOOP.format(root=str(ROOT), backend=backend, seconds=seconds))
             for _ in range(copies)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    spin = [_start(_SPIN) for _ in range(spinners)]
    for p in spin + procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    medians = [statistics.median(json.loads(p.communicate()[0].strip().splitlines()[-1]))
               for p in procs]
    for p in spin:
        p.kill()
        p.wait()
    return medians


def part_shared(a) -> list:
    """Each case ``--shared-rounds`` times, the rounds interleaved; the median ratio is kept
    (one round's figures move by +-20% with the scheduler's placement of threads)."""
    rows = []
    cases = ("alone", "two processes", "beside 2 busy non-torch processes")
    got = {(b, c): [] for b in ("cpu", "torch") for c in cases}
    for _ in range(a.shared_rounds):
        for backend in ("cpu", "torch"):
            alone = _loop_together(backend, 1, 0, a.shared_seconds)[0]
            two = max(_loop_together(backend, 2, 0, a.shared_seconds))
            busy = _loop_together(backend, 1, 2, a.shared_seconds)[0]
            for case, t in zip(cases, (alone, two, busy)):
                got[(backend, case)].append((t, t / alone))
    for (backend, case), runs in got.items():
        t = statistics.median(r[0] for r in runs)
        ratio = statistics.median(r[1] for r in runs)
        rows.append(dict(backend=backend, case=case, batch=1, dim=512, length=4096,
                         per_call_s=t, ratio_to_alone=ratio, rounds=len(runs),
                         ratios=" ".join(f"{r[1]:.2f}" for r in runs)))
        print(f"  {backend:>5} {case:<36} {t * 1e3:9.1f} ms per call  {ratio:5.2f}x alone "
              f"(rounds: {rows[-1]['ratios']})", flush=True)
    return rows


# ------------------------------------------------------------------------------- end to end

def _seqmamba(args: list, backend: str, timeout: float = 3600) -> float:
    env = dict(os.environ, SEQMAMBA_SCAN_BACKEND=backend, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    cli = "import sys; from pipelines.cli import main; sys.exit(main())"
    p = subprocess.run([sys.executable, "-c", cli, *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"seqmamba {' '.join(args[:2])} failed: {p.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def part_e2e(a) -> list:
    rows = []
    recipe = ROOT / "pipelines" / "recipes" / "audio_digits.yaml"
    genome = ROOT / "data" / "genomes" / "Hpylori_G27_NC_011333.1.fa.gz"
    larger = ROOT / "data" / "genomes" / "Ecoli_K12_MG1655.fa.gz"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # The demo's DNA model: pretrain (d_model 64, 2 layers) then a promoter classifier.
        # Its weights do not change the speed; a few steps make a valid run directory.
        _seqmamba(["dna", "pretrain", "--manifest", str(ROOT / "data_manifests" / "genomes.yaml"),
                   "--split", "ecoli-90-10", "--out", str(tmp / "pre"), "--seq-len", "512",
                   "--batch-size", "8", "--d-model", "64", "--n-layer", "2", "--max-steps", "2",
                   "--val-every", "2", "--val-windows", "4", "--warmup-steps", "1",
                   "--markov-orders", "0", "--no-progress"], "cpu")
        _seqmamba(["dna", "finetune", "--train",
                   str(ROOT / "data" / "labelled" / "uci_ecoli_promoters.tsv"), "--out",
                   str(tmp / "prom"), "--init", str(tmp / "pre"), "--max-steps", "2",
                   "--val-every", "2", "--batch-size", "16", "--warmup-steps", "1",
                   "--no-progress"], "cpu")
        import gzip

        def length(path):
            with gzip.open(path, "rt") as f:
                return sum(len(line.strip()) for line in f if not line.startswith(">"))

        bases, bases_large = length(genome), length(larger)
        steps = {}
        for backend in ("torch", "cpu"):
            # A first short run builds the kernel (if its source changed) and warms the caches;
            # it is not counted.
            _seqmamba(["audio", "finetune", "--config", str(recipe), "--out",
                       str(tmp / f"warm_{backend}"), "--max-steps", "2", "--val-every", "2",
                       "--no-progress"], backend)
            secs = {}
            for n in (a.e2e_steps_short, a.e2e_steps_long):
                out = tmp / f"audio_{backend}_{n}"
                _seqmamba(["audio", "finetune", "--config", str(recipe), "--out", str(out),
                           "--max-steps", str(n), "--val-every", str(n), "--no-progress"], backend)
                secs[n] = json.loads((out / "report.json").read_text())["train_seconds"]
            per_step = (secs[a.e2e_steps_long] - secs[a.e2e_steps_short]) / (
                a.e2e_steps_long - a.e2e_steps_short)
            steps[backend] = per_step
            print(f"  {backend:>5} audio_digits training: {per_step:.3f} s per step", flush=True)
            t, t_large = (_seqmamba(["dna", "predict", "--model", str(tmp / "prom"), str(g),
                                     "--out", str(tmp / f"pred_{backend}_{i}.tsv"), "--restart",
                                     "--no-progress"], backend)
                          for i, g in enumerate((genome, larger)))
            marginal = (bases_large - bases) / (t_large - t)
            rows.append(dict(backend=backend, audio_digits_s_per_step=per_step,
                             dna_predict_bases=bases, dna_predict_s=t,
                             dna_predict_bases_per_s=bases / t,
                             dna_predict_marginal_bases_per_s=marginal))
            print(f"  {backend:>5} dna predict H. pylori ({bases} bases): {t:.1f} s, "
                  f"{bases / t:,.0f} bases/s; E. coli ({bases_large}) {t_large:.1f} s; "
                  f"at the margin {marginal:,.0f} bases/s", flush=True)
    base = rows[0]
    for r in rows:
        r["training_speedup"] = base["audio_digits_s_per_step"] / r["audio_digits_s_per_step"]
        r["predict_speedup"] = r["dna_predict_bases_per_s"] / base["dna_predict_bases_per_s"]
        r["predict_marginal_speedup"] = (r["dna_predict_marginal_bases_per_s"]
                                         / base["dna_predict_marginal_bases_per_s"])
    return rows


PARTS = {
    "speed": (part_speed, ["batch", "dim", "length", "state", "mode", "threads", "cpu_s",
                           "torch_s", "speedup", "cpu_gups", "torch_gups", "roofline_gups",
                           "cpu_fraction_of_roofline", "cpu_core_gups",
                           "cpu_core_fraction_of_roofline"]),
    "shared": (part_shared, ["backend", "case", "batch", "dim", "length", "per_call_s",
                             "ratio_to_alone", "rounds", "ratios"]),
    "e2e": (part_e2e, ["backend", "audio_digits_s_per_step", "training_speedup",
                       "dna_predict_bases", "dna_predict_s", "dna_predict_bases_per_s",
                       "predict_speedup", "dna_predict_marginal_bases_per_s",
                       "predict_marginal_speedup"]),
}


def _read(name: str) -> list:
    import csv

    path = RESULTS / name
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def readme_tables() -> str:
    """Markdown for the README, from the CSVs in benchmarks/results/ (never typed by hand)."""
    out = []
    speed = _read("cpu_scan_speed.csv")
    if speed:
        r0 = speed[0]
        out += [f"Kernel speed, fp32, state 16, {r0['threads']} threads (`cpu_scan_speed.csv`; "
                f"roofline = the same arithmetic with every operand in registers, "
                f"{float(r0['roofline_gups']):.1f} G state-updates/s in the same run):", "",
                "| batch x dim x length | pass | cpu | torch | cpu vs torch | cpu G updates/s "
                "| share of roofline | recurrence alone (no softplus, no gate) |",
                "|---|---|---|---|---|---|---|---|"]
        for r in speed:
            core = (f"{float(r['cpu_core_gups']):.2f} G/s, "
                    f"{100 * float(r['cpu_core_fraction_of_roofline']):.0f}%"
                    if r.get("cpu_core_gups") else "-")
            out.append(f"| {r['batch']} x {r['dim']} x {r['length']} | {r['mode']} | "
                       f"{1e3 * float(r['cpu_s']):.1f} ms | {1e3 * float(r['torch_s']):.1f} ms | "
                       f"**{float(r['speedup']):.1f}x** | {float(r['cpu_gups']):.2f} | "
                       f"{100 * float(r['cpu_fraction_of_roofline']):.0f}% | {core} |")
        out.append("")
    shared = _read("cpu_scan_shared.csv")
    if shared:
        out += ["Shared machine: per-call time of one forward (1 x 512 x 4096) over its time alone, "
                "median of 3 rounds (`cpu_scan_shared.csv`; a fair share of 2 cores is 2x):", "",
                "| backend | alone | two processes at once | beside 2 busy non-torch processes |",
                "|---|---|---|---|"]
        for b in ("cpu", "torch"):
            rows = {r["case"]: r for r in shared if r["backend"] == b}
            if len(rows) == 3:
                alone = float(rows["alone"]["per_call_s"])

                def cell(case):
                    r = rows[case]
                    rounds = r.get("ratios") or ""
                    return (f"{float(r['ratio_to_alone']):.2f}x"
                            + (f" (rounds: {rounds.replace(' ', ', ')})" if rounds else ""))

                out.append(f"| {b} | {1e3 * alone:.1f} ms | {cell('two processes')} | "
                           f"{cell('beside 2 busy non-torch processes')} |")
        out.append("")
    e2e = _read("cpu_scan_e2e.csv")
    if len(e2e) == 2:
        t, c = (next(r for r in e2e if r["backend"] == b) for b in ("torch", "cpu"))
        out += ["End to end, `SEQMAMBA_SCAN_BACKEND=torch` then `cpu` (`cpu_scan_e2e.csv`):", "",
                "| job | torch | cpu | speed-up |", "|---|---|---|---|",
                f"| training step of `audio_digits.yaml` | "
                f"{float(t['audio_digits_s_per_step']):.3f} s | "
                f"{float(c['audio_digits_s_per_step']):.3f} s | "
                f"**{float(c['training_speedup']):.1f}x** |",
                f"| `dna predict`, whole H. pylori genome ({int(c['dna_predict_bases']):,} bases), "
                f"wall time with start-up | "
                f"{float(t['dna_predict_bases_per_s']):,.0f} bases/s | "
                f"{float(c['dna_predict_bases_per_s']):,.0f} bases/s | "
                f"**{float(c['predict_speedup']):.1f}x** |"]
        if c.get("dna_predict_marginal_bases_per_s"):
            out.append(f"| `dna predict` at the margin (E. coli minus H. pylori) | "
                       f"{float(t['dna_predict_marginal_bases_per_s']):,.0f} bases/s | "
                       f"{float(c['dna_predict_marginal_bases_per_s']):,.0f} bases/s | "
                       f"**{float(c['predict_marginal_speedup']):.1f}x** |")
        out.append("")
    return "\n".join(out)


def update_readme() -> None:
    """Rebuild the README's cpu_scan block from the CSVs (benchmarks/readme_tables.py)."""
    from readme_tables import main as readme_tables_main

    readme_tables_main(["--only", "cpu_scan tables"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--shared-seconds", type=float, default=5.0,
                   help="how long each process of the shared-machine part loops")
    p.add_argument("--shared-rounds", type=int, default=3)
    p.add_argument("--e2e-steps-short", type=int, default=20)
    p.add_argument("--e2e-steps-long", type=int, default=80)
    p.add_argument("--readme", action="store_true",
                   help="only regenerate the README's tables from the CSVs")
    a = p.parse_args(argv)
    if a.readme:
        update_readme()
        return 0
    sys.path.insert(0, str(ROOT))
    for part in a.parts:
        fn, fields = PARTS[part]
        print(f"== {part} ==", flush=True)
        rows = fn(a)
        out = RESULTS / f"cpu_scan_{part}.csv"
        write_csv_atomic(rows, out, fields)
        print(f"wrote {out}")
    update_readme()
    return 0


if __name__ == "__main__":
    sys.exit(main())
