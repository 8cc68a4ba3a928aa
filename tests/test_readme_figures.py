"""Every measured figure in the README's tables is what benchmarks/readme_tables.py builds from
the result files: a table edited by hand, or a result file rewritten without regenerating the
README, fails here."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_blocks_are_regenerated_from_the_result_files():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_tables.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "README differs from its result files; run " \
        "python benchmarks/readme_tables.py\n" + r.stdout[-4000:] + r.stderr[-2000:]


def test_every_block_the_script_knows_is_in_the_readme():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from readme_tables import BLOCKS

    text = (ROOT / "README.md").read_text()
    for name in BLOCKS:
        assert f"<!-- {name}: begin -->" in text and f"<!-- {name}: end -->" in text, name


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
