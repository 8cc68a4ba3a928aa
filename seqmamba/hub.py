"""Hugging Face Hub ids as checkpoint locations: ``hf:ORG/NAME`` or ``hf:ORG/NAME@REVISION``
(a branch, tag or commit hash) resolves to the repo's snapshot directory in the local Hugging
Face cache, which ``checkpoint.load_directory`` reads like any other checkpoint directory.

The cache is looked at first, and a cached snapshot is used without contacting the Hub: an
offline cluster node works, and a cached load costs no round trip.  The price: a newer upload to
the same branch goes unnoticed until you run ``hf download ORG/NAME`` (or delete the repo's
``models--ORG--NAME`` folder in the cache); pin ``@COMMIT`` where that matters.  Only the files
a checkpoint needs are fetched (config, weights, tokenizer).  ``huggingface_hub`` is imported on
the first ``hf:`` id; the core install of seqmamba does not depend on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Tuple

HF_PREFIX = "hf:"
# The files of a checkpoint directory; pytorch_model.bin is added only where a repo has no
# safetensors, so a repo carrying both is not downloaded twice.
CHECKPOINT_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json",
                    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.txt", "vocab.json"]
BIN_NAME = "pytorch_model.bin"
# Seconds for the Hub look-up and each file's metadata: an unreachable Hub fails in seconds.
TIMEOUT_S = 5.0
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def is_hub_id(spec) -> bool:
    """True for a string ``hf:...``; any other string or Path is a local location."""
    return isinstance(spec, str) and spec.startswith(HF_PREFIX)


def parse(spec: str) -> Tuple[str, Optional[str]]:
    """``("ORG/NAME", REVISION or None)`` of ``hf:ORG/NAME[@REVISION]``."""
    repo_id, at, revision = spec[len(HF_PREFIX):].partition("@")
    if (not _REPO_ID.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id
            or (at and not revision)):
        raise ValueError(f"{spec!r} is not a Hugging Face model id; expected hf:ORG/NAME or "
                         "hf:ORG/NAME@REVISION (a branch, tag or commit hash)")
    return repo_id, revision or None


def resolve(spec, cache_dir=None) -> Path:
    """The local directory of ``spec``: a plain path is returned unchanged; an ``hf:`` id is
    its snapshot directory in ``cache_dir`` (default: huggingface_hub's ``HF_HUB_CACHE``),
    downloaded first when it is not cached there and the Hub can be reached.  Every failure but
    a local disk error is a one-line ValueError naming the id."""
    if not is_hub_id(spec):
        return Path(spec)
    repo_id, revision = parse(spec)
    try:
        import huggingface_hub as hf
        from huggingface_hub import constants, errors
    except ImportError:
        raise ValueError(f"{spec}: Hugging Face ids need huggingface_hub; "
                         "pip install huggingface_hub") from None
    cache = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    try:  # a cached snapshot is used as it is (see the module docstring)
        return Path(hf.snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                         allow_patterns=CHECKPOINT_FILES, local_files_only=True))
    except errors.LocalEntryNotFoundError as e:
        # IncompleteSnapshotError: the snapshot's cached file list names files not on disk
        partly = isinstance(e, errors.IncompleteSnapshotError)
    if constants.HF_HUB_OFFLINE:
        raise ValueError(_offline(spec, repo_id, revision, cache, partly, "HF_HUB_OFFLINE is set"))
    try:
        # snapshot_download looks the repo up with no timeout (a black-holed connection waits
        # for minutes); this look-up fails fast, and its file list decides on pytorch_model.bin.
        info = hf.HfApi().model_info(repo_id, revision=revision, timeout=TIMEOUT_S)
        patterns = CHECKPOINT_FILES
        if not any(s.rfilename.endswith(".safetensors") for s in info.siblings or []):
            patterns = CHECKPOINT_FILES + [BIN_NAME]
        return Path(hf.snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                         allow_patterns=patterns, etag_timeout=TIMEOUT_S))
    except errors.RevisionNotFoundError:
        raise ValueError(f"{spec}: {repo_id} has no revision {revision!r} on the Hub") from None
    except errors.GatedRepoError:
        raise ValueError(f"{spec}: the repo is gated; accept its conditions on "
                         f"https://huggingface.co/{repo_id} and log in (hf auth login)") from None
    except errors.RepositoryNotFoundError:  # also a private repo, or 401 without a valid token
        raise ValueError(f"{spec}: no such model repo on the Hugging Face Hub, or it is private "
                         "and your token (hf auth login) cannot read it") from None
    except errors.HfHubHTTPError as e:
        raise ValueError(f"{spec}: the Hub refused the download ({_first_line(e)})") from None
    except (errors.LocalEntryNotFoundError, ConnectionError, TimeoutError) as e:
        reason = f"{type(e).__name__}: {_first_line(e)}"
        raise ValueError(_offline(spec, repo_id, revision, cache, partly, reason)) from None
    except OSError:
        raise  # a local problem (disk full, read-only cache), not the network
    except Exception as e:  # no HTTP answer: connect, timeout, proxy errors (httpx2's, in 2.x)
        reason = f"{type(e).__name__}: {_first_line(e)}"
        raise ValueError(_offline(spec, repo_id, revision, cache, partly, reason)) from None


def _offline(spec, repo_id, revision, cache, partly, reason) -> str:
    get = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
    where = "is only partly in" if partly else "is not in"
    return (f"{spec} {where} the Hugging Face cache {cache} and the Hub cannot be reached "
            f"({reason}); on a machine that is online run `{get}` (older huggingface_hub: "
            f"`huggingface-cli download ...`) and copy its cache (~/.cache/huggingface/hub) "
            f"to {cache} (or set HF_HUB_CACHE to a copy), or pass a local checkpoint directory")


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
