"""A CTranslate2 model folder for a loaded Whisper model (for the CTranslate2 engine).

tiny.en's weight package already is such a folder; any other model (a fine-tuned
version, base) is written once from its openai-whisper weights into a folder under the
cache (``$EARMARK_CACHE/ct2/<key>``), the key naming the weights (a checkpoint's path,
size and modification time), so a version converts once and a new checkpoint gets a
new folder. The conversion is the inverse of :mod:`earmark.models.ct2` (the same tensor
names, q|k|v fused again), through ``ctranslate2.specs.WhisperSpec``; values are
copied, not rounded (float32; the engine quantizes when it loads).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

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
        write_ct2(model, tmp)
        os.replace(tmp, dest)
    except OSError:
        if not (dest / "model.bin").is_file():  # not another process's finished copy
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ct2_variables(model: "whisper.Whisper") -> dict[str, np.ndarray]:
    """The model's weights under CTranslate2's Whisper variable names (float32)."""
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def linear(src: str, dst: str) -> None:
        out[f"{dst}/weight"] = sd[f"{src}.weight"]
        if f"{src}.bias" in sd:
            out[f"{dst}/bias"] = sd[f"{src}.bias"]

    def norm(src: str, dst: str) -> None:
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def fused(prefix: str, names: list[str], dst: str) -> None:
        out[f"{dst}/weight"] = np.concatenate([sd[f"{prefix}.{n}.weight"] for n in names])
        # the key projection has no bias: zeros there let the biases fuse too
        out[f"{dst}/bias"] = np.concatenate([sd.get(f"{prefix}.{n}.bias", np.zeros_like(sd[f"{prefix}.query.bias"]))
                                             for n in names])

    def block(src: str, dst: str) -> None:
        fused(f"{src}.attn", ["query", "key", "value"], f"{dst}/self_attention/linear_0")
        linear(f"{src}.attn.out", f"{dst}/self_attention/linear_1")
        norm(f"{src}.attn_ln", f"{dst}/self_attention/layer_norm")
        linear(f"{src}.mlp.0", f"{dst}/ffn/linear_0")
        linear(f"{src}.mlp.2", f"{dst}/ffn/linear_1")
        norm(f"{src}.mlp_ln", f"{dst}/ffn/layer_norm")

    dims = model.dims
    for name in ("conv1", "conv2"):
        linear(f"encoder.{name}", f"encoder/{name}")
    out["encoder/position_encodings/encodings"] = sd["encoder.positional_embedding"]
    for i in range(dims.n_audio_layer):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}")
    norm("encoder.ln_post", "encoder/layer_norm")
    out["decoder/embeddings/weight"] = sd["decoder.token_embedding.weight"]
    out["decoder/position_encodings/encodings"] = sd["decoder.positional_embedding"]
    for i in range(dims.n_text_layer):
        s, d = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        block(s, d)
        linear(f"{s}.cross_attn.query", f"{d}/attention/linear_0")
        fused(f"{s}.cross_attn", ["key", "value"], f"{d}/attention/linear_1")
        linear(f"{s}.cross_attn.out", f"{d}/attention/linear_2")
        norm(f"{s}.cross_attn_ln", f"{d}/attention/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    out["decoder/projection/weight"] = sd["decoder.token_embedding.weight"]  # tied
    return out


def _assign(spec, name: str, value: np.ndarray) -> None:
    """Set ``spec``'s variable ``a/layer_2/b`` (``layer_2`` is the list ``layer``'s item 2)."""
    obj = spec
    *path, leaf = name.split("/")
    for part in path:
        m = re.fullmatch(r"(.+)_(\d+)", part)
        obj = getattr(obj, part) if hasattr(obj, part) or not m else getattr(obj, m.group(1))[int(m.group(2))]
    setattr(obj, leaf, value)


# special tokens the engine knows by Hugging Face's names (no-speech is looked up by name)
HF_NAMES = {"<|nospeech|>": "<|nocaptions|>", "<|he|>": "<|iw|>"}


def vocabulary(model: "whisper.Whisper") -> list[str]:
    """Every token id's string as CTranslate2 stores it (GPT-2 byte-level characters)."""
    import whisper

    tk = whisper.tokenizer.get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    enc = tk.encoding
    chars = _byte_chars()
    specials = {i: s for s, i in enc._special_tokens.items()}
    tokens = []
    for i in range(model.dims.n_vocab):
        if i in specials:
            tokens.append(HF_NAMES.get(specials[i], specials[i]))
        elif i < enc.n_vocab:
            tokens.append("".join(chars[b] for b in enc.decode_single_token_bytes(i)))
        else:  # Whisper's timestamp tokens, past the encoding's own ids
            tokens.append("<|%.2f|>" % ((i - tk.timestamp_begin) * 0.02))
    return tokens


def _byte_chars() -> dict[int, str]:
    """GPT-2's map of bytes to printable characters (the vocabulary file's alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + n)
            n += 1
    return chars


def write_ct2(model: "whisper.Whisper", dest: Path) -> None:
    """Write ``model`` as a CTranslate2 Whisper folder (model.bin, config, vocabulary)."""
    import whisper
    from ctranslate2.specs import whisper_spec

    from earmark.models.loading import alignment_heads_of

    dims = model.dims
    spec = whisper_spec.WhisperSpec(dims.n_audio_layer, dims.n_audio_head, dims.n_text_layer, dims.n_text_head)
    for name, value in ct2_variables(model).items():
        _assign(spec, name, value)
    tk = whisper.tokenizer.get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    spec.register_vocabulary(vocabulary(model))
    # Whisper's non-speech symbols and the specials that never follow the prompt
    specials = (tk.sot, tk.translate, tk.transcribe, tk.sot_lm, tk.sot_prev, tk.no_speech)
    spec.config.suppress_ids = sorted(set(tk.non_speech_tokens) | {t for t in specials if t is not None})
    spec.config.suppress_ids_begin = [*tk.encode(" "), tk.eot]
    spec.config.lang_ids = list(tk.all_language_tokens)
    spec.config.alignment_heads = [tuple(h) for h in alignment_heads_of(model)]
    spec.validate()
    spec.optimize(quantization=None)
    dest.mkdir(parents=True, exist_ok=True)
    spec.save(str(dest))
    # what the folder was made from, for whoever finds it in the cache
    (dest / "earmark.json").write_text(json.dumps({"dims": dims.__dict__}))
