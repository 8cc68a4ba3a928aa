"""Every command's options, walked through the parsers themselves: one declaration per option,
no option offered only to be refused, recipes and --set checked key by key."""

import argparse
import ast
import importlib
import inspect
from collections import defaultdict
from pathlib import Path

import pytest

from dna_helpers import DATA, seqmamba
from pipelines.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """The command line in this process (as tests/test_bad_input_corpus.py runs it: the
    option checks take milliseconds, not a Python start-up each), from ``tmp_path``:
    ``cli(*args) -> (exit code, stdout, stderr)``."""
    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse's own usage errors
            rc = e.code
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def _declarations():
    """{option string: {(command, file:line that declared it)}} over every command's parser:
    argparse's add_argument is wrapped while the parsers are built, to note its caller."""
    sites = defaultdict(set)
    real = argparse._ActionsContainer.add_argument
    command = [None]

    def noting(self, *args, **kw):
        frame = inspect.stack()[1]
        if kw.get("help") == argparse.SUPPRESS:  # a renamed option's old spelling: refusal only
            return real(self, *args, **kw)
        for s in args:
            if isinstance(s, str) and s.startswith("--"):
                sites[s].add((command[0], f"{Path(frame.filename).name}:{frame.lineno}"))
        return real(self, *args, **kw)

    argparse._ActionsContainer.add_argument = noting
    try:
        for domain, commands in COMMANDS.items():
            for name, (module, _) in commands.items():
                command[0] = f"{domain} {name}"
                importlib.import_module(module).build_parser()
    finally:
        argparse._ActionsContainer.add_argument = real
    return sites


def test_no_option_is_declared_by_hand_in_two_places():
    """An option several commands take comes from one declaration (a shared function or the
    typed option dataclasses), so its name, type, default and help cannot drift apart."""
    twice = {opt: sorted({site for _, site in where}) for opt, where in _declarations().items()
             if len({site for _, site in where}) > 1}
    assert not twice, "\n".join(f"{o}: {', '.join(s)}" for o, s in sorted(twice.items()))


def _unconditional_refusals(path: Path):
    """(line, option) of each ``if a.OPTION: raise ...`` in a module: an option refused
    whenever it is given, whatever its value."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Attribute) \
                and isinstance(node.test.value, ast.Name) and node.test.value.id == "a" \
                and len(node.body) == 1 and isinstance(node.body[0], ast.Raise) \
                and not node.orelse:
            yield node.lineno, node.test.attr


@pytest.mark.parametrize("command", [f"{d} {n}" for d, cs in COMMANDS.items() for n in cs])
def test_no_command_offers_an_option_it_refuses_for_every_value(command):
    domain, name = command.split()
    module = importlib.import_module(COMMANDS[domain][name][0])
    offered = {a.dest for a in module.build_parser()._actions}
    bad = [f"{Path(module.__file__).name}:{line}: --{dest.replace('_', '-')}"
           for line, dest in _unconditional_refusals(Path(module.__file__)) if dest in offered]
    assert not bad, "offered, then refused whenever given: " + ", ".join(bad)


def test_the_refusal_finder_finds_one():
    src = "def run(a):\n    if a.rc_equivariant:\n        raise ValueError('no')\n"
    p = ROOT / "tests" / ".refusal_probe.py"
    try:
        p.write_text(src)
        assert list(_unconditional_refusals(p)) == [(2, "rc_equivariant")]
    finally:
        p.unlink()


def test_global_options_are_the_root_parsers_and_shown_in_help():
    text = build_parser().format_help()
    assert "--threads" in text and "--verbose" in text
    for domain in COMMANDS:
        assert domain in text
    rc, out, _ = seqmamba("--help")
    assert rc == 0 and "--threads" in out and "dna" in out and "audio" in out
    rc, out, _ = seqmamba("dna", "--help")
    assert rc == 0 and all(name in out for name in COMMANDS["dna"])


@pytest.mark.parametrize("old, new, args", [
    ("--seconds", "--duration", ["audio", "generate", "--model", "run", "--out", "g.wav"]),
    ("--window", "--window-seconds", ["audio", "predict", "x.wav", "--model", "run",
                                      "--track", "t.csv"]),
])
def test_a_renamed_option_names_its_new_spelling_in_one_line(cli, tmp_path, old, new, args):
    """--seconds (the clip length in audio finetune) was also generate's output length, and
    --window (bases in DNA) was seconds in audio predict: the second meanings have new names."""
    rc, _, err = cli(*args, old, "0.5")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and f"{old} is now {new}" in lines[0], err
    assert "Traceback" not in err and not list(tmp_path.iterdir())
    from pipelines.audio.generate import build_parser as generate_parser
    from pipelines.audio.predict import build_parser as predict_parser

    for parser in (generate_parser(), predict_parser()):
        assert old + " " not in parser.format_help()  # the old spelling is not offered


def test_a_command_not_offering_an_option_refuses_it_in_argparse(cli):
    rc, _, err = cli("audio", "pretrain", "--train", DATA / "audio" / "spoken_digits_espeak",
                     "--out", "-", "--bidirectional", "add")
    assert rc == 2 and "--bidirectional" in err


@pytest.mark.parametrize("sets, needle", [
    (["max_steps=ten"], "--set key max_steps: 'ten' is not an integer"),
    (["pooling=attention"], "--set key pooling: 'attention' is not one of mean, last, max, center"),
    (["nonsense=1"], "unknown --set keys ['nonsense']"),
    (["max_steps"], "expected KEY=VALUE"),
])
def test_set_reaches_recipe_keys_and_names_a_bad_one(cli, tmp_path, sets, needle):
    rc, _, err = cli("dna", "finetune", "--config", "dna_promoters", "--out", tmp_path / "r",
                     "--set", *sets)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "r").exists()


def test_set_overrides_the_recipe_and_flags_override_set():
    from pipelines.dna.finetune import build_parser as finetune_parser
    from pipelines.runs import parse_with_recipe

    a = parse_with_recipe(finetune_parser(), ["--config", "dna_promoters", "--out", "x",
                                              "--set", "max_steps=7", "lr=0.0005", "--lr", "0.01"])
    assert a.max_steps == 7 and a.lr == 0.01
    assert a.d_model == parse_with_recipe(finetune_parser(),
                                          ["--config", "dna_promoters", "--out", "x"]).d_model


def test_a_recipe_value_of_the_wrong_type_names_the_key(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_steps: 10\nbatch_size: many\n")
    rc, _, err = cli("dna", "finetune", "--config", recipe, "--out", tmp_path / "run",
                     "--train", DATA / "labelled" / "uci_ecoli_promoters.tsv")
    assert rc == 2 and "recipe key batch_size: 'many' is not an integer" in err
    assert str(recipe) in err and not (tmp_path / "run").exists()


def test_every_shipped_recipe_parses_under_its_command():
    """Each recipe's keys and values pass the checks (types, choices) of the command it is for."""
    from pipelines.bundled import shipped_recipe, shipped_recipe_names
    from pipelines.runs import parse_with_recipe

    for name in shipped_recipe_names():
        domain, rest = name.split("_", 1)
        command = "pretrain" if "pretrain" in rest else "finetune"
        module = importlib.import_module(COMMANDS[domain][command][0])
        a = parse_with_recipe(module.build_parser(), ["--config", name, "--out", "x"])
        assert a.config and Path(shipped_recipe(name)).is_file()


def test_each_option_is_one_field_of_one_dataclass():
    import dataclasses

    from pipelines.options import CATALOGUE

    names = [f.name for cls in CATALOGUE for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for cls in CATALOGUE:
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


@pytest.mark.parametrize("args, needle", [
    (["dna", "predict", "x.fa", "--model", "m", "--out", "p.tsv", "--chunk-size", "0"],
     "out of range: --chunk-size >= 1, got 0"),
    (["dna", "predict", "x.fa", "--model", "m", "--out", "p.tsv", "--track-bin", "0"],
     "out of range: --track-bin >= 1, got 0"),
    (["audio", "predict", "x.wav", "--model", "m", "--out", "p.csv", "--batch-size", "0"],
     "out of range: --batch-size >= 1, got 0"),
    (["dna", "generate", "--model", "m", "--length", "5", "--out", "g.fa", "--top-p", "1.5"],
     "out of range: --top-p in (0, 1], got 1.5"),
    (["dna", "finetune", "--train", "t.tsv", "--out", "r", "--lr", "0"],
     "out of range: --lr > 0, got 0.0"),
])
def test_each_bad_value_is_named_alone_with_its_range(cli, tmp_path, args, needle):
    rc, _, err = cli(*args)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and needle in lines[0], err
    assert not list(tmp_path.iterdir())
