"""seqmamba: Mamba selective state-space models for million-length DNA and raw audio.

The selective-scan engine lives in the ``seqmamba_kernels`` package; this package holds the model:

    from seqmamba import MambaConfig, MambaLMHeadModel
    model = MambaLMHeadModel(MambaConfig(d_model=128, n_layer=2, vocab_size=16))
    logits = model(input_ids).logits                    # (batch, length, vocab_size)
    model.save_pretrained("run/final"); MambaLMHeadModel.from_pretrained("run/final")

The DNA and audio pipelines with the ``seqmamba`` command line live in ``pipelines``.
"""

from .cache import InferenceCache, LayerCache
from .config import FrontendConfig, MambaConfig
from .generation import generate, sample_next
from .heads import (MambaForSequenceClassification, MambaForTokenClassification,
                    MambaLMHeadModel, MambaPreTrainedModel, ModelOutput)
from .model import MambaBackbone, MambaBlock
from .mixer import MambaMixer

__version__ = "0.1.0"

__all__ = [
    "FrontendConfig", "InferenceCache", "LayerCache", "MambaBackbone", "MambaBlock", "MambaConfig",
    "MambaForSequenceClassification", "MambaForTokenClassification", "MambaLMHeadModel",
    "MambaMixer", "MambaPreTrainedModel", "ModelOutput", "generate", "sample_next",
]
