"""A non-editable install works: the wheel carries what the commands read at run time.

The wheel is built from this checkout and installed, without dependencies, into a fresh
virtual environment that borrows the test environment's packages (torch, lightning, ...)
through a path file, so nothing is downloaded.  The commands then run from a folder outside
the source tree, where walking up from ``__file__`` to a repository would find nothing.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env, timeout=600):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder of a fresh venv holding the installed wheel, env, an empty working folder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "runs", "*.egg-info", "__pycache__", ".pytest_cache"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          str(src), "-w", str(tmp / "dist")], cwd=tmp, env=env)
    wheel = next((tmp / "dist").glob("seqmamba-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp, env=env)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp, env=env).strip())
    # the dependencies, borrowed: a plain path line, so that this environment's own .pth files
    # (among them the editable install of the checkout) are not processed there
    (site / "zz_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
          str(wheel)], cwd=tmp, env=env)
    work = tmp / "elsewhere"
    work.mkdir()
    return venv / "bin", env, work


OUR_PACKAGES = {"seqmamba_kernels", "seqmamba", "pipelines"}


def test_no_other_distribution_installs_our_top_level_names():
    """Each top-level package we install is ours alone.  The scan engine was once the package
    ``kernels``, the name of Hugging Face's kernel hub client, which transformers 5.x installs:
    beside it, ``seqmamba`` run from outside the checkout imported theirs and failed."""
    owners = importlib.metadata.packages_distributions()
    ours = {name for name, dists in owners.items() if "seqmamba" in dists}
    assert ours == OUR_PACKAGES
    for name in ours:
        assert set(owners[name]) == {"seqmamba"}, (name, owners[name])


def test_the_command_imports_the_checkout_from_anywhere(tmp_path):
    """The console script, run outside the source tree (where the current folder does not put
    the checkout first on sys.path), imports our packages and not a namesake."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = _run([sys.executable, "-c", "import pipelines, seqmamba, seqmamba_kernels; "
                  "print(pipelines.__file__, seqmamba.__file__, seqmamba_kernels.__file__)"],
                 tmp_path, env)
    for f in where.split():
        assert Path(f).resolve().is_relative_to(ROOT), f
    info = _run([str(Path(sys.executable).parent / "seqmamba"), "info"], tmp_path, env)
    assert "scan backends:" in info


def test_the_installed_package_is_not_the_checkout(installed):
    bin_, env, work = installed
    where = _run([str(bin_ / "python"), "-c",
                  "import pipelines, seqmamba, seqmamba_kernels; "
                  "print(pipelines.__file__, seqmamba.__file__, seqmamba_kernels.__file__)"], work, env)
    for f in where.split():
        assert not Path(f).resolve().is_relative_to(ROOT), f


def test_info_and_selfcheck_run_from_the_wheel(installed):
    bin_, env, work = installed
    info = _run([str(bin_ / "seqmamba"), "info"], work, env)
    assert "cpu" in info and "torch" in info
    # the conformance vectors are read from the installed package
    check = _run([str(bin_ / "seqmamba"), "selfcheck", "--backends", "torch", "cpu"], work, env)
    assert "self-check passed" in check and "conformance #7" in check


def test_manifests_recipes_and_bundled_data_come_with_the_wheel(installed):
    bin_, env, work = installed
    code = ("from pipelines.bundled import bundled, shipped_recipe\n"
            "from pipelines.dna.manifest import load_manifest, manifest_file\n"
            "from pipelines.audio.datasets import bundled_set\n"
            "m = load_manifest('genomes.yaml')\n"
            "print(manifest_file(m, 'ecoli'))\n"
            "print(bundled_set('spoken_digits_espeak')['manifest'])\n"
            "print(shipped_recipe('dna_splice'))\n")
    out = _run([str(bin_ / "python"), "-c", code], work, env).split("\n")
    ecoli, clips, recipe = out[0], Path(out[1]), out[2]
    assert Path(ecoli).is_file() and not Path(ecoli).resolve().is_relative_to(ROOT)
    assert not clips.resolve().is_relative_to(ROOT)
    assert len(clips.read_text().splitlines()) == 201  # header + 200 clips
    assert len(list(clips.parent.glob("*.wav"))) == 200
    assert Path(recipe).is_file() and not Path(recipe).resolve().is_relative_to(ROOT)
    # every bundled file a shipped recipe names is in the wheel (the generated synthetic set
    # is made on demand by data/audio/make_digits.py, so it is never bundled)
    code = ("import yaml\n"
            "from pipelines.bundled import shipped_recipe, shipped_recipe_names\n"
            "for name in shipped_recipe_names():\n"
            "    r = shipped_recipe(name)\n"
            "    for v in yaml.safe_load(r.read_text()).values():\n"
            "        for x in (v if isinstance(v, list) else [v]):\n"
            "            if isinstance(x, str) and x.startswith('../bundled/'):\n"
            "                print(name, x, (r.parent / x).exists())\n")
    named = [line.split() for line in _run([str(bin_ / "python"), "-c", code], work, env)
             .splitlines()]
    assert any("synth_digits_8k" in x for _, x, _ in named)
    assert [n for n in named if n[2] != "True" and "audio/generated/" not in n[1]] == []
    # a shipped recipe by name: its data paths resolve inside the installed package (two
    # training steps prove the whole chain: recipe -> bundled table -> model -> export)
    run = work / "splice"
    _run([str(bin_ / "seqmamba"), "dna", "finetune", "--config", "dna_splice", "--out", str(run),
          "--max-steps", "2", "--val-every", "2", "--no-progress"], work, env)
    assert (run / "final" / "config.json").is_file() and (run / "final" / "model.safetensors").is_file()


# the import names of what `seqmamba[all]` adds to the core
PIPELINE_MODULES = ("yaml", "lightning", "pytorch_lightning", "pyfaidx", "Bio", "sklearn",
                    "matplotlib", "tqdm", "soundfile", "torchaudio", "pysam", "pyBigWig")
BLOCKER = f'''
import sys
BLOCKED = {PIPELINE_MODULES!r}
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Blocker())
'''


def test_the_core_needs_only_torch_numpy_and_safetensors(installed, tmp_path):
    """`pip install seqmamba` (no extra) declares torch, numpy, safetensors (and triton on
    Linux), and with none of the pipelines' packages importable the wheel's model library
    still saves and loads a checkpoint, runs a forward pass, generates, and runs the fused CPU
    kernel against the reference; the command line says in one line what to install."""
    import zipfile

    wheel = next((installed[0].parent.parent / "dist").glob("seqmamba-*.whl"))
    meta = zipfile.ZipFile(wheel).read(
        next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))).decode()
    core = {line.split(":", 1)[1].split(";")[0].strip().split(">")[0].split("=")[0].strip()
            for line in meta.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert core == {"torch", "triton", "numpy", "safetensors"}, core
    bin_dir, env, work = installed
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCKER)
    env = dict(env, PYTHONPATH=str(block))
    code = ("import sys, torch\n"
            "from seqmamba import MambaConfig, MambaLMHeadModel\n"
            "from seqmamba_kernels import selective_scan, selective_scan_ref\n"
            "torch.manual_seed(0)\n"
            "m = MambaLMHeadModel(MambaConfig(d_model=16, n_layer=2, vocab_size=8, d_state=4))\n"
            f"m.save_pretrained({str(tmp_path / 'm')!r})\n"
            f"back = MambaLMHeadModel.from_pretrained({str(tmp_path / 'm')!r}).eval()\n"
            "x = torch.randint(0, 8, (2, 24))\n"
            "with torch.no_grad():\n"
            "    assert torch.allclose(back(x).logits, m.eval()(x).logits)\n"
            "    out = back.generate(x[:, :4], max_new_tokens=5)\n"
            "assert out.shape == (2, 9)\n"
            "u, dt = torch.randn(1, 16, 40), torch.randn(1, 16, 40)\n"
            "A, B, C = -torch.rand(16, 4) - 0.5, torch.randn(1, 4, 40), torch.randn(1, 4, 40)\n"
            "y = selective_scan(u, dt, A, B, C, delta_softplus=True, backend='cpu')\n"
            "r = selective_scan_ref(u.double(), dt.double(), A.double(), B.double(), C.double(),"
            " delta_softplus=True)\n"
            "assert (y.double() - r).abs().max() < 1e-4\n"
            "blocked = [n for n in sys.modules if n.split('.')[0] in "
            f"{PIPELINE_MODULES!r}]\n"
            "assert not blocked, blocked\n"
            "print('core ok')\n")
    out = _run([str(bin_dir / "python"), "-c", code], work, env)
    assert "core ok" in out
    r = subprocess.run([str(bin_dir / "seqmamba"), "dna", "finetune", "--config", "dna_splice",
                        "--out", str(tmp_path / "run")], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "pip install 'seqmamba[all]'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
