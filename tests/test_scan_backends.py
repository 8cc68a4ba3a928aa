"""Every backend against the float64 reference on fresh random inputs: values and all gradients."""

import zlib
from functools import partial

import pytest
import torch

from seqmamba_kernels import selective_scan, selective_scan_ref
from seqmamba_kernels.torch_scan import selective_scan_torch
from scan_cases import (ON_GPU, TOL, Case, assert_close_all, direct, make_inputs,
                        run_scan)

# Torch backend: cheap, so a wide grid of shapes and options.
TORCH_CASES = [
    Case(1, 1, 1, 1),
    Case(1, 4, 3, 1, with_h0=False),
    Case(2, 8, 4, 37),
    Case(2, 8, 16, 129, with_z=False, with_bias=False),
    Case(3, 5, 8, 33, with_D=False, with_z=False, with_bias=False, softplus=False, with_h0=False),
    Case(2, 8, 4, 50, b_groups=2, c_groups=4),
    Case(2, 12, 6, 41, b_groups=3, c_groups=1, softplus=False),
    Case(1, 6, 8, 100, b_time_invariant=True),
    Case(2, 6, 5, 77, b_time_invariant=True, c_groups=3, with_h0=False),
]

# Triton backend: the interpreter is slow (about 0.1 ms per state element and step), so on the
# CPU the cases stay small; tiles of 16 steps make every case cross several tile boundaries.
TRITON_CASES = [
    Case(1, 1, 1, 1),
    Case(2, 4, 4, 37),
    Case(1, 4, 3, 20, with_z=False, with_bias=False, softplus=False, with_h0=False),
    Case(2, 8, 4, 23, b_groups=2, c_groups=4),
    Case(1, 6, 3, 19, b_time_invariant=True),
    Case(1, 3, 5, 17, with_D=False, with_bias=False, with_h0=False),
]
if ON_GPU:
    TRITON_CASES += [Case(2, 64, 16, 1000), Case(2, 128, 16, 4097, b_groups=2, c_groups=2),
                     Case(3, 96, 8, 3000, b_time_invariant=True)]

DTYPES = [torch.float32, torch.bfloat16]
TORCH_DTYPES = DTYPES + [torch.float16]  # every dtype _checks.py accepts besides float64


def _torch_fn(chunk):
    return direct(selective_scan_torch, chunk=chunk)


def _triton_fn(block_l, reverse_via_flip=None):
    from seqmamba_kernels.triton_scan import TileConfig, selective_scan_triton

    return direct(selective_scan_triton,
                   tiles=TileConfig(block_l=block_l, reverse_via_flip=reverse_via_flip))


def _reference(inputs, case):
    return run_scan(selective_scan_ref, inputs, case.softplus, torch.float64, device="cpu")


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_torch_backend_matches_reference(case, dtype):
    inputs = make_inputs(case, dtype, seed=zlib.crc32(case.id.encode()))
    ref = _reference(inputs, case)
    got = run_scan(partial(selective_scan, backend="torch"), inputs, case.softplus, dtype)
    assert_close_all(got, ref, TOL[dtype], f"torch {case.id} {dtype}")


@pytest.mark.parametrize("chunk", [1, 7, 16])
def test_torch_backend_chunk_boundaries(chunk):
    """Many small chunks: the carried state and the carried adjoint cross every boundary."""
    case = Case(2, 8, 4, 45, b_groups=2)
    inputs = make_inputs(case, torch.float64, seed=chunk)
    ref = _reference(inputs, case)
    got = run_scan(_torch_fn(chunk), inputs, case.softplus, torch.float64)
    assert_close_all(got, ref, TOL[torch.float64], f"torch chunk={chunk}")


def test_torch_backend_is_float64_exact():
    case = Case(2, 6, 5, 60, b_groups=3, c_groups=2)
    inputs = make_inputs(case, torch.float64, seed=7)
    ref = _reference(inputs, case)
    got = run_scan(partial(selective_scan, backend="torch"), inputs, case.softplus, torch.float64)
    assert_close_all(got, ref, 1e-12, "torch float64")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", TRITON_CASES, ids=lambda c: c.id)
def test_triton_backend_matches_reference(case, dtype):
    inputs = make_inputs(case, dtype, seed=zlib.crc32(case.id.encode()) + 1)
    ref = _reference(inputs, case)
    fn = partial(selective_scan, backend="triton") if ON_GPU else _triton_fn(block_l=16)
    got = run_scan(fn, inputs, case.softplus, dtype)
    assert_close_all(got, ref, TOL[dtype], f"triton {case.id} {dtype}")


@pytest.mark.parametrize("via_flip", [True, False], ids=["flip", "reverse_scan"])
def test_triton_reverse_scan_modes_agree_with_reference(via_flip):
    """Both ways of running the adjoint's reverse scan give the reference's gradients."""
    case = Case(1, 4, 4, 24)
    inputs = make_inputs(case, torch.float32, seed=11)
    ref = _reference(inputs, case)
    got = run_scan(_triton_fn(block_l=16, reverse_via_flip=via_flip), inputs, case.softplus,
                   torch.float32)
    assert_close_all(got, ref, TOL[torch.float32], f"triton via_flip={via_flip}")


def _candidate_tiles():
    from seqmamba_kernels.triton_scan import CANDIDATE_TILES

    return CANDIDATE_TILES


def _candidate_case(tiles, grouped: bool) -> Case:
    """Two channel blocks and two time tiles of ``tiles``: without groups the second block is
    half masked; with two groups each block must read its own group's B and C.  The
    interpreter's scans cost about 0.1 ms per state element, hence state 2 and batch 1."""
    bd, bl = tiles.block_d, tiles.block_l
    if ON_GPU:
        return (Case(1, 512, 16, 1000, b_groups=2, c_groups=2) if grouped
                else Case(2, 264, 16, 1000))
    if grouped:
        return Case(1, 2 * bd, 2, bl + 5, b_groups=2, c_groups=2)
    return Case(1, bd + bd // 2, 2, bl + 5)


@pytest.mark.parametrize("dtype,grouped", [(torch.float32, False), (torch.bfloat16, False),
                                           (torch.float32, True)], ids=["fp32", "bf16", "groups"])
@pytest.mark.parametrize("tiles", _candidate_tiles(),
                         ids=lambda t: f"d{t.block_d}l{t.block_l}w{t.num_warps}"
                         + ("rev" if t.reverse_via_flip is False else ""))
def test_triton_candidate_tiles_match_reference(tiles, dtype, grouped):
    """Every tile configuration a GPU sweep may time (triton_scan.CANDIDATE_TILES), values and
    gradients against the float64 reference, so any of them can become the default."""
    from seqmamba_kernels.triton_scan import selective_scan_triton

    case = _candidate_case(tiles, grouped)
    inputs = make_inputs(case, dtype, seed=zlib.crc32(f"{case.id}{tiles}".encode()))
    ref = _reference(inputs, case)
    got = run_scan(direct(selective_scan_triton, tiles=tiles), inputs, case.softplus, dtype)
    assert_close_all(got, ref, TOL[dtype], f"triton {tiles} {case.id} {dtype}")


def test_triton_public_api_default_tiles():
    """The default tile configuration, through selective_scan(backend='triton')."""
    case = Case(1, 4, 4, 70)
    inputs = make_inputs(case, torch.float32, seed=3)
    ref = _reference(inputs, case)
    got = run_scan(partial(selective_scan, backend="triton"), inputs, case.softplus,
                   torch.float32)
    assert_close_all(got, ref, TOL[torch.float32], "triton default tiles")


def test_reference_matches_autograd_finite_differences():
    """The oracle itself: autograd through the loop agrees with finite differences."""
    case = Case(1, 3, 2, 6, b_groups=None)
    x = make_inputs(case, torch.float64, seed=5)
    names = [k for k, v in x.items() if v is not None]
    leaves = [x[k].clone().requires_grad_() for k in names]

    def f(*args):
        kw = dict(zip(names, args))
        out, last = selective_scan_ref(**kw, delta_softplus=True, return_last_state=True)
        return out.sum() + (last ** 2).sum()

    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_bf16_accumulates_in_float32(backend):
    """A long bf16 scan stays as close to the reference as one rounding of the output."""
    case = Case(1, 8, 4, 3000, with_h0=False)
    inputs = make_inputs(case, torch.bfloat16, seed=9)
    ref = _reference(inputs, case)
    got = run_scan(partial(selective_scan, backend=backend), inputs, case.softplus,
                   torch.bfloat16)
    assert got[0].dtype == torch.bfloat16 and got[1].dtype == torch.float32
    assert_close_all(got, ref, TOL[torch.bfloat16], f"{backend} bf16 long")


def test_output_dtypes_and_devices():
    case = Case(1, 4, 2, 5)
    x = make_inputs(case, torch.float32, seed=0)
    for backend in ("reference", "torch"):
        out, last = selective_scan(*[x[k] for k in ("u", "delta", "A", "B", "C")],
                                   return_last_state=True, backend=backend)
        assert out.dtype == torch.float32 and out.shape == (1, 4, 5)
        assert last.dtype == torch.float32 and last.shape == (1, 4, 2)
        assert out.device == x["u"].device
    out = selective_scan(*[x[k].double() for k in ("u", "delta", "A", "B", "C")], backend="torch")
    assert out.dtype == torch.float64
