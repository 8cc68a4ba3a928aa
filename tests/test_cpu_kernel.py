"""The fused CPU kernel (backend="cpu") against the float64 reference, and its build/fallback."""

import os
import subprocess
import sys
import textwrap
import zlib
from functools import partial
from pathlib import Path

import pytest
import torch

from seqmamba_kernels import selective_scan, selective_scan_ref, selective_state_update
from seqmamba_kernels.cpu_scan import _blocks, _supers, roofline_gups, selective_scan_cpu
from scan_cases import TOL, Case, assert_close_all, direct, make_inputs, rel_err, run_scan

ROOT = Path(__file__).resolve().parents[1]

# Lengths 1, odd, across tiles (tile 64 by default, 7 below), channel counts that are not a
# multiple of the 16-lane block, groups that cut blocks short, and every optional input off.
CPU_CASES = [
    Case(1, 1, 1, 1),
    Case(1, 4, 3, 1, with_h0=False),
    Case(2, 8, 4, 37),
    Case(2, 20, 16, 129, with_z=False, with_bias=False),
    Case(3, 5, 8, 33, with_D=False, with_z=False, with_bias=False, softplus=False, with_h0=False),
    Case(2, 8, 4, 50, b_groups=2, c_groups=4),
    Case(2, 12, 6, 41, b_groups=3, c_groups=1, softplus=False),
    Case(1, 12, 4, 65, b_groups=3, c_groups=2),  # B and C groups cut blocks at different places
    Case(1, 6, 8, 100, b_time_invariant=True),
    Case(2, 6, 5, 77, b_time_invariant=True, c_groups=3, with_h0=False),
    Case(1, 48, 16, 130, b_groups=2),  # enough work for several threads and super-blocks
]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _reference(inputs, case):
    return run_scan(selective_scan_ref, inputs, case.softplus, torch.float64, device="cpu")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CPU_CASES, ids=lambda c: c.id)
def test_cpu_backend_matches_reference(case, dtype):
    inputs = make_inputs(case, dtype, seed=zlib.crc32(case.id.encode()) + 2)
    ref = _reference(inputs, case)
    got = run_scan(partial(selective_scan, backend="cpu"), inputs, case.softplus, dtype)
    assert got[0].dtype == dtype and got[1].dtype == torch.float32
    assert_close_all(got, ref, TOL[dtype], f"cpu {case.id} {dtype}")


@pytest.mark.parametrize("tile", [1, 7, 16, 1000])
def test_cpu_backend_tile_boundaries(tile):
    """The saved tile-start states and the carried adjoint cross every tile boundary."""
    case = Case(2, 18, 4, 45, b_groups=2, c_groups=3)
    inputs = make_inputs(case, torch.float32, seed=tile)
    ref = _reference(inputs, case)
    got = run_scan(direct(selective_scan_cpu, tile=tile), inputs, case.softplus, torch.float32)
    assert_close_all(got, ref, TOL[torch.float32], f"cpu tile={tile}")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_cpu_backend_threads_agree_and_are_deterministic(threads):
    """Any thread count gives the reference's answer, and the same bits on a rerun."""
    case = Case(2, 64, 16, 70, b_groups=2, c_groups=2)  # 143k updates: the parallel path
    inputs = make_inputs(case, torch.float32, seed=31)
    ref = _reference(inputs, case)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        a = run_scan(partial(selective_scan, backend="cpu"), inputs, case.softplus, torch.float32)
        b = run_scan(partial(selective_scan, backend="cpu"), inputs, case.softplus, torch.float32)
    finally:
        torch.set_num_threads(before)
    assert_close_all(a, ref, TOL[torch.float32], f"cpu threads={threads}")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert all(torch.equal(a[2][k], b[2][k]) for k in a[2])


def test_cpu_backend_reads_strided_views_in_place():
    """Transposed, sliced and broadcast views (as the model passes them) give the same answer
    as contiguous copies: strides are honoured, never assumed."""
    case = Case(2, 24, 8, 90, b_groups=2)
    x = make_inputs(case, torch.float32, seed=5)
    g = torch.Generator().manual_seed(1)
    # (batch, length, dim)-major storage seen as (batch, dim, length), every second step.
    wide = {k: torch.randn(2, 180, 24, generator=g) for k in ("u", "delta", "z")}
    for k in wide:
        wide[k][:, ::2] = x[k].transpose(1, 2)
    views = {k: wide[k].transpose(1, 2)[..., ::2] for k in wide}
    Bw = x["B"].permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)  # (b, L, g, n) storage
    Cw = x["C"][:, None].expand(2, 3, 8, 90)  # 3 groups broadcast from one (stride 0)
    strided = {**x, **views, "B": Bw, "C": Cw}
    dense = {k: (v.contiguous() if v is not None else None) for k, v in strided.items()}
    assert not views["u"].is_contiguous() and Cw.stride()[1] == 0
    ref = _reference(dense, case)
    got = run_scan(partial(selective_scan, backend="cpu"), strided, case.softplus, torch.float32)
    assert_close_all(got, ref, TOL[torch.float32], "cpu strided views")


def test_cpu_backend_extreme_values():
    """Huge and tiny dt (softplus above its threshold of 20, e^x underflow), NaN propagation."""
    case = Case(1, 16, 4, 40, with_h0=False)
    x = make_inputs(case, torch.float32, seed=3)
    x["delta"] = x["delta"] * 30  # softplus inputs in about (-120, 90)
    ref = selective_scan_ref(**{k: (v.double() if v is not None else None) for k, v in x.items()},
                             delta_softplus=True)
    got = selective_scan(**x, delta_softplus=True, backend="cpu")
    assert rel_err(got, ref) < TOL[torch.float32]
    x["u"][0, 3, 10] = float("nan")
    got = selective_scan(**x, delta_softplus=True, backend="cpu")
    assert torch.isnan(got[0, 3, 10:]).all() and torch.isfinite(got[0, 3, :10]).all()
    assert torch.isfinite(torch.cat([got[0, :3], got[0, 4:]])).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("groups", [(1, 1), (2, 4)])
def test_cpu_state_update_matches_reference(dtype, groups):
    gb, gc = groups
    x = make_inputs(Case(3, 40, 16, 1, b_groups=gb, c_groups=gc), dtype, seed=6)
    args = (x["u"][..., 0], x["delta"][..., 0], x["A"], x["B"][..., 0], x["C"][..., 0])
    kw = dict(D=x["D"], z=x["z"][..., 0], dt_bias=x["delta_bias"], dt_softplus=True)
    s_ref = x["initial_state"].double().clone()
    o_ref = selective_state_update(s_ref, *[a.double() for a in args],
                                   **{k: (v.double() if torch.is_tensor(v) else v)
                                      for k, v in kw.items()}, backend="reference")
    s = x["initial_state"].float().clone()
    o = selective_state_update(s, *args, **kw, backend="cpu")
    assert o.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert rel_err(o, o_ref) < tol and rel_err(s, s_ref) < tol


def test_cpu_state_update_steps_equal_the_scan():
    """Steps fed one after another reproduce the scan's outputs and last state."""
    case = Case(2, 20, 8, 12, b_groups=2)
    x = make_inputs(case, torch.float32, seed=8)
    out, last = selective_scan(**x, delta_softplus=True, return_last_state=True, backend="cpu")
    state = x["initial_state"].clone()
    steps = [selective_state_update(state, x["u"][..., t], x["delta"][..., t], x["A"],
                                    x["B"][..., t], x["C"][..., t], D=x["D"], z=x["z"][..., t],
                                    dt_bias=x["delta_bias"], dt_softplus=True, backend="cpu")
             for t in range(case.length)]
    assert rel_err(torch.stack(steps, -1), out) < 1e-6
    assert rel_err(state, last) < 1e-6


def test_block_plan_respects_groups():
    """Blocks never straddle a B or C group, cover every channel once, and super-blocks split
    them into runs of one group each."""
    for dim, gb, gc in ((64, 1, 1), (12, 3, 2), (40, 4, 8), (7, 0, 7), (100, 5, 1)):
        rows = _blocks(dim, gb, gc).tolist()
        covered = [d for d0, w, _, _ in rows for d in range(d0, d0 + w)]
        assert covered == list(range(dim))
        for d0, w, b, c in rows:
            assert 1 <= w <= 16
            assert c == d0 // (dim // gc) == (d0 + w - 1) // (dim // gc)
            if gb:
                assert b == d0 // (dim // gb) == (d0 + w - 1) // (dim // gb)
        for target in (1, 3, 8):
            sup, sgb, sgc = _supers(dim, gb, gc, target)
            firsts = sup[:, 0].tolist()
            assert firsts == sorted(firsts) and int(sup[:, 1].sum()) == len(rows)
            for (first, count), b, c in zip(sup.tolist(), sgb, sgc):
                assert {tuple(r[2:]) for r in rows[first:first + count]} == {(b, c)}


def test_roofline_measures_a_positive_rate():
    assert roofline_gups(seconds=0.05, threads=1) > 0.01


def _run_python(code: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_no_compiler_falls_back_to_torch_with_one_warning(tmp_path):
    """As on a machine without a C compiler: one warning naming the reason, correct results,
    and backend='cpu' asked for by name says why it cannot run."""
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc"),
           "SEQMAMBA_KERNEL_CACHE": str(tmp_path / "cache")}
    env.pop("SEQMAMBA_SCAN_BACKEND", None)
    r = _run_python("""
        import warnings, torch
        from seqmamba_kernels import selective_scan, selective_scan_ref, resolve_backend
        g = torch.Generator().manual_seed(0)
        x = dict(u=torch.randn(1, 4, 30, generator=g), delta=torch.randn(1, 4, 30, generator=g),
                 A=-torch.rand(4, 3, generator=g), B=torch.randn(1, 3, 30, generator=g),
                 C=torch.randn(1, 3, 30, generator=g))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            outs = [selective_scan(**x, delta_softplus=True) for _ in range(3)]
        assert resolve_backend(None, torch.device("cpu"), torch.float32) == "torch"
        ref = selective_scan_ref(**{k: v.double() for k, v in x.items()}, delta_softplus=True)
        err = max(float((o.double() - ref).norm() / ref.norm()) for o in outs)
        print("WARNINGS", len(w), "ERR", err)
        for m in w:
            print("MSG", m.message)
        try:
            selective_scan(**x, backend="cpu")
        except RuntimeError as e:
            print("NAMED", e)
    """, env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "WARNINGS 1" in lines[0], r.stdout
    assert float(lines[0].split("ERR")[1]) < 1e-5
    assert "falls back to the torch backend" in lines[1] and "no-such-cc" in lines[1]
    assert "'cpu'" in lines[2] and "no-such-cc" in lines[2]
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_concurrent_first_builds_leave_one_complete_library(tmp_path):
    """Two processes building into one empty cache at once both load a complete library, and
    no temporary file is left behind."""
    env = {**os.environ, "SEQMAMBA_KERNEL_CACHE": str(tmp_path / "cache")}
    code = textwrap.dedent("""
        import torch
        from seqmamba_kernels import selective_scan, selective_scan_ref
        x = dict(u=torch.randn(1, 20, 50), delta=torch.randn(1, 20, 50), A=-torch.rand(20, 4),
                 B=torch.randn(1, 4, 50), C=torch.randn(1, 4, 50))
        out = selective_scan(**x, delta_softplus=True, backend="cpu")
        ref = selective_scan_ref(**{k: v.double() for k, v in x.items()}, delta_softplus=True)
        assert float((out.double() - ref).norm() / ref.norm()) < 1e-5
        print("ok")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, rc in results:
        assert rc == 0 and out.strip() == "ok", err
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].endswith(".so") and ".tmp" not in files[0], files


def test_unusable_cache_folder_builds_in_a_private_temporary_folder(tmp_path):
    """A cache path that cannot be a folder (here: under a regular file) still gets a kernel,
    built in a per-user temporary folder that only its owner can write."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {**os.environ, "SEQMAMBA_KERNEL_CACHE": str(blocker / "cache")}
    r = _run_python("""
        import os, torch
        from seqmamba_kernels.cpu_scan import cpu_kernel_unavailable_reason
        from seqmamba_kernels._cpu_build import _state
        print(cpu_kernel_unavailable_reason())
        path = _state["lib"]._name
        st = os.stat(os.path.dirname(path))
        print(os.path.dirname(path), oct(st.st_mode & 0o777))
    """, env)
    assert r.returncode == 0, r.stderr
    reason, folder = r.stdout.splitlines()
    assert reason == "None"
    assert "seqmamba-kernels-" in folder and folder.endswith("0o700")
