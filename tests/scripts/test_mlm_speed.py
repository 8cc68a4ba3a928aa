"""benchmarks/mlm_speed.py at tiny shapes: the CSV rows it writes, and its peer (mamba-ssm's
Mamba modules on the reference scan, wired as Caduceus) computing seqmamba's masked LM."""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "mlm_speed.py"
HAVE_MAMBA_SSM = importlib.util.find_spec("mamba_ssm") is not None


def _rows(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quick_run_writes_speed_and_memory_rows(tmp_path):
    speed, memory = tmp_path / "speed.csv", tmp_path / "memory.csv"
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out",
                        str(speed), "--memory-out", str(memory)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    ours, peer = _rows(speed)
    assert ours["path"].startswith("seqmamba") and ours["status"] == "ok"
    assert int(ours["variants"]) == 4 and int(ours["window"]) == 64 and int(ours["threads"]) == 1
    assert float(ours["seconds"]) == pytest.approx(4 / float(ours["variants_per_s"]), abs=0.01)
    mem = _rows(memory)
    assert [(r["length"], r["status"]) for r in mem if r["path"] == ours["path"]] == [("512", "ok")]
    assert 0 < float(mem[0]["rss_before_gib"]) <= float(mem[0]["peak_gib"])
    peer_mem = [(r["length"], r["status"]) for r in mem if r["path"] == peer["path"]]
    if not HAVE_MAMBA_SSM:
        assert peer["status"].startswith("skipped") and "pip install" in peer["detail"]
        assert peer_mem == [("512", "skipped (mamba-ssm not installed)")]
        return
    assert peer["status"] == "ok" and int(peer["variants"]) == 2
    # the same scores from both paths, and the ratio is of their measured rates
    assert float(ours["max_abs_diff"]) <= 1e-6 + 1e-4 * float(ours["max_abs_score"])
    assert float(ours["max_abs_score"]) > 0
    assert float(ours["ratio"]) == pytest.approx(
        float(ours["variants_per_s"]) / float(peer["variants_per_s"]), rel=0.01)
    assert peer_mem == [("128", "ok"), ("256", "ok"), ("512", "extrapolated")]


@pytest.mark.skipif(not HAVE_MAMBA_SSM, reason="mamba-ssm is not installed (the peer is optional)")
def test_peer_computes_the_seqmamba_model():
    """Logits at every position agree; the same peer without the half swap does not (the
    comparison can tell a different wiring apart)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import mlm_speed as M
    from seqmamba import MambaForMaskedLM

    Mamba, _ = M.load_mamba_ssm()
    torch.manual_seed(0)
    cfg = M.speed_config(quick=True)
    model = MambaForMaskedLM(cfg).eval()
    with torch.no_grad():  # weights far from the initial ones, so every part matters
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    peer = M.peer_from(model, Mamba)
    ids = torch.randint(3, 7, (2, 40))
    with torch.inference_mode():
        ours, theirs = model(ids).logits, peer(ids).logits
        swapped = M.make_peer(cfg.replace(rc_swap_halves=False), Mamba)
        swapped.load_state_dict(peer.state_dict())
        other = swapped(ids).logits
    scale = ours.abs().max()
    assert (ours - theirs).abs().max() <= 1e-4 * scale
    assert (ours - other).abs().max() > 1e-2 * scale
