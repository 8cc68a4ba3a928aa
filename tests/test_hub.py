"""hf:ORG/NAME ids: resolved from a Hugging Face cache built here in the documented layout, and
downloaded from a fake Hub on 127.0.0.1; nothing here reaches the internet."""

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

pytest.importorskip("huggingface_hub")
from huggingface_hub import constants  # noqa: E402

from seqmamba import MambaConfig, MambaLMHeadModel  # noqa: E402
from seqmamba.checkpoint import load_directory  # noqa: E402
from seqmamba.hub import is_hub_id, resolve  # noqa: E402

OLD = "a" * 40
NEW = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache as huggingface_hub's default, offline, no token, Hub on a closed port."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    hub = tmp_path / "hf" / "hub"
    # huggingface_hub reads these at import; its functions read the module attributes per call
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    use_endpoint(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    return hub


def use_endpoint(monkeypatch, url):
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        url + "/{repo_id}/resolve/{revision}/{filename}")


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def cache_snapshot(hub: Path, repo_id: str, commit: str, files: dict, refs=("main",)):
    """The layout huggingface_hub writes: blobs/<etag> holds the bytes (sha256 for LFS files,
    the git blob id otherwise), snapshots/<commit>/<name> is a relative symlink to the blob,
    refs/<branch or tag> holds the commit hash (no newline)."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, data in files.items():
        lfs = name.endswith((".safetensors", ".bin"))
        etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
        (repo / "blobs" / etag).write_bytes(data)
        (snap / name).symlink_to(Path("..", "..", "blobs", etag))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap


def checkpoint_files(tmp_path, d_model):
    torch.manual_seed(0)
    out = tmp_path / f"ckpt{d_model}"
    cfg = MambaConfig(d_model=d_model, n_layer=1, vocab_size=8, d_state=4)
    MambaLMHeadModel(cfg).save_pretrained(out)
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_hub_ids_are_strings_with_the_prefix():
    assert is_hub_id("hf:acme/dna") and not is_hub_id("acme/dna")
    assert not is_hub_id(Path("hf:acme/dna")) and not is_hub_id(None)


def test_a_plain_path_passes_through(tmp_path):
    assert resolve(str(tmp_path / "run")) == tmp_path / "run"
    assert resolve(tmp_path) == tmp_path


@pytest.mark.parametrize("spec", ["hf:dna", "hf:/dna", "hf:acme/", "hf:acme/dna/extra",
                                  "hf:acme/dna@", "hf:", "hf:acme/d na", "hf:acme/a--b"])
def test_malformed_ids_are_refused(cache, spec):
    with pytest.raises(ValueError, match="expected hf:ORG/NAME") as e:
        resolve(spec)
    assert repr(spec) in str(e.value) and "\n" not in str(e.value)


def test_cached_snapshot_is_found_and_loads(cache, tmp_path):
    cache_snapshot(cache, "acme/old", OLD, checkpoint_files(tmp_path, 16), refs=())
    snap = cache_snapshot(cache, "acme/dna", NEW, checkpoint_files(tmp_path, 24),
                          refs=("main", "v1"))
    for spec in ("hf:acme/dna", "hf:acme/dna@main", "hf:acme/dna@v1", f"hf:acme/dna@{NEW}"):
        assert resolve(spec) == snap
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "model.safetensors"]
    cfg, state, fmt = load_directory(resolve("hf:acme/dna"))
    assert (cfg.d_model, fmt) == (24, "seqmamba") and state  # read through the blob symlinks
    # an explicit cache_dir is used instead of huggingface_hub's default
    assert load_directory(resolve(f"hf:acme/old@{OLD}", cache_dir=cache))[0].d_model == 16


def test_a_commit_picks_that_snapshot_not_main(cache, tmp_path):
    files = checkpoint_files(tmp_path, 16)
    old = cache_snapshot(cache, "acme/dna", OLD, files, refs=())
    new = cache_snapshot(cache, "acme/dna", NEW, {**files, "config.json": b"{}"})
    assert resolve(f"hf:acme/dna@{OLD}") == old and resolve("hf:acme/dna") == new


def test_uncached_offline_says_which_cache_and_how_to_fetch(cache, tmp_path):
    cache_snapshot(cache, "acme/dna", NEW, checkpoint_files(tmp_path, 16))
    for spec, get in [("hf:acme/other", "`hf download acme/other`"),
                      ("hf:acme/dna@v2", "`hf download acme/dna --revision v2`"),
                      (f"hf:acme/dna@{OLD}", f"`hf download acme/dna --revision {OLD}`")]:
        with pytest.raises(ValueError) as e:
            resolve(spec)
        msg = str(e.value)
        assert msg.startswith(f"{spec} is not in the Hugging Face cache {cache} ")
        assert "HF_HUB_OFFLINE is set" in msg and get in msg and "\n" not in msg


def test_unreachable_hub_fails_fast_with_the_same_advice(cache, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the endpoint is a closed port
    with pytest.raises(ValueError) as e:
        resolve("hf:acme/dna")
    msg = str(e.value)
    assert "hf:acme/dna is not in the Hugging Face cache" in msg and "ConnectError" in msg
    assert "`hf download acme/dna`" in msg and "\n" not in msg


def test_a_silent_hub_times_out_in_seconds(cache, monkeypatch):
    """A host that takes the connection and never answers (a black hole behind a proxy):
    snapshot_download's own look-up has no timeout, resolve's does."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("seqmamba.hub.TIMEOUT_S", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nothing ever reads or answers
        use_endpoint(monkeypatch, f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        with pytest.raises(ValueError, match="Timeout.*`hf download acme/dna`"):
            resolve("hf:acme/dna")
        assert time.monotonic() - start < 5


class FakeHub(BaseHTTPRequestHandler):
    """The few Hub endpoints a snapshot download uses, for repo acme/dna at commit NEW;
    acme/private answers 401 like the Hub does without a token, acme/gated refuses its files."""
    files: dict = {}
    asked: list = []

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body):
        path = self.path.split("?")[0]
        type(self).asked.append(path)
        sha = lambda d: hashlib.sha256(d).hexdigest()  # noqa: E731
        if path.startswith("/api/models/acme/private"):
            return self.send(401, b"{}")
        if path.startswith("/api/models/acme/dna/revision/nope"):
            return self.send(404, b"{}", {"X-Error-Code": "RevisionNotFound"})
        if path in ("/api/models/acme/dna", "/api/models/acme/gated") or path.startswith(
                ("/api/models/acme/dna/revision/", "/api/models/acme/gated/revision/")):
            info = {"id": "acme/dna", "sha": NEW,
                    "siblings": [{"rfilename": n} for n in self.files]}
            return self.send(200, json.dumps(info).encode())
        if path.startswith((f"/api/models/acme/dna/tree/{NEW}",
                             f"/api/models/acme/gated/tree/{NEW}")):
            tree = [{"type": "file", "path": n, "size": len(d), "oid": git_blob_id(d)}
                    for n, d in self.files.items()]
            return self.send(200, json.dumps(tree).encode())
        if path.startswith("/acme/gated/resolve/"):
            return self.send(403, b"{}", {"X-Error-Code": "GatedRepo"})
        name = path.removeprefix(f"/acme/dna/resolve/{NEW}/")
        if name in self.files:
            data = self.files[name]
            return self.send(200, data, {"X-Repo-Commit": NEW, "ETag": f'"{sha(data)}"'}, body)
        self.send(404, b"{}", {"X-Error-Code": "RepoNotFound"})

    def send(self, code, data, headers=None, body=True):
        self.send_response(code)
        for k, v in {"Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(cache, monkeypatch, tmp_path):
    files = checkpoint_files(tmp_path, 16)
    files.update({"pytorch_model.bin": b"not needed", "README.md": b"# dna"})
    monkeypatch.setattr(FakeHub, "files", files)
    monkeypatch.setattr(FakeHub, "asked", [])
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    use_endpoint(monkeypatch, f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield FakeHub
    server.shutdown()
    server.server_close()


def test_download_fetches_only_checkpoint_files_then_works_offline(fake_hub, cache, monkeypatch):
    snap = resolve("hf:acme/dna")
    assert snap == cache / "models--acme--dna" / "snapshots" / NEW
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "model.safetensors"]
    assert not any(p.endswith(("pytorch_model.bin", "README.md")) for p in fake_hub.asked)
    assert load_directory(snap)[0].d_model == 16
    assert (cache / "models--acme--dna" / "refs" / "main").read_text() == NEW
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    fake_hub.asked.clear()
    assert resolve("hf:acme/dna") == snap and fake_hub.asked == []  # from the cache, no request


def test_a_partial_snapshot_is_not_taken_for_a_whole_one(fake_hub, monkeypatch):
    snap = resolve("hf:acme/dna")
    (snap / "model.safetensors").unlink()  # as after an interrupted download
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="hf:acme/dna is only partly in the Hugging Face cache"):
        resolve("hf:acme/dna")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert resolve("hf:acme/dna") == snap and (snap / "model.safetensors").is_file()  # completed


def test_pytorch_model_bin_is_fetched_when_there_is_no_safetensors(fake_hub):
    del fake_hub.files["model.safetensors"]
    snap = resolve("hf:acme/dna")
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "pytorch_model.bin"]


@pytest.mark.parametrize("spec, says", [
    ("hf:acme/missing", "no such model repo on the Hugging Face Hub"),
    ("hf:acme/dna@nope", "acme/dna has no revision 'nope' on the Hub"),
    ("hf:acme/gated", "the repo is gated; accept its conditions"),
    ("hf:acme/private", "401"),  # the Hub's answer to a private repo without a token
])
def test_hub_refusals_name_the_id(fake_hub, spec, says):
    with pytest.raises(ValueError) as e:
        resolve(spec)
    msg = str(e.value)
    assert msg.startswith(f"{spec}: ") and says in msg and "\n" not in msg


def test_without_huggingface_hub_the_fix_is_named(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if absent
    with pytest.raises(ValueError, match="hf:acme/dna: .*pip install huggingface_hub"):
        resolve("hf:acme/dna")
    assert resolve("plain/dir") == Path("plain/dir")


def test_a_cached_plantcaduceus_id_runs_the_command_and_loads_as_a_masked_lm(cache, tmp_path):
    """The whole path a user takes: `--model hf:ORG/NAME` through the command, and
    seqmamba.from_pretrained on the same id, from a populated cache while offline."""
    import seqmamba
    from caduceus_helpers import caduceus_dir
    from dna_helpers import write
    from pipelines.cli import main

    d, _ = caduceus_dir(tmp_path, rcps=True, fused=True)
    files = {p.name: p.read_bytes() for p in d.iterdir()}
    cache_snapshot(cache, "kuleshov-group/PlantCaduceus_l20", NEW, files)
    model = seqmamba.from_pretrained("hf:kuleshov-group/PlantCaduceus_l20")
    assert type(model).__name__ == "MambaForMaskedLM" and model.config.rc_swap_halves
    fa = write(tmp_path / "r.fa", ">r\n" + "ACGTTGCA" * 40 + "\n")
    out, emb = tmp_path / "p.tsv", tmp_path / "e.npz"
    assert main(["dna", "predict", "--model", "hf:kuleshov-group/PlantCaduceus_l20", str(fa),
                 "--out", str(out), "--embed", str(emb), "--no-progress"]) == 0
    assert out.exists() and emb.exists()
