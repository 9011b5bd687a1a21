"""Batched greedy decoding that keeps, for every token, its probability and entropy.

One decoding pass gives everything: the tokens, their log-probabilities and entropies
(from the logits the pass computes anyway), the no-speech probability, and the
cross-attention rows of the alignment heads, from which Whisper's DTW recipe
(``whisper.timing``: softmax, normalisation, median filter, DTW) places every word in
time. No second pass over the audio runs.

Several short clips can be packed into one 30 s window, with silence between them, so
the encoder (most of the cost on short clips) runs once for all of them; words are
then given back to the clip whose span holds them (:mod:`earmark.decode.packing`).

Speed on the CPU comes from: packing; bfloat16 arithmetic where the CPU has it
(``DecodeConfig.quantize``, :mod:`earmark.decode.precision`; each step's best tokens still
get exact float32 logits); a decoder loop written for this job (pre-allocated
self-attention cache, cross-attention keys and values computed once,
scaled-dot-product attention wherever no attention row is needed, logits only for rows
still decoding, all per-token bookkeeping on tensors, converted to Python once per
batch); re-decoding only the clips a packed window lost; and a DTW that needs no JIT
compilation (:mod:`earmark.decode.dtw`).

The loop's rules (suppressed tokens, holding a packed window's end, when a row stops)
are small classes in :mod:`earmark.decode.rules`; what it records per step is
:mod:`earmark.decode.steps`; the word times and the split of a window's words between
its clips are :mod:`earmark.decode.words`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from earmark.config import SAMPLE_RATE, DecodeConfig
from earmark.decode.packing import WINDOW_SECONDS, Placement, Window, build_window, pack_windows
from earmark.decode.precision import BlockWeights, quantize_encoder, resolve_precision
from earmark.decode.rules import HoldEndOfText, StopRules, SuppressTokens
from earmark.decode.steps import Decoded, StepRecord
from earmark.decode.types import Transcript
from earmark.decode.words import POSITIONS_PER_SECOND, split_window

if TYPE_CHECKING:
    import torch
    import whisper

ENCODE_BATCH = 4  # windows per encoder call (bounds the activations' memory)


class Decoder:
    """Greedy batched decoding with per-token scores, for one loaded model.

    Parameters
    ----------
    model
        A loaded ``whisper.Whisper`` (see :func:`earmark.models.loading.load_model`). It is not
        modified: a quantized encoder is a copy.
    cfg
        Batch size, token caps, packing, quantization.
    overlap
        Run the encoder of the next batch in a second thread while this batch decodes
        (for a CPU with at least two cores; see :meth:`_encoded`).
    """

    def __init__(self, model: "whisper.Whisper", cfg: DecodeConfig = DecodeConfig(),
                 overlap: bool = False):
        import torch
        import whisper

        self.model = model
        self.cfg = cfg
        self.overlap = overlap  # encode the next batch in a second thread (see _encoded)
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
        self.suppress_tokens = SuppressTokens(self.suppress, [*tk.encode(" "), tk.eot])
        heads = model.alignment_heads.coalesce().indices().T.tolist()
        self.align_heads = [(int(l), int(h)) for l, h in heads]
        # per decoder layer, the alignment heads it holds (layers without any run SDPA)
        self.heads_of: dict[int, list[int]] = {}
        for l, h in self.align_heads:
            self.heads_of.setdefault(l, []).append(h)
        self.precision = resolve_precision(cfg.quantize, self.device.type)
        self.encoder = quantize_encoder(model.encoder) if self.precision == "int8" else model.encoder
        # bf16: the decoder's matrix products read half the bytes (decoding one token at
        # a time is bound by memory traffic), with float32 residuals, norms and softmaxes
        # fp16: the same on a GPU, in half precision (its tensor cores' type)
        low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)
        self._weights = [BlockWeights(b, low) for b in model.decoder.blocks]
        self.cross_dtype = low
        self.vocab_low = (model.decoder.token_embedding.weight.detach().to(low)
                          if low != torch.float32 else None)
        self.logits_topk = 16  # tokens per row whose logits are recomputed exactly
        self.retried = 0  # clips of packed windows decoded again
        self.windows = 0  # windows decoded (retries included)

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
        results: list[Transcript | None] = [None] * len(audios)
        suspects = self._run(audios, list(range(len(audios))), self.cfg.pack, results, on_batch)
        # Whisper sometimes skips an utterance of a packed window. Those clips are packed
        # again, with other neighbours, which costs a few windows; clips still without
        # words are then decoded alone, one window each.
        if len(suspects) > 1:
            self.retried += len(suspects)
            suspects = self._run(audios, suspects, True, results, None)
        if suspects:
            self.retried += len(suspects)
            self._run(audios, suspects, False, results, None)
        return results  # type: ignore[return-value]

    def _run(self, audios: Sequence[np.ndarray], indices: list[int], pack: bool,
             results: list, on_batch: Callable[[int], None] | None) -> list[int]:
        """Decode the clips ``indices`` into ``results``; return the suspect ones."""
        cfg = self.cfg if pack == self.cfg.pack else replace(self.cfg, pack=pack)
        durations = [min(audios[i].size / SAMPLE_RATE, WINDOW_SECONDS) for i in indices]
        groups = [[indices[k] for k in g] for g in pack_windows(durations, cfg)]
        bs = max(1, cfg.batch_size)
        batches = ([build_window(audios, g, cfg.pack_gap_seconds) for g in groups[b : b + bs]]
                   for b in range(0, len(groups), bs))
        suspects: list[int] = []
        for windows, features in self._encoded(batches):
            for j, (window, decoded) in enumerate(zip(windows, self._decode(windows, features))):
                for index, transcript, lost in self._split(window, decoded, features[j]):
                    results[index] = transcript
                    if lost:
                        suspects.append(index)
            if on_batch:
                on_batch(sum(len(w.placements) for w in windows))
        return suspects

    def _encoded(self, batches: Iterable[list[Window]]) -> Iterator[tuple[list[Window], "torch.Tensor"]]:
        """Each batch of windows with its encoder output.

        With ``overlap``, the encoder works on the next batch in a second thread while
        the caller decodes this one: the decoder's many small products gain little from
        a second core (and lose much when the cores are shared), the encoder's large
        ones use it fully.
        """
        if not self.overlap:
            for windows in batches:
                yield windows, self._encode(windows)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="earmark-encoder") as pool:
            ahead = None
            for windows in batches:
                job = (windows, pool.submit(self._encode, windows))
                if ahead:
                    yield ahead[0], ahead[1].result()
                ahead = job
            if ahead:
                yield ahead[0], ahead[1].result()

    def transcribe_features(self, features: "torch.Tensor",
                            durations: Sequence[float]) -> list[Transcript]:
        """Transcribe clips from encoder outputs computed earlier (one clip per window).

        For loops that keep the encoder fixed (decoder-only fine-tuning, simulation):
        the encoder runs once per clip, and every later decoding reuses its output.

        Parameters
        ----------
        features
            ``(clips, frames, n_audio_state)``: each clip's encoder output, the clip at
            the start of its own window. ``frames`` may be fewer than the window's
            1500, if it covers the longest clip (``50 * seconds`` positions).
        durations
            Each clip's length in seconds.

        Returns
        -------
        list[Transcript]
            One per clip, in input order.
        """
        import torch

        results: list[Transcript | None] = [None] * len(durations)
        bs = max(1, self.cfg.batch_size)
        for b in range(0, len(durations), bs):
            windows = [Window(np.zeros(int(durations[i] * SAMPLE_RATE), dtype=np.float32),
                               [Placement(i, 0.0, float(durations[i]))])
                       for i in range(b, min(b + bs, len(durations)))]
            caps = [self._max_new_tokens(w) for w in windows]
            with torch.inference_mode():
                feats = torch.as_tensor(features[b : b + bs]).to(self.device, torch.float32)
                decoded = self._greedy(feats, caps)
            for window, d in zip(windows, decoded):
                for index, transcript, _ in self._split(window, d):
                    results[index] = transcript
        return results  # type: ignore[return-value]

    # -- decoding -----------------------------------------------------------------------

    def _max_new_tokens(self, window: Window) -> int:
        seconds = sum(p.duration for p in window.placements)
        cap = int(self.cfg.max_tokens_per_second * seconds) + self.cfg.min_max_tokens
        return min(cap, self.model.dims.n_text_ctx // 2)

    def _mels(self, windows: list[Window]) -> "torch.Tensor":
        import torch
        import whisper

        mels = [whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(w.audio)),
                                            self.model.dims.n_mels) for w in windows]
        return torch.stack(mels).to(self.device)

    def _encode(self, windows: list[Window]) -> "torch.Tensor":
        """Encoder output of the windows, (windows, 1500, n_audio_state), float32."""
        import torch

        # inference mode and autocast are per thread: set here, where the encoder runs
        with torch.inference_mode():
            # a few windows at a time: the encoder's activations are the largest
            # allocations of a batch, and a batch of 4 is as fast per window as 16
            parts = []
            for k in range(0, len(windows), ENCODE_BATCH):
                mels = self._mels(windows[k : k + ENCODE_BATCH])
                with torch.autocast(self.device.type, dtype=self.cross_dtype,
                                    enabled=self.precision in ("bf16", "fp16")):
                    parts.append(self.encoder(mels).float())
            return torch.cat(parts) if len(parts) > 1 else parts[0]

    def _decode(self, windows: list[Window], features: "torch.Tensor") -> list[Decoded]:
        import torch

        self.windows += len(windows)
        caps = [self._max_new_tokens(w) for w in windows]
        with torch.inference_mode():
            # a packed window may not end before its last clip has begun (see _greedy)
            holds = [(int(w.placements[-1].start * POSITIONS_PER_SECOND), len(w.placements) - 1)
                     for w in windows]
            return self._greedy(features, caps, holds if self.cfg.pack_hold_eot else None)

    def _greedy(self, features: "torch.Tensor", caps: list[int],
                holds: list[tuple[int, int]] | None = None) -> list[Decoded]:
        """Decode a batch greedily; returns each row's tokens, scores and attention rows.

        Every row feeds the same number of tokens per step, so one position index serves
        the whole batch. A row that stops (EOT, its token cap, a loop) is fed EOT once
        more, so that its EOT attention row exists as in ``whisper.timing``, then leaves.
        ``holds``, per row (an encoder position, a number of refusals): Whisper sometimes
        ends a packed window after a pause, leaving the clips after it untranscribed.
        While the alignment heads still attend before the position (the start of the
        window's last clip), EOT is refused, at most that many times, and the best
        other token is taken instead; clips still left without words are decoded again.

        Finished rows stay in the tensors (no logits are computed for them) until a
        quarter of the batch is gone; only then are the caches compacted, since each
        compaction copies every remaining row's cross-attention keys and values.
        """
        import torch

        tk, cfg, dims = self.tokenizer, self.cfg, self.model.dims
        n, dev = features.shape[0], features.device
        max_new = max(caps)
        positions = len(self.initial) + max_new + 1
        H, dh = dims.n_text_head, dims.n_text_state // dims.n_text_head
        cross = [w.cross_kv(features, H, self.cross_dtype) for w in self._weights]
        self_k = [features.new_empty(n, H, positions, dh) for _ in self._weights]
        self_v = [features.new_empty(n, H, positions, dh) for _ in self._weights]
        record = StepRecord(n, max_new, tk.eot, dev)  # converted to Python once, at the end
        hold = HoldEndOfText(tk.eot, torch.tensor(holds or [(0, 0)] * n, device=dev))
        stops = StopRules(tk.eot, torch.tensor(caps, device=dev), cfg.loop_min_tokens, cfg.loop_max_period)

        rows = torch.arange(n, device=dev)  # window id of each tensor row
        state = torch.zeros(n, dtype=torch.long, device=dev)  # 0 decoding, 1 fed EOT next, 2 gone
        x = torch.tensor([self.initial] * n, device=dev)
        offset, step = 0, 0
        while True:
            hidden, qks = self._forward(x, offset, cross, self_k, self_v)
            fed = (state < 2).nonzero().squeeze(1)
            record.attention(rows[fed], qks[fed])
            offset += x.shape[1]
            live = (state == 0).nonzero().squeeze(1)
            if step == 0 and tk.no_speech is not None:
                ns_logits = hidden[:, self.sot_index] @ self.model.decoder.token_embedding.weight.T
                record.no_speech[rows] = ns_logits.softmax(-1)[:, tk.no_speech]
            state[state == 1] = 2
            if live.numel() == 0:
                break
            win = rows[live]
            logits = self._logits(hidden[live, -1])
            logp = logits.log_softmax(-1)
            entropy = -(logp.exp() * logp).sum(-1)
            masked = self.suppress_tokens.apply(logits, step)
            nxt = hold.apply(masked, masked.argmax(-1), qks[live, :, -1], win)
            stop, reason, period = stops.check(nxt, step, record.toks[win, :step], win)
            record.stopped(win[stop], reason[stop], period[stop])
            keep = ~stop
            record.keep(win[keep], nxt[keep], step, logits[keep], logp[keep], entropy[keep])
            state[live[stop]] = 1
            # the next input: the new token, or EOT for rows that stopped or are gone
            col = torch.full((x.shape[0],), tk.eot, dtype=torch.long, device=dev)
            col[live[keep]] = nxt[keep]
            x = col[:, None]
            step += 1
            alive = state < 2
            if int(alive.sum()) * 4 <= alive.numel() * 3:
                idx = alive.nonzero().squeeze(1)
                rows, state, x = rows[idx], state[idx], x[idx]
                cross = [(k[idx], v[idx]) for k, v in cross]
                self_k = [k[idx] for k in self_k]
                self_v = [v[idx] for v in self_v]
        return record.collect(len(self.initial), cfg.loop_min_tokens)

    def _logits(self, h: "torch.Tensor") -> "torch.Tensor":
        """Next-token logits (rows, vocab) from final hidden states (rows, D).

        The vocabulary projection is the largest product of a decoding step. In bf16 it
        runs on bfloat16 weights first (a third of the time); the ``logits_topk`` best
        allowed tokens of each row then get their exact float32 logits, so the chosen
        token, its probability and the bulk of the distribution are exact, and only the
        tail's small share of the normaliser and entropy carries bfloat16's rounding
        (measured: log-probabilities within 0.01, entropies within 0.03 nats).
        """
        weight = self.model.decoder.token_embedding.weight
        if self.vocab_low is None:
            return h @ weight.T
        approx = (h.to(self.vocab_low.dtype) @ self.vocab_low.T).float()
        cand = approx.masked_fill(self.suppress, float("-inf")).topk(self.logits_topk, dim=-1).indices
        exact = (weight[cand] @ h[:, :, None]).squeeze(-1)
        return approx.scatter_(1, cand, exact)

    def _forward(self, x, offset, cross, self_k, self_v):
        """One decoder step over the fed tokens ``x`` (batch, L) at ``offset``.

        Returns the final hidden states (batch, L, D) and the alignment heads'
        pre-softmax cross-attention rows (batch, heads, L, frames).
        """
        import torch
        import torch.nn.functional as F

        dec, dims = self.model.decoder, self.model.dims
        m, L = x.shape
        H, D = dims.n_text_head, dims.n_text_state
        dh = D // H
        h = dec.token_embedding(x) + dec.positional_embedding[offset : offset + L]
        rows = []
        for i, w in enumerate(self._weights):
            y = F.layer_norm(h, (D,), w.attn_ln_w, w.attn_ln_b)
            q, k, v = w.lin(y, w.qkv_w, w.qkv_b).view(m, L, 3, H, dh).permute(2, 0, 3, 1, 4)
            self_k[i][:, :, offset : offset + L] = k
            self_v[i][:, :, offset : offset + L] = v
            a = F.scaled_dot_product_attention(q, self_k[i][:, :, : offset + L],
                                               self_v[i][:, :, : offset + L], is_causal=L > 1)
            h = h + w.lin(a.transpose(1, 2).reshape(m, L, D), w.attn_out_w, w.attn_out_b)
            y = F.layer_norm(h, (D,), w.cross_ln_w, w.cross_ln_b)
            q = w.lin(y, w.cross_q_w, w.cross_q_b).view(m, L, H, dh).transpose(1, 2)
            ck, cv = cross[i]
            heads = self.heads_of.get(i)
            if ck.dtype != q.dtype:
                # bfloat16 keys and values (half the bytes to stream per step); the
                # products accumulate in float32 and the softmax runs in float32
                qk = (q.to(ck.dtype) @ ck.transpose(-1, -2)).float() * dh**-0.5
                a = (qk.softmax(-1).to(cv.dtype) @ cv).float()
                if heads:
                    rows.append(qk[:, heads])
            elif heads:
                # the attention rows are needed: the explicit path (whisper's arithmetic)
                qk = (q @ ck.transpose(-1, -2)) * dh**-0.5
                a = qk.softmax(-1) @ cv
                rows.append(qk[:, heads])
            else:
                a = F.scaled_dot_product_attention(q, ck, cv)
            h = h + w.lin(a.transpose(1, 2).reshape(m, L, D), w.cross_out_w, w.cross_out_b)
            y = F.layer_norm(h, (D,), w.mlp_ln_w, w.mlp_ln_b)
            h = h + w.lin(F.gelu(w.lin(y, w.fc1_w, w.fc1_b)), w.fc2_w, w.fc2_b)
        h = F.layer_norm(h, (D,), dec.ln.weight, dec.ln.bias)
        return h, torch.cat(rows, dim=1)

    def _split(self, window: Window, d: Decoded,
               frames: "torch.Tensor | None" = None) -> Iterable[tuple[int, Transcript, bool]]:
        """Each clip of the window with its transcript, and whether it looks lost
        (:func:`earmark.decode.words.split_window`)."""
        return split_window(self.tokenizer, self.cfg, window, d, frames)

def transcribe_clips(model: "whisper.Whisper", audios: Sequence[np.ndarray],
                     cfg: DecodeConfig = DecodeConfig()) -> list[Transcript]:
    """Transcribe clips with token and word confidence (see :class:`Decoder`)."""
    return Decoder(model, cfg).transcribe(audios)
