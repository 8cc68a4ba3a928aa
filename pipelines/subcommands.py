"""Dispatch ``seqmamba <domain> <command> ...`` to the module that runs the command."""

from __future__ import annotations

import importlib


def dispatch(domain: str, commands: dict, argv) -> int:
    """commands: {name: (module path, one-line help)}; the module's ``run(argv)`` does the work."""
    usage = [f"usage: seqmamba {domain} <command> [options]   "
             f"(seqmamba {domain} <command> -h for help)", ""]
    usage += [f"  {name:<10} {text}" for name, (_, text) in commands.items()]
    if not argv or argv[0] in ("-h", "--help"):
        print("\n".join(usage))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print(f"seqmamba {domain}: unknown command {name!r}\n\n" + "\n".join(usage))
        return 2
    return importlib.import_module(commands[name][0]).run(rest)
