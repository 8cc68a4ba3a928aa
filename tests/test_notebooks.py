"""The worked examples in notebooks/ run from top to bottom."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, expect", [
    ("genomics_quickstart.ipynb", ["bits/base", "baseline"]),
    ("audio_quickstart.ipynb", ["files;", "generated"]),
])
def test_notebook_executes(tmp_path, monkeypatch, name, expect):
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    monkeypatch.setenv("SEQMAMBA_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    for needle in expect:
        assert needle in text, (needle, text[-2000:])
    assert list((tmp_path / "work").glob("predictions.*"))
