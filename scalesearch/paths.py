"""Where the Hydra configs (``conf/``) and the search spaces (``search_spaces/``) live.

An installed wheel (``pip install .``) ships them as package data next to this file
(``scalesearch/conf``, ``scalesearch/search_spaces``); a checkout or an editable install
(``pip install -e .``) uses the top-level folders of the repository. ``SCALESEARCH_CONF``
overrides the config directory. Kept free of heavy imports (no torch, no hydra).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CONF_DIR", "SPACES_DIR", "PACKAGE_DIR", "REPO_DIR"]

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def _data_dir(name: str) -> Path:
    """The packaged copy ``scalesearch/<name>`` when it exists, else ``<repo>/<name>``."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else REPO_DIR / name


CONF_DIR: Path = (Path(os.environ["SCALESEARCH_CONF"]).resolve() if os.environ.get("SCALESEARCH_CONF")
                  else _data_dir("conf"))
SPACES_DIR: Path = _data_dir("search_spaces")
