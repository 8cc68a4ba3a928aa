"""Every measured figure in the tables of README.md and docs/*.md is what
benchmarks/readme_tables.py builds from the result files: a table edited by hand, or a result file
rewritten without regenerating the docs, fails here. The README stays short and its links, and
the docs', lead somewhere."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["kernels.md", "model.md", "dna.md", "audio.md", "guarantees.md", "benchmarks.md", "gpu.md"]


def _doc_files():
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def test_readme_blocks_are_regenerated_from_the_result_files():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_tables.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "README.md or docs/ differ from their result files; run " \
        "python benchmarks/readme_tables.py\n" + r.stdout[-4000:] + r.stderr[-2000:]


def test_every_block_the_script_knows_is_in_the_readme():
    """... or in one of docs/*.md: each block in exactly one file, once."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from readme_tables import BLOCKS

    texts = {p.name: p.read_text() for p in _doc_files()}
    for name in BLOCKS:
        begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
        holders = [f for f, t in texts.items() if begin in t or end in t]
        assert len(holders) == 1, (name, holders)
        text = texts[holders[0]]
        assert text.count(begin) == 1 and text.count(end) == 1, (name, holders[0])
        assert text.index(begin) < text.index(end), name


def _copy_docs(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    for p in _doc_files():
        shutil.copy(p, tmp_path / p.relative_to(ROOT))
    return tmp_path


@pytest.mark.parametrize("damage, says", [
    ("drop_end", "has no end marker"),
    ("duplicate", "must be in exactly one file"),
    ("missing", "no file holds block"),
    ("unknown", "is not one readme_tables.py builds"),
])
def test_a_misplaced_block_is_an_error(tmp_path, damage, says):
    """A marker without its end, a block in two files, a known block in none, and a block the
    script does not build each stop the script before it builds anything."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import readme_tables

    root = _copy_docs(tmp_path)
    audio = root / "docs" / "audio.md"
    text = audio.read_text()
    block = "<!-- fsdd seeds: begin -->\n" + text.split("<!-- fsdd seeds: begin -->\n", 1)[1] \
        .split("<!-- fsdd seeds: end -->", 1)[0] + "<!-- fsdd seeds: end -->"
    if damage == "drop_end":
        audio.write_text(text.replace("<!-- fsdd seeds: end -->", ""))
    elif damage == "duplicate":
        (root / "docs" / "extra.md").write_text(block + "\n")
    elif damage == "missing":
        audio.write_text(text.replace(block, ""))
    else:
        audio.write_text(text + "\n<!-- no such table: begin -->\n<!-- no such table: end -->\n")
    for check in (["--check"], []):
        with pytest.raises(SystemExit, match=says):
            readme_tables.main(check + ["--root", str(root)])


def test_readme_is_short_and_links_every_doc():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for name in DOCS:
        assert f"](docs/{name})" in text or f"](docs/{name}#" in text, name


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lowercase, punctuation but - and _ gone,
    spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set:
    seen, out = {}, set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not re.match(r"#{1,6} ", line):
            continue
        slug = _slug(line.lstrip("#"))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_every_relative_link_points_at_a_file_that_exists():
    """Relative markdown links (and images) of README.md and docs/*.md lead to files that exist,
    and their #anchors to headings of those files."""
    link = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
    for path in _doc_files():
        body = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # not inside code blocks
        links = link.findall(body)
        assert links or path.name != "README.md"
        for target in links:
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            assert dest.exists(), f"{path.relative_to(ROOT)}: link to {target} leads nowhere"
            if anchor and dest.suffix == ".md":
                assert anchor in _anchors(dest), \
                    f"{path.relative_to(ROOT)}: {target}: no such heading in {dest.name}"


def test_wilson_interval_matches_known_values():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from readme_tables import wilson_interval

    # 4/4 and 0/4: the interval is wide whatever the point estimate (textbook values)
    lo, hi = wilson_interval(4, 4)
    assert abs(lo - 0.5101) < 1e-3 and abs(hi - 1.0) < 1e-9
    lo, hi = wilson_interval(0, 4)
    assert abs(lo) < 1e-9 and abs(hi - 0.4899) < 1e-3
    lo, hi = wilson_interval(50, 100)
    assert abs(lo - 0.4038) < 1e-3 and abs(hi - 0.5962) < 1e-3
