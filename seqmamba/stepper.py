"""The recurrent step of a whole causal token model, planned once and run per token.

Generating one token from a small model is a few dozen tensor operations on tensors of a few
thousand elements, so Python overhead (module calls, attribute look-ups, dtype checks) costs
more than the arithmetic.  :class:`RecurrentStepper` reads every weight once into plain local
structures and runs the same arithmetic as the model's forward pass on one position: the tests
compare it with full forward passes.  The state update is the model's scan backend's
``selective_state_update`` (``seqmamba_kernels``), or ``ssd_state_update`` for Mamba-2 blocks;
``compile=True`` compiles this same step.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

from seqmamba_kernels import ssd_state_update
from seqmamba_kernels.dispatch import state_update_fn

from .cache import InferenceCache


class _Layer(NamedTuple):
    norm_w: torch.Tensor
    norm_b: Optional[torch.Tensor]  # LayerNorm bias, None for RMSNorm
    eps: float
    in_w: torch.Tensor
    in_b: Optional[torch.Tensor]
    conv_last: torch.Tensor  # (d_inner,) weight of the newest input
    conv_rest: torch.Tensor  # (d_inner, d_conv - 1) weights of the cached inputs
    conv_b: Optional[torch.Tensor]
    proj_w: torch.Tensor  # (d_inner + 2 * d_state, d_inner): dt (through dt_proj), B, C at once
    proj_b: Optional[torch.Tensor]  # the dt bias as the fused matmul's bias (float32 models)
    dt_b: Optional[torch.Tensor]  # else the dt bias, added in float32 by the state update
    A: torch.Tensor
    D: torch.Tensor
    out_w: torch.Tensor
    out_b: Optional[torch.Tensor]


class _Layer2(NamedTuple):
    """A Mamba-2 block (``seqmamba.mixer2.Mamba2Mixer``) planned for one step."""
    norm_w: torch.Tensor
    norm_b: Optional[torch.Tensor]
    eps: float
    in_w: torch.Tensor  # (d_inner + conv_dim + heads, d_model): z, xBC, dt at once
    in_b: Optional[torch.Tensor]
    conv_last: torch.Tensor  # (conv_dim,)
    conv_rest: torch.Tensor  # (conv_dim, d_conv - 1)
    conv_b: Optional[torch.Tensor]
    dt_bias: torch.Tensor  # (heads,) float32
    dt_limit: Optional[Tuple[float, float]]
    A: torch.Tensor  # (heads,)
    D: torch.Tensor  # (heads,)
    gate_w: torch.Tensor  # (d_inner,) float32, the gated RMSNorm's weight
    gate_groups: int
    gate_eps: float
    out_w: torch.Tensor
    out_b: Optional[torch.Tensor]


def _norm(x, w, b, eps):
    if b is None:  # RMSNorm, in float32: one fused op instead of five
        return F.rms_norm(x, (x.shape[-1],), w, eps)
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


class RecurrentStepper:
    """tokens (batch,) + cache -> next-token logits (batch, vocab_size); updates the cache."""

    def __init__(self, model, compile: bool = False):
        cfg = model.config
        if not (cfg.causal and cfg.selective and cfg.input_type == "tokens"):
            raise ValueError("the recurrent stepper needs a causal, selective token model")
        bb = model.backbone
        self.cfg = cfg
        self.emb = bb.embedding.weight
        self.head = model.lm_head.weight[: cfg.vocab_size]
        self.dtype = self.emb.dtype
        self.layers: List[tuple] = []
        for layer in bb.layers:
            mx, nm = layer.mixer, layer.norm
            w = mx.conv1d.weight[:, 0]
            common = (nm.weight.float(), getattr(nm, "bias", None), nm.eps, mx.in_proj.weight,
                      mx.in_proj.bias, w[:, -1], w[:, :-1], mx.conv1d.bias)
            if cfg.arch == "mamba2":
                lim = None if cfg.dt_limit is None else tuple(cfg.dt_limit)
                self.layers.append(_Layer2(
                    *common, mx.dt_bias.float(), lim, -torch.exp(mx.A_log.float()),
                    mx.D.float(), mx.norm.weight.float(), mx.norm.groups, mx.norm.eps,
                    mx.out_proj.weight, mx.out_proj.bias))
                continue
            self.layers.append(_Layer(*common, *self._fused_x_proj(mx),
                                      -torch.exp(mx.A_log.float()), mx.D.float(),
                                      mx.out_proj.weight, mx.out_proj.bias))
        nf = bb.norm_f
        self.norm_f = (nf.weight.float(), getattr(nf, "bias", None), nf.eps)
        self.d_inner, self.r, self.n = cfg.d_inner, cfg.dt_rank_value, cfg.d_state
        self.fp32_residual = cfg.residual_in_fp32
        if compile and self.dtype != torch.float32:
            raise ValueError("RecurrentStepper(compile=True) supports float32 models only")
        # the model's scan backend does the state update; compiled, the backend's traceable
        # form (on a CPU the torch backend's update, which inductor fuses with the rest)
        self.update = state_update_fn(model.scan_backend, self.emb.device, self.dtype,
                                      traceable=compile)
        self._run = self._step
        if compile:
            # one fused graph instead of ~80 dispatched ops: ~2-3x faster per step on a CPU,
            # after a one-off compilation of about 20 s (needs a C++ compiler for inductor)
            self._run = torch.compile(self._step, dynamic=False, fullgraph=True)

    @staticmethod
    def _fused_x_proj(mx) -> tuple:
        """x_proj then dt_proj on its first dt_rank rows are two linear maps in a row; their
        product is one (d_inner, d_inner) map, so dt, B and C come from a single matmul.
        Returns (weight, bias, dt_bias): in float32 the dt bias rides on the matmul (bias,
        None); in lower precision it stays a float32 add in the state update (None, dt_bias)."""
        n = mx.A_log.shape[1]
        xw = mx.x_proj.weight
        r = xw.shape[0] - 2 * n
        with torch.no_grad():
            dt_w = (mx.dt_proj.weight.float() @ xw[:r].float()).to(xw.dtype)
            w = torch.cat([dt_w, xw[r:]], dim=0)
            dt_b = mx.dt_proj.bias.float()
            if xw.dtype == torch.float32:
                return w, torch.cat([dt_b, dt_b.new_zeros(2 * n)]), None
        return w, None, dt_b

    def _step(self, tokens: torch.Tensor, convs: List[torch.Tensor],
              ssms: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """tokens (batch,) -> (logits (batch, vocab_size), each layer's next conv window
        (batch, d_inner, d_conv - 1); a Mamba-2 block's: (batch, conv_dim, d_conv - 1)); each
        layer's state (batch, d_inner, d_state), a Mamba-2 block's (batch, heads, head_dim,
        d_state), is updated in place by the state update.

        A function of tensors only (no Python object is mutated inside), so the eager step and
        the compiled one are this same code; in float32 the casts are no-ops."""
        di, n, dtype = self.d_inner, self.n, self.dtype
        hidden = F.embedding(tokens, self.emb)
        residual, new_convs = None, []
        for L, conv, ssm in zip(self.layers, convs, ssms):
            residual = hidden if residual is None else hidden + residual
            if self.fp32_residual:
                residual = residual.float()
            h = _norm(residual.float(), L.norm_w, L.norm_b, L.eps).to(dtype)
            if isinstance(L, _Layer2):
                hidden, conv = self._mamba2(L, h, conv, ssm)
                new_convs.append(conv)
                continue
            xz = F.linear(h, L.in_w, L.in_b)
            x, z = xz[:, :di], xz[:, di:]
            xc = torch.addcmul((conv * L.conv_rest).sum(-1), x, L.conv_last)
            if L.conv_b is not None:
                xc = xc + L.conv_b
            new_convs.append(torch.cat([conv[..., 1:], x[..., None]], dim=-1))
            x = F.silu(xc)
            dbc = F.linear(x, L.proj_w, L.proj_b)
            y = self.update(ssm, x, dbc[:, :di], L.A, dbc[:, di:di + n], dbc[:, di + n:], L.D,
                            z, L.dt_b, True)
            hidden = F.linear(y, L.out_w, L.out_b)
        out = _norm((hidden + residual).float(), *self.norm_f).to(dtype)
        return F.linear(out, self.head), new_convs

    def _mamba2(self, L: _Layer2, h: torch.Tensor, conv: torch.Tensor,
                ssm: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One Mamba-2 block on one position: h (batch, d_model) -> (its output (batch,
        d_model), the next conv window (batch, conv_dim, d_conv - 1)); ssm (batch, heads,
        head_dim, d_state) is updated in place.  The arithmetic of Mamba2Mixer.forward."""
        b, di = h.shape[0], self.d_inner
        heads, gn = ssm.shape[1], (L.conv_last.shape[0] - di) // 2
        z, xbc, dt = torch.split(F.linear(h, L.in_w, L.in_b), [di, di + 2 * gn, heads], -1)
        xc = torch.addcmul((conv * L.conv_rest).sum(-1), xbc, L.conv_last)
        if L.conv_b is not None:
            xc = xc + L.conv_b
        new_conv = torch.cat([conv[..., 1:], xbc[..., None]], dim=-1)
        x, B, C = torch.split(F.silu(xc), [di, gn, gn], dim=-1)
        groups = gn // ssm.shape[-1]
        dt_bias, softplus = L.dt_bias, True
        if L.dt_limit is not None:  # clamped after the softplus, as the mixer does
            dt = F.softplus(dt.float() + dt_bias).clamp(*L.dt_limit)
            dt_bias, softplus = None, False
        y = ssd_state_update(ssm, x.view(b, heads, -1), dt, L.A, B.view(b, groups, -1),
                             C.view(b, groups, -1), L.D, None, dt_bias, softplus)
        g = y.reshape(b, L.gate_groups, -1).float() * F.silu(z.float()).view(b, L.gate_groups, -1)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + L.gate_eps)
        y = (L.gate_w * g.view(b, di)).to(self.dtype)
        return F.linear(y, L.out_w, L.out_b), new_conv

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, cache: InferenceCache) -> torch.Tensor:
        for lc in cache.layers:  # updated in place: a dense float32 tensor
            if lc.ssm.dtype != torch.float32 or not lc.ssm.is_contiguous():
                lc.ssm = lc.ssm.float().contiguous()
        logits, convs = self._run(tokens, [lc.conv.to(self.dtype) for lc in cache.layers],
                                  [lc.ssm for lc in cache.layers])
        for lc, conv in zip(cache.layers, convs):
            lc.conv = conv
        cache.seqlen_offset += 1
        return logits
