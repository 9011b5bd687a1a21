"""Write a project's model version in the formats other engines serve.

- ``hf``: a Hugging Face transformers Whisper folder (``model.safetensors``,
  ``config.json``, ``generation_config.json``, the tokenizer and the feature extractor's
  ``preprocessor_config.json``), which ``WhisperForConditionalGeneration``,
  ``WhisperProcessor`` and ``pipeline("automatic-speech-recognition")`` load;
- ``ct2``: a CTranslate2 model folder that faster-whisper's ``WhisperModel(DIR)`` loads,
  made from the ``hf`` folder by ctranslate2's own ``TransformersConverter``.

Everything is built offline. The tokenizer comes from the tiktoken file openai-whisper
ships (``whisper/assets/gpt2.tiktoken`` or ``multilingual.tiktoken``) through
transformers' ``TikTokenConverter``, with openai-whisper's special tokens at their ids.
The generation config is written from openai-whisper's tokenizer (the tokens it
suppresses, its language and task tokens) and carries the version's alignment heads,
which ctranslate2's converter copies into the CTranslate2 config: without them both
engines time words from every head of the upper decoder layers, and a fine-tuned model's
word timestamps drift.

The transformers release installed here (5.x) no longer ships its
``convert_openai_to_hf`` script, so the weights are renamed here with that script's
table of names (:data:`OPENAI_TO_HF`), and the result is loaded by transformers' own
``WhisperForConditionalGeneration`` with every weight accounted for.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earmark.errors import BadConfig, MissingExtra
from earmark.models.loading import alignment_heads_of
from earmark.models.lora import merge_lora
from earmark.models.versions import load_version, lookup_version, unknown_version

if TYPE_CHECKING:
    import whisper

FORMATS = ("hf", "ct2")
QUANTIZATIONS = ("int8", "float16", "float32", "int8_float16", "int8_float32")
INSTALL = "pip install 'earmark[export]'"

# openai-whisper's weight names -> transformers' (the table of transformers'
# convert_openai_to_hf.py); applied in this order, each wherever it occurs in a name
OPENAI_TO_HF = (
    ("blocks", "layers"),
    ("mlp.0", "fc1"),
    ("mlp.2", "fc2"),
    ("mlp_ln", "final_layer_norm"),
    (".attn.query", ".self_attn.q_proj"),
    (".attn.key", ".self_attn.k_proj"),
    (".attn.value", ".self_attn.v_proj"),
    (".attn_ln", ".self_attn_layer_norm"),
    (".attn.out", ".self_attn.out_proj"),
    (".cross_attn.query", ".encoder_attn.q_proj"),
    (".cross_attn.key", ".encoder_attn.k_proj"),
    (".cross_attn.value", ".encoder_attn.v_proj"),
    (".cross_attn_ln", ".encoder_attn_layer_norm"),
    (".cross_attn.out", ".encoder_attn.out_proj"),
    ("decoder.ln.", "decoder.layer_norm."),
    ("encoder.ln.", "encoder.layer_norm."),
    ("token_embedding", "embed_tokens"),
    ("encoder.positional_embedding", "encoder.embed_positions.weight"),
    ("decoder.positional_embedding", "decoder.embed_positions.weight"),
    ("ln_post", "layer_norm"),
)


@dataclass(frozen=True)
class ModelExport:
    """What :func:`export_model` wrote."""

    version: str  # the model version exported
    format: str  # "hf" or "ct2"
    out: Path  # the folder written
    quantization: str  # CTranslate2 weight type ("" for hf: float32 safetensors)
    alignment_heads: tuple[tuple[int, int], ...]  # (decoder layer, head) pairs carried over


def _require(module: str) -> Any:
    """Import ``module`` or raise :class:`MissingExtra` naming the extra to install."""
    import importlib

    # offline by construction; set before huggingface_hub reads it at import, this keeps
    # a cache lookup in transformers or ctranslate2 from trying the network
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(f"exporting a model needs {module.split('.')[0]}, which is not "
                           f"installed ({exc}); run `{INSTALL}`") from exc


def check_out(out: Path) -> None:
    """Raise :class:`BadConfig` unless ``out`` is absent or an empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a folder that is not empty"
        raise BadConfig(f"--out {out}: is {what}; give a new or empty folder (an export never "
                        "overwrites what is there)")


def hf_state_dict(model: "whisper.Whisper") -> dict[str, Any]:
    """openai-whisper's weights under transformers' names (the ``model.`` part of them)."""
    out = {}
    for key, value in model.state_dict().items():
        if key == "alignment_heads":  # a buffer of openai-whisper's, not a weight
            continue
        for old, new in OPENAI_TO_HF:
            key = key.replace(old, new)
        out[key] = value.detach().to("cpu", dtype=value.dtype).clone()
    return out


def whisper_tokenizer(model: "whisper.Whisper"):
    """openai-whisper's tokenizer for ``model`` (English or multilingual, by its vocabulary)."""
    from whisper.tokenizer import get_tokenizer

    return get_tokenizer(model.is_multilingual, num_languages=model.num_languages)


def hf_tokenizer(model: "whisper.Whisper"):
    """A transformers ``WhisperTokenizer`` built offline from openai-whisper's tiktoken file.

    transformers' ``TikTokenConverter`` turns the BPE ranks into a vocabulary and merges;
    the special tokens are added in openai-whisper's order, so every id is the one the
    model was trained with (checked, since a shifted id would silently garble output).
    """
    import whisper
    from transformers import AddedToken, WhisperTokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    wt = whisper_tokenizer(model)
    name = "multilingual" if model.is_multilingual else "gpt2"
    tiktoken_file = Path(whisper.__file__).parent / "assets" / f"{name}.tiktoken"
    vocab, merges = TikTokenConverter(vocab_file=str(tiktoken_file)).extract_vocab_merges_from_model(
        str(tiktoken_file))
    tok = WhisperTokenizer(vocab=vocab, merges=merges)
    specials = sorted(wt.encoding._special_tokens.items(), key=lambda kv: kv[1])
    # timestamps are ordinary (normalized) tokens in transformers' Whisper tokenizers
    control = [t for t, _ in specials if not t.startswith("<|") or not t[2].isdigit()]
    times = [t for t, _ in specials if t not in control]
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in control], special_tokens=True)
    tok.add_tokens(times, special_tokens=False)
    wrong = [(t, i, tok.convert_tokens_to_ids(t)) for t, i in specials if tok.convert_tokens_to_ids(t) != i]
    if wrong or len(tok) != model.dims.n_vocab:
        raise RuntimeError(f"tokenizer ids differ from openai-whisper's: {wrong[:3]} (size {len(tok)} "
                           f"vs {model.dims.n_vocab})")
    return tok


def generation_config(model: "whisper.Whisper", heads: list[list[int]]):
    """transformers' ``GenerationConfig`` for ``model``, from openai-whisper's tokenizer."""
    from transformers import GenerationConfig

    wt = whisper_tokenizer(model)
    cfg = GenerationConfig(
        decoder_start_token_id=wt.sot, bos_token_id=wt.eot, eos_token_id=wt.eot, pad_token_id=wt.eot,
        max_length=model.dims.n_text_ctx, no_timestamps_token_id=wt.no_timestamps,
        prev_sot_token_id=wt.sot_prev, max_initial_timestamp_index=50,
        # openai-whisper's suppress_tokens="-1" (its non-speech tokens and the control
        # tokens, as its DecodingTask adds them) and suppress_blank
        suppress_tokens=sorted({*wt.non_speech_tokens, wt.transcribe, wt.translate, wt.sot,
                                wt.sot_prev, wt.sot_lm, wt.no_speech}),
        begin_suppress_tokens=[wt.encode(" ")[0], wt.eot],
        alignment_heads=[list(h) for h in heads],
        is_multilingual=model.is_multilingual,
    )
    if model.is_multilingual:
        from whisper.tokenizer import LANGUAGES

        langs = list(LANGUAGES)[:model.num_languages]
        cfg.lang_to_id = {f"<|{code}|>": wt.encoding._special_tokens[f"<|{code}|>"] for code in langs}
        cfg.task_to_id = {"transcribe": wt.transcribe, "translate": wt.translate}
    else:
        cfg.forced_decoder_ids = [[1, wt.no_timestamps]]
    return cfg


def to_hf(model: "whisper.Whisper", out: Path) -> None:
    """Write ``model`` as a transformers Whisper folder at ``out`` (which must not exist)."""
    import torch

    transformers = _require("transformers")
    dims = model.dims
    state = hf_state_dict(model)
    config = transformers.WhisperConfig(
        vocab_size=dims.n_vocab, num_mel_bins=dims.n_mels, d_model=dims.n_audio_state,
        encoder_layers=dims.n_audio_layer, encoder_attention_heads=dims.n_audio_head,
        decoder_layers=dims.n_text_layer, decoder_attention_heads=dims.n_text_head,
        encoder_ffn_dim=state["encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=state["decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=dims.n_audio_ctx, max_target_positions=dims.n_text_ctx,
        eos_token_id=whisper_tokenizer(model).eot, bos_token_id=whisper_tokenizer(model).eot,
        pad_token_id=whisper_tokenizer(model).eot, decoder_start_token_id=whisper_tokenizer(model).sot,
        tie_word_embeddings=True,  # openai-whisper's output projection is its token embedding
    )
    hf = transformers.WhisperForConditionalGeneration(config)
    missing, unexpected = hf.model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights that do not fit transformers' Whisper: missing {missing[:4]}, "
                           f"unexpected {unexpected[:4]}")
    hf.tie_weights()
    if not torch.equal(hf.proj_out.weight, hf.model.decoder.embed_tokens.weight):
        raise RuntimeError("the output projection is not tied to the token embedding")
    hf.generation_config = generation_config(model, alignment_heads_of(model))
    tok = hf_tokenizer(model)
    features = transformers.WhisperFeatureExtractor(feature_size=dims.n_mels)
    processor = transformers.WhisperProcessor(feature_extractor=features, tokenizer=tok)
    hf.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    # preprocessor_config.json too: faster-whisper and older transformers read the
    # feature extractor's settings from that file, not from processor_config.json
    features.save_pretrained(str(out))


def to_ct2(hf_dir: Path, out: Path, quantization: str) -> None:
    """Convert the transformers folder ``hf_dir`` into a CTranslate2 model at ``out``."""
    ctranslate2 = _require("ctranslate2")
    _require("transformers")
    converter = ctranslate2.converters.TransformersConverter(
        str(hf_dir), copy_files=["tokenizer.json", "preprocessor_config.json"])
    converter.convert(str(out), quantization=quantization or None, force=True)


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' progress bars hidden for the ``with`` block (as they were after it)."""
    logging = _require("transformers.utils.logging")
    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def export_whisper(model: "whisper.Whisper", fmt: str, out: Path, quantization: str = "",
                   progress: bool = True) -> None:
    """Write a loaded Whisper model as ``fmt`` into the new or empty folder ``out``.

    The folder is written beside its final place and renamed into it, so a failed or
    killed export leaves nothing that looks like a model. ``progress=False`` hides
    transformers' progress bars (for a conversion made on the way to decoding).
    """
    if fmt not in FORMATS:
        raise BadConfig(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if quantization and fmt != "ct2":
        raise BadConfig("--quantization applies to --format ct2 only (a transformers folder "
                        "holds float32 weights; cast them when loading)")
    if quantization and quantization not in QUANTIZATIONS:
        raise BadConfig(f"--quantization {quantization!r}: use one of {', '.join(QUANTIZATIONS)}")
    out = Path(out)
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        hf_dir = work / "hf"
        with nullcontext() if progress else _no_progress_bars():
            to_hf(model, hf_dir)
            final = hf_dir
            if fmt == "ct2":
                final = work / "ct2"
                to_ct2(hf_dir, final, quantization)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(final, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_model(project, model: str | None, fmt: str, out: Path, quantization: str = "") -> ModelExport:
    """Export a project's model version (default: the active one).

    Parameters
    ----------
    project
        An open project.
    model
        A version's name (``earmark models`` lists them); None for the active version.
    fmt
        ``"hf"`` or ``"ct2"``.
    out
        A new or empty folder.
    quantization
        CTranslate2 weight type for ``ct2`` (``int8``, ``float16``...); "" keeps float32.

    Raises
    ------
    UnknownModelVersion
        ``model`` is not a version of the project (the message lists them).
    BadConfig
        ``out`` is not empty, or a format or quantization is not one of those listed.
    MissingExtra
        transformers or ctranslate2 is not installed.
    """
    if fmt not in FORMATS:
        raise BadConfig(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    check_out(Path(out))
    _require("transformers")
    if fmt == "ct2":
        _require("ctranslate2")
    mv = lookup_version(project, model) if model else project.store.active_model()
    if mv is None:
        raise unknown_version(project, model or "(active)")
    whisper_model = load_version(project, mv, "cpu")
    merge_adapters(whisper_model)
    export_whisper(whisper_model, fmt, Path(out), quantization)
    heads = tuple(tuple(h) for h in alignment_heads_of(whisper_model))
    return ModelExport(mv.name, fmt, Path(out), quantization if fmt == "ct2" else "", heads)


def merge_adapters(model: "whisper.Whisper") -> None:
    """Fold any LoRA adapters into their weights, as a saved checkpoint holds them."""
    if any("lora_" in name for name, _ in model.named_parameters()):
        merge_lora(model)

