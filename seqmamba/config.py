"""``MambaConfig``: every hyper-parameter of a seqmamba model, saved as ``config.json``.

Defaults follow the Mamba paper and mamba-ssm (d_state 16, d_conv 4, expand 2,
dt_rank = ceil(d_model / 16), time steps initialised log-uniformly in [0.001, 0.1]).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

BIDIRECTIONAL_MODES = (None, "add", "ew_multiply")
ARCHS = ("mamba", "mamba2", "transformer")
FRONTENDS = ("linear", "filterbank")
POOLING_MODES = ("mean", "last", "max", "center")
# Fields earlier versions saved that no longer exist: training-time SpecAugment masks, which
# never changed a model's outputs outside training (removed: they lost their ablation), and
# the scan backend, a choice of the machine that runs the model, not of the model
# (``model.set_scan_backend``).
RETIRED_FIELDS = ("mask_bands", "mask_frames", "scan_backend")


@dataclass
class FrontendConfig:
    """How a waveform model turns raw float samples into positions.

    The samples are cut into non-overlapping frames of ``frame_size`` (at 16 kHz, 160 samples
    are 10 ms, so a second of audio is 100 positions).  ``kind`` says how a frame becomes a
    d_model vector: "linear" (one projection of the raw samples; sensitive to where a sound
    falls inside a frame) or "filterbank" (a learned bank of ``filters`` FIR filters of ``taps``
    taps run inside each frame, the log of each filter's mean output energy projected to
    d_model: a learned, phase-insensitive log spectrum, which generalises across voices far
    better).  Both are frame-local, so a waveform can be processed in chunks of whole frames
    with exactly the same result.  ``norm`` "cmn" subtracts from each filter's log energy its
    mean over the clip's voiced frames (cepstral mean normalisation): it removes a
    microphone's or a room's fixed colouring, which a model would otherwise learn as part of a
    speaker; the front end then depends on the whole clip, so chunked streaming is no longer
    exact."""

    frame_size: int = 160
    kind: str = "linear"
    filters: int = 64
    taps: int = 0  # 0: frame_size // 2
    norm: Optional[str] = None

    def check(self) -> None:
        for name in ("frame_size", "filters"):
            _positive("MambaConfig.frontend", name, getattr(self, name))
        if self.kind not in FRONTENDS:
            raise ValueError(f"MambaConfig.frontend.kind must be one of {FRONTENDS}, got "
                             f"{self.kind!r}")
        if self.norm not in (None, "cmn") or (self.norm and self.kind != "filterbank"):
            raise ValueError("MambaConfig.frontend.norm must be None or 'cmn' (with kind="
                             f"'filterbank'), got {self.norm!r}")
        if not (isinstance(self.taps, int) and 0 <= self.taps <= self.frame_size):
            raise ValueError(f"MambaConfig.frontend.taps must be 0 (auto) or 1..frame_size "
                             f"({self.frame_size}), got {self.taps!r}")


def _positive(owner: str, name: str, v) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{owner}.{name} must be a positive integer, got {v!r}")


# Earlier versions saved the front end as flat fields: (their name, FrontendConfig's)
FLAT_FRONTEND = (("frame_size", "frame_size"), ("frontend", "kind"),
                 ("frontend_filters", "filters"), ("frontend_taps", "taps"),
                 ("frontend_norm", "norm"))


@dataclass
class MambaConfig:
    # "mamba" (Mamba-1 mixers), "mamba2" (Mamba-2 mixers: a scalar decay per head of head_dim
    # channels, B and C shared by n_groups groups, seqmamba/mixer2.py), or "transformer": the
    # Transformer++ baseline (RoPE attention of n_head heads and a SwiGLU MLP per block,
    # seqmamba/transformer.py); all on the same embeddings, heads and checkpoints
    arch: str = "mamba"
    d_model: int = 256
    n_layer: int = 4
    n_head: int = 4
    # a causal transformer's attention span: each position sees the attn_window positions
    # ending at it (0: all before it); training commands set it to the training window, so
    # prediction along a chromosome sees the context it was trained on, in bounded memory
    attn_window: int = 0
    # Mamba-2: channels per head, B/C groups, and an optional [min, max] clamp of the time step
    head_dim: int = 64
    n_groups: int = 1
    dt_limit: Optional[list] = None
    vocab_size: int = 16
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: Union[int, str] = "auto"
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init: str = "random"  # "random" (uniform +-dt_rank^-0.5 * dt_scale) or "constant"
    dt_scale: float = 1.0
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    bias: bool = False  # biases of in_proj / out_proj
    rms_norm: bool = True  # RMSNorm, else LayerNorm
    norm_epsilon: float = 1e-5
    residual_in_fp32: bool = True
    tie_embeddings: bool = True
    pad_vocab_size_multiple: int = 8
    initializer_range: float = 0.02
    rescale_prenorm_residual: bool = True
    # Dropout on each block's output (before the residual add) and on the classifier input;
    # 0 (the Mamba default) for pretraining, 0.1-0.3 against overfitting small labelled sets.
    dropout: float = 0.0
    # Selection on (Mamba / S6) or off (time-invariant dt, B, C: an S4-like ablation).
    selective: bool = True
    # Bidirectional: None (causal), "add" or "ew_multiply" combine a forward and a reversed scan;
    # with ``bidirectional_weight_tie`` both directions share in_proj and out_proj (Caduceus).
    bidirectional: Optional[str] = None
    bidirectional_weight_tie: bool = True
    # Reverse-complement equivariance (Caduceus RC parameter sharing) for DNA: the hidden width
    # splits into a forward half and a reverse-complement half; needs ``complement_map``.
    rc_equivariant: bool = False
    complement_map: Optional[list] = None  # token id -> id of its complement (length vocab_size)
    # Under rc_equivariant, each block swaps the forward and reverse-complement halves of the
    # residual stream before its norm.  That is what Caduceus computes with fused_add_norm
    # (how its released PS checkpoints are set; see docs/model.md): still RC-equivariant, but
    # different logits from the same weights.  Only imported Caduceus checkpoints set it.
    rc_swap_halves: bool = False
    # Input: token ids into an embedding, or, with a ``frontend``, raw waveform samples.
    frontend: Optional[FrontendConfig] = None
    # Heads: number of classes and pooling for sequence classification.
    num_labels: int = 2
    # Token classification under rc_equivariant: label id -> the label it becomes on the other
    # strand (e.g. a + strand CDS class <-> the - strand one; strandless classes map to
    # themselves).  None: every class is strandless.
    label_complement: Optional[list] = None
    pooling: str = "mean"
    pad_token_id: Optional[int] = None
    # Free-form metadata a pipeline stores with the model (tokenizer, label names, task).
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self._check_types()

        def positive(name):
            _positive("MambaConfig", name, getattr(self, name))

        for name in ("d_model", "n_layer", "n_head", "vocab_size", "d_state", "d_conv", "expand",
                     "pad_vocab_size_multiple", "num_labels"):
            positive(name)
        if not isinstance(self.attn_window, int) or self.attn_window < 0:
            raise ValueError(f"MambaConfig.attn_window must be >= 0 (0: unlimited), got "
                             f"{self.attn_window!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"MambaConfig.arch must be one of {ARCHS}, got {self.arch!r}")
        if self.arch == "mamba2":
            _positive("MambaConfig", "head_dim", self.head_dim)
            _positive("MambaConfig", "n_groups", self.n_groups)
            if self.d_inner % self.head_dim or (self.d_inner // self.head_dim) % self.n_groups:
                raise ValueError(f"MambaConfig: a Mamba-2 model's d_inner ({self.d_inner}) must "
                                 f"split into heads of head_dim={self.head_dim}, a multiple of "
                                 f"n_groups={self.n_groups} of them")
            lim = self.dt_limit
            if lim is not None and not (isinstance(lim, (list, tuple)) and len(lim) == 2
                                        and 0 <= lim[0] < lim[1]):
                raise ValueError(f"MambaConfig.dt_limit must be [min, max] with 0 <= min < max, "
                                 f"got {lim!r}")
        if self.arch == "transformer":
            if self.d_model % (2 * self.n_head):
                raise ValueError(f"MambaConfig: a transformer's d_model ({self.d_model}) must "
                                 f"split into n_head={self.n_head} heads of even width (RoPE)")
            if self.rc_equivariant:
                raise ValueError("MambaConfig.rc_equivariant is built for Mamba blocks; use "
                                 "arch='mamba'")
        if self.dt_rank != "auto":
            positive("dt_rank")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"MambaConfig needs 0 < dt_min <= dt_max, got dt_min={self.dt_min}, "
                             f"dt_max={self.dt_max}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MambaConfig.dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.frontend, dict):  # as read from JSON
            self.frontend = FrontendConfig(**self.frontend)
        if self.frontend is not None:
            if not isinstance(self.frontend, FrontendConfig):
                raise ValueError("MambaConfig.frontend must be a FrontendConfig (or None for "
                                 f"token input), got {self.frontend!r}")
            self.frontend.check()
            if self.rc_equivariant:
                raise ValueError("MambaConfig.rc_equivariant is for DNA tokens, not waveform input")
        if self.dt_init not in ("random", "constant"):
            raise ValueError(f"MambaConfig.dt_init must be 'random' or 'constant', got {self.dt_init!r}")
        if self.bidirectional not in BIDIRECTIONAL_MODES:
            raise ValueError(f"MambaConfig.bidirectional must be one of {BIDIRECTIONAL_MODES}, "
                             f"got {self.bidirectional!r}")
        lc = self.label_complement
        if lc is not None and (not isinstance(lc, list) or len(lc) != self.num_labels
                               or sorted(set(lc)) != sorted(lc)
                               or not all(isinstance(j, int) and 0 <= j < len(lc) and lc[j] == i
                                          for i, j in enumerate(lc))):
            raise ValueError("MambaConfig.label_complement must map each of the num_labels="
                             f"{self.num_labels} classes to its other-strand class, and back "
                             f"(an involution), got {lc!r}")
        if self.pooling == "attention":
            raise ValueError("MambaConfig.pooling 'attention' was removed from seqmamba (it lost "
                             "its ablation to mean/max pooling); retrain with pooling 'max' or "
                             "'mean'")
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"MambaConfig.pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if self.rc_equivariant:
            if self.d_model % 2:
                raise ValueError("MambaConfig.rc_equivariant splits d_model into two halves; "
                                 f"d_model must be even, got {self.d_model}")
            cm = self.complement_map
            if cm is None or len(cm) != self.vocab_size:
                raise ValueError("MambaConfig.rc_equivariant needs complement_map, a list of "
                                 f"vocab_size={self.vocab_size} token ids (token -> its complement)")
            if sorted(cm) != list(range(self.vocab_size)) or any(cm[cm[i]] != i for i in range(len(cm))):
                raise ValueError("MambaConfig.complement_map must be a permutation of the vocabulary "
                                 "that is its own inverse (complement of complement = token)")
        if self.rc_swap_halves and not self.rc_equivariant:
            raise ValueError("MambaConfig.rc_swap_halves swaps the forward and reverse-complement "
                             "halves; it needs rc_equivariant=True")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"MambaConfig.pad_token_id={self.pad_token_id} is outside the "
                             f"vocabulary (0..{self.vocab_size - 1})")

    # ---- derived sizes ----
    def _check_types(self) -> None:
        """A config read from a file holds JSON values: a field of type int, float, bool or str
        must hold one (an int is accepted for a float), so a wrong type is one clear error
        here instead of a failure deep inside the model's construction."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            t, v = hints[f.name], getattr(self, f.name)
            if t is bool:
                ok = isinstance(v, bool)
            elif t is int:
                ok = isinstance(v, int) and not isinstance(v, bool)
            elif t is float:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            elif t is str:
                ok = isinstance(v, str)
            else:
                continue
            if not ok:
                raise ValueError(f"MambaConfig.{f.name} must be {t.__name__}, got {v!r}")

    @property
    def mixer_width(self) -> int:
        """Channels one mixer sees: d_model, or half of it under RC parameter sharing."""
        return self.d_model // 2 if self.rc_equivariant else self.d_model

    @property
    def d_ff(self) -> int:
        """A transformer's SwiGLU width: 8/3 d_model (as many weights as a 4 d_model MLP),
        rounded up to a multiple of 8."""
        return -(-8 * self.d_model // 3 // 8) * 8

    @property
    def d_inner(self) -> int:
        return self.expand * self.mixer_width

    @property
    def dt_rank_value(self) -> int:
        return math.ceil(self.mixer_width / 16) if self.dt_rank == "auto" else int(self.dt_rank)

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return ((self.vocab_size + m - 1) // m) * m

    @property
    def input_type(self) -> str:
        """"waveform" (raw samples through ``frontend``) or "tokens"."""
        return "tokens" if self.frontend is None else "waveform"

    @property
    def causal(self) -> bool:
        """True when position t sees only positions <= t (needed for next-token LM and caches)."""
        return self.bidirectional is None and not self.rc_equivariant

    # ---- (de)serialisation ----
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model_type"] = "seqmamba"
        d["input_type"] = self.input_type  # for readers of config.json; derived, not read back
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MambaConfig":
        d = dict(d)
        d.pop("model_type", None)
        d.pop("architecture", None)
        for name in RETIRED_FIELDS:
            d.pop(name, None)
        input_type = d.pop("input_type", None)
        flat = {new: d.pop(old) for old, new in FLAT_FRONTEND
                if old in d and not (old == "frontend" and not isinstance(d[old], str))}
        if input_type not in (None, "tokens", "waveform"):
            raise ValueError(f"MambaConfig input_type must be 'tokens' or 'waveform', got "
                             f"{input_type!r}")
        if input_type == "waveform" and not isinstance(d.get("frontend"), dict):
            d["frontend"] = flat  # written by an earlier version: flat front-end fields
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown MambaConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    def to_json(self, path: Union[str, Path], architecture: Optional[str] = None) -> None:
        d = self.to_dict()
        if architecture:
            d["architecture"] = architecture
        Path(path).write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, path: Union[str, Path]) -> "MambaConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes) -> "MambaConfig":
        return dataclasses.replace(self, **changes)
