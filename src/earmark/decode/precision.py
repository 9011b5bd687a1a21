"""The arithmetic decoding runs in: float32, bfloat16, float16 (a GPU) or an int8 encoder.

:func:`resolve_precision` turns ``DecodeConfig.quantize`` into the arithmetic for a
device; :func:`quantize_encoder` makes the int8 copy of an encoder; :class:`BlockWeights`
holds a decoder block's weights in the chosen dtype, laid out for the decoding loop of
:class:`earmark.decode.decoder.Decoder`. The model itself is never modified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from earmark.config import PRECISIONS

if TYPE_CHECKING:
    import torch


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, c, lambda: False)() for c in checks)


def resolve_precision(quantize: str, device: str) -> str:
    """The arithmetic (``DecodeConfig.quantize``) to decode with on ``device``.

    Returns "bf16", "fp16", "int8" or "float32". ``auto`` is bf16 on a CPU that has
    bfloat16 instructions, fp16 on a CUDA GPU (the encoder under float16 autocast, the
    decoder's products on float16 weights, each step's best tokens' logits exact in
    float32, as bf16 does on a CPU), and float32 elsewhere (without the instructions
    bfloat16 is emulated, and slower). ``int8`` quantizes the encoder's linear layers
    only, on a CPU; ``none`` is float32 throughout, whisper's own arithmetic.
    """
    if quantize not in PRECISIONS:
        raise ValueError(f"DecodeConfig.quantize={quantize!r}: use one of {', '.join(PRECISIONS)}")
    if device == "cuda" and quantize == "auto":
        return "fp16"
    if device != "cpu" or quantize == "none":
        return "float32"
    if quantize == "auto":
        return "bf16" if native_bf16() else "float32"
    return quantize


def quantize_encoder(encoder: "torch.nn.Module") -> "torch.nn.Module":
    """A copy of ``encoder`` with its linear layers in dynamic int8 (weights per channel).

    The convolutions, layer norms and attention products stay in float32; the linear
    layers (about three quarters of the encoder's arithmetic on a 30 s window) run on
    int8 kernels, with activations quantized on the fly.
    """
    import copy

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    enc = copy.deepcopy(encoder)
    for module in enc.modules():
        # whisper's Linear only casts its weight to the input's dtype; the quantizer
        # recognises plain nn.Linear only
        if isinstance(module, torch.nn.Linear):
            module.__class__ = torch.nn.Linear
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that eager quantization moves to torchao
        return quantize_dynamic(enc, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


class BlockWeights:
    """One decoder block's weights, laid out for :meth:`earmark.decode.decoder.Decoder._forward`.

    The self-attention's query, key and value projections are fused into one matrix
    (the key has no bias: zeros there), which saves two matrix products per layer and
    step. The projections are kept in ``dtype`` (float32 or bfloat16); layer norms stay
    in float32, and every product returns float32.
    """

    def __init__(self, block, dtype):
        import torch

        def low(t):
            return t.detach().to(dtype)

        a, c = block.attn, block.cross_attn
        self.attn_ln_w, self.attn_ln_b = block.attn_ln.weight, block.attn_ln.bias
        self.qkv_w = low(torch.cat([a.query.weight, a.key.weight, a.value.weight]))
        self.qkv_b = low(torch.cat([a.query.bias, torch.zeros_like(a.query.bias), a.value.bias]))
        self.attn_out_w, self.attn_out_b = low(a.out.weight), low(a.out.bias)
        self.cross_ln_w, self.cross_ln_b = block.cross_attn_ln.weight, block.cross_attn_ln.bias
        self.cross_q_w, self.cross_q_b = low(c.query.weight), low(c.query.bias)
        self.cross_k_w, self.cross_v_w, self.cross_v_b = c.key.weight, c.value.weight, c.value.bias
        self.cross_out_w, self.cross_out_b = low(c.out.weight), low(c.out.bias)
        self.mlp_ln_w, self.mlp_ln_b = block.mlp_ln.weight, block.mlp_ln.bias
        self.fc1_w, self.fc1_b = low(block.mlp[0].weight), low(block.mlp[0].bias)
        self.fc2_w, self.fc2_b = low(block.mlp[2].weight), low(block.mlp[2].bias)

    @staticmethod
    def lin(x: "torch.Tensor", weight: "torch.Tensor", bias: "torch.Tensor | None") -> "torch.Tensor":
        """``x @ weight.T + bias`` in the weight's dtype, returned in float32."""
        import torch.nn.functional as F

        return F.linear(x.to(weight.dtype), weight, bias).float()

    def cross_kv(self, features: "torch.Tensor", heads: int, dtype):
        """Cross-attention keys and values of the audio features, (batch, heads, frames, dh)."""
        import torch.nn.functional as F

        b, f, d = features.shape
        k = F.linear(features, self.cross_k_w).view(b, f, heads, d // heads).transpose(1, 2)
        v = F.linear(features, self.cross_v_w, self.cross_v_b).view(b, f, heads, d // heads).transpose(1, 2)
        return k.to(dtype).contiguous(), v.to(dtype).contiguous()
