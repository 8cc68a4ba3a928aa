"""Test set-up: the Triton kernels run in Triton's CPU interpreter unless a GPU run asks otherwise.

``TRITON_INTERPRET`` must be set before triton is first imported, which is why it is set here,
at collection time.  ``benchmarks/gpu_check.sh`` runs the same tests on a CUDA device with
``SEQMAMBA_TEST_DEVICE=cuda``; there the kernels are compiled and the shapes grow.
"""

import os

DEVICE = os.environ.get("SEQMAMBA_TEST_DEVICE", "cpu")
if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"
