"""User-facing input errors: one line naming the file, the record or line, and the fix.

The command line catches :class:`InputError` and prints ``seqmamba: <message>`` with exit code
2, never a traceback.
"""

from __future__ import annotations

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
