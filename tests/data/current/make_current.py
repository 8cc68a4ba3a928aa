"""Write tests/data/current: model directories as today's training commands write them (a DNA
classifier with RC sharing, its labels and tokenizer; an audio classifier), kept so a later
version that changes the layout is tested against them.

    PYTHONPATH=. python tests/data/current/make_current.py tests/data/current
"""
import sys
from pathlib import Path

import torch

from pipelines.dna.tokenizer import DNATokenizer
from seqmamba import FrontendConfig, MambaConfig, MambaForSequenceClassification

out = Path(sys.argv[1])
tok = DNATokenizer()
torch.manual_seed(0)
MambaForSequenceClassification(MambaConfig(
    d_model=16, n_layer=1, d_state=4, vocab_size=tok.vocab_size, num_labels=2,
    pad_token_id=tok.pad_id, rc_equivariant=True, complement_map=tok.complement_map,
    extra={"task": "dna-classify", "labels": ["neg", "pos"], "tokenizer": tok.to_dict(),
           "pooling": "mean"})).save_pretrained(out / "dna_classifier")
MambaForSequenceClassification(MambaConfig(
    d_model=16, n_layer=1, d_state=4, vocab_size=1, num_labels=3, bidirectional="add",
    frontend=FrontendConfig(frame_size=80, kind="filterbank", filters=12),
    extra={"task": "audio-classify", "labels": ["a", "b", "c"], "sample_rate": 8000,
           "seconds": 1.0, "encoding": "waveform", "peak": None})).save_pretrained(
    out / "audio_classifier")
