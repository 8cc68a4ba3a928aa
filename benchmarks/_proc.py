"""Process-level measurement helpers shared by the benchmark scripts (Linux /proc).

Each benchmark measures one configuration per fresh child process, so that the peak resident
set (VmHWM) belongs to that configuration alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def vm_bytes() -> int:
    """Current virtual memory size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM, ...) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    """Reset VmHWM (the peak resident set) to the current resident set (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def available_ram() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 * 2**30


def run_child(script: Path, args: list, timeout: float) -> dict:
    """Run ``python script --child args...``; its last stdout line is a JSON result.

    Returns that dict, or {"status": "out of memory" | "error" | "skipped (...)", "detail"}.
    """
    cmd = [sys.executable, str(script), "--child", *map(str, args)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"skipped (over {timeout:.0f} s)"}
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()
        msg = tail[-1] if tail else f"exit {p.returncode}"
        if p.returncode < 0 or "memory" in msg.lower():
            return {"status": "out of memory", "detail": msg[:200]}
        return {"status": "error", "detail": msg[:200]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def write_csv_atomic(rows: list, path: Path, fields: list) -> None:
    """Rows (dicts) as CSV with columns ``fields``, through seqmamba's one atomic writer."""
    sys.path.insert(0, str(ROOT))
    from seqmamba.atomic import write_csv_atomic as write

    write(rows, path, fields)
