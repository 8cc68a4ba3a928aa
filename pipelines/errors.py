"""User-facing input errors: one line naming the file, the record or line, and the fix.

The command line catches :class:`InputError` and prints ``seqmamba: <message>`` with exit code
2, never a traceback.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Optional


class InputError(ValueError):
    """Bad user input (a file, a record, an option).  ``str(e)`` is the one-line message."""

    def __init__(self, message: str, path: Optional[object] = None, record: Optional[str] = None,
                 fix: Optional[str] = None):
        parts = []
        if path is not None:
            parts.append(str(path))
        if record is not None:
            parts.append(f"record {record!r}")
        head = ": ".join(parts)
        text = f"{head}: {message}" if head else message
        if fix:
            text += f" ({fix})"
        super().__init__(text)
        self.path, self.record, self.fix = path, record, fix


def regular_file(path) -> Path:
    """``path`` when it names a regular file; an InputError otherwise.  A FIFO, socket or device
    would block or never end when read, and a folder is not a file."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror})", path=path) from None
    if stat.S_ISDIR(mode):
        raise InputError("is a folder, not a file", path=path)
    if not stat.S_ISREG(mode):
        raise InputError("not a regular file (a FIFO, socket or device)", path=path,
                         fix="save the data to a file first")
    return path
