"""A corpus of bad and hostile inputs, through the command line as a careless or malicious user
would give them: FASTA, TSV/BED, WAV/CSV, model directories, checkpoints with live pickle
payloads, recipes and options.

Every case must end with exit code 2, one ``seqmamba:`` line that names the file, record or
option (a substring the case gives), no traceback, and no output left behind; for payloads,
the marker file the payload would create must not exist (nothing ran), even with
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 set, as some clusters do.

The commands run in this process (``pipelines.cli.main``), so the corpus takes seconds: an
exception that escapes ``main`` fails the case just as a traceback would.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from caduceus_helpers import COMPLEMENT, caduceus_dir
from dna_helpers import DATA, tiny_classifier, tiny_lm
from pipelines.cli import main

HPYLORI = DATA / "genomes" / "Hpylori_G27_NC_011333.1.fa.gz"
DIGITS = DATA / "audio" / "spoken_digits_espeak"


# ------------------------------------------------------------------------------------ helpers

class Payload:
    """Unpickling this runs ``open(marker, 'w')``: the canary of a code-execution bug."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def wav(path: Path, x=None, sr=16000, subtype="PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.sin(np.arange(8000) / 5).astype(np.float32) * 0.3 if x is None else x
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def bgzip(path: Path, text: bytes) -> Path:
    from Bio import bgzf

    path.parent.mkdir(parents=True, exist_ok=True)
    with bgzf.BgzfWriter(str(path), "wb") as w:
        w.write(text)
    return path


def random_dna(n: int) -> bytes:
    """Random bases (incompressible, so a bgzip of them spans many blocks)."""
    return bytes(np.frombuffer(b"ACGT", np.uint8)[np.random.default_rng(0).integers(0, 4, n)])


def audio_model(directory: Path) -> Path:
    from seqmamba import FrontendConfig, MambaConfig, MambaForSequenceClassification

    torch.manual_seed(0)
    labels = ["one", "two"]
    cfg = MambaConfig(d_model=16, n_layer=1, d_state=4, vocab_size=1,
                      frontend=FrontendConfig(frame_size=160), num_labels=2, bidirectional="add",
                      extra={"task": "audio-classify", "labels": labels, "sample_rate": 16000,
                             "seconds": 0.5, "encoding": "waveform", "peak": None})
    MambaForSequenceClassification(cfg).save_pretrained(directory / "final")
    return directory


def broken_model(directory: Path, how: str, marker: Path) -> Path:
    """A copy of a tiny DNA classifier, damaged in one way."""
    tiny_classifier(directory)
    final = directory / "final"
    cfg = json.loads((final / "config.json").read_text())
    weights = final / "model.safetensors"
    if how == "config_not_json":
        (final / "config.json").write_text("{ d_model: 32,")
    elif how == "config_list":
        (final / "config.json").write_text("[1, 2, 3]")
    elif how == "config_wrong_type":
        (final / "config.json").write_text(json.dumps({**cfg, "d_model": "thirty-two"}))
    elif how == "config_unknown_key":
        (final / "config.json").write_text(json.dumps({**cfg, "n_heads": 8}))
    elif how == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[:200])
    elif how == "weights_garbage":
        weights.write_bytes(os.urandom(4096))
    elif how == "weights_wrong_shape":
        (final / "config.json").write_text(json.dumps({**cfg, "d_model": 48}))
    elif how == "bin_payload":
        weights.unlink()
        with open(final / "pytorch_model.bin", "wb") as f:
            pickle.dump({"w": Payload(marker)}, f)
    elif how == "no_weights":
        weights.unlink()
    else:
        raise ValueError(how)
    return directory


def edited_model(directory: Path, how: str) -> Path:
    """A model directory a training command could have written, its config.json then edited
    to break the model-directory schema (pipelines/model_schema.py) in one way."""
    from pipelines.dna.tokenizer import DNATokenizer

    if how == "audio_no_sample_rate":
        audio_model(directory)
    elif how == "lm_with_classifier_task":
        tiny_lm(directory)
    elif how == "rc_not_involution":
        tiny_classifier(directory, rc_equivariant=True,
                        complement_map=DNATokenizer().complement_map)
    else:
        tiny_classifier(directory)
    path = directory / "final" / "config.json"
    cfg = json.loads(path.read_text())
    extra = cfg["extra"]
    if how in ("classifier_no_labels", "audio_no_sample_rate"):
        extra.pop("labels" if how == "classifier_no_labels" else "sample_rate")
    elif how == "labels_not_head_size":
        extra["labels"] = ["neg", "pos", "other"]
    elif how == "lm_with_classifier_task":
        extra.update(task="dna-classify", labels=["neg", "pos"])
    elif how == "rc_not_involution":
        cm = cfg["complement_map"]
        cm[0], cm[1] = cm[1], cm[0]  # A -> G... a permutation that is not its own inverse
    elif how == "unknown_task":
        extra["task"] = "dna-frobnicate"
    elif how == "numbers_as_strings":
        cfg["n_layer"] = "2"
    else:
        raise ValueError(how)
    path.write_text(json.dumps(cfg))
    return directory


def payload_checkpoint(run: Path, marker: Path, truncated: bool = False) -> Path:
    """RUN with checkpoints/last.ckpt that runs code when unpickled (or a cut-short one)."""
    last = run / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "hyper_parameters": Payload(marker)}, last)
    if truncated:
        last.write_bytes(last.read_bytes()[:300])
    return run


# ------------------------------------------------------------------------------------ corpus
#
# Each case: (name, build(tmp) -> (argv, outputs that must not be left behind), needle).

def _fa(tmp, name, data):
    return write(tmp / name, data)


def dna_predict(tmp, inputs, **kw):
    out = tmp / "pred.tsv"
    model = kw.pop("model", None) or tiny_classifier(tmp / "clf")
    return ["dna", "predict", "--model", model, *inputs, "--out", out, "--no-progress",
            *kw.pop("extra", [])], [out, tmp / "pred.tsv.partial"]


def dna_pretrain(tmp, *args):
    run = tmp / "run"
    return ["dna", "pretrain", "--out", run, "--max-steps", "2", "--val-every", "2",
            "--seq-len", "64", "--batch-size", "2", "--d-model", "8", "--n-layer", "1",
            "--no-progress", *args], [run]


def dna_finetune(tmp, *args):
    run = tmp / "run"
    return ["dna", "finetune", "--out", run, "--max-steps", "2", "--val-every", "2",
            "--batch-size", "2", "--d-model", "8", "--n-layer", "1", "--no-progress",
            *args], [run]


def audio_finetune(tmp, *args):
    run = tmp / "run"
    return ["audio", "finetune", "--out", run, "--max-steps", "2", "--val-every", "2",
            "--batch-size", "2", "--d-model", "8", "--n-layer", "1", "--seconds", "0.25",
            "--no-progress", *args], [run]


def audio_predict(tmp, inputs, model=None, out=None):
    out = out or tmp / "pred.csv"
    return ["audio", "predict", "--model", model or audio_model(tmp / "am"), *inputs,
            "--out", out, "--no-progress"], [out, Path(str(out) + ".partial")]


def audio_adapt(tmp, clips, model=None):
    """`audio adapt` of ``model`` (default: a tiny classifier of two classes whose run recorded
    no training options) to ``clips`` new WAV files of one folder."""
    out = tmp / "adapted"
    inputs = [wav(tmp / "voice" / f"u{i}.wav") for i in range(clips)]
    return ["audio", "adapt", "--model", model or audio_model(tmp / "am"), *inputs, "--out", out,
            "--no-progress"], [out]


TSV_OK = "id\tlabel\tsequence\n" + "".join(
    f"s{i}\t{'ab'[i % 2]}\t{'ACGT' * 5}\n" for i in range(20))
BED_FA = ">chr1\n" + "ACGT" * 50 + "\n"


def bed_case(line):
    def build(tmp):
        fa = _fa(tmp, "g.fa", BED_FA)
        bed = write(tmp / "x.bed", "".join(f"chr1\t{i}\t{i + 20}\ta{i % 2}\n" for i in range(10))
                    + line)
        return dna_finetune(tmp, "--train", bed, "--fasta", fa)
    return build


def clip_set(tmp, extra_rows=(), label_count=2):
    """A CSV of good clips (two labels) plus ``extra_rows`` (path, label)."""
    rows = ["path,label"]
    for i in range(8):
        rows.append(f"{wav(tmp / f'c{i}.wav')},{'ab'[i % label_count]}")
    rows += [f"{p},{lab}" for p, lab in extra_rows]
    return write(tmp / "set.csv", "\n".join(rows) + "\n")


def fifo(tmp, name):
    p = tmp / name
    os.mkfifo(p)
    return p


CASES = [
    # ---- FASTA through prediction (every record fails: nothing written) and pretraining
    ("fasta no header", lambda t: dna_predict(t, [_fa(t, "a.fa", "ACGTACGT\n")]), "no '>' header"),
    ("fasta empty record", lambda t: dna_pretrain(t, "--fasta", _fa(t, "a.fa", ">r1\n")),
     "empty record"),
    ("fasta binary", lambda t: dna_predict(t, [_fa(t, "a.fa", bytes(range(256)) * 8)]), "binary"),
    ("fasta crlf", lambda t: dna_predict(t, [_fa(t, "a.fa", b">r\r\nACGT\r\n")]), "CRLF"),
    ("fasta duplicate names", lambda t: dna_predict(t, [_fa(t, "a.fa", ">a\nAC\n>a\nGT\n")]),
     "duplicate record name"),
    ("fasta empty file", lambda t: dna_predict(t, [_fa(t, "a.fa", b"")]), "empty file"),
    ("fasta plain gzip", lambda t: dna_predict(t, [_fa(t, "a.fa.gz", gzip.compress(b">r\nACGT\n"))]),
     "plain gzip"),
    ("fasta truncated bgzip", lambda t: dna_pretrain(t, "--fasta", _fa(
        t, "b.fa.gz", bgzip(t / "full.fa.gz", b">r1\n" + random_dna(200_000) + b"\n")
        .read_bytes()[:30_000])), "truncated bgzip"),
    ("fasta is a folder", lambda t: dna_predict(t, [(t / "d.fa").mkdir() or t / "d.fa"]),
     "is a folder"),
    ("fasta missing", lambda t: dna_predict(t, [t / "nope.fa"]), "no such file"),
    ("fasta fifo", lambda t: dna_pretrain(t, "--fasta", fifo(t, "pipe.fa")), "not a regular file"),
    ("fasta unknown char before training", lambda t: dna_pretrain(
        t, "--fasta", _fa(t, "a.fa", ">r1\n" + "ACGT" * 200 + "\n" + "ACGTQ" + "ACGT" * 40 + "\n")),
     "unexpected character 'Q'"),
    ("fasta lowercase junk", lambda t: dna_predict(t, [_fa(t, "a.fa", ">r\nACGT!!\n")]),
     "unexpected character '!'"),
    ("tsv fifo", lambda t: dna_finetune(t, "--train", fifo(t, "x.tsv")), "not a regular file"),
    ("audio manifest fifo", lambda t: audio_finetune(t, "--train", fifo(t, "m.csv")),
     "not a regular file"),
    ("recipe fifo", lambda t: dna_pretrain(t, "--config", fifo(t, "r.yaml")), "not a regular file"),
    # ---- TSV / BED
    ("tsv without header", lambda t: dna_finetune(t, "--train", write(t / "x.tsv", "a\tb\tACGT\n")),
     "x.tsv"),
    ("tsv single label", lambda t: dna_finetune(t, "--train", write(
        t / "x.tsv", "id\tlabel\tsequence\n" + "".join(f"s{i}\tonly\tACGT\n" for i in range(9)))),
     "single label"),
    ("tsv empty", lambda t: dna_finetune(t, "--train", write(t / "x.tsv", "")), "x.tsv"),
    ("tsv unknown char", lambda t: dna_finetune(t, "--train", write(
        t / "x.tsv", TSV_OK + "bad\ta\tACGZT\n")), "unexpected character 'Z'"),
    ("bed without fasta", lambda t: dna_finetune(t, "--train", write(t / "x.bed", "chr1\t0\t9\ta\n")),
     "needs --fasta"),
    ("bed end past chromosome", bed_case("chr1\t190\t260\ta\n"), "x.bed: line 11"),
    ("bed start after end", bed_case("chr1\t50\t40\ta\n"), "x.bed: line 11"),
    ("bed unknown chromosome", bed_case("chr9\t0\t20\ta\n"), "x.bed: line 11"),
    ("bed negative start", bed_case("chr1\t-5\t20\ta\n"), "x.bed: line 11"),
    ("bed non-integer", bed_case("chr1\tten\t20\ta\n"), "x.bed: line 11"),
    ("bed bad strand", bed_case("chr1\t0\t20\ta\t0\t*\n"), "x.bed: line 11"),
    ("bed too few columns", bed_case("chr1\t0\t20\n"), "x.bed: line 11"),
    # ---- WAV / CSV
    ("wav empty in training set", lambda t: audio_finetune(t, "--train", clip_set(
        t, [(write(t / "e.wav", b""), "a")])), "e.wav"),
    ("wav is text", lambda t: audio_finetune(t, "--train", clip_set(
        t, [(write(t / "t.wav", "hello"), "a")])), "t.wav"),
    ("wav nan never drawn", lambda t: audio_finetune(t, "--train", clip_set(t, [(wav(
        t / "n.wav", np.array([0.1] * 100 + [np.nan] + [0.1] * 100, np.float32), subtype="FLOAT"),
        "a")])), "n.wav"),
    ("wav truncated", lambda t: audio_finetune(t, "--train", clip_set(
        t, [(write(t / "cut.wav", wav(t / "full.wav").read_bytes()[:1000]), "a")])), "cut.wav"),
    ("csv without header", lambda t: audio_finetune(t, "--train", write(
        t / "s.csv", f"{wav(t / 'a.wav')},a\n")), "s.csv"),
    ("csv missing clip", lambda t: audio_finetune(t, "--train", clip_set(
        t, [(t / "gone.wav", "a")])), "gone.wav"),
    ("csv single label", lambda t: audio_finetune(t, "--train", clip_set(t, label_count=1)),
     "single label"),
    ("csv half a split column", lambda t: audio_finetune(t, "--train", write(
        t / "s.csv", "path,label,split\n" + f"{wav(t / 'a.wav')},a,train\n{wav(t / 'b.wav')},b,\n"
        + f"{wav(t / 'c.wav')},a,val\n")), "s.csv"),
    ("unknown held-out group", lambda t: audio_finetune(t, "--train", DIGITS, "--split", "group",
                                                        "--val-groups", "martian"), "martian"),
    ("audio folder without audio", lambda t: audio_finetune(
        t, "--train", (t / "empty").mkdir() or t / "empty"), "empty"),
    ("audio seconds zero", lambda t: audio_finetune(t, "--train", DIGITS, "--seconds", "0"),
     "--seconds"),
    ("audio speed too large", lambda t: audio_finetune(t, "--train", DIGITS, "--speed", "0.7"),
     "--speed"),
    ("audio adapt too few clips to balance", lambda t: audio_adapt(t, 3),
     "which needs at least 10"),
    ("audio adapt run without recorded options", lambda t: audio_adapt(t, 10),
     "records no training options"),
    ("audio adapt a DNA model", lambda t: audio_adapt(t, 10, tiny_classifier(t / "dna")),
     "this needs an audio classifier"),
    ("audio predict fifo", lambda t: audio_predict(t, [fifo(t, "p.wav")]), "not a regular file"),
    ("audio predict glob nothing", lambda t: audio_predict(t, [str(t / "*.flac")]),
     "matches no files"),
    ("audio predict all bad", lambda t: audio_predict(t, [write(t / "x.wav", "no")]), "x.wav"),
    # ---- model directories
    *[(f"model dir {how}", (lambda how: lambda t: dna_predict(
        t, [_fa(t, "a.fa", ">r\nACGT\n")], model=broken_model(t / "bm", how, t / "PWNED")))(how),
       "bm") for how in ("config_not_json", "config_list", "config_wrong_type",
                         "config_unknown_key", "weights_truncated", "weights_garbage",
                         "weights_wrong_shape", "bin_payload", "no_weights")],
    *[(f"model schema {how}", (lambda how: lambda t: dna_predict(
        t, [_fa(t, "a.fa", ">r\nACGT\n")], model=edited_model(t / "em", how)))(how), key)
      for how, key in (("classifier_no_labels", "extra.labels"),
                       ("labels_not_head_size", "num_labels=2 names"),
                       ("lm_with_classifier_task", "weights are a MambaLMHeadModel"),
                       ("rc_not_involution", "complement_map"),
                       ("unknown_task", "extra.task"),
                       ("numbers_as_strings", "n_layer"))],
    ("model schema audio_no_sample_rate", lambda t: audio_predict(
        t, [wav(t / "a.wav")], model=edited_model(t / "em", "audio_no_sample_rate")),
     "extra.sample_rate"),
    ("model schema init without labels", lambda t: dna_finetune(
        t, "--train", write(t / "x.tsv", TSV_OK), "--init",
        edited_model(t / "em", "classifier_no_labels")), "extra.labels"),
    ("model dir missing", lambda t: dna_predict(t, [_fa(t, "a.fa", ">r\nACGT\n")],
                                                model=t / "none"), "no such model directory"),
    ("model dir of another domain", lambda t: dna_predict(t, [_fa(t, "a.fa", ">r\nACGT\n")],
                                                          model=audio_model(t / "am")),
     "not a DNA model"),
    ("audio model is a DNA model", lambda t: audio_predict(t, [wav(t / "a.wav")],
                                                           model=tiny_classifier(t / "dm")), "dm"),
    ("baseline steps without the cnn", lambda t: dna_finetune(
        t, "--train", write(t / "x.tsv", TSV_OK), "--baseline-steps", "5"), "--baseline cnn"),
    ("baseline steps zero", lambda t: audio_finetune(
        t, "--train", DIGITS, "--baseline", "cnn", "--baseline-steps", "0"), "--baseline-steps"),
    ("init of another domain", lambda t: dna_finetune(
        t, "--train", write(t / "x.tsv", TSV_OK), "--init", audio_model(t / "am")), "am"),
    ("init with a pickle payload", lambda t: dna_finetune(
        t, "--train", write(t / "x.tsv", TSV_OK), "--init",
        broken_model(t / "bm", "bin_payload", t / "PWNED")), "bm"),
    # ---- imported Caduceus / PlantCaduceus checkpoints: what seqmamba does not reproduce
    *[(f"caduceus {name}", (lambda rcps, change: lambda t: dna_predict(
        t, [_fa(t, "a.fa", ">r\nACGT\n")], model=caduceus_dir(t, rcps, True, **change)[0],
        extra=["--embed", t / "e.npz"]))(rcps, change), key) for name, rcps, change, key in (
        ("strategy", True, {"bidirectional_strategy": "concat"}, "bidirectional_strategy"),
        ("ssm key", True, {"ssm_cfg": {"d_state": 4, "headdim": 64}}, "ssm_cfg"),
        ("complement not involution", True, {"complement_map": COMPLEMENT | {"7": 9}},
         "complement_map"),
        ("classifier architecture", True,
         {"architectures": ["CaduceusForSequenceClassification"]}, "architectures"),
        ("causal", False, {"bidirectional": False}, "bidirectional"),
        ("vocabulary unknown", False, {"vocab_size": 14}, "tokenizer"))],
    ("hub id malformed", lambda t: dna_predict(t, [_fa(t, "a.fa", ">r\nACGT\n")],
                                               model="hf:no-slash"), "hf:no-slash"),
    # ---- checkpoints
    ("resume payload checkpoint", lambda t: (dna_pretrain(
        t, "--fasta", HPYLORI, "--resume")[0], []) if payload_checkpoint(t / "run", t / "PWNED")
     else None, "last.ckpt"),
    ("resume truncated checkpoint", lambda t: (dna_pretrain(
        t, "--fasta", HPYLORI, "--resume")[0], []) if payload_checkpoint(
        t / "run", t / "PWNED", truncated=True) else None, "last.ckpt"),
    ("resume without a run", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--resume"),
     "nothing to resume"),
    # ---- recipes
    ("recipe yaml payload", lambda t: dna_pretrain(t, "--config", write(
        t / "r.yaml", f"max_steps: !!python/object/apply:os.system ['touch {t / 'PWNED'}']\n")),
     "r.yaml"),
    ("recipe not yaml", lambda t: dna_pretrain(t, "--config", write(t / "r.yaml", "a: [1,\n")),
     "r.yaml"),
    ("recipe unknown key", lambda t: dna_pretrain(t, "--config", write(t / "r.yaml", "epochs: 3\n")),
     "unknown recipe keys"),
    ("recipe not a mapping", lambda t: dna_pretrain(t, "--config", write(t / "r.yaml", "- 1\n")),
     "r.yaml"),
    ("recipe missing", lambda t: dna_pretrain(t, "--config", t / "nope.yaml"), "nope.yaml"),
    # ---- options
    ("max-steps zero", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--max-steps", "0"),
     "--max-steps"),
    ("max-steps negative", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--max-steps", "-1"),
     "--max-steps"),
    ("batch-size zero", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--batch-size", "0"),
     "--batch-size"),
    ("precision bogus", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--precision", "bogus"),
     "--precision"),
    ("devices zero", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--devices", "0"), "--devices"),
    ("lr zero", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--lr", "0"), "--lr"),
    ("dropout one", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--dropout", "1"), "--dropout"),
    ("val-fraction too big", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--val-fraction", "1.5"),
     "--val-fraction"),
    ("val-records with holdout-bed", lambda t: dna_pretrain(
        t, "--fasta", HPYLORI, "--val-records", "x", "--holdout-bed", write(t / "h.bed", "")),
     "--holdout-bed and --val-records"),
    ("n-head not dividing d-model", lambda t: dna_pretrain(
        t, "--fasta", HPYLORI, "--arch", "transformer", "--n-head", "3"), "n_head=3"),
    ("exclude-records not a regex", lambda t: dna_pretrain(
        t, "--fasta", HPYLORI, "--exclude-records", "chr(Un"), "--exclude-records"),
    ("exclude-records leaves nothing", lambda t: dna_pretrain(
        t, "--fasta", HPYLORI, "--exclude-records", "."), "leaves no training records"),
    ("manifest with fasta", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--manifest",
                                                   "genomes.yaml", "--split", "ecoli-90-10"),
     "drop --fasta"),
    ("split without manifest", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--split", "x"),
     "--manifest"),
    ("seq-len beyond memory", lambda t: dna_pretrain(t, "--fasta", HPYLORI, "--seq-len",
                                                     str(1 << 17), "--batch-size", str(1 << 16)),
     "GiB"),
    ("training out is a file", lambda t: (dna_pretrain(t, "--fasta", HPYLORI)[0][:2] + [
        "--out", write(t / "run", "keep me")] + dna_pretrain(t, "--fasta", HPYLORI)[0][4:], []),
     "names a file"),
    ("predict out is the input", lambda t: (lambda fa: (dna_predict(t, [fa])[0][:-3] + [
        "--out", fa, "--no-progress"], []))(_fa(t, "a.tsv", "id\tsequence\nx\tACGT\n")),
     "is also an input"),
    ("audio predict out is the input", lambda t: (lambda w: (audio_predict(t, [w], out=w)[0],
                                                             []))(wav(t / "x.wav")),
     "is also an input"),
    ("predict out is a folder", lambda t: (dna_predict(t, [_fa(t, "a.fa", ">r\nACGT\n")])[0][:-3]
                                           + ["--out", (t / "o").mkdir() or t / "o",
                                              "--no-progress"], []),
     "is a directory"),
    ("predict chunk size zero", lambda t: dna_predict(t, [_fa(t, "a.fa", ">r\nACGT\n")],
                                                      extra=["--chunk-size", "0"]), "--chunk-size"),
    ("predict unknown track class", lambda t: dna_predict(t, [_fa(t, "a.fa", ">r\nACGT\n")],
                                                          extra=["--track", t / "t.bg",
                                                                 "--track-class", "zzz"]),
     "--track-class"),
]


@pytest.mark.parametrize("name, build, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(name, build, needle, tmp_path,
                                                         monkeypatch, capsys):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # as some clusters set it
    monkeypatch.setenv("SEQMAMBA_CACHE", str(tmp_path / "cache"))
    argv, outputs = build(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rc = main([str(x) for x in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("seqmamba:")]
    assert rc == 2, (rc, err[-2000:])
    assert "Traceback" not in err
    assert lines and any(needle in line for line in lines), err[-2000:]
    for out in outputs:
        assert not Path(out).exists(), f"{out} left behind"
    assert not (tmp_path / "PWNED").exists(), "a payload ran"
    for p, data in before.items():  # no input was changed
        if p.suffix not in (".fai", ".gzi", ".stamp") and p.exists():
            assert p.read_bytes() == data, f"{p} was modified"


def test_the_corpus_is_broad():
    assert len(CASES) >= 60
