"""A CTranslate2 model folder for a loaded Whisper model (for the CTranslate2 engine).

tiny.en's weight package already is such a folder; any other model (a fine-tuned
version, base) is written once into a folder under the cache
(``$EARMARK_CACHE/ct2/<key>``), the key naming the weights (a checkpoint's path, size
and modification time), so a version converts once and a new checkpoint gets a new
folder. The folder is what ``earmark export-model --format ct2`` writes
(:func:`earmark.models.export.export_whisper`: transformers' Whisper, then ctranslate2's
own converter, with the version's alignment heads), in float32: the engine quantizes
when it loads.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import whisper


def weights_key(spec: str) -> str:
    """A short name for the weights ``spec`` loads: a file by path, size and mtime; a name as is."""
    path = Path(spec).expanduser()
    if path.is_file():
        st = path.stat()
        ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    else:
        ident = spec
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def ct2_folder(spec: str, model: "whisper.Whisper", cache: Path | None = None) -> Path:
    """The CTranslate2 folder of the weights ``spec`` (loaded as ``model``), made once.

    Parameters
    ----------
    spec
        The model spec (a Whisper name or a checkpoint path) ``model`` was loaded from.
    model
        The loaded model: its weights are what a new folder is written from.
    cache
        Where converted folders live; default ``cache_dir()/ct2``.
    """
    from earmark.models.export import export_whisper
    from earmark.models.loading import BUNDLED, _package_dir, cache_dir

    pkg = BUNDLED.get(spec)
    if pkg is not None and len(pkg.packages) == 1:  # the package's model.bin is whole
        root = _package_dir(pkg.packages[0])
        if root is not None and (root / pkg.files[0]).is_file():
            return (root / pkg.files[0]).parent
    dest = (cache or cache_dir() / "ct2") / weights_key(spec)
    if (dest / "model.bin").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # written next to its final place and renamed, so a killed run leaves no half folder
    tmp = Path(tempfile.mkdtemp(prefix=".part-", dir=dest.parent))
    try:
        export_whisper(model, "ct2", tmp, progress=False)
        tmp.replace(dest)
    except OSError:
        if not (dest / "model.bin").is_file():  # not another process's finished copy
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
