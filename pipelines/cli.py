"""The ``seqmamba`` command line: one table of commands, one argparse tree.

    seqmamba [--threads N|auto] [--verbose] <command> ...
    seqmamba info | selfcheck | demo
    seqmamba dna <command> ...        pretrain | finetune | predict | generate | species |
                                      score-variants
    seqmamba audio <command> ...      finetune | pretrain | predict | adapt | generate

The root parser holds the global options and the command names; each command's own options
are declared in its module (``build_parser``) and parsed by its ``run(argv)``, which is only
imported when that command runs.  Exit codes: 0 success, 1 a check failed, 2 bad input or
usage.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from pathlib import Path

# domain -> command -> (module with build_parser() and run(argv), one-line help)
COMMANDS = {
    "dna": {
        "pretrain": ("pipelines.dna.pretrain", "next-token pretraining on FASTA genomes"),
        "finetune": ("pipelines.dna.finetune", "sequence or base-level classification"),
        "predict": ("pipelines.dna.predict", "batch prediction on FASTA/TSV files"),
        "generate": ("pipelines.dna.generate", "sample DNA from a pretrained model"),
        "species": ("pipelines.dna.species", "species-of-origin recipe: accuracy by window"),
        "score-variants": ("pipelines.dna.variants", "variant effects into a VCF"),
    },
    "audio": {
        "finetune": ("pipelines.audio.finetune", "clip classification from raw waveforms"),
        "pretrain": ("pipelines.audio.pretrain", "mu-law next-sample pretraining on clips"),
        "predict": ("pipelines.audio.predict", "batch prediction on audio files and folders"),
        "adapt": ("pipelines.audio.adapt", "adapt a classifier to new voices, no labels needed"),
        "generate": ("pipelines.audio.generate", "sample audio from a pretrained model (WAV)"),
    },
}
DOMAIN_HELP = {"dna": "genomics: pretrain, fine-tune, predict, score variants",
               "audio": "audio: fine-tune classifiers, pretrain, predict, adapt, generate"}
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# what `pip install 'seqmamba[all]'` adds to the core (import names): the commands need them
PIPELINE_MODULES = {"yaml", "lightning", "pyfaidx", "Bio", "sklearn", "matplotlib", "tqdm",
                    "soundfile", "torchaudio", "pysam", "pyBigWig"}


def run_command(domain: str, name: str, argv) -> int:
    """Run ``seqmamba DOMAIN NAME argv...`` in this process (the demo and notebooks call it)."""
    return importlib.import_module(COMMANDS[domain][name][0]).run(list(argv))


def build_parser() -> argparse.ArgumentParser:
    from .checks import DEMO_STEPS, cmd_demo, cmd_info, cmd_selfcheck

    p = argparse.ArgumentParser(prog="seqmamba", description="Mamba models for DNA and audio: "
                                "pretrain on genomes, fine-tune audio classifiers, batch-predict")
    g = p.add_argument_group("global options (before the command)")
    g.add_argument("--threads", default=None, metavar="N|auto",
                   help="torch threads (default: one per core, or SEQMAMBA_THREADS); fewer than "
                        "the cores when other jobs keep some busy; auto: the idle cores")
    g.add_argument("--verbose", "-v", action="store_true",
                   help="also show the libraries' own messages (Lightning's)")
    sub = p.add_subparsers(dest="command", required=True, metavar="<command>")
    for domain, commands in COMMANDS.items():
        d = sub.add_parser(domain, help=DOMAIN_HELP[domain], description=DOMAIN_HELP[domain],
                           epilog=f"seqmamba {domain} <command> -h: that command's options")
        dsub = d.add_subparsers(dest="subcommand", required=True, metavar="<command>")
        for name, (_, text) in commands.items():
            # its options are its module's: -h and the rest reach that module's parser
            dsub.add_parser(name, help=text, add_help=False).set_defaults(domain=domain)
    sub.add_parser("info", help="versions and the scan backends usable here").set_defaults(
        func=cmd_info)
    for name, func, text in (("selfcheck", cmd_selfcheck, "scan backends vs the reference"),
                             ("demo", cmd_demo, "the three jobs on the bundled data "
                                                "(~10 min on 2 cores)")):
        q = sub.add_parser(name, help=text)
        q.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
        q.add_argument("--backends", nargs="+", default=None, choices=["torch", "cpu", "triton"],
                       help="backends to check (default: those usable here; triton on CPU "
                            "only when named, as its interpreter is slow)")
        q.add_argument("--conformance", default=None,
                       help="conformance vectors (default: the bundled selective_scan_v1.pt)")
        if name == "demo":
            q.add_argument("--no-bench", action="store_true", help="skip the scan timing")
            for key, what in (("dna", "pretraining steps of the DNA demo (0 skips the DNA part)"),
                              ("splice", "training steps of the splice classifier (0 skips "
                                         "the DNA part)"),
                              ("audio", "training steps of the spoken-digit classifier "
                                        "(0 skips it)")):
                q.add_argument(f"--{key}-steps", type=int, default=DEMO_STEPS[key], help=what)
            q.add_argument("--workdir", type=Path, default=Path("runs") / "demo",
                           help="where the demo's runs go (replaced on every demo)")
            q.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192],
                           help="scan timing: sequence lengths")
            q.add_argument("--dim", type=int, default=256, help="scan timing: channels")
            q.add_argument("--out", type=Path, default=None,
                           help="scan timing CSV (default: WORKDIR/scan_demo_<device>.csv)")
        q.set_defaults(func=func)
    return p


def main(argv=None) -> int:
    from .cores import threads_requested
    from .errors import InputError
    from .quiet import quiet_libraries, verbose_from_environment

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        # a domain command's own options are left for its parser (parse_known_args keeps them
        # in order); the root options are those before the command
        args, rest = build_parser().parse_known_args(argv)
    except SystemExit as e:  # -h, or a usage error argparse has printed
        return int(e.code or 0)
    if not (args.verbose or verbose_from_environment()):
        quiet_libraries()
    try:
        threads = threads_requested(args.threads)
        if threads:
            import torch

            torch.set_num_threads(threads)
        if getattr(args, "domain", None):
            return run_command(args.domain, args.subcommand, rest)
        if rest:
            raise InputError(f"unrecognized arguments: {' '.join(rest)}",
                             fix=f"see seqmamba {args.command} -h")
        return args.func(args)
    except InputError as e:
        print(f"seqmamba: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqmamba: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in PIPELINE_MODULES:
            raise
        print(f"seqmamba: this command needs {e.name}, which the core install leaves out "
              "(install the pipelines: pip install 'seqmamba[all]')", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in FULL_DISK:
            raise
        # every output is written to a temporary file and renamed when whole, and prediction
        # tables keep their rows in OUT.partial: what was done is kept, nothing half-written
        print(f"seqmamba: {e.filename or 'an output'}: {e.strerror} (free some space, or write "
              "elsewhere, and rerun: earlier outputs are intact and a prediction resumes from "
              "its .partial)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
