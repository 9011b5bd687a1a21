"""Batched greedy decoding that keeps, for every token, its probability and entropy.

One decoding pass gives everything: the tokens, their log-probabilities and entropies
(from the logits the pass computes anyway), the no-speech probability, and the
cross-attention rows of the alignment heads, from which Whisper's own DTW code
(``whisper.timing``) places every word in time. No second pass over the audio runs.

Several short clips can be packed into one 30 s window, with silence between them, so
the encoder (most of the cost on short clips) runs once for all of them; words are
then given back to the clip whose span holds them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .config import SAMPLE_RATE, DecodeConfig

if TYPE_CHECKING:
    import torch
    import whisper

FRAMES_PER_SECOND = 100  # mel frames
POSITIONS_PER_SECOND = 50  # encoder positions (whisper.timing.TOKENS_PER_SECOND)
WINDOW_SECONDS = 30.0
# whisper.transcribe's defaults for merging punctuation into words
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True)
class TokenScore:
    """One decoded token.

    ``p`` is the token's probability among text tokens (Whisper's definition, used for
    word probability); ``logprob`` and ``entropy`` (nats) are over the whole vocabulary.
    """

    id: int
    text: str
    p: float
    logprob: float
    entropy: float


@dataclass(frozen=True)
class WordScore:
    """A word with its time span in the clip (seconds) and its probability."""

    word: str
    start: float
    end: float
    p: float
    n_tokens: int


@dataclass(frozen=True)
class Transcript:
    """A model's transcript of one clip with token- and word-level confidence."""

    text: str
    tokens: tuple[TokenScore, ...]
    words: tuple[WordScore, ...]
    duration: float  # seconds of audio in the clip
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    stop_reason: str  # "eot" | "max_tokens" | "repetition"


@dataclass(frozen=True)
class _Placement:
    index: int  # position of the clip in the caller's list
    start: float  # seconds into the window
    duration: float


@dataclass
class _Window:
    audio: np.ndarray
    placements: list[_Placement]


@dataclass
class _Decoded:
    """Raw output of one window: text tokens and the data recorded per step."""

    tokens: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    qk: list["torch.Tensor"] = field(default_factory=list)  # per fed position: (heads, frames)
    no_speech_prob: float = 0.0
    stop_reason: str = "eot"


def compression_ratio(text: str) -> float:
    """Bytes of text over bytes of its zlib compression (Whisper's loop detector)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def pack_windows(durations: Sequence[float], cfg: DecodeConfig) -> list[list[int]]:
    """Group clip indices into windows, in order, each fitting ``pack_window_seconds``.

    Without packing, or for a clip longer than the window allows, a clip gets a window
    of its own.
    """
    if not cfg.pack:
        return [[i] for i in range(len(durations))]
    groups: list[list[int]] = []
    used = cfg.pack_window_seconds + 1.0  # forces a new window for the first clip
    for i, d in enumerate(durations):
        need = d if not groups or used == 0 else d + cfg.pack_gap_seconds
        if groups and used + need <= cfg.pack_window_seconds:
            groups[-1].append(i)
            used += need
        else:
            groups.append([i])
            used = d
    return groups


def _build_window(audios: Sequence[np.ndarray], group: list[int], gap: float) -> _Window:
    pieces, placements, t = [], [], 0.0
    silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    for k, i in enumerate(group):
        if k:
            pieces.append(silence)
            t += gap
        a = audios[i][: int(WINDOW_SECONDS * SAMPLE_RATE)]
        pieces.append(a)
        placements.append(_Placement(i, t, a.size / SAMPLE_RATE))
        t += a.size / SAMPLE_RATE
    return _Window(np.concatenate(pieces), placements)


class Decoder:
    """Greedy batched decoding with per-token scores, for one loaded model.

    Parameters
    ----------
    model
        A loaded ``whisper.Whisper`` (see :func:`earmark.models.load_model`).
    cfg
        Batch size, token caps, packing.
    """

    def __init__(self, model: "whisper.Whisper", cfg: DecodeConfig = DecodeConfig()):
        import torch
        import whisper

        self.model = model
        self.cfg = cfg
        self.device = next(model.parameters()).device
        self.tokenizer = whisper.tokenizer.get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages,
            language=cfg.language if model.is_multilingual else None, task="transcribe")
        tk = self.tokenizer
        self.initial = list(tk.sot_sequence_including_notimestamps)
        self.sot_index = tk.sot_sequence.index(tk.sot)
        # text tokens and EOT may be produced; specials, timestamps and Whisper's list of
        # non-speech symbols may not (as in whisper.decoding's SuppressTokens)
        mask = torch.zeros(model.dims.n_vocab, dtype=torch.bool)
        mask[tk.eot + 1 :] = True
        mask[list(tk.non_speech_tokens)] = True
        self.suppress = mask.to(self.device)
        self.blank = [*tk.encode(" "), tk.eot]  # not allowed as the first token
        heads = model.alignment_heads.coalesce().indices().T.tolist()
        self.align_heads = [(int(l), int(h)) for l, h in heads]
        self.retried = 0  # clips of packed windows decoded again alone

    # -- public -----------------------------------------------------------------------

    def transcribe(self, audios: Sequence[np.ndarray],
                   on_batch: Callable[[int], None] | None = None) -> list[Transcript]:
        """Transcribe clips (float32, 16 kHz, at most 30 s each).

        Parameters
        ----------
        audios
            The clips, any number; they are packed and batched internally.
        on_batch
            Called with the number of clips finished after each batch (progress bars).

        Returns
        -------
        list[Transcript]
            One per clip, in input order.
        """
        durations = [min(a.size / SAMPLE_RATE, WINDOW_SECONDS) for a in audios]
        groups = pack_windows(durations, self.cfg)
        results: list[Transcript | None] = [None] * len(audios)
        bs = max(1, self.cfg.batch_size)
        for b in range(0, len(groups), bs):
            windows = [_build_window(audios, g, self.cfg.pack_gap_seconds) for g in groups[b : b + bs]]
            retry: list[int] = []
            for window, decoded in zip(windows, self._decode(windows)):
                for index, transcript, suspect in self._split(window, decoded):
                    results[index] = transcript
                    if suspect:
                        retry.append(index)
            # Whisper sometimes skips or merges an utterance of a packed window; those
            # clips are decoded again alone, which costs little because they are few.
            for r in range(0, len(retry), bs):
                singles = [_build_window(audios, [i], 0.0) for i in retry[r : r + bs]]
                for window, decoded in zip(singles, self._decode(singles)):
                    for index, transcript, _ in self._split(window, decoded):
                        results[index] = transcript
            self.retried += len(retry)
            if on_batch:
                on_batch(sum(len(g) for g in groups[b : b + bs]))
        return results  # type: ignore[return-value]

    # -- decoding -----------------------------------------------------------------------

    def _max_new_tokens(self, window: _Window) -> int:
        seconds = sum(p.duration for p in window.placements)
        cap = int(self.cfg.max_tokens_per_second * seconds) + self.cfg.min_max_tokens
        return min(cap, self.model.dims.n_text_ctx // 2)

    def _mels(self, windows: list[_Window]) -> "torch.Tensor":
        import torch
        import whisper

        mels = [whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(w.audio)),
                                            self.model.dims.n_mels) for w in windows]
        return torch.stack(mels).to(self.device)

    def _decode(self, windows: list[_Window]) -> list[_Decoded]:
        import torch
        import whisper.model

        model, tk, n = self.model, self.tokenizer, len(windows)
        caps = [self._max_new_tokens(w) for w in windows]
        out = [_Decoded() for _ in windows]
        layers = sorted({l for l, _ in self.align_heads})
        qk_store: dict[int, torch.Tensor] = {}

        def keep_qk(layer: int):
            def hook(_module, _inputs, outputs):
                qk_store[layer] = outputs[1]  # (batch, heads, new positions, frames)
            return hook

        with torch.inference_mode():
            features = model.embed_audio(self._mels(windows))
            cache, kv_hooks = model.install_kv_cache_hooks()
            hooks = kv_hooks + [model.decoder.blocks[l].cross_attn.register_forward_hook(keep_qk(l))
                                for l in layers]
            try:
                # the cross-attention weights exist only on the non-SDPA path
                with whisper.model.disable_sdpa():
                    self._greedy(features, cache, caps, out, qk_store)
            finally:
                for h in hooks:
                    h.remove()
        return out

    def _greedy(self, features, cache, caps, out, qk_store) -> None:
        import torch

        tk, cfg = self.tokenizer, self.cfg
        alive = list(range(len(out)))  # rows still in the batch, by window index
        tokens = torch.tensor([self.initial] * len(out), device=self.device)
        done = [False] * len(out)
        step = 0
        while alive:
            x = tokens if step == 0 else tokens[:, -1:]
            logits = self.model.decoder(x, features, kv_cache=cache).float()
            rows_qk = torch.stack([qk_store[l][:, h] for l, h in self.align_heads], dim=1)
            if step == 0:
                ns = logits[:, self.sot_index].softmax(-1)[:, tk.no_speech] if tk.no_speech else None
            logits = logits[:, -1]
            logp = logits.log_softmax(-1)
            entropy = -(logp.exp() * logp).sum(-1)
            text_logp = logits[:, : tk.eot].log_softmax(-1)
            masked = logits.masked_fill(self.suppress, float("-inf"))
            if step == 0:
                masked[:, self.blank] = float("-inf")
            nxt = masked.argmax(-1)

            keep = []
            for r, w in enumerate(alive):
                d = out[w]
                for pos in range(rows_qk.shape[2]):  # the positions fed at this step
                    d.qk.append(rows_qk[r, :, pos].clone())
                if step == 0 and ns is not None:
                    d.no_speech_prob = float(ns[r])
                if done[w]:
                    continue  # its EOT row is now recorded: leave the batch
                t = int(nxt[r])
                # a stop drops the new token, so that every kept token has been fed
                # and has its attention row
                if t == tk.eot:
                    done[w] = True
                elif len(d.tokens) >= caps[w]:
                    d.stop_reason, done[w] = "max_tokens", True
                elif _loops(d.tokens + [t], cfg.loop_min_tokens):
                    d.stop_reason, done[w] = "repetition", True
                else:
                    d.tokens.append(t)
                    d.probs.append(float(text_logp[r, t].exp()))
                    d.logprobs.append(float(logp[r, t]))
                    d.entropies.append(float(entropy[r]))
                keep.append(r)
            # a finished row is fed EOT once more so its EOT attention row is
            # recorded, as whisper.timing.find_alignment has it
            nxt = torch.where(torch.tensor([done[w] for w in alive], device=self.device),
                              torch.full_like(nxt, tk.eot), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            if len(keep) < len(alive):
                idx = torch.tensor(keep, dtype=torch.long, device=self.device)
                tokens, features = tokens[idx], features[idx]
                for module in cache:
                    cache[module] = cache[module][idx]
                alive = [alive[r] for r in keep]
            step += 1

    # -- alignment and splitting -------------------------------------------------------------

    def _align(self, window: _Window, d: _Decoded) -> list[WordScore]:
        """Word times by Whisper's DTW over the recorded cross-attention rows."""
        import torch
        from whisper.timing import WordTiming, dtw, median_filter, merge_punctuations

        tk = self.tokenizer
        if not d.tokens:
            return []
        num_frames = int(round(window.audio.size / SAMPLE_RATE * FRAMES_PER_SECOND))
        weights = torch.stack(d.qk, dim=1)[:, :, : max(num_frames // 2, 1)]  # heads x tokens x frames
        weights = weights.softmax(dim=-1)
        std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
        weights = median_filter((weights - mean) / std, 7)
        matrix = weights.mean(dim=0)[len(tk.sot_sequence) : -1]
        text_indices, time_indices = dtw(-matrix)

        words, word_tokens = tk.split_to_word_tokens(d.tokens + [tk.eot])
        if len(word_tokens) <= 1:
            return []
        bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
        jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
        jump_times = time_indices[jumps] / POSITIONS_PER_SECOND
        timings = [WordTiming(word, toks, float(jump_times[a]), float(jump_times[b]),
                              float(np.mean(d.probs[a:b])))
                   for word, toks, a, b in zip(words[:-1], word_tokens[:-1], bounds[:-1], bounds[1:])]
        # punctuation joins its word (as whisper does), so a packed window's "." never
        # starts the next clip
        merge_punctuations(timings, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        return [WordScore(t.word, t.start, t.end, t.probability, len(t.tokens))
                for t in timings if t.word]

    def _split(self, window: _Window, d: _Decoded) -> Iterable[tuple[int, Transcript, bool]]:
        """Give each clip of the window its words and tokens, in clip-relative times.

        Yields (clip index, transcript, suspect): ``suspect`` marks a clip of a packed
        window whose words look lost or misplaced (see :func:`_suspect`).
        """
        words = self._align(window, d)
        token_scores = [TokenScore(t, self.tokenizer.decode([t]), p, lp, e)
                        for t, p, lp, e in zip(d.tokens, d.probs, d.logprobs, d.entropies)]
        if len(window.placements) == 1:
            owner = [0] * len(words)
        else:
            owner = [_owner(window.placements, (w.start + w.end) / 2) for w in words]
        # tokens follow their word; tokens of no word (none with whole-word splitting) go first
        spans, pos = [], 0
        for w in words:
            spans.append((pos, pos + w.n_tokens))
            pos += w.n_tokens
        for k, place in enumerate(window.placements):
            mine = [i for i, o in enumerate(owner) if o == k]
            toks = [t for i in mine for t in token_scores[spans[i][0] : spans[i][1]]]
            if len(window.placements) == 1:
                toks = token_scores
            clip_words = tuple(
                WordScore(words[i].word, max(0.0, words[i].start - place.start),
                          min(place.duration, max(0.0, words[i].end - place.start)),
                          words[i].p, words[i].n_tokens) for i in mine)
            text = "".join(w.word for w in clip_words).strip() if len(window.placements) > 1 \
                else self.tokenizer.decode(d.tokens).strip()
            packed = len(window.placements) > 1
            suspect = packed and _suspect(place, [words[i] for i in mine], self.cfg)
            yield place.index, Transcript(
                text=text, tokens=tuple(toks), words=clip_words, duration=place.duration,
                avg_logprob=float(np.mean([t.logprob for t in toks])) if toks else 0.0,
                no_speech_prob=d.no_speech_prob, compression_ratio=compression_ratio(text),
                stop_reason=d.stop_reason), suspect


def _loops(tokens: list[int], min_tokens: int, max_period: int = 8) -> bool:
    """True when the sequence ends in a block repeated 3+ times over ``min_tokens``+ tokens.

    Short legitimate repeats ("one zero one zero") stay; "Lili, Lili, Lili, Lili, ..."
    (the loop of an unsure or over-fitted model) stops.
    """
    if min_tokens <= 0:
        return False
    for period in range(1, max_period + 1):
        reps = max(3, -(-min_tokens // period))
        span = reps * period
        if len(tokens) >= span:
            tail = tokens[-span:]
            if all(tail[i] == tail[i % period] for i in range(period, span)):
                return True
    return False


def _suspect(place: _Placement, words: Sequence[WordScore], cfg: DecodeConfig) -> bool:
    """Whether a packed clip's words look lost (too few) or misplaced (over its edges)."""
    if place.duration >= 1.0 and len(words) < cfg.pack_min_words_per_second * place.duration:
        return True
    slack = cfg.pack_gap_seconds / 2
    return any(w.start < place.start - slack or w.end > place.start + place.duration + slack
               for w in words)


def _owner(placements: Sequence[_Placement], t: float) -> int:
    """Index of the placement whose span holds time ``t``, else the nearest one."""
    best, dist = 0, float("inf")
    for k, p in enumerate(placements):
        if p.start <= t <= p.start + p.duration:
            return k
        d = min(abs(t - p.start), abs(t - p.start - p.duration))
        if d < dist:
            best, dist = k, d
    return best


def transcribe_clips(model: "whisper.Whisper", audios: Sequence[np.ndarray],
                     cfg: DecodeConfig = DecodeConfig()) -> list[Transcript]:
    """Transcribe clips with token and word confidence (see :class:`Decoder`)."""
    return Decoder(model, cfg).transcribe(audios)
