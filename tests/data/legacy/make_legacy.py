"""Write model directories with the code of commit c8c03e8 (before issue 35's changes)."""
import sys
import torch
from pathlib import Path
from safetensors.torch import save_file
from seqmamba import MambaConfig, MambaForSequenceClassification, MambaLMHeadModel

out = Path(sys.argv[1])
torch.manual_seed(0)
audio = MambaForSequenceClassification(MambaConfig(
    d_model=16, n_layer=1, vocab_size=1, d_state=4, input_type="waveform", frame_size=80,
    frontend="filterbank", frontend_filters=12, mask_bands=4, mask_frames=6, num_labels=3,
    pooling="max", bidirectional="add",
    extra={"task": "audio-classify", "labels": ["a", "b", "c"], "sample_rate": 8000})).eval()
dna = MambaLMHeadModel(MambaConfig(d_model=16, n_layer=2, vocab_size=8, d_state=4,
                                   extra={"task": "dna-lm"})).eval()
g = torch.Generator().manual_seed(1)
wave = torch.randn(2, 800, generator=g)
ids = torch.randint(0, 8, (2, 30), generator=g)
with torch.no_grad():
    expect = {"wave": wave, "audio_logits": audio(wave).logits, "ids": ids,
              "dna_logits": dna(ids).logits}
audio.save_pretrained(out / "audio_classifier")
dna.save_pretrained(out / "dna_lm")
save_file({k: v.contiguous() for k, v in expect.items()}, str(out / "expected.safetensors"))
