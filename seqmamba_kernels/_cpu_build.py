"""Build, cache and load the fused CPU scan kernel (``csrc/selective_scan_cpu.c``).

Why a plain C library through ctypes (measured in ``benchmarks/cpu_build_options.py``):
it compiles in about a second with any C compiler, needs no torch headers, no ninja and no
extra package, and its loops are exactly the ones written.  The alternatives were measured
side by side: numba needs a package of its own and seconds of JIT per process, and
``torch.compile`` takes minutes to compile a time loop and still issues one kernel per step.

The library is built on first use, for this machine (``-march=native``), into a per-user
cache folder, and reused by every later process.  The file name carries a digest of the
source, the compiler's identity, the flags and the CPU's instruction-set flags, so a changed
source, compiler or machine (a home folder shared by different nodes) gets a build of its own.
A build writes a temporary file in the cache folder and renames it into place, so a second
process never loads a half-written library.

Environment:
  ``SEQMAMBA_KERNEL_CACHE``  the cache folder (default ``$XDG_CACHE_HOME/seqmamba/kernels``,
                             else ``~/.cache/seqmamba/kernels``).
  ``CC``                     the C compiler (default: the first of gcc, cc, clang on PATH).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Optional

SOURCE = Path(__file__).resolve().parent / "csrc" / "selective_scan_cpu.c"
ABI_VERSION = 3  # must match ABI_VERSION in the C source
_FLAGS = ["-O3", "-fPIC", "-shared", "-pthread", "-std=gnu11", "-Wno-psabi"]
_lock = threading.Lock()
_state: dict = {}  # "lib" -> CDLL, or "reason" -> why the kernel is unavailable


def cache_dir() -> Path:
    env = os.environ.get("SEQMAMBA_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seqmamba" / "kernels"


def find_compiler() -> Optional[str]:
    """$CC if set (only that one), else the first of gcc, cc, clang on PATH."""
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc.split()[0])
    for name in ("gcc", "cc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cpu_flags() -> str:
    """The CPU's instruction-set flags (what -march=native depends on)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _compiler_id(cc: str) -> str:
    try:
        r = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return r.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return cc


def _compile(cc: str, out: Path, native: bool, openmp: bool) -> Optional[str]:
    """Compile to a temporary file beside ``out`` and rename it into place; None or an error."""
    flags = _FLAGS + (["-march=native"] if native else []) + (["-fopenmp"] if openmp else [])
    fd, tmp = tempfile.mkstemp(prefix=out.stem + ".", suffix=".tmp.so", dir=out.parent)
    os.close(fd)
    try:
        r = subprocess.run([cc, *flags, str(SOURCE), "-o", tmp], capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            lines = [ln for ln in r.stderr.splitlines() if "error" in ln] or r.stderr.splitlines()
            return f"{Path(cc).name} failed: {(lines or ['no message'])[0].strip()}"
        os.replace(tmp, out)
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return f"running {cc} failed: {e}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _writable_folder() -> Optional[Path]:
    """The cache folder, or a per-user temporary one when it cannot be written (a read-only
    home), or None."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    temp = Path(tempfile.gettempdir()) / f"seqmamba-kernels-{uid}"
    for folder in (cache_dir(), temp):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if folder == temp:  # a shared folder: load code only from a private subfolder
                st = folder.stat()
                if st.st_uid != uid or st.st_mode & 0o022:
                    continue
            if os.access(folder, os.W_OK | os.X_OK):
                return folder
        except OSError:
            continue
    return None


def _load(path: Path):
    lib = ctypes.CDLL(str(path))
    lib.seqmamba_cpu_abi.restype = ctypes.c_int64
    return lib


def _build() -> tuple[Optional[ctypes.CDLL], Optional[str]]:
    if not SOURCE.exists():
        return None, f"the kernel source {SOURCE} is missing from the installation"
    cc = find_compiler()
    if cc is None:
        why = (f"$CC={os.environ['CC']!r} was not found" if os.environ.get("CC")
               else "no C compiler (gcc, cc or clang) was found on PATH")
        return None, f"{why}; install one (e.g. apt-get install gcc) to build the fused CPU kernel"
    folder = _writable_folder()
    if folder is None:
        return None, (f"neither the kernel cache folder {cache_dir()} nor the temporary folder "
                      "is writable; set SEQMAMBA_KERNEL_CACHE to a writable folder")
    errors = []
    identity = (SOURCE.read_text(), _compiler_id(cc), " ".join(_FLAGS), platform.machine(),
                _cpu_flags())
    # Preferred first: tuned for this CPU and on the process's OpenMP runtime (torch's); a
    # compiler without -march=native or without OpenMP still gets a build.
    for native, openmp in ((True, True), (True, False), (False, True), (False, False)):
        key = hashlib.sha256(b"\0".join(x.encode() for x in (
            *identity, str(native), str(openmp)))).hexdigest()[:20]
        path = folder / f"selective_scan_cpu-{key}.so"
        for attempt in range(2):  # a cached file that does not load is rebuilt once
            if not path.exists():
                err = _compile(cc, path, native, openmp)
                if err:
                    errors.append(err)
                    break
            try:
                lib = _load(path)
            except OSError as e:
                errors.append(f"loading {path.name} failed: {e}")
                path.unlink(missing_ok=True)
                continue
            return lib, None
    return None, "the fused CPU kernel could not be built: " + "; ".join(errors)


def get_library() -> tuple[Optional[ctypes.CDLL], Optional[str]]:
    """(library, None) once built and loaded in this process, or (None, why not)."""
    with _lock:
        if not _state:
            lib, reason = _build()
            if lib is not None:
                _state["lib"] = lib
            else:
                _state["reason"] = reason
        return _state.get("lib"), _state.get("reason")
