"""seqmamba.atomic: the one way files are written (complete or not at all, synced first)."""

import os

import pytest

from seqmamba import atomic
from seqmamba.atomic import atomic_output, write_csv_atomic, write_json_atomic, write_text_atomic


def test_success_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic("old\n", target)
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # nothing visible before the block ends
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic({"a": 1}, target)
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_output(target) as tmp:
            tmp.write_text('{"a": ')
            raise RuntimeError("disk full")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_file_is_synced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(atomic.os, "replace",
                        lambda a, b: (events.append("replace"), real_replace(a, b)))
    write_text_atomic("x", tmp_path / "f.txt")
    assert events[:2] == ["fsync", "replace"] and events.count("fsync") == 2  # file, then folder


def test_csv_columns_strict_unless_given(tmp_path):
    write_csv_atomic([{"a": 1, "b": 2}], tmp_path / "t.csv", fields=["a"])
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a", "1"]
    with pytest.raises(ValueError):
        write_csv_atomic([{"a": 1}, {"a": 2, "c": 3}], tmp_path / "u.csv")
    assert not (tmp_path / "u.csv").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "t.csv"]


def test_orphaned_temporary_files_of_dead_writers_are_removed(tmp_path):
    """A SIGKILLed writer leaves its temporary file; the next writer of that folder removes
    it, but never a live process's file or a file that is not one of ours."""
    import subprocess

    from seqmamba.atomic import remove_orphans, temp_beside

    live = temp_beside(tmp_path / "t.csv")
    live.write_text("being written")
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = [tmp_path / f".t.csv.{gone.pid}.0123abcd.tmp",
            tmp_path / f".plot.png.{gone.pid}.89abcdef.png"]
    keep = [tmp_path / ".bashrc", tmp_path / f".notes.{gone.pid}.txt", tmp_path / "t.csv"]
    for f in dead + keep:
        f.write_text("x")
    assert remove_orphans(tmp_path) == 2
    assert live.exists() and all(f.exists() for f in keep) and not any(f.exists() for f in dead)
