"""Training on a GPU: mixed precision, and a batch size chosen for the card.

Mixed precision
    On a CUDA GPU the forward passes run under ``torch.autocast``: in bfloat16 on a
    card that has it (compute capability 8.0 and up: A100, H100, RTX 30xx and later),
    whose range is float32's, so no loss scaling is needed; in float16 on older cards,
    with a ``GradScaler`` that scales the loss so small gradients do not underflow and
    skips a step whose gradients overflowed. The weights, their gradients and AdamW's
    moments stay float32 (the loss too: the trainer takes the cross-entropy of float32
    logits). On a CPU nothing changes: float32 throughout, as before.

Batch size
    ``FinetuneConfig.batch_size`` 0 (the default) means "choose": 4 windows on a CPU,
    and on a GPU as many as its free memory holds (:func:`card_train_batch`), up to
    :data:`MAX_TRAIN_BATCH`. A batch size the user sets is kept as it is. The choice is
    made once, when a run starts, and saved with the run, so a resumed run keeps it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from earmark.models.device import resolve_device

if TYPE_CHECKING:
    import torch

    from earmark.config import FinetuneConfig

CPU_TRAIN_BATCH = 4  # windows per step on a CPU (the batch size before it could be chosen)
MAX_TRAIN_BATCH = 64  # beyond this a larger batch only means fewer, longer steps per epoch
MEMORY_SHARE = 0.6  # of the free memory the estimate may fill: allocator slack, transients
TEXT_POSITIONS = 224  # decoder positions a training window's text takes at most (a bound)


def train_dtype(device_type: str, capability: tuple[int, int] | None = None, bf16: bool = False) -> str | None:
    """The autocast arithmetic for training on a device: "bf16", "fp16" or None (float32).

    Parameters
    ----------
    device_type
        ``torch.device.type``: "cuda", "cpu", "mps".
    capability
        A CUDA card's compute capability (major, minor).
    bf16
        Whether torch reports bfloat16 support on that card.
    """
    if device_type != "cuda":
        return None
    return "bf16" if bf16 and capability is not None and capability >= (8, 0) else "fp16"


def param_count(dims: dict[str, int]) -> int:
    """Weights of a Whisper model of these dimensions (openai-whisper's ``ModelDimensions``),
    close enough for a memory estimate: 12 h^2 per encoder block (attention and a 4h
    MLP), 16 h^2 per decoder block (with cross-attention), the token embedding."""
    ha, ht = dims["n_audio_state"], dims["n_text_state"]
    return 12 * ha * ha * dims["n_audio_layer"] + 16 * ht * ht * dims["n_text_layer"] + dims["n_vocab"] * ht


def window_train_bytes(dims: dict[str, int], mode: str, half: bool) -> int:
    """Memory the saved activations of one 30 s window take in a training step, bytes.

    Per transformer block with ``s`` positions, width ``h`` and ``a`` heads, the 16-bit
    activations kept for the backward pass are ``s * h * (34 + 5 * a * s / h)`` bytes
    (Korthikanti et al., 2022, "Reducing activation recomputation in large transformer
    models"); float32 doubles that. In ``decoder`` mode the encoder is frozen and keeps
    nothing but its output. A margin of 1.5 covers the logits over the vocabulary and the
    allocator's rounding.
    """
    def block(s: int, h: int, a: int, kv: int = 0) -> float:
        return s * h * (34 + 5 * a * s / h) + (5 * a * s * kv if kv else 0)

    s_a, h_a = dims["n_audio_ctx"], dims["n_audio_state"]
    t, h_t = TEXT_POSITIONS, dims["n_text_state"]
    decoder = dims["n_text_layer"] * block(t, h_t, dims["n_text_head"], kv=s_a)
    logits = t * dims["n_vocab"] * 4 * 2  # float32 logits and their gradient
    encoder = (dims["n_audio_layer"] * block(s_a, h_a, dims["n_audio_head"]) if mode != "decoder"
               else s_a * h_a * 2)
    return int(1.5 * ((encoder + decoder) * (1 if half else 2) + logits))


def card_train_batch(free_bytes: int, dims: dict[str, int], mode: str, half: bool = True) -> int:
    """Windows per training step for ``free_bytes`` of GPU memory (1 to :data:`MAX_TRAIN_BATCH`).

    What the model holds whatever the batch comes off first: its float32 weights, and for
    the weights that train (all but the encoder in ``decoder`` mode; few in ``lora``,
    counted as all, to be safe) a gradient and AdamW's two moments.
    """
    params = param_count(dims)
    encoder = 12 * dims["n_audio_state"] ** 2 * dims["n_audio_layer"]
    trained = params - encoder if mode == "decoder" else params
    fixed = 4 * params + 12 * trained
    room = int(free_bytes * MEMORY_SHARE) - fixed
    return max(1, min(MAX_TRAIN_BATCH, room // window_train_bytes(dims, mode, half)))


def free_memory(device: str) -> int | None:
    """Free bytes on a CUDA ``device`` (None elsewhere)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(dev)
    return int(free)


def chosen_batch(cfg: "FinetuneConfig", dims: "dict[str, int] | Any" = None) -> "FinetuneConfig":
    """``cfg`` with its batch size chosen when it is 0 (see the module's notes).

    ``dims``: the model's dimensions (a dict, or a callable that gives them, called only
    on a GPU, where they matter).
    """
    if cfg.batch_size:
        return cfg
    device = resolve_device(cfg.device)
    free = free_memory(device) if device.startswith("cuda") else None
    if free is None:
        return replace(cfg, batch_size=CPU_TRAIN_BATCH)
    dims = dims() if callable(dims) else dims
    import torch

    half = train_dtype("cuda", torch.cuda.get_device_capability(device), torch.cuda.is_bf16_supported()) is not None
    return replace(cfg, batch_size=card_train_batch(free, dims, cfg.mode, half))


def active_dims(project: Any) -> dict[str, int]:
    """The dimensions of the model a new run of ``project`` fine-tunes (loaded on the CPU)."""
    from dataclasses import asdict

    from earmark.models.versions import active_or_base, load_version

    return asdict(load_version(project, active_or_base(project), "cpu").dims)


class MixedPrecision:
    """Autocast and loss scaling for one training run on ``device`` (a no-op on a CPU)."""

    def __init__(self, device: "torch.device") -> None:
        import torch

        cuda = device.type == "cuda"
        self.dtype = train_dtype(device.type, torch.cuda.get_device_capability(device) if cuda else None,
                                 cuda and torch.cuda.is_bf16_supported())
        self.device_type = device.type
        # float16's range needs the loss scaled; bfloat16's is float32's
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == "fp16" else None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass's arithmetic."""
        if self.dtype is None:
            yield
            return
        import torch

        dtype = torch.bfloat16 if self.dtype == "bf16" else torch.float16
        with torch.autocast(self.device_type, dtype=dtype):
            yield

    def backward(self, loss: "torch.Tensor") -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, opt: Any, params: list, max_norm: float) -> None:
        """Clip the (unscaled) gradients to ``max_norm`` and step (skipped on overflow in fp16)."""
        import torch

        if self.scaler:
            self.scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        if self.scaler:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
