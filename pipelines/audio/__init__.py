"""Raw-audio pipeline: reading and writing clips, mu-law tokens, crops and labelled clip sets.

``io`` reads WAV/FLAC through soundfile (torchaudio.load would need FFmpeg), ``mulaw`` maps
waveforms to the 256 8-bit mu-law classes of SaShiMi / Mamba audio models, ``crop`` fits clips
to a fixed number of samples and ``datasets`` turns a CSV manifest or a folder per label into
a torch Dataset with label, group and split handling.
"""
