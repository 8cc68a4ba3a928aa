"""The arrows point one way: seqmamba_kernels <- seqmamba <- pipelines <- benchmarks/experiments.
Checked on the source (every import statement, at any depth, and every path the product
builds), so a lazy import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# each layer and what it may not reach
FORBIDDEN = {
    "seqmamba_kernels": {"seqmamba", "pipelines", "benchmarks", "experiments"},
    "seqmamba": {"pipelines", "benchmarks", "experiments"},
    "pipelines": {"benchmarks", "experiments"},
}
SCRIPT_FOLDERS = ("benchmarks", "experiments")


def _imports(path: Path):
    """(line, top-level name) of every absolute import in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name.split(".")[0]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]


def _strings(path: Path):
    """(line, text) of every string constant in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer):
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}"
           for p in sorted((ROOT / layer).rglob("*.py"))
           for line, name in _imports(p) if name in FORBIDDEN[layer]]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_the_product_reads_no_file_of_the_benchmarks_or_experiments(layer):
    """A path the product builds names neither folder (the demo once ran benchmarks/scan.py and
    quoted benchmarks/results/); a docstring may mention them, a path component may not."""
    bad = [f"{p.relative_to(ROOT)}:{line}: {text!r}"
           for p in sorted((ROOT / layer).rglob("*.py"))
           for line, text in _strings(p) if text.strip() in SCRIPT_FOLDERS]
    assert not bad, "\n".join(bad)


def test_tests_outside_tests_scripts_import_no_script():
    """Only the tests of the scripts themselves (tests/scripts/) reach into benchmarks/ or
    experiments/: the product's tests stand on the product alone."""
    bad = []
    for p in sorted((ROOT / "tests").glob("*.py")):
        if p.name == Path(__file__).name:  # this file names the folders it checks for
            continue
        for line, text in _strings(p):
            if text.strip() in SCRIPT_FOLDERS:
                bad.append(f"{p.name}:{line}: {text!r}")
        bad += [f"{p.name}:{line} imports {name}" for line, name in _imports(p)
                if name in SCRIPT_FOLDERS]
    assert not bad, "\n".join(bad)
