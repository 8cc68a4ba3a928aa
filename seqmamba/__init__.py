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
from .heads import (MambaForMaskedLM, MambaForSequenceClassification, MambaForTokenClassification,
                    MambaLMHeadModel, MambaPreTrainedModel, ModelOutput)
from .model import MambaBackbone, MambaBlock
from .mixer import MambaMixer

__version__ = "0.1.0"


def from_pretrained(spec, **config_overrides) -> MambaPreTrainedModel:
    """Load any supported checkpoint into the matching seqmamba class: a directory seqmamba
    saved, a mamba-ssm or transformers Mamba directory (a causal LM), a Caduceus or
    PlantCaduceus directory (a masked LM), or a hub id ``hf:ORG/NAME[@REVISION]`` resolved
    through the Hugging Face cache (see :mod:`seqmamba.hub`)."""
    from . import heads
    from .checkpoint import model_class_name
    from .hub import resolve

    directory = resolve(spec)
    name = model_class_name(directory)
    cls = getattr(heads, name, None)
    if not (isinstance(cls, type) and issubclass(cls, MambaPreTrainedModel)):
        raise ValueError(f"{directory}: config.json names architecture {name!r}, which is not a "
                         "seqmamba model class")
    return cls.from_pretrained(directory, **config_overrides)

__all__ = [
    "FrontendConfig", "InferenceCache", "LayerCache", "MambaBackbone", "MambaBlock", "MambaConfig",
    "MambaForMaskedLM", "MambaForSequenceClassification", "MambaForTokenClassification", "MambaLMHeadModel",
    "MambaMixer", "MambaPreTrainedModel", "ModelOutput", "from_pretrained", "generate",
    "sample_next",
]
