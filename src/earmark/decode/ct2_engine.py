"""The same scored, packed decoding on CTranslate2 (faster-whisper's engine).

:class:`CT2Decoder` keeps everything :class:`earmark.decode.decoder.Decoder` does around
the network (packing clips into windows, giving words back to clips, decoding again
the clips a window lost, embeddings, the token caps) and runs the network on
``ctranslate2.models.Whisper``, whose int8 kernels decode tiny models several times
faster than PyTorch on a CPU:

- tokens: greedy ``generate`` with the per-step logits over the vocabulary
  (``return_logits_vocab``), from which each token's probability among text tokens,
  log-probability and entropy are computed as the PyTorch decoder does. The engine
  returns its logits after suppression (Whisper's non-speech symbols, specials,
  timestamps at ``-inf``), so its log-probabilities and entropies are over the allowed
  tokens, where the PyTorch decoder's are over the whole vocabulary: the suppressed
  tokens' share is small (see ``tests/test_ct2_engine.py`` for the tolerance);
- words with times: the engine's ``align`` (the model's alignment heads, median filter
  and DTW, as in ``whisper.timing``);
- no-speech probability: ``return_no_speech_prob``;
- loops: the same rule (:func:`earmark.decode.repetition.first_loop`) applied to the
  generated tokens, which keeps the loop's first pass; the token cap bounds the run.

The engine cannot refuse end-of-text until a packed window's last clip is reached
(``DecodeConfig.pack_hold_eot``): a clip left without words there is decoded again,
as every suspect clip is. The PyTorch decoder stays the reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from earmark.config import SAMPLE_RATE, DecodeConfig
from earmark.decode.decoder import Decoder
from earmark.decode.packing import Window
from earmark.decode.repetition import first_loop, first_pass
from earmark.decode.steps import Decoded
from earmark.decode.types import Transcript
from earmark.decode.words import FRAMES_PER_SECOND, POSITIONS_PER_SECOND, split_window, words_at

if TYPE_CHECKING:
    import torch
    import whisper

COMPUTE_TYPES = ("int8", "int8_float32", "float32")
GENERATE_BATCH = 8  # windows per generate call (bounds the per-step logits' memory)


@dataclass
class _EngineDecoded(Decoded):
    """A window's decoding by the engine: word boundaries come from ``jumps``."""

    jumps: "np.ndarray | None" = None  # seconds; one per token, and one for end-of-text


def token_scores(logits: np.ndarray, tokens: list[int], eot: int) -> tuple[list[float], list[float], list[float]]:
    """Probability among text tokens, log-probability and entropy (nats) of each token.

    Parameters
    ----------
    logits
        ``(steps, vocab)``: the logits of each step (at least ``len(tokens)`` rows);
        suppressed entries may be ``-inf`` or the most negative float.
    tokens
        The token chosen at each step.
    eot
        The end-of-text id: tokens below it are text tokens.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(logits[: len(tokens)], dtype=np.float32))
    if not tokens:
        return [], [], []
    ids = torch.tensor(tokens)[:, None]
    logp = x.log_softmax(-1)
    entropy = -(logp.exp() * logp).nan_to_num(0.0).sum(-1)
    chosen = x.gather(1, ids).squeeze(1)
    p = (chosen - x[:, :eot].logsumexp(-1)).exp()
    return p.tolist(), logp.gather(1, ids).squeeze(1).tolist(), entropy.tolist()


class CT2Decoder(Decoder):
    """:class:`Decoder` on a CTranslate2 model of the same weights.

    Parameters
    ----------
    model
        The loaded ``whisper.Whisper`` of the same weights: its tokenizer and dimensions
        serve the packing and splitting (its network does not run).
    folder
        A CTranslate2 Whisper model folder (see :func:`earmark.models.ct2_folder.ct2_folder`).
    cfg
        As for :class:`Decoder`; ``threads`` gives the engine's threads.
    compute_type
        The engine's arithmetic, one of :data:`COMPUTE_TYPES`.
    """

    def __init__(self, model: "whisper.Whisper", folder, cfg: DecodeConfig = DecodeConfig(),
                 compute_type: str = "int8", threads: int = 1):
        import ctranslate2
        import whisper

        if compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type={compute_type!r}: use one of {', '.join(COMPUTE_TYPES)}")
        # the parts of Decoder's state its packing and splitting read; no torch weights
        self.model, self.cfg, self.overlap = model, cfg, False
        self.device = next(model.parameters()).device
        self.tokenizer = whisper.tokenizer.get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages,
            language=cfg.language if model.is_multilingual else None, task="transcribe")
        self.initial = list(self.tokenizer.sot_sequence_including_notimestamps)
        self.precision = f"ct2-{compute_type}"
        self.retried = 0
        self.windows = 0
        # one replica, all threads on each call: the engine parallelises inside a call
        self.engine = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type=compute_type,
                                                 inter_threads=1, intra_threads=max(1, threads))

    def transcribe_features(self, features, durations):  # noqa: D102 - not offered
        raise NotImplementedError("CT2Decoder decodes audio only; use Decoder for encoder outputs")

    def _encode(self, windows: list[Window]) -> "torch.Tensor":
        """Encoder output of the windows, (windows, 1500, n_audio_state), float32."""
        import ctranslate2
        import torch

        mels = self._mels(windows).cpu().numpy()
        out = self.engine.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mels)), to_cpu=True)
        return torch.from_numpy(np.array(out, dtype=np.float32))

    def _decode(self, windows: list[Window], features: "torch.Tensor") -> list[Decoded]:
        import ctranslate2

        self.windows += len(windows)
        caps = [self._max_new_tokens(w) for w in windows]
        encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy()))
        # room for one step more than the largest cap, to see whether a row stopped by
        # itself at its cap; the installed ctranslate2 (4.x) generates at most
        # max_length // 2 tokens for Whisper, hence the doubling (rows are cut to their
        # caps below whatever it does)
        limit = min(self.model.dims.n_text_ctx, 2 * (max(caps) + 1) + len(self.initial))
        out = []
        # the logits of every step over the vocabulary come back at once (200 kB a step
        # and row for tiny's vocabulary), so rows are generated a few windows at a time
        for b in range(0, len(windows), GENERATE_BATCH):
            part = ctranslate2.StorageView.from_array(np.ascontiguousarray(
                features[b : b + GENERATE_BATCH].numpy()))
            results = self.engine.generate(
                part, [self.initial] * min(GENERATE_BATCH, len(windows) - b), beam_size=1, max_length=limit,
                return_logits_vocab=True, return_no_speech_prob=True, suppress_blank=True, suppress_tokens=[-1])
            out += self._scored(results, caps[b : b + GENERATE_BATCH])
        self._jump_times(windows, encoded, out)
        return out

    def _scored(self, results, caps: list[int]) -> list["_EngineDecoded"]:
        """Tokens cut to their caps and loops, with their scores, from the engine's results."""
        tk = self.tokenizer
        out = []
        for r, cap in zip(results, caps):
            tokens = list(r.sequences_ids[0])
            steps = r.logits[0]
            reason = "eot" if len(steps) > len(tokens) else "max_tokens"
            if len(tokens) > cap:
                tokens, reason = tokens[:cap], "max_tokens"
            loop = first_loop(tokens, self.cfg.loop_min_tokens, self.cfg.loop_max_period)
            if loop:
                at, period = loop
                tokens, reason = tokens[: first_pass(at, period, self.cfg.loop_min_tokens)], "repetition"
            logits = np.stack([np.asarray(s) for s in steps[: len(tokens)]]) if tokens else np.zeros((0, 1))
            probs, logprobs, entropies = token_scores(logits, tokens, tk.eot)
            out.append(_EngineDecoded(tokens=tokens, probs=probs, logprobs=logprobs, entropies=entropies,
                                      no_speech_prob=float(r.no_speech_prob), stop_reason=reason))
        return out

    def _jump_times(self, windows: list[Window], encoded, decoded: list[_EngineDecoded]) -> None:
        """Each row's token boundary times from the engine's alignment (one batched call)."""
        import ctranslate2

        rows = [i for i, d in enumerate(decoded) if d.tokens]
        if not rows:
            return
        frames = [int(round(windows[i].audio.size / SAMPLE_RATE * FRAMES_PER_SECOND)) for i in rows]
        feats = encoded if len(rows) == len(decoded) else ctranslate2.StorageView.from_array(
            np.ascontiguousarray(np.asarray(encoded)[rows]))
        aligned = self.engine.align(feats, list(self.tokenizer.sot_sequence), [decoded[i].tokens for i in rows],
                                    frames, median_filter_width=7)
        for i, a in zip(rows, aligned):
            pairs = np.asarray(a.alignments, dtype=np.int64).reshape(-1, 2)
            text_idx, time_idx = pairs[:, 0], pairs[:, 1]
            first = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
            decoded[i].jumps = time_idx[first] / POSITIONS_PER_SECOND

    def _split(self, window: Window, d: Decoded,
               frames: "torch.Tensor | None" = None) -> Iterable[tuple[int, Transcript, bool]]:
        """As :meth:`Decoder._split`, with the words timed by the engine's token
        boundaries (``jumps``) in place of the DTW over recorded attention rows."""
        jumps = getattr(d, "jumps", None)
        words = words_at(self.tokenizer, d, jumps) if d.tokens and jumps is not None else []
        return split_window(self.tokenizer, self.cfg, window, d, frames, words=words)
