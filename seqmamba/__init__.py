"""seqmamba: Mamba selective state-space models for million-length DNA and raw audio.

The selective-scan engine lives in the ``kernels`` package (``from kernels import
selective_scan``); the model backbone (config, blocks, heads, generation, checkpoints) grows
here, and the DNA and audio pipelines with the ``seqmamba`` command line in ``pipelines``.
"""

__version__ = "0.1.0"
