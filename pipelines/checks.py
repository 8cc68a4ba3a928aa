"""``seqmamba info``, ``selfcheck`` and ``demo``: what this machine can run, whether it runs it
right, and the three jobs on the bundled data."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from .bundled import bundled

# the demo's training steps: the shortest measured ahead of each baseline (pipelines/demo.py)
DEMO_STEPS = {"dna": 400, "splice": 1500, "audio": 1500}

CONFORMANCE = bundled("conformance", "selective_scan_v1.pt")


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
    from .scan_timing import report, time_scans, write_csv

    device = args.device or ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    out = args.out or Path(args.workdir) / f"scan_demo_{device}.csv"
    print(f"\n== scan timing (small size: dim {args.dim}, lengths "
          f"{', '.join(map(str, args.lengths))}; the full benchmark is benchmarks/scan.py) ==",
          flush=True)
    rows = time_scans(args.lengths, dim=args.dim, device=device)
    print("\n".join(report(rows)))
    print(f"wrote {write_csv(rows, out)}")
    return 0
