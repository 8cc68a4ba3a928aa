"""Masked-LM variant scoring and long-window memory on the CPU: seqmamba's fused C scan against
mamba-ssm's reference scan (``selective_scan_ref``), the path Caduceus's code has on a CPU.

    python benchmarks/mlm_speed.py                  # the issue's shapes (~10 min on 2 cores)
    python benchmarks/mlm_speed.py --threads 1      # one torch thread (cores shared with others)
    python benchmarks/mlm_speed.py --quick          # tiny shapes, seconds (the tests run this)

Speed: a PlantCaduceus_l20-shaped masked LM (Caduceus d_model 384 per RC half, so seqmamba
d_model 768; 20 layers; bidirectional "add"; RC parameter sharing; GPN vocabulary) with random
weights scores SNVs on random 512-base windows, the variant at index 255, one ALT per site,
through ``masked_llr`` (the library of ``seqmamba dna score-variants``), ``--batch`` windows
per forward pass.  seqmamba runs its default scan (the fused C CPU kernel).  The peer is the
same model built from mamba-ssm's ``Mamba`` modules (``use_fast_path=False``, its PyTorch
conv, the scan replaced by ``selective_scan_ref``: a Python loop over the length that
materialises exp(delta A) for the whole window), wired as Caduceus wires them (below), with
seqmamba's weights loaded: both paths must give the same scores, and the run fails if they
do not.  The peer is slow, so it scores fewer variants.

Memory: a Caduceus-131k-shaped masked LM (d_model 256 per half -> 512, 16 layers, Caduceus
vocabulary) reads one window of ``--lengths`` tokens (logits at every position), each in a
fresh process: peak resident set of the whole process (VmHWM) and seconds.  The peer runs at
the ``--peer-lengths`` it can do in the time; its peak at the longest seqmamba length is
extrapolated on the line through its two measured points (its deltaA alone is
d_inner x length x d_state x 4 bytes per scan call) and marked as such.

mamba-ssm is optional and never a dependency of seqmamba; without it the peer's rows say
"skipped" and why.  On a CPU-only machine it installs without a CUDA build:

    MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE \\
        pip install --no-deps --no-build-isolation mamba-ssm==2.2.4 einops

(``MAMBA_FORCE_BUILD`` skips the step that fetches a prebuilt CUDA wheel from GitHub; 2.2.4 is
the version PlantCaduceus's install notes name.)

Results: ``benchmarks/results/mlm_speed.csv`` (path, variants, seconds, variants/s, ratio,
agreement of the scores) and ``benchmarks/results/mlm_memory.csv`` (path, length, peak GiB,
seconds), both written atomically.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import resource
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _proc import available_ram, run_child, status_bytes, vm_bytes, write_csv_atomic  # noqa: E402

SPEED_FIELDS = ["path", "model", "window", "batch", "variants", "seconds", "variants_per_s",
                "ratio", "max_abs_score", "max_abs_diff", "threads", "load_1min", "status",
                "detail"]
MEMORY_FIELDS = ["path", "model", "length", "status", "seconds", "peak_gib", "rss_before_gib",
                 "delta_a_gib", "threads", "detail"]
SEQMAMBA = "seqmamba, fused C CPU scan"
PEER = "mamba-ssm Mamba + selective_scan_ref, Caduceus wiring"
INSTALL = ("MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE pip install --no-deps "
           "--no-build-isolation mamba-ssm==2.2.4 einops")


class PeerUnavailable(RuntimeError):
    pass


# ------------------------------------------------------------------------------------ models

def speed_config(quick: bool):
    """PlantCaduceus_l20's shape (or a tiny one): GPN vocabulary [PAD] [MASK] [UNK] a c g t."""
    from seqmamba import MambaConfig

    d_model, n_layer = (32, 2) if quick else (768, 20)
    return MambaConfig(d_model=d_model, n_layer=n_layer, vocab_size=7, pad_vocab_size_multiple=8,
                       bidirectional="add", rc_equivariant=True,
                       complement_map=[0, 1, 2, 6, 5, 4, 3], rc_swap_halves=True, d_state=16,
                       d_conv=4, expand=2)


def memory_config(quick: bool):
    """Caduceus-ph/ps 131k's shape (or a tiny one): Caduceus's vocabulary of 12, A C G T = 7..10."""
    from seqmamba import MambaConfig

    d_model, n_layer = (32, 2) if quick else (512, 16)
    return MambaConfig(d_model=d_model, n_layer=n_layer, vocab_size=12,
                       pad_vocab_size_multiple=16, bidirectional="add", rc_equivariant=True,
                       complement_map=[0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11], rc_swap_halves=True,
                       d_state=16, d_conv=4, expand=2)


def load_mamba_ssm():
    """mamba-ssm's ``Mamba`` class on its CPU fallback path: the module-level
    ``selective_scan_fn`` that ``Mamba.forward`` calls becomes ``selective_scan_ref`` and its
    conv is PyTorch's (``causal_conv1d_fn = None``).  PeerUnavailable if it is not installed.

    Two import shims, both needed with mamba-ssm 2.2.4 on a CPU-only machine: its
    ``selective_scan_interface`` imports the CUDA extension ``selective_scan_cuda`` at the top
    (absent without a CUDA build: an empty module stands in, and nothing here calls it), and
    the package ``__init__`` imports its generation utilities, which need names transformers 5
    removed (the package is registered without running it; only submodules are imported)."""
    spec = sys.modules["mamba_ssm"].__spec__ if "mamba_ssm" in sys.modules else \
        importlib.util.find_spec("mamba_ssm")
    if spec is None:
        raise PeerUnavailable(f"mamba-ssm is not installed ({INSTALL})")
    if importlib.util.find_spec("einops") is None:
        raise PeerUnavailable(f"mamba-ssm needs einops, which is not installed ({INSTALL})")
    cuda_ext = "selective_scan_cuda"
    if cuda_ext not in sys.modules and importlib.util.find_spec(cuda_ext) is None:
        sys.modules[cuda_ext] = types.ModuleType(cuda_ext)
    if "mamba_ssm" not in sys.modules:
        pkg = types.ModuleType("mamba_ssm")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        sys.modules["mamba_ssm"] = pkg
    from mamba_ssm.modules import mamba_simple
    from mamba_ssm.ops.selective_scan_interface import selective_scan_ref

    mamba_simple.selective_scan_fn = selective_scan_ref
    mamba_simple.causal_conv1d_fn = None
    version = importlib.metadata.version("mamba-ssm")
    return mamba_simple.Mamba, version


def _rms(x, weight, eps):
    x = x.float()
    return x * x.pow(2).mean(-1, keepdim=True).add(eps).rsqrt() * weight


def _rc(x):
    """Reverse complement of one half's hidden states (batch, length, k): flip length and
    channels."""
    return x.flip(1).flip(-1)


def _rcps(f, h):
    """(f on the forward half, f on the reverse complement of the second half, reverse
    complemented back): the two halves of Caduceus's RC parameter sharing, one weight."""
    k = h.shape[-1] // 2
    return f(h[..., :k]), _rc(f(_rc(h[..., k:])))


def make_peer(cfg, Mamba):
    """The masked LM of ``cfg`` from mamba-ssm ``Mamba`` modules, wired as Caduceus-PS with
    bidirectional "add": hidden states are a forward half and a reverse-complement half of k
    channels; each block adds the residual, swaps the halves (what Caduceus's fused add+norm
    does, ``rc_swap_halves``), and runs the RMS norm, then the bidirectional mixer, on the
    first half and on the reverse complement of the second (reverse-complemented back: one
    weight serves both strands); the bidirectional mixer is a Mamba on the input plus a second
    Mamba on the input reversed in time (reversed back), the two sharing in_proj and out_proj.
    The head reads the forward half with the embedding and the flipped RC half with the
    embedding rows of the complement tokens.  Parameter names are Caduceus's (``mamba_fwd``,
    ``mamba_rev``)."""
    import torch
    from torch import nn

    k = cfg.d_model // 2

    class Layer(nn.Module):
        def __init__(self, i):
            super().__init__()
            kw = dict(d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand,
                      use_fast_path=False, layer_idx=i)
            self.norm = nn.Parameter(torch.ones(k))
            self.mamba_fwd, self.mamba_rev = Mamba(k, **kw), Mamba(k, **kw)
            self.mamba_rev.in_proj = self.mamba_fwd.in_proj
            self.mamba_rev.out_proj = self.mamba_fwd.out_proj

        def bimamba(self, x):
            return self.mamba_fwd(x) + self.mamba_rev(x.flip(1)).flip(1)

    class CaduceusStyleMLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Parameter(0.02 * torch.randn(cfg.padded_vocab_size, k))
            self.layers = nn.ModuleList(Layer(i) for i in range(cfg.n_layer))
            self.norm_f = nn.Parameter(torch.ones(k))
            comp = torch.arange(cfg.padded_vocab_size)
            comp[: cfg.vocab_size] = torch.tensor(cfg.complement_map)
            self.register_buffer("complement", comp, persistent=False)

        def forward(self, input_ids):
            E, eps = self.embedding, cfg.norm_epsilon
            h = torch.cat([E[input_ids], E[self.complement[input_ids]].flip(-1)], -1)
            residual = None
            for layer in self.layers:
                residual = (h if residual is None else h + residual).float()
                if cfg.rc_swap_halves:
                    residual = torch.cat([residual[..., k:], residual[..., :k]], -1)
                normed = torch.cat(_rcps(lambda x: _rms(x, layer.norm, eps), residual), -1)
                h = torch.cat(_rcps(layer.bimamba, normed), -1)
            fwd, rc = _rcps(lambda x: _rms(x, self.norm_f, eps), h + residual)
            logits = fwd @ E.t() + rc.flip(-1) @ E[self.complement].t()
            return types.SimpleNamespace(logits=logits[..., : cfg.vocab_size])

    return CaduceusStyleMLM().eval()


def peer_from(model, Mamba):
    """The peer with ``model``'s (a seqmamba MambaForMaskedLM) weights."""
    peer = make_peer(model.config, Mamba)
    state = {}
    for name, v in model.state_dict().items():
        if name == "lm_head.weight":  # tied to the embedding
            continue
        name = (name.replace("backbone.embedding.weight", "embedding")
                .replace("backbone.norm_f.module.weight", "norm_f")
                .replace("backbone.", "").replace(".norm.module.weight", ".norm")
                .replace(".mixer.module.fwd.", ".mamba_fwd.")
                .replace(".mixer.module.rev.", ".mamba_rev."))
        state[name] = v
    peer.load_state_dict(state, strict=True)
    return peer


# ------------------------------------------------------------------------------------- speed

def random_items(n: int, window: int, seed: int = 0):
    """n (window, ref, alt): random bases, the variant at index (window - 1) // 2, one ALT."""
    import numpy as np

    rng = np.random.default_rng(seed)
    bases = np.array(list("ACGT"))
    c = (window - 1) // 2
    items = []
    for _ in range(n):
        w = "".join(bases[rng.integers(0, 4, window)])
        ref = w[c]
        items.append((w, ref, str(rng.choice([b for b in "ACGT" if b != ref]))))
    return items


def score(model, tok, items, batch: int):
    """(seconds, scores (n,)) of ``masked_llr`` over ``items`` in batches."""
    import torch

    from pipelines.dna.variant_scoring import masked_llr

    out = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for j in range(0, len(items), batch):
            out.append(masked_llr(model, tok, items[j:j + batch], "cpu", rc_equivariant=True))
    return time.perf_counter() - t0, torch.cat(out)


def load_1min() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def speed(a) -> list:
    import torch

    from pipelines.dna.checkpoint_vocab import GPN_TOKENS, CheckpointVocab
    from seqmamba import MambaForMaskedLM

    tok = CheckpointVocab(GPN_TOKENS)
    torch.manual_seed(0)
    cfg = speed_config(a.quick)
    model = MambaForMaskedLM(cfg).eval()
    with torch.no_grad():  # off the initial values, so that a norm weight (all ones) or D
        for p in model.parameters():  # wired wrongly in the peer would change its scores
            p.mul_(1 + 0.2 * torch.randn_like(p))
    items = random_items(a.variants, a.window)
    shape = f"d_model {cfg.d_model}, {cfg.n_layer} layers"
    base = {"model": shape, "window": a.window, "batch": a.batch,
            "threads": torch.get_num_threads(), "load_1min": load_1min()}
    score(model, tok, random_items(1, 16, seed=1), 1)  # warm-up (builds the C kernel once)
    secs, ours = score(model, tok, items, a.batch)
    rows = [dict(base, path=SEQMAMBA, variants=len(items), seconds=round(secs, 2),
                 variants_per_s=round(len(items) / secs, 4), status="ok")]
    print(f"{SEQMAMBA}: {len(items)} variants in {secs:.1f} s", flush=True)
    try:
        Mamba, version = load_mamba_ssm()
    except PeerUnavailable as e:
        print(f"peer skipped: {e}", flush=True)
        rows.append(dict(base, path=PEER, status="skipped (mamba-ssm not installed)",
                         detail=str(e)))
        return rows
    peer = peer_from(model, Mamba)
    peer_items = items[: a.peer_variants]
    score(peer, tok, random_items(1, 16, seed=1), 1)
    psecs, theirs = score(peer, tok, peer_items, a.batch)
    print(f"{PEER} (mamba-ssm {version}): {len(peer_items)} variants in {psecs:.1f} s",
          flush=True)
    diff = float((ours[: len(theirs)] - theirs).abs().max())
    scale = float(ours[: len(theirs)].abs().max())
    ok = diff <= 1e-6 + 1e-4 * scale
    peer_rate = len(peer_items) / psecs
    rows[0].update(ratio=round(len(items) / secs / peer_rate, 2), max_abs_score=scale,
                   max_abs_diff=diff)
    rows.append(dict(base, path=PEER, variants=len(peer_items), seconds=round(psecs, 2),
                     variants_per_s=round(peer_rate, 4), ratio=1.0, max_abs_score=scale,
                     max_abs_diff=diff, status="ok" if ok else "scores differ",
                     detail=f"mamba-ssm {version}"))
    print(f"scores of the first {len(theirs)} variants: max |seqmamba - peer| {diff:.2e} nats "
          f"(largest |score| {scale:.2e}); seqmamba {rows[0]['ratio']}x the peer's variants/s",
          flush=True)
    return rows


# ------------------------------------------------------------------------------------ memory

def child(a) -> dict:
    """One forward pass of the memory model over ``a.length`` tokens, in this fresh process."""
    import torch

    from seqmamba import MambaForMaskedLM

    resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + int(a.mem_budget_gb * 2**30),
                                            resource.RLIM_INFINITY))
    torch.manual_seed(0)
    cfg = memory_config(a.quick)
    if a.path == "peer":
        Mamba, _ = load_mamba_ssm()
        model = make_peer(cfg, Mamba)
    else:
        model = MambaForMaskedLM(cfg).eval()
    ids = torch.randint(7, 11, (1, a.length))  # A C G T of Caduceus's vocabulary
    ids[0, (a.length - 1) // 2] = 3  # [MASK]
    before = status_bytes("VmRSS")
    t0 = time.perf_counter()
    with torch.inference_mode():
        logits = model(ids).logits
    dt = time.perf_counter() - t0
    assert logits.shape == (1, a.length, cfg.vocab_size) and torch.isfinite(logits).all()
    return {"status": "ok", "seconds": round(dt, 2), "threads": torch.get_num_threads(),
            "peak_gib": round(status_bytes("VmHWM") / 2**30, 3),
            "rss_before_gib": round(before / 2**30, 3)}


def memory(a) -> list:
    cfg = memory_config(a.quick)
    d_inner = cfg.expand * cfg.d_model // 2
    shape = f"d_model {cfg.d_model}, {cfg.n_layer} layers"
    runs = [("seqmamba", L) for L in a.lengths]
    peer_reason = None
    try:
        load_mamba_ssm()
        runs += [("peer", L) for L in a.peer_lengths]
    except PeerUnavailable as e:
        peer_reason = str(e)
    rows = []
    for path, L in runs:
        row = {"path": SEQMAMBA if path == "seqmamba" else PEER, "model": shape, "length": L,
               "detail": "measured"}
        if path == "peer":
            row["delta_a_gib"] = round(d_inner * L * cfg.d_state * 4 / 2**30, 4)
        args = ["--path", path, "--length", L, "--mem-budget-gb", a.mem_budget_gb,
                "--threads", a.threads] + (["--quick"] if a.quick else [])
        row.update(run_child(Path(__file__).resolve(), args, a.timeout))
        rows.append(row)
        print(f"{path:>8} L={L:>7}: " + (f"{row['seconds']} s, peak {row['peak_gib']} GiB"
                                        if row["status"] == "ok" else row["status"]), flush=True)
    peer = [r for r in rows if r["path"] == PEER and r["status"] == "ok"]
    target = max(a.lengths)
    if peer_reason:
        rows.append({"path": PEER, "model": shape, "length": target,
                     "status": "skipped (mamba-ssm not installed)", "detail": peer_reason})
    elif len(peer) >= 2 and target > peer[-1]["length"]:
        (l0, p0, s0), (l1, p1, s1) = [(r["length"], r["peak_gib"], r["seconds"]) for r in peer[-2:]]
        f = (target - l1) / (l1 - l0)
        rows.append({"path": PEER, "model": shape, "length": target, "status": "extrapolated",
                     "seconds": round(s1 + f * (s1 - s0), 1),
                     "peak_gib": round(p1 + f * (p1 - p0), 2),
                     "delta_a_gib": round(d_inner * target * cfg.d_state * 4 / 2**30, 3),
                     "threads": peer[-1]["threads"],
                     "detail": f"on the line through the peer's measured {l0} and {l1}"})
        print(f"    peer L={target:>7}: ~{rows[-1]['seconds']} s, ~{rows[-1]['peak_gib']} GiB "
              "(extrapolated)", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes (seconds), for the tests")
    p.add_argument("--variants", type=int, help="variants seqmamba scores (default 32)")
    p.add_argument("--peer-variants", type=int, help="variants the peer scores (default 4)")
    p.add_argument("--batch", type=int, help="windows per forward pass, both paths (default 4)")
    p.add_argument("--window", type=int, help="bases per window (default 512)")
    p.add_argument("--lengths", type=int, nargs="+",
                   help="memory: seqmamba's window lengths (default 16384 32768 131072)")
    p.add_argument("--peer-lengths", type=int, nargs="+",
                   help="memory: the peer's (default 1024 2048), extrapolated to the longest")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--mem-budget-gb", type=float, default=None)
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--out", type=Path, default=HERE / "results" / "mlm_speed.csv")
    p.add_argument("--memory-out", type=Path, default=HERE / "results" / "mlm_memory.csv")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--path", choices=["seqmamba", "peer"], help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    defaults = ({"variants": 4, "peer_variants": 2, "batch": 2, "window": 64, "lengths": [512],
                 "peer_lengths": [128, 256]} if a.quick else
                {"variants": 32, "peer_variants": 4, "batch": 4, "window": 512,
                 "lengths": [16384, 32768, 131072], "peer_lengths": [1024, 2048]})
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.mem_budget_gb is None:
        a.mem_budget_gb = 0.6 * available_ram() / 2**30
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.child:
        print(json.dumps(child(a)))
        return 0
    rows = speed(a)
    write_csv_atomic(rows, a.out, SPEED_FIELDS)
    print(f"wrote {a.out}")
    if not a.skip_memory:
        write_csv_atomic(memory(a), a.memory_out, MEMORY_FIELDS)
        print(f"wrote {a.memory_out}")
    if any(r["status"] == "scores differ" for r in rows):
        print("the peer's scores differ from seqmamba's: its timing is not of the same model",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
