"""What a user sees: our progress bars and results, not the libraries' chatter.

Lightning announces the accelerators it did not find, advertises its cloud products, and warns
that a small training set has fewer batches than its logging interval; it also trips a
deprecation inside its own ``_pytree`` module, and on a resume warns about the folders it
resumes into and about resuming mid-epoch (which seqmamba's samplers do).  None of it is
actionable for a seqmamba user, so the command line turns Lightning's informational logging
down to warnings and ignores those warnings by their text.  Every other warning still shows.
``seqmamba --verbose ...`` (or ``SEQMAMBA_VERBOSE=1``) leaves everything on.
"""

from __future__ import annotations

import logging
import os
import warnings

# Messages that only describe Lightning's internals or defaults (matched from the start).
_IGNORED = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # on --resume: seqmamba keeps the earlier sessions' metrics (logs/metrics.history.csv) and
    # resumes into the run's own checkpoint folder, which these two warnings are about
    r"Experiment logs directory .* exists and is not empty",
    r"Checkpoint directory .* exists and is not empty",
    # a run resumed mid-epoch: seqmamba's samplers skip the batches already trained on
    # (_Task.on_train_start), so it continues with the batches an unbroken run would see
    r"You're resuming from a checkpoint that ended before the epoch ended",
)


def verbose_from_environment() -> bool:
    """SEQMAMBA_VERBOSE=1 asks for the libraries' messages as ``seqmamba --verbose`` does."""
    return os.environ.get("SEQMAMBA_VERBOSE", "") not in ("", "0")


# Lightning's informational messages go through these loggers.  Their parents are set to INFO
# when lightning is imported (later), so the levels are set here, on the children.
_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.accelerators.cuda")


def quiet_libraries() -> None:
    for name in _INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in _IGNORED:
        warnings.filterwarnings("ignore", message=pattern)
