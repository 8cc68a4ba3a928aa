"""Triton kernels for the Mamba-2 scan (SSD) in its chunked form, forward and backward.

Per (batch row b, head h, chunk c of Q steps), with a_i the cumulative sum of dt A inside the
chunk (computed by torch), w_j = exp(a_last - a_j) dt_j and L_ij = exp(a_i - a_j) for j <= i::

    S_c   = (w x)^T B                          chunk state                (head_dim, state)
    H_c+1 = exp(a_last) H_c + S_c              state passing, H_0 = initial_state
    y_i   = exp(a_i) C_i H_c^T + sum_j (C_i . B_j) L_ij dt_j x_j  (+ D x_i, * silu(z_i))

Forward: ``_chunk_state_fwd`` (parallel over chunks), ``_state_pass_fwd`` (sequential over
chunks, overwrites each S_c with the H_c entering chunk c: the backward needs those, not S_c),
``_chunk_out_fwd`` (parallel).  Backward, the same three in reverse: ``_dstate_out_bwd`` gives
dL/dH_c from the outputs (parallel), ``_state_pass_bwd`` carries it back over the chunks
(sequential, giving dL/dS_c in place and dL/d a_last), ``_chunk_bwd`` the rest (parallel).

Layouts (the launcher makes every input contiguous): x, dx, g (the gradient of the ungated
output): (batch, length, heads, head_dim); B, C, dB, dC: (batch, length, groups, state);
dt, a (cumsum), ddt, da: (batch, heads, n_chunks, Q) float32, zero past the end; states, dS:
(batch, heads, n_chunks, head_dim, state) float32; initial/final states and their gradients:
(batch, heads, head_dim, state) float32.

Matrix products run on tl.dot in the inputs' dtype (bf16/fp16 tensor cores, float32
accumulation); fp32 inputs use DOT_PREC ("ieee" exact, or "tf32"; "emulate": see ``_mm``).
Elementwise work (decays, masks, exp) is float32.  Offsets that can pass 2^31 are built in
int64.
"""

import triton
import triton.language as tl


@triton.jit
def _mm(a, b, DT: tl.constexpr, DOT_PREC: tl.constexpr):
    # Both operands in the inputs' dtype: tensor cores for bf16/fp16, float32 accumulation.
    # DOT_PREC "emulate": rounded to DT, multiplied in float32, for the interpreter, whose
    # tl.dot multiplies bf16's raw 16-bit patterns as integers (triton 3.6).
    if DOT_PREC == "emulate":
        return tl.dot(a.to(DT).to(tl.float32), b.to(DT).to(tl.float32),
                      input_precision="ieee")
    else:
        return tl.dot(a.to(DT), b.to(DT), input_precision=DOT_PREC)


@triton.jit
def _chunk_coords(H, nc, Q, length, heads_per_group, BLOCK_Q: tl.constexpr):
    """(batch, head, group, chunk index into (b, h, c), positions in chunk, in-chunk mask,
    valid-step mask, row index b*L + t) of the program (pid 0: b*H + h, pid 1: chunk)."""
    pid_bh = tl.program_id(0)
    c = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    g = h // heads_per_group
    chunk = pid_bh.to(tl.int64) * nc + c
    offs_i = tl.arange(0, BLOCK_Q)
    in_chunk = offs_i < Q
    t = c * Q + offs_i
    valid = in_chunk & (t < length)
    rows = b.to(tl.int64) * length + t
    return b, h, g, chunk, offs_i, in_chunk, valid, rows


@triton.jit
def _pn_block(P, N, n_pblocks, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    """The (head_dim, state) tile of a program whose third grid axis numbers p-blocks x
    n-blocks: its channel and state offsets and their masks."""
    pid_p = tl.program_id(2) % n_pblocks
    pid_n = tl.program_id(2) // n_pblocks
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    return offs_p, offs_n, offs_p < P, offs_n < N


@triton.jit
def _chunk_state_fwd(
    x_ptr, B_ptr, dt_ptr, a_ptr, states_ptr,
    length, H, G, P, N, nc, Q, heads_per_group, n_pblocks,
    BLOCK_Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    """states[b, h, c, p, n] = sum_j w_j x_j[p] B_j[n]; grid (b*H, nc, p-blocks x n-blocks)."""
    DT = x_ptr.dtype.element_ty
    b, h, g, chunk, offs_i, in_chunk, valid, rows = _chunk_coords(
        H, nc, Q, length, heads_per_group, BLOCK_Q)
    offs_p, offs_n, mask_p, mask_n = _pn_block(P, N, n_pblocks, BLOCK_P, BLOCK_N)
    a = tl.load(a_ptr + chunk * Q + offs_i, mask=in_chunk, other=0.0)
    dt = tl.load(dt_ptr + chunk * Q + offs_i, mask=in_chunk, other=0.0)
    a_last = tl.load(a_ptr + chunk * Q + Q - 1)
    # a_last - a_i <= 0 for every step in the chunk (dt A <= 0 with softplus): no overflow
    w = tl.where(valid, tl.exp(a_last - a) * dt, 0.0)
    x = tl.load(x_ptr + (rows * H + h)[:, None] * P + offs_p[None, :],
                mask=valid[:, None] & mask_p[None, :], other=0.0)
    Bt = tl.load(B_ptr + (rows * G + g)[:, None] * N + offs_n[None, :],
                 mask=valid[:, None] & mask_n[None, :], other=0.0)
    S = _mm(tl.trans(x.to(tl.float32) * w[:, None]), Bt, DT, DOT_PREC)
    tl.store(states_ptr + chunk * P * N + offs_p[:, None] * N + offs_n[None, :], S,
             mask=mask_p[:, None] & mask_n[None, :])


@triton.jit
def _state_pass_fwd(
    states_ptr, a_ptr, h0_ptr, final_ptr, nc, Q, PN,
    HAS_H0: tl.constexpr, BLOCK: tl.constexpr,
):
    """H_{c+1} = exp(a_last[c]) H_c + S_c over the chunks, in place: states[c] becomes H_c,
    the state entering chunk c; final = H_nc.  grid (b*H, blocks of head_dim*state)."""
    pid_bh = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < PN
    h = tl.zeros((BLOCK,), tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + pid_bh * PN + offs, mask=mask, other=0.0).to(tl.float32)
    for c in range(nc):
        chunk = pid_bh * nc + c
        s = tl.load(states_ptr + chunk * PN + offs, mask=mask, other=0.0)
        tl.store(states_ptr + chunk * PN + offs, h, mask=mask)
        h = tl.exp(tl.load(a_ptr + chunk * Q + Q - 1)) * h + s
    tl.store(final_ptr + pid_bh * PN + offs, h, mask=mask)


@triton.jit
def _chunk_out_fwd(
    x_ptr, B_ptr, C_ptr, states_ptr, dt_ptr, a_ptr, D_ptr, z_ptr, out_ptr, pre_ptr,
    length, H, G, P, N, nc, Q, heads_per_group,
    HAS_D: tl.constexpr, D_PER_CHANNEL: tl.constexpr, HAS_Z: tl.constexpr,
    STORE_PRE: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr, DOT_PREC: tl.constexpr,
):
    """out = (exp(a) C H_c^T + (C B^T * L * dt) x + D x) * silu(z), in x's dtype; pre (when
    STORE_PRE, for the gate's backward) the same before the gate.  D: (H,) or (H, P).
    grid (b*H, nc, p-blocks)."""
    DT = x_ptr.dtype.element_ty
    b, h, g, chunk, offs_i, in_chunk, valid, rows = _chunk_coords(
        H, nc, Q, length, heads_per_group, BLOCK_Q)
    offs_p = tl.program_id(2) * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = offs_p < P
    a = tl.load(a_ptr + chunk * Q + offs_i, mask=in_chunk, other=0.0)
    dt = tl.load(dt_ptr + chunk * Q + offs_i, mask=in_chunk, other=0.0)
    bc_rows = (rows * G + g)[:, None] * N
    cb = tl.zeros((BLOCK_Q, BLOCK_Q), tl.float32)
    y_in = tl.zeros((BLOCK_Q, BLOCK_P), tl.float32)
    for k0 in range(0, N, BLOCK_N):
        offs_n = k0 + tl.arange(0, BLOCK_N)
        m_qn = valid[:, None] & (offs_n < N)[None, :]
        Ct = tl.load(C_ptr + bc_rows + offs_n[None, :], mask=m_qn, other=0.0)
        Bt = tl.load(B_ptr + bc_rows + offs_n[None, :], mask=m_qn, other=0.0)
        Hc = tl.load(states_ptr + chunk * P * N + offs_p[:, None] * N + offs_n[None, :],
                     mask=mask_p[:, None] & (offs_n < N)[None, :], other=0.0)
        cb += _mm(Ct, tl.trans(Bt), DT, DOT_PREC)
        y_in += _mm(Ct, tl.trans(Hc), DT, DOT_PREC)
    causal = (offs_i[:, None] >= offs_i[None, :]) & valid[None, :]
    # -inf above the diagonal before the exp: without softplus dt may be negative and
    # exp(a_i - a_j) for j > i could overflow
    decay = tl.exp(tl.where(causal, a[:, None] - a[None, :], float("-inf")))
    m = cb * decay * dt[None, :]
    x_offs = (rows * H + h)[:, None] * P + offs_p[None, :]
    m_qp = valid[:, None] & mask_p[None, :]
    x = tl.load(x_ptr + x_offs, mask=m_qp, other=0.0)
    y = _mm(m, x, DT, DOT_PREC) + y_in * tl.exp(a)[:, None]
    if HAS_D:
        if D_PER_CHANNEL:
            Dv = tl.load(D_ptr + h * P + offs_p, mask=mask_p, other=0.0).to(tl.float32)
            y += x.to(tl.float32) * Dv[None, :]
        else:
            y += x.to(tl.float32) * tl.load(D_ptr + h).to(tl.float32)
    if STORE_PRE:
        tl.store(pre_ptr + x_offs, y, mask=m_qp)
    if HAS_Z:
        zz = tl.load(z_ptr + x_offs, mask=m_qp, other=0.0).to(tl.float32)
        y = y * zz * tl.sigmoid(zz)
    tl.store(out_ptr + x_offs, y, mask=m_qp)


@triton.jit
def _dstate_out_bwd(
    g_ptr, C_ptr, a_ptr, dstates_ptr,
    length, H, G, P, N, nc, Q, heads_per_group, n_pblocks,
    BLOCK_Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    """dstates[b, h, c] = (g exp(a))^T C: the outputs' gradient on H_c, the state entering
    chunk c.  grid (b*H, nc, p-blocks x n-blocks)."""
    DT = g_ptr.dtype.element_ty
    b, h, g, chunk, offs_i, in_chunk, valid, rows = _chunk_coords(
        H, nc, Q, length, heads_per_group, BLOCK_Q)
    offs_p, offs_n, mask_p, mask_n = _pn_block(P, N, n_pblocks, BLOCK_P, BLOCK_N)
    a = tl.load(a_ptr + chunk * Q + offs_i, mask=in_chunk, other=0.0)
    gy = tl.load(g_ptr + (rows * H + h)[:, None] * P + offs_p[None, :],
                 mask=valid[:, None] & mask_p[None, :], other=0.0)
    Ct = tl.load(C_ptr + (rows * G + g)[:, None] * N + offs_n[None, :],
                 mask=valid[:, None] & mask_n[None, :], other=0.0)
    dH = _mm(tl.trans(gy.to(tl.float32) * tl.exp(a)[:, None]), Ct, DT, DOT_PREC)
    tl.store(dstates_ptr + chunk * P * N + offs_p[:, None] * N + offs_n[None, :], dH,
             mask=mask_p[:, None] & mask_n[None, :])


@triton.jit
def _state_pass_bwd(
    dstates_ptr, states_ptr, a_ptr, dfinal_ptr, dh0_ptr, dlast_ptr, nc, Q, PN,
    HAS_DFINAL: tl.constexpr, BLOCK: tl.constexpr,
):
    """Back over the chunks: dstates[c] holds dL/dH_c from the outputs on entry and dL/dS_c
    (the total gradient on H_{c+1}) on exit; dh0 = dL/dH_0; dlast[b, h, c, block] = this
    block's part of dL/d a_last[c] (the launcher sums the blocks).  grid (b*H, PN-blocks)."""
    pid_bh = tl.program_id(0).to(tl.int64)
    pid = tl.program_id(1)
    n_blocks = tl.num_programs(1)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < PN
    d = tl.zeros((BLOCK,), tl.float32)
    if HAS_DFINAL:
        d = tl.load(dfinal_ptr + pid_bh * PN + offs, mask=mask, other=0.0).to(tl.float32)
    for i in range(nc):
        chunk = pid_bh * nc + (nc - 1 - i)
        d_out = tl.load(dstates_ptr + chunk * PN + offs, mask=mask, other=0.0)
        h_in = tl.load(states_ptr + chunk * PN + offs, mask=mask, other=0.0)
        decay = tl.exp(tl.load(a_ptr + chunk * Q + Q - 1))
        tl.store(dstates_ptr + chunk * PN + offs, d, mask=mask)
        tl.store(dlast_ptr + chunk * n_blocks + pid, tl.sum(d * h_in) * decay)
        d = d_out + decay * d
    tl.store(dh0_ptr + pid_bh * PN + offs, d, mask=mask)


@triton.jit
def _chunk_bwd(
    x_ptr, B_ptr, C_ptr, states_ptr, dstates_ptr, dt_ptr, a_ptr, g_ptr,
    dx_ptr, dB_ptr, dC_ptr, ddt_ptr, da_ptr,
    length, H, G, P, N, nc, Q, heads_per_group,
    BLOCK_Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    """Every gradient of one (b, h, chunk) but the state passing's: dx (float32), ddt and da
    (gradients on dt and on the cumsum a, float32), and this head's share of dB, dC, added
    atomically to float32 buffers shared by the heads of a group.  The whole head_dim in one
    program (BLOCK_P >= P): ddt and da sum over it.  grid (b*H, nc)."""
    DT = x_ptr.dtype.element_ty
    b, h, g, chunk, offs_i, in_chunk, valid, rows = _chunk_coords(
        H, nc, Q, length, heads_per_group, BLOCK_Q)
    offs_p = tl.arange(0, BLOCK_P)
    mask_p = offs_p < P
    a = tl.load(a_ptr + chunk * Q + offs_i, mask=in_chunk, other=0.0)
    dt = tl.load(dt_ptr + chunk * Q + offs_i, mask=in_chunk, other=0.0)
    a_last = tl.load(a_ptr + chunk * Q + Q - 1)
    x_offs = (rows * H + h)[:, None] * P + offs_p[None, :]
    m_qp = valid[:, None] & mask_p[None, :]
    x = tl.load(x_ptr + x_offs, mask=m_qp, other=0.0)
    gy = tl.load(g_ptr + x_offs, mask=m_qp, other=0.0)
    causal = (offs_i[:, None] >= offs_i[None, :]) & valid[None, :]
    decay = tl.exp(tl.where(causal, a[:, None] - a[None, :], float("-inf")))
    dM = _mm(gy, tl.trans(x), DT, DOT_PREC)  # dL/dM_ij = g_i . x_j
    dCB = dM * decay * dt[None, :]  # dL/d(C_i . B_j)
    to_end = tl.exp(a_last - a)
    w = tl.where(valid, to_end * dt, 0.0)
    e_a = tl.exp(a)
    st = chunk * P * N + offs_p[:, None] * N
    bc_rows = (rows * G + g)[:, None] * N
    cb = tl.zeros((BLOCK_Q, BLOCK_Q), tl.float32)
    dx_state = tl.zeros((BLOCK_Q, BLOCK_P), tl.float32)
    da_out = tl.zeros((BLOCK_Q,), tl.float32)
    dw = tl.zeros((BLOCK_Q,), tl.float32)
    for k0 in range(0, N, BLOCK_N):
        offs_n = k0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        m_qn = valid[:, None] & mask_n[None, :]
        m_pn = mask_p[:, None] & mask_n[None, :]
        Ct = tl.load(C_ptr + bc_rows + offs_n[None, :], mask=m_qn, other=0.0)
        Bt = tl.load(B_ptr + bc_rows + offs_n[None, :], mask=m_qn, other=0.0)
        Hc = tl.load(states_ptr + st + offs_n[None, :], mask=m_pn, other=0.0)
        dS = tl.load(dstates_ptr + st + offs_n[None, :], mask=m_pn, other=0.0)
        cb += _mm(Ct, tl.trans(Bt), DT, DOT_PREC)
        dx_state += _mm(Bt, tl.trans(dS), DT, DOT_PREC)
        gH = _mm(gy, Hc, DT, DOT_PREC)  # (g_i H_c)[n]: C_i's gradient from the state, / e^a_i
        xdS = _mm(x, dS, DT, DOT_PREC)  # (x_j dS)[n]: B_j's gradient from S_c, / w_j
        da_out += tl.sum(Ct.to(tl.float32) * gH, axis=1)
        dw += tl.sum(Bt.to(tl.float32) * xdS, axis=1)
        dC = _mm(dCB, Bt, DT, DOT_PREC) + gH * e_a[:, None]
        dB = _mm(tl.trans(dCB), Ct, DT, DOT_PREC) + xdS * w[:, None]
        tl.atomic_add(dC_ptr + bc_rows + offs_n[None, :], dC, mask=m_qn)
        tl.atomic_add(dB_ptr + bc_rows + offs_n[None, :], dB, mask=m_qn)
    m = cb * decay * dt[None, :]
    dx = _mm(tl.trans(m), gy, DT, DOT_PREC) + dx_state * w[:, None]
    tl.store(dx_ptr + x_offs, dx, mask=m_qp)
    # dt_j enters M_ij (through dt_j) and S_c (through w_j)
    ddt = tl.sum(dM * cb * decay, axis=0) + dw * to_end
    # a enters M_ij as a_i - a_j, the state read-out as e^a_i, w_j as a_last - a_j
    q = dM * m
    dwa = dw * w
    da = tl.sum(q, axis=1) - tl.sum(q, axis=0) + da_out * e_a - dwa
    da = tl.where(offs_i == Q - 1, da + tl.sum(dwa), da)
    tl.store(ddt_ptr + chunk * Q + offs_i, ddt, mask=in_chunk)
    tl.store(da_ptr + chunk * Q + offs_i, da, mask=in_chunk)
