"""Files that ship inside the earmark package: the review app and the demo's samples.

They are found relative to the installed package (``importlib.resources``), not to a
source checkout, so ``earmark review`` and ``earmark demo`` work the same from a wheel
installed anywhere as from ``src/``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from earmark.errors import EarmarkError


def _packaged(*parts: str) -> Path:
    """Path of a file shipped in the package.

    Parameters
    ----------
    *parts : str
        Path components below the ``earmark`` package folder.

    Returns
    -------
    pathlib.Path
        The file on disk.

    Raises
    ------
    EarmarkError
        If the file is missing (an incomplete install) or the package is not on a file
        system (Streamlit and the importer need real files, not members of a zip).
    """
    root = resources.files("earmark")
    path = Path(str(root.joinpath(*parts)))
    if not isinstance(root, Path) or not path.is_file():
        raise EarmarkError(f"{path}: not found in the installed earmark package; reinstall "
                           "earmark from its wheel or source tree (pip install earmark-*.whl)")
    return path


def review_app() -> Path:
    """The Streamlit entry file of the review app (``earmark/app/Review.py``)."""
    return _packaged("app", "Review.py")


def sample_manifest() -> Path:
    """The demo's sample manifest (``earmark/samples/manifest.jsonl``); its audio paths are
    relative to its folder."""
    return _packaged("samples", "manifest.jsonl")
