"""The domains built on the seqmamba backbone (DNA, audio) and the ``seqmamba`` command line."""
