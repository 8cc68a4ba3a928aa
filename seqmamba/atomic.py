"""Atomic file output: a reader sees the old file or the complete new one, never half of it.

Every file seqmamba, the pipelines and the benchmarks write goes through
:func:`atomic_output`: the content is written to a temporary name in the target's folder,
flushed to disk (fsync), and renamed over the target; the folder is then synced so that the
rename itself survives a crash.  On any error the temporary file is removed and the target is
left as it was.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_beside(path: PathLike, suffix: str = ".tmp") -> Path:
    """A temporary name in ``path``'s folder, private to this process (pid and a random part);
    the folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}"


# what temp_beside names look like: .NAME.PID.RANDOM8SUFFIX
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}(\.[A-Za-z0-9]+)?$")


def remove_orphans(folder: PathLike) -> int:
    """Delete the temporary files (``temp_beside`` names) in ``folder`` whose writing process
    is gone, as a SIGKILL or a power cut leaves them; files of live processes are kept.
    Returns how many were removed."""
    removed = 0
    for f in Path(folder).glob(".*"):
        m = _TEMP_NAME.match(f.name)
        if m is None or not f.is_file():
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        try:
            f.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def commit(tmp: PathLike, path: PathLike) -> None:
    """Put a finished (closed) file in place: fsync it, rename it over ``path``, fsync the
    folder.  For writers that stream into a temporary file of their own."""
    _fsync_file(Path(tmp))
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)


@contextmanager
def atomic_output(path: PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on leaving the block without an
    error it is fsynced and renamed to ``path``.

    ``suffix`` is the temporary name's ending, for writers that choose the format by it
    (matplotlib: ``.png``; numpy: ``.npz``).  The temporary name is private to this process
    (pid and a random part), and the file gets the usual permissions.
    """
    tmp = temp_beside(path, suffix)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: PathLike) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(obj, path: PathLike) -> None:
    """JSON, indented and key-sorted, numbers that JSON lacks (numpy floats) as floats."""
    write_text_atomic(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n", path)


def write_csv_atomic(rows: list, path: PathLike, fields=None) -> None:
    """Rows (dicts) as CSV.  Columns: ``fields``, where other keys are left out, or else the
    first row's keys, where a row with another key is an error."""
    import csv

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(fields or rows[0]),
                               extrasaction="ignore" if fields else "raise")
            w.writeheader()
            w.writerows(rows)
