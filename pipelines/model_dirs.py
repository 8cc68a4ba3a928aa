"""Model directories as the commands write them (RUN/final: config.json + model.safetensors),
read back by every command that takes ``--model`` or ``--init``, DNA and audio alike."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .model_schema import check_model_dir, read_config


def model_extra(model_dir: Path) -> dict:
    """The ``extra`` metadata a command stored in config.json (task, tokenizer, labels...)."""
    cfg = read_config(model_dir)
    if not isinstance(cfg.get("extra") or {}, dict):
        raise InputError("config.json must hold a JSON object of settings (with 'extra' an "
                         "object)", path=model_dir)
    return cfg.get("extra") or {}


def resolve_model_dir(path: Path, made_by: str, tasks=None, kinds=None) -> Path:
    """RUN or RUN/final -> the directory holding config.json; a hub id ``hf:ORG/NAME`` -> its
    snapshot in the Hugging Face cache (downloaded where the machine is online).

    ``made_by`` names the commands that write such a directory (for the fix in the message);
    with ``tasks``, the model's stored task must be one of them (``kinds`` describes each).
    The directory's config.json is checked whole first (``model_schema``)."""
    from seqmamba.hub import is_hub_id, resolve

    if is_hub_id(str(path)):
        try:
            path = resolve(str(path))
        except ValueError as e:
            raise InputError(str(e)) from None
    path = Path(path)
    if (path / "final" / "config.json").is_file():
        d = path / "final"
    elif (path / "config.json").is_file():
        d = path
    elif not path.exists():
        raise InputError("no such model directory", path=path,
                         fix=f"pass the RUN directory of {made_by}")
    else:
        raise InputError("not a model directory (no config.json or final/config.json)", path=path,
                         fix=f"pass the RUN directory of {made_by}, or its final/")
    check_model_dir(d)
    if tasks is not None:
        task = model_extra(d).get("task")
        if task not in tasks:
            need = " or ".join((kinds or {}).get(t, t) for t in tasks)
            raise InputError(f"model task is {task!r}; this needs {need}", path=d)
    return d


def load_pretrained(cls, model_dir: Path, **config_overrides):
    """``cls.from_pretrained(model_dir)`` with every problem of the directory (config of the
    wrong form, truncated or foreign weights, a refused pickle, shapes that do not fit) as one
    InputError naming it.  A head that starts afresh (a classifier started from a pretrained
    model) is one plain note on stderr, not a Python warning with its source line."""
    import sys
    import warnings

    from seqmamba.checkpoint import FreshHeadWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FreshHeadWarning)
            model = cls.from_pretrained(model_dir, **config_overrides)
        for w in caught:
            if issubclass(w.category, FreshHeadWarning):
                print(f"seqmamba: note: {model_dir}: a new {cls.__name__} head, trained from its "
                      f"initialisation (the model has no head of this kind and size)",
                      file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return model
    except ValueError as e:
        raise InputError(f"cannot load the model: {e}", path=model_dir,
                         fix="pass a RUN directory a seqmamba command wrote, or a mamba-ssm, "
                             "transformers Mamba or Caduceus checkpoint") from None
