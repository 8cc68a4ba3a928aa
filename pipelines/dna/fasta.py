"""FASTA access through pyfaidx: plain or bgzip-compressed, multi-record, random access.

Before pyfaidx sees a file it is sniffed, so that the common mistakes give a one-line error
naming the file (and record) and the fix instead of a traceback from deep inside an indexer:
no ``>`` header, a binary file, plain gzip (which cannot be indexed), CRLF line ends, empty
records, duplicate record names.

The ``.fai`` (and for bgzip ``.gzi``) index is built beside the FASTA, or, when that directory
is read-only, in a cache directory (``$SEQMAMBA_CACHE`` or ``~/.cache/seqmamba``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from seqmamba.atomic import write_text_atomic

from ..errors import InputError, regular_file

SNIFF_BYTES = 1 << 16


@dataclass(frozen=True)
class Record:
    name: str
    length: int


def cache_dir() -> Path:
    return Path(os.environ.get("SEQMAMBA_CACHE", Path.home() / ".cache" / "seqmamba"))


# The empty block that ends every BGZF file (SAM/BAM specification, section 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _is_bgzf(head: bytes) -> bool:
    # BGZF = gzip member with FEXTRA and a "BC" subfield (SAM/BAM spec, section 4.1)
    return len(head) >= 18 and head[:2] == b"\x1f\x8b" and head[3] & 4 and head[12:14] == b"BC"


def sniff_fasta(path: Path) -> bool:
    """Check the start of ``path`` looks like FASTA; return True when it is bgzip-compressed."""
    regular_file(path)  # a FIFO would block, a folder is not FASTA
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head:
        raise InputError("empty file", path=path, fix="expected FASTA records starting with '>'")
    compressed = head[:2] == b"\x1f\x8b"
    if compressed and not _is_bgzf(head):
        raise InputError("plain gzip cannot be indexed for random access", path=path,
                         fix=f"recompress with bgzip: gunzip -c {path.name} | bgzip > "
                             f"{path.stem}.bgz.gz, or gunzip it")
    if compressed:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - len(BGZF_EOF)))
            if f.read() != BGZF_EOF:
                raise InputError("truncated bgzip: the end-of-file block is missing (the file "
                                 "was cut short)", path=path,
                                 fix="copy or download it again; bgzip and samtools always end "
                                     "a file with that block")
        try:
            with gzip.open(path, "rb") as g:
                text = g.read(SNIFF_BYTES)
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"corrupt bgzip data ({e})", path=path) from None
    else:
        text = head
    if b"\x00" in text or _looks_binary(text):
        raise InputError("binary file, not FASTA text", path=path,
                         fix="expected records starting with '>' followed by sequence lines")
    first = text.lstrip()[:1]
    if first != b">":
        raise InputError("no '>' header line at the start", path=path,
                         fix="FASTA records start with a line '>name'; a bare sequence needs one")
    if b"\r" in text:
        raise InputError("CRLF (Windows) line ends", path=path,
                         fix=f"convert with: dos2unix {path.name} (or sed -i 's/\\r$//')")
    return compressed


def _looks_binary(text: bytes) -> bool:
    sample = text[:4096]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    return printable < 0.95 * len(sample)


STAMP_BYTES = 1 << 16  # how much of each end of the FASTA the index stamp hashes


def _stamp(path: Path) -> dict:
    """What the index was built from: size, mtime and a hash of the first and last 64 KiB.
    An index whose stamp differs belongs to another version of the file."""
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(STAMP_BYTES))
        f.seek(max(0, st.st_size - STAMP_BYTES))
        h.update(f.read(STAMP_BYTES))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ends_sha256": h.hexdigest()}


def _index_matches(fai: Path, gzi: Path, compressed: bool, stamp: dict) -> bool:
    """True when ``fai`` (and ``gzi``) exist, are not empty and were built from the file as it
    is now: an index made before the file changed (a copy with its old mtime kept, an edit),
    by another tool, or cut short, is rebuilt rather than trusted."""
    try:
        if fai.stat().st_size == 0 or (compressed and gzi.stat().st_size == 0):
            return False
        return json.loads(Path(str(fai) + ".stamp").read_text()) == stamp
    except (OSError, ValueError):
        return False


def _index_paths(path: Path, compressed: bool, stamp: dict):
    """(fai, gzi) paths: beside the FASTA when an index there matches the file or the folder is
    writable, else in the cache (keyed by the file's absolute path)."""
    fai, gzi = Path(str(path) + ".fai"), Path(str(path) + ".gzi")
    if _index_matches(fai, gzi, compressed, stamp) or os.access(path.parent, os.W_OK):
        return fai, gzi
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    d = cache_dir() / "fai"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot index: the folder is read-only and so is the cache {d} "
                         f"({e.strerror})", path=path,
                         fix="set SEQMAMBA_CACHE to a writable folder, or index the FASTA "
                             "where it can be written") from None
    return d / f"{path.name}.{key}.fai", d / f"{path.name}.{key}.gzi"


class FastaFile:
    """Random access to the records of one FASTA file.

    ``records``: [Record(name, length)] in file order; ``fetch(name, start, end)``: the
    sequence [start, end) as an upper/lowercase string (0-based, half open).
    """

    def __init__(self, path, strict: bool = True):
        import pyfaidx

        self.path = Path(path)
        compressed = sniff_fasta(self.path)
        if compressed:
            try:
                import Bio.bgzf  # noqa: F401  (pyfaidx reads bgzip through biopython)
            except ImportError:
                raise InputError("bgzip-compressed FASTA needs biopython", path=self.path,
                                 fix="pip install biopython, or gunzip the file") from None
        stamp = _stamp(self.path)
        fai, gzi = _index_paths(self.path, compressed, stamp)
        fresh = not _index_matches(fai, gzi, compressed, stamp)
        if fresh:  # missing, stale or foreign: built again from the file as it is
            for f in (fai, gzi):
                f.unlink(missing_ok=True)
        kw = {"gzi_indexname": str(gzi)} if compressed else {}
        try:
            self._fa = pyfaidx.Fasta(str(self.path), indexname=str(fai), as_raw=True,
                                     sequence_always_upper=False, read_long_names=False,
                                     duplicate_action="stop", **kw)
        except pyfaidx.FastaIndexingError as e:
            raise InputError(f"cannot index: {_first_line(e)}", path=self.path,
                             fix="check that every record has a '>name' line and lines of equal "
                                 "length") from None
        except (struct.error, EOFError, zlib.error, OSError) as e:
            raise InputError(f"damaged or truncated data ({_first_line(e)})", path=self.path,
                             fix="re-download or re-compress the file (bgzip)") from None
        except ValueError as e:
            msg = _first_line(e)
            if "uplicate" in msg:
                raise InputError(f"duplicate record name ({msg})", path=self.path,
                                 fix="give every record a unique first word on its '>' line") from None
            raise InputError(f"cannot read: {msg}", path=self.path) from None
        if fresh:
            try:
                write_text_atomic(json.dumps(stamp), Path(str(fai) + ".stamp"))
            except OSError:
                pass  # the index still works; it is rebuilt next time
        self.records: List[Record] = [Record(k, len(self._fa.faidx.index[k]))
                                      for k in self._fa.keys()]
        self._length: Dict[str, int] = {r.name: r.length for r in self.records}
        if strict:
            for r in self.records:
                if r.length == 0:
                    raise InputError("empty record (a header with no sequence)", path=self.path,
                                     record=r.name, fix="remove the record or add its sequence")
        if not self.records:
            raise InputError("no records", path=self.path)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def total_length(self) -> int:
        return sum(r.length for r in self.records)

    def length(self, name: str) -> int:
        try:
            return self._length[name]
        except KeyError:
            raise InputError(f"no record named {name!r} (records: "
                             f"{', '.join(list(self._length)[:5])}...)", path=self.path) from None

    def fetch(self, name: str, start: int = 0, end: Optional[int] = None) -> str:
        n = self.length(name)
        end = n if end is None else end
        if not 0 <= start <= end <= n:
            raise InputError(f"interval {start}-{end} is outside the record (length {n})",
                             path=self.path, record=name)
        try:
            return self._fa[name][start:end]
        except (struct.error, EOFError, zlib.error, OSError, ValueError) as e:
            raise InputError(f"damaged or truncated data reading {start}-{end} "
                             f"({_first_line(e)})", path=self.path, record=name,
                             fix="re-download or re-compress the file (bgzip)") from None

    def close(self) -> None:
        self._fa.close()


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
