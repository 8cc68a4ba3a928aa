"""What the commands read at run time, shipped inside the package: the bundled genomes, labelled
sets and clips (``data/``), their manifests (``data_manifests/``) and the scan's conformance
vectors (``conformance/``).

In a source checkout these names are links to the repository's top-level folders, which stay
the one copy; a wheel (``pip install .``) carries the files themselves.  Code finds them
through :func:`bundled`, never by walking up from ``__file__`` to a repository that an
installed package does not have.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import List, Optional


def bundled(*parts: str) -> Path:
    """The path of a bundled file or folder, e.g. ``bundled("data_manifests", "genomes.yaml")``."""
    return Path(str(files(__name__).joinpath(*parts)))


def shipped_recipe(name: str) -> Optional[Path]:
    """The shipped recipe ``pipelines/recipes/NAME.yaml`` for a bare name such as
    ``dna_splice`` (or ``dna_splice.yaml``), or None.  Its paths point into this package's
    data, so it runs from an installed package as from a checkout."""
    if Path(name).name != name:
        return None
    path = Path(str(files("pipelines").joinpath("recipes", name)))
    path = path if path.suffix == ".yaml" else path.with_name(path.name + ".yaml")
    return path if path.is_file() else None


def shipped_recipe_names() -> List[str]:
    return sorted(p.stem for p in Path(str(files("pipelines").joinpath("recipes"))).glob("*.yaml"))
