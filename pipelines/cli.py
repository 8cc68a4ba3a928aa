"""The ``seqmamba`` command line.

    seqmamba info                 versions and the scan backends usable on this machine
    seqmamba selfcheck            every usable scan backend against the float64 reference, and
                                  the model's recurrent/chunked/RC invariants
    seqmamba demo                 the main job on the bundled data: self-check; pretrain on
                                  E. coli, fine-tune a promoter classifier, batch-predict on
                                  FASTA/TSV; fine-tune a spoken-digit classifier and predict
                                  on the bundled clips; a small scan benchmark
    seqmamba dna <command>        pretrain | finetune | predict | generate | species (DNA)
    seqmamba audio <command>      finetune | pretrain | predict | generate (audio)

    seqmamba --verbose ...        also show the libraries' own messages (Lightning's)
    seqmamba --threads N ...      torch threads (default: one per core; SEQMAMBA_THREADS);
                                  fewer than the cores when other jobs keep some busy
    seqmamba --threads auto ...   as many as the cores other jobs leave idle

Exit codes: 0 success, 1 a check failed, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import errno
import os
import platform
import subprocess
import sys
from pathlib import Path

from .bundled import bundled

# the demo's training steps: the shortest measured ahead of each baseline (pipelines/demo.py)
DEMO_STEPS = {"dna": 400, "splice": 1500, "audio": 1500}

CONFORMANCE = bundled("conformance", "selective_scan_v1.pt")
# a script of the source checkout, not package data: an installed wheel's demo skips it
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "scan.py"


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "installed")
    except Exception as e:  # a broken optional install is reported, not fatal
        return f"not available ({type(e).__name__})"


def cmd_info(args) -> int:
    import torch

    import seqmamba_kernels
    import seqmamba
    from seqmamba_kernels.dispatch import ENV_VAR, triton_interpreted

    print(f"seqmamba {seqmamba.__version__}  python {platform.python_version()}  "
          f"{platform.system()} {platform.machine()}")
    for mod in ("torch", "triton", "numpy"):
        print(f"  {mod:<8} {_version(mod)}")
    cuda = torch.cuda.is_available()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if cuda else [])
    print(f"  CUDA     {'yes: ' + torch.cuda.get_device_name(0) if cuda else 'no'}")
    print(f"  threads  {torch.get_num_threads()} (torch intra-op)")
    print(f"  {ENV_VAR}={os.environ.get(ENV_VAR, '(unset)')}  "
          f"TRITON_INTERPRET={'1' if triton_interpreted() else '(unset)'}")
    print("scan backends:")
    for dev in devices:
        auto = seqmamba_kernels.resolve_backend(None, dev, torch.float32) if not os.environ.get(ENV_VAR) \
            else None
        for name, why in seqmamba_kernels.available_backends(dev).items():
            mark = "yes" if why is None else f"no: {why}"
            star = "  <- automatic choice" if name == auto else ""
            print(f"  {dev.type:<5} {name:<10} {mark}{star}")
    return 0


def _print_checks(results) -> bool:
    ok = True
    for r in results:
        flag = "ok" if r.ok else "FAIL"
        ok &= r.ok
        dt = str(r.dtype).replace("torch.", "")
        print(f"  {r.backend:<10} {dt:<9} {r.case:<32} worst {r.worst:<18} "
              f"{r.error:9.2e} (tol {r.tolerance:.0e})  {flag}")
    return ok


def cmd_selfcheck(args) -> int:
    from seqmamba_kernels.selfcheck import self_check

    conf = Path(args.conformance) if args.conformance else CONFORMANCE
    if args.conformance and not conf.exists():
        print(f"seqmamba: conformance file {conf} does not exist; pass the path to "
              f"selective_scan_v1.pt", file=sys.stderr)
        return 2
    print(f"scan self-check against the float64 reference"
          f"{' and ' + str(conf) if conf.exists() else ''}:")
    ok = _print_checks(self_check(args.device, conf if conf.exists() else None, args.backends))
    from seqmamba.selfcheck import model_self_check

    print("model self-check (small random models):")
    for c in model_self_check(args.device or "cpu"):
        ok &= c.ok
        print(f"  {c.name:<44} {c.error:9.2e} (tol {c.tolerance:.0e})  {'ok' if c.ok else 'FAIL'}")
    print("self-check passed" if ok else "self-check FAILED")
    return 0 if ok else 1


def cmd_demo(args) -> int:
    from .demo import run_demo

    rc = cmd_selfcheck(args)
    if rc != 0:
        return rc
    rc = run_demo(Path(args.workdir), args.dna_steps, args.splice_steps, args.audio_steps)
    if rc != 0:
        return rc
    if args.no_bench:
        return 0
    if not BENCHMARK.exists():
        print("the scan benchmark (benchmarks/scan.py) comes with a source checkout, not with "
              "an installed package: skipped")
        return 0
    out = args.out or Path(args.workdir) / f"scan_demo_{args.device or 'cpu'}.csv"  # not the source tree
    cmd = [sys.executable, str(BENCHMARK), "--lengths", *map(str, args.lengths), "--dim",
           str(args.dim), "--repeats", "2", "--out", str(out)]
    if args.device:
        cmd += ["--device", args.device]
    print(f"\n== scan benchmark (small size): {' '.join(cmd[1:])} ==", flush=True)
    return subprocess.call(cmd)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba", description="Mamba models for DNA and audio",
                                epilog="domains: seqmamba dna <command> ..., seqmamba audio <command> ... "
                                       "(see seqmamba dna -h, seqmamba audio -h)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions and the scan backends usable here").set_defaults(
        func=cmd_info)
    for name, func, text in (("selfcheck", cmd_selfcheck, "scan backends vs the reference"),
                             ("demo", cmd_demo, "the three jobs on the bundled data (~10 min on 2 cores)")):
        q = sub.add_parser(name, help=text)
        q.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
        q.add_argument("--backends", nargs="+", default=None, choices=["torch", "cpu", "triton"],
                       help="backends to check (default: those usable here; triton on CPU "
                            "only when named, as its interpreter is slow)")
        q.add_argument("--conformance", default=None,
                       help="conformance vectors (default: the bundled selective_scan_v1.pt)")
        if name == "demo":
            q.add_argument("--no-bench", action="store_true", help="skip the benchmark")
            q.add_argument("--dna-steps", type=int, default=DEMO_STEPS["dna"],
                           help="pretraining steps of the DNA demo (0 skips the DNA part)")
            q.add_argument("--splice-steps", type=int, default=DEMO_STEPS["splice"],
                           help="training steps of the splice classifier (0 skips the DNA part)")
            q.add_argument("--audio-steps", type=int, default=DEMO_STEPS["audio"],
                           help="training steps of the spoken-digit classifier (0 skips it)")
            q.add_argument("--workdir", type=Path, default=Path("runs") / "demo",
                           help="where the demo's runs go (replaced on every demo)")
            q.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192])
            q.add_argument("--dim", type=int, default=256)
            q.add_argument("--out", type=Path, default=None,
                           help="benchmark CSV (default: WORKDIR/scan_demo_<device>.csv)")
        q.set_defaults(func=func)
    return p


def main(argv=None) -> int:
    from .errors import InputError

    from .quiet import quiet_libraries, verbose_requested

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        threads, argv = threads_requested(argv)
    except InputError as e:
        print(f"seqmamba: {e}", file=sys.stderr)
        return 2
    verbose, argv = verbose_requested(argv)
    if not verbose:
        quiet_libraries()
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        if argv and argv[0] in DOMAINS:
            import importlib

            return importlib.import_module(DOMAINS[argv[0]]).main(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except InputError as e:
        print(f"seqmamba: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqmamba: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno not in FULL_DISK:
            raise
        # every output is written to a temporary file and renamed when whole, and prediction
        # tables keep their rows in OUT.partial: what was done is kept, nothing half-written
        print(f"seqmamba: {e.filename or 'an output'}: {e.strerror} (free some space, or write "
              "elsewhere, and rerun: earlier outputs are intact and a prediction resumes from "
              "its .partial)", file=sys.stderr)
        return 2


FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def threads_requested(argv: list) -> tuple:
    """(torch threads or None, argv without a leading ``--threads N|auto``): the option, else
    SEQMAMBA_THREADS; ``auto`` counts the idle cores.  Why: torch's threads wait for each
    other at the end of every op, so on a machine where other jobs keep cores busy, fewer
    threads than cores can be much faster (benchmarks/busy_cores.py)."""
    from .errors import InputError

    value, rest = os.environ.get("SEQMAMBA_THREADS") or None, list(argv)
    where = "SEQMAMBA_THREADS"
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        if rest[i] == "--threads" and i + 1 < len(rest):
            value, where = rest[i + 1], "--threads"
            del rest[i:i + 2]
        elif rest[i].startswith("--threads="):
            value, where = rest[i].split("=", 1)[1], "--threads"
            del rest[i]
        else:
            i += 1
    if value is None:
        return None, rest
    if value == "auto":
        return threads_for_idle_cores(), rest
    try:
        n = int(value)
        if n < 1:
            raise ValueError
    except ValueError:
        raise InputError(f"{where} takes a positive number of threads or 'auto', got "
                         f"{value!r}") from None
    return n, rest


def threads_for_idle_cores() -> int:
    """``--threads auto``: torch's default thread count, lowered to the cores other processes
    leave idle (measured over 0.2 s; pipelines.cores), said in one line when lowered."""
    import torch

    from .cores import free_cores, lowered_threads

    default = torch.get_num_threads()
    cores = os.cpu_count() or default
    free = free_cores(cores)
    n = lowered_threads(default, free)
    if n < default:
        print(f"seqmamba: other processes keep {cores - free:.1f} of {cores} cores busy; "
              f"running with {n} thread{'s' if n > 1 else ''}, not {default}", file=sys.stderr)
    return n


DOMAINS = {"dna": "pipelines.dna.cli", "audio": "pipelines.audio.cli"}


if __name__ == "__main__":
    sys.exit(main())
