"""Triton kernels for the selective scan: fused forward, fused backward, one recurrent step.

Layout shared by the scan kernels: one program per (batch row, block of BLOCK_D channels).
It walks the sequence in tiles of BLOCK_L steps, holding a (BLOCK_D, BLOCK_N, BLOCK_L) tile
of the recurrence in registers and scanning it along the time axis with
``tl.associative_scan`` over pairs (a, b) -> h = a h_prev + b.  The carried state enters the
tile by folding ``a_0 h`` into the first element, so the scan's second output *is* the state.
All arithmetic is float32 whatever the input dtype; stores cast back.

Every channel of one program belongs to the same B/C group (the wrapper picks BLOCK_D to
divide dim / groups), so B and C are loaded as one (BLOCK_N, BLOCK_L) tile per program.

The backward kernel needs a reverse-in-time scan for the adjoint.  ``REVERSE_VIA_FLIP`` picks
how: flip the tile and scan forward (correct by construction, but each ``tl.flip`` costs log2
(BLOCK_L) reductions, very slow under the interpreter), or ``associative_scan(..., reverse=True)``,
whose GPU lowering has been reported wrong for non-commutative combine functions
(triton-lang/triton#4362).  The interpreter implements reverse=True as flip-scan-flip, so CI
checks both modes; ``benchmarks/gpu_check.sh`` checks both on a real GPU.

These kernels trust their inputs; ``seqmamba_kernels.triton_scan`` validates and launches them.
"""

import triton
import triton.language as tl


@triton.jit
def _affine_combine(a_prev, b_prev, a_next, b_next):
    # Compose h -> a_prev h + b_prev, then h -> a_next h + b_next.
    return a_prev * a_next, a_next * b_prev + b_next


@triton.jit
def _reverse_affine_scan(a, b, VIA_FLIP: tl.constexpr):
    """x_t = a_t x_{t+1} + b_t along axis 2 (the last column has no successor); returns x."""
    if VIA_FLIP:
        _, x = tl.associative_scan((tl.flip(a, 2), tl.flip(b, 2)), 2, _affine_combine)
        x = tl.flip(x, 2)
    else:
        # reverse=True combines (accumulated-from-later, current), as jax.lax does.
        _, x = tl.associative_scan((a, b), 2, _affine_combine, reverse=True)
    return x


@triton.jit
def _softplus(x):
    """softplus with torch's threshold of 20, and log1p accuracy for large negative x."""
    e = tl.exp(tl.minimum(x, 20.0))
    w = 1.0 + e
    # log1p(e) = log(w) * e / (w - 1) recovers the bits that 1 + e rounds away.
    den = tl.where(w == 1.0, 1.0, w - 1.0)
    lp = tl.where(w == 1.0, e, tl.log(w) * (e / den))
    return tl.where(x > 20.0, x, lp)


@triton.jit
def _load_dt(delta_ptr, offs, mask, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """Return (pre-activation, dt) for a (BLOCK_D, BLOCK_L) tile; dt is 0 where masked."""
    pre = tl.load(delta_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        pre = pre + bias[:, None]
    dt = pre
    if SOFTPLUS:
        dt = _softplus(pre)
    return pre, tl.where(mask, dt, 0.0)


@triton.jit
def _load_channel_params(A_ptr, bias_ptr, D_ptr, B_ptr, offs_d, mask_d, dn_offs, mask_dn,
                         HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr, B_TI: tl.constexpr,
                         BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program's per-channel parameters in float32: A (BLOCK_D, BLOCK_N), delta_bias and D
    (BLOCK_D,), and time-invariant B (BLOCK_D, BLOCK_N); absent ones are zeros."""
    A = tl.load(A_ptr + dn_offs, mask=mask_dn, other=0.0).to(tl.float32)
    bias = tl.zeros((BLOCK_D,), tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dv = tl.zeros((BLOCK_D,), tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Bti = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    if B_TI:
        Bti = tl.load(B_ptr + dn_offs, mask=mask_dn, other=0.0).to(tl.float32)
    return A, bias, Dv, Bti


@triton.jit
def _scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr,
    out_ptr, last_ptr, states_ptr,
    dim, length, nstate, dim_per_gb, dim_per_gc, n_tiles,
    s_xb, s_xd, s_xl,
    s_bb, s_bg, s_bn, s_bl,
    s_cb, s_cg, s_cn, s_cl,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr,
    SOFTPLUS: tl.constexpr, B_TI: tl.constexpr, STORE_STATES: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """u, delta, z, out: (batch, dim, length) with strides s_x*; A: (dim, nstate) contiguous;
    B: (batch, groups, nstate, length) with strides s_b*, or (dim, nstate) contiguous if B_TI;
    C: (batch, groups, nstate, length); D, bias: (dim,); h0, last: (batch, dim, nstate)
    contiguous; states: (batch, dim, n_tiles, nstate) fp32, the state before each tile."""
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_j = tl.arange(0, BLOCK_L)
    mask_d = offs_d < dim
    mask_n = offs_n < nstate
    mask_dn = mask_d[:, None] & mask_n[None, :]
    dn_offs = offs_d[:, None] * nstate + offs_n[None, :]
    A, bias, Dv, Bti = _load_channel_params(A_ptr, bias_ptr, D_ptr, B_ptr, offs_d, mask_d,
                                            dn_offs, mask_dn, HAS_BIAS, HAS_D, B_TI,
                                            BLOCK_D, BLOCK_N)
    state_offs = pid_b * dim * nstate + dn_offs
    h = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + state_offs, mask=mask_dn, other=0.0).to(tl.float32)

    group_b = (pid_d * BLOCK_D) // dim_per_gb
    group_c = (pid_d * BLOCK_D) // dim_per_gc
    B_base = B_ptr + pid_b * s_bb + group_b * s_bg
    C_base = C_ptr + pid_b * s_cb + group_c * s_cg
    row = pid_b * s_xb + offs_d[:, None] * s_xd
    first = offs_j[None, None, :] == 0
    last_col = offs_j[None, None, :] == BLOCK_L - 1

    for c in range(n_tiles):
        offs_l = c * BLOCK_L + offs_j
        mask_l = offs_l < length
        m2 = mask_d[:, None] & mask_l[None, :]
        mnl = mask_n[:, None] & mask_l[None, :]
        if STORE_STATES:
            st_offs = ((pid_b * dim + offs_d[:, None]) * n_tiles + c) * nstate + offs_n[None, :]
            tl.store(states_ptr + st_offs, h, mask=mask_dn)
        x_offs = row + offs_l[None, :] * s_xl
        u = tl.load(u_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
        _, dt = _load_dt(delta_ptr, x_offs, m2, bias, HAS_BIAS, SOFTPLUS)
        # Beyond the end dt = 0, so a = 1 and b = 0: the state passes through unchanged.
        a = tl.exp(dt[:, None, :] * A[:, :, None])
        if B_TI:
            b = (dt * u)[:, None, :] * Bti[:, :, None]
        else:
            Bt = tl.load(B_base + offs_n[:, None] * s_bn + offs_l[None, :] * s_bl,
                         mask=mnl, other=0.0).to(tl.float32)
            b = (dt * u)[:, None, :] * Bt[None, :, :]
        b = tl.where(first, b + a * h[:, :, None], b)
        _, H = tl.associative_scan((a, b), 2, _affine_combine)
        Ct = tl.load(C_base + offs_n[:, None] * s_cn + offs_l[None, :] * s_cl,
                     mask=mnl, other=0.0).to(tl.float32)
        y = tl.sum(H * Ct[None, :, :], axis=1)
        if HAS_D:
            y += Dv[:, None] * u
        if HAS_Z:
            zz = tl.load(z_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
            y = y * zz * tl.sigmoid(zz)
        tl.store(out_ptr + x_offs, y, mask=m2)
        h = tl.sum(tl.where(last_col, H, 0.0), axis=2)
    tl.store(last_ptr + state_offs, h, mask=mask_dn)


@triton.jit
def _scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, states_ptr,
    dout_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, dh0_ptr,
    dim, length, nstate, dim_per_gb, dim_per_gc, n_tiles,
    s_xb, s_xd, s_xl,
    s_bb, s_bg, s_bn, s_bl,
    s_cb, s_cg, s_cn, s_cl,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_DLAST: tl.constexpr,
    SOFTPLUS: tl.constexpr, B_TI: tl.constexpr, REVERSE_VIA_FLIP: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """Gradients of the forward kernel.  Shapes and strides as in ``_scan_fwd_kernel``;
    dout, du, ddelta, dz share the strides s_x*; dB, dC are float32 buffers with B's / C's
    strides, accumulated atomically across programs; dA (dim, nstate), dD, dbias (dim,) and
    dB for time-invariant B (dim, nstate) are float32 and accumulated atomically over the
    batch; dh0 (batch, dim, nstate) float32 receives dL/d initial_state."""
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_j = tl.arange(0, BLOCK_L)
    mask_d = offs_d < dim
    mask_n = offs_n < nstate
    mask_dn = mask_d[:, None] & mask_n[None, :]
    dn_offs = offs_d[:, None] * nstate + offs_n[None, :]
    A, bias, Dv, Bti = _load_channel_params(A_ptr, bias_ptr, D_ptr, B_ptr, offs_d, mask_d,
                                            dn_offs, mask_dn, HAS_BIAS, HAS_D, B_TI,
                                            BLOCK_D, BLOCK_N)
    state_offs = pid_b * dim * nstate + dn_offs
    # carry = dL/dh at the last step of the current tile coming from later steps.
    carry = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    if HAS_DLAST:
        carry = tl.load(dlast_ptr + state_offs, mask=mask_dn, other=0.0).to(tl.float32)

    dA_acc = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    dB_acc = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), tl.float32)

    group_b = (pid_d * BLOCK_D) // dim_per_gb
    group_c = (pid_d * BLOCK_D) // dim_per_gc
    b_offs0 = pid_b * s_bb + group_b * s_bg
    c_offs0 = pid_b * s_cb + group_c * s_cg
    row = pid_b * s_xb + offs_d[:, None] * s_xd
    first = offs_j[None, None, :] == 0
    last_col = offs_j[None, None, :] == BLOCK_L - 1

    for i in range(n_tiles):
        c = n_tiles - 1 - i
        offs_l = c * BLOCK_L + offs_j
        mask_l = offs_l < length
        m2 = mask_d[:, None] & mask_l[None, :]
        mnl = mask_n[:, None] & mask_l[None, :]
        st_offs = ((pid_b * dim + offs_d[:, None]) * n_tiles + c) * nstate + offs_n[None, :]
        h0 = tl.load(states_ptr + st_offs, mask=mask_dn, other=0.0)

        # Recompute the tile's states from the stored state at its start, as h_{t-1}: scanning
        # the previous step's terms gives the state before each step exactly, whereas
        # h_t - dt_t B_t u_t would cancel when the fresh input dominates a decayed state.
        x_offs = row + offs_l[None, :] * s_xl
        u = tl.load(u_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
        pre, dt = _load_dt(delta_ptr, x_offs, m2, bias, HAS_BIAS, SOFTPLUS)
        a = tl.exp(dt[:, None, :] * A[:, :, None])
        offs_p = offs_l - 1
        m2p = mask_d[:, None] & ((offs_j > 0) & mask_l)[None, :]
        xp_offs = row + offs_p[None, :] * s_xl
        u_p = tl.load(u_ptr + xp_offs, mask=m2p, other=0.0).to(tl.float32)
        _, dt_p = _load_dt(delta_ptr, xp_offs, m2p, bias, HAS_BIAS, SOFTPLUS)
        a_p = tl.exp(dt_p[:, None, :] * A[:, :, None])
        if B_TI:
            Bv = Bti[:, :, None]
            Bv_p = Bv
        else:
            b_rows = B_ptr + b_offs0 + offs_n[:, None] * s_bn
            Bt = tl.load(b_rows + offs_l[None, :] * s_bl, mask=mnl, other=0.0).to(tl.float32)
            Bv = Bt[None, :, :]
            mnlp = mask_n[:, None] & ((offs_j > 0) & mask_l)[None, :]
            Bv_p = tl.load(b_rows + offs_p[None, :] * s_bl, mask=mnlp,
                           other=0.0).to(tl.float32)[None, :, :]
        b_p = tl.where(first, h0[:, :, None], (dt_p * u_p)[:, None, :] * Bv_p)
        _, H_prev = tl.associative_scan((a_p, b_p), 2, _affine_combine)
        H = a * H_prev + (dt * u)[:, None, :] * Bv
        Ct = tl.load(C_ptr + c_offs0 + offs_n[:, None] * s_cn + offs_l[None, :] * s_cl,
                     mask=mnl, other=0.0).to(tl.float32)

        g = tl.load(dout_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
        if HAS_Z:
            zz = tl.load(z_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
            sz = tl.sigmoid(zz)
            y = tl.sum(H * Ct[None, :, :], axis=1) + Dv[:, None] * u
            tl.store(dz_ptr + x_offs, g * y * sz * (1.0 + zz * (1.0 - sz)), mask=m2)
            g = g * zz * sz
        du = g * Dv[:, None]
        if HAS_D:
            dD_acc += tl.sum(g * u, axis=1)

        # dC_t = sum over this program's channels of g_t h_t (one group per program).
        dC_t = tl.sum(g[:, None, :] * H, axis=0)
        tl.atomic_add(dC_ptr + c_offs0 + offs_n[:, None] * s_cn + offs_l[None, :] * s_cl,
                      dC_t, mask=mnl)

        # Adjoint: lam_t = g_t C_t + a_{t+1} lam_{t+1}; inside the tile a_{t+1} comes from the
        # next step's delta, at the tile's last column the carry from the later tile enters.
        offs_next = offs_l + 1
        m2n = mask_d[:, None] & ((offs_next < length) & (offs_j < BLOCK_L - 1))[None, :]
        _, dt_next = _load_dt(delta_ptr, row + offs_next[None, :] * s_xl, m2n, bias,
                              HAS_BIAS, SOFTPLUS)
        a_next = tl.exp(dt_next[:, None, :] * A[:, :, None])
        dh = g[:, None, :] * Ct[None, :, :]
        dh = tl.where(last_col, dh + carry[:, :, None], dh)
        lam = _reverse_affine_scan(a_next, dh, REVERSE_VIA_FLIP)
        carry = tl.sum(tl.where(first, a * lam, 0.0), axis=2)

        # dL/d(dt A) = lam_t * a_t * h_{t-1}; zero past the end.
        q = tl.where(m2[:, None, :], lam * a * H_prev, 0.0)
        dA_acc += tl.sum(q * dt[:, None, :], axis=2)
        ddt = tl.sum(q * A[:, :, None], axis=1)
        sB = tl.sum(lam * Bv, axis=1)
        ddt += sB * u
        du += sB * dt
        lam_x = lam * (dt * u)[:, None, :]
        if B_TI:
            dB_acc += tl.sum(lam_x, axis=2)
        else:
            tl.atomic_add(dB_ptr + b_offs0 + offs_n[:, None] * s_bn + offs_l[None, :] * s_bl,
                          tl.sum(lam_x, axis=0), mask=mnl)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(pre)
        ddt = tl.where(m2, ddt, 0.0)
        if HAS_BIAS:
            dbias_acc += tl.sum(ddt, axis=1)
        tl.store(du_ptr + x_offs, du, mask=m2)
        tl.store(ddelta_ptr + x_offs, ddt, mask=m2)

    tl.store(dh0_ptr + state_offs, carry, mask=mask_dn)
    tl.atomic_add(dA_ptr + dn_offs, dA_acc, mask=mask_dn)
    if B_TI:
        tl.atomic_add(dB_ptr + dn_offs, dB_acc, mask=mask_dn)
    if HAS_D:
        tl.atomic_add(dD_ptr + offs_d, dD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.atomic_add(dbias_ptr + offs_d, dbias_acc, mask=mask_d)


@triton.jit
def _state_update_kernel(
    state_ptr, x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr,
    dim, nstate, dim_per_gb, dim_per_gc,
    s_bb, s_bg, s_cb, s_cg,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """One step, in place.  state: (batch, dim, nstate) contiguous; x, dt, z, out: (batch, dim)
    contiguous; A: (dim, nstate); B, C: (batch, groups, nstate) with strides s_*b, s_*g, 1."""
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_n = offs_n < nstate
    mask_dn = mask_d[:, None] & mask_n[None, :]
    dn_offs = offs_d[:, None] * nstate + offs_n[None, :]
    st = state_ptr + pid_b * dim * nstate + dn_offs

    h = tl.load(st, mask=mask_dn, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + pid_b * dim + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    dt = tl.load(dt_ptr + pid_b * dim + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        dt += tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if SOFTPLUS:
        dt = _softplus(dt)
    A = tl.load(A_ptr + dn_offs, mask=mask_dn, other=0.0).to(tl.float32)
    gb = offs_d // dim_per_gb
    gc = offs_d // dim_per_gc
    Bv = tl.load(B_ptr + pid_b * s_bb + gb[:, None] * s_bg + offs_n[None, :],
                 mask=mask_dn, other=0.0).to(tl.float32)
    Cv = tl.load(C_ptr + pid_b * s_cb + gc[:, None] * s_cg + offs_n[None, :],
                 mask=mask_dn, other=0.0).to(tl.float32)
    h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * Bv
    tl.store(st, h, mask=mask_dn)
    y = tl.sum(h * Cv, axis=1)
    if HAS_D:
        y += x * tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_Z:
        zz = tl.load(z_ptr + pid_b * dim + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        y = y * zz * tl.sigmoid(zz)
    tl.store(out_ptr + pid_b * dim + offs_d, y, mask=mask_d)
