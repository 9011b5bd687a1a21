"""The study's loop, resumable per (training, strategy, seed, round).

Everything lives under the study folder::

    rows.json, config.json            the clips and settings (a resumed run must match)
    cache/zero_shot/<k>.pkl           the base model's packed decode of every clip, by chunk
    cache/enc/<clip>.npy              encoder outputs for the cheap training path
    runs/<training>/<strategy>/seed<k>/round<r>.json (+ .pkl: transcripts after the round)
    projects/<strategy>/seed<k>/      the product path's project

A stopped run continues from the last round written. Round 0 is the zero-shot model;
in round r the strategy orders the unreviewed pool by the transcripts of the model
trained after round r-1, the first ``budget_minutes`` of audio are reviewed (the
references are the corrections), the model is trained on all reviewed clips, and the
test speakers and the still unreviewed pool are decoded with it, by the product's
packed decoder and its default settings.
"""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from earmark.config import DecodeConfig, to_dict

from earmark.study_config import StudyConfig
from earmark.errors import BadConfig
from earmark.study.cost import annotator_seconds
from earmark.study.curves import oracle_order, take_budget
from earmark.ranking.registry import UNRANKED_ORDERS as UNRANKED
from earmark.study.split import Row, Split, choose_speakers, read_rows, split

if TYPE_CHECKING:
    import whisper

    from earmark.decode.types import Transcript

CHUNK = 200  # clips per cached part of the zero-shot decode
SPECIAL = ("oracle",)  # orders that read the references: the study's alone, not in the registry


def clip_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) of one clip after Whisper's normalizer."""
    import jiwer

    from earmark.evaluate.metrics import normalize

    r, h = normalize(reference), normalize(hypothesis)
    n = len(r.split())
    if not r:
        return len(h.split()), 0
    if not h:
        return n, n
    o = jiwer.process_words(r, h)
    return o.substitutions + o.deletions + o.insertions, n


def check_config(cfg: StudyConfig) -> None:
    """Refuse settings that cannot run, before any model work."""
    from earmark.ranking.strategies import get_strategy

    if problems := cfg.problems():
        raise BadConfig("; ".join(problems))
    for name in (*cfg.strategies, *cfg.screen):
        if name not in SPECIAL:
            get_strategy(name)


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class Study:
    """One study folder: its clips, caches and the rounds written so far."""

    def __init__(self, manifest: Path | str, cfg: StudyConfig, out: Path | str, log: Callable = print):
        check_config(cfg)
        self.cfg, self.out, self.log = cfg, Path(out), log
        self.rows: list[Row] = choose_speakers(read_rows(manifest), cfg.speakers)
        self.splits = [split(self.rows, s, cfg.test_speakers, cfg.dev_speakers) for s in range(cfg.seeds)]
        self.out.mkdir(parents=True, exist_ok=True)
        rows_file = self.out / "rows.json"
        rows = [asdict(r) for r in self.rows]
        if rows_file.exists() and json.loads(rows_file.read_text()) != rows:
            raise BadConfig(f"{self.out} holds a study of other clips (another manifest or --speakers); "
                            "pass another --out, or the same manifest and --speakers to continue it")
        rows_file.write_text(json.dumps(rows))
        (self.out / "config.json").write_text(json.dumps(to_dict(cfg), indent=1))
        self._base: Any = None
        self._choice: Any = None  # the decoding engine, chosen once

    # -- model and decoding ---------------------------------------------------------------

    @property
    def base(self) -> "whisper.Whisper":
        if self._base is None:
            from earmark.models.loading import load_model

            self._base = load_model(self.cfg.model, "cpu")
        return self._base

    def decode(self, model: "whisper.Whisper", idx: list[int], key: str = "") -> dict[int, "Transcript"]:
        """Transcripts of the clips ``idx`` by the product's packed decoder, default settings.

        The engine and arithmetic are what ``earmark rank`` would use on this machine
        (measured once on the base model, :mod:`earmark.decode.autotune`); a trained
        model decoded by CTranslate2 is converted under ``cache/ct2/`` (``key`` names it)
        and the folder removed after.
        """
        import shutil

        from earmark.audio import read_clip
        from earmark.decode.autotune import Candidate, choose, make_decoder
        from earmark.models.device import cpu_cores, usable_threads

        cfg = DecodeConfig(model=self.cfg.model, device="cpu")
        threads = usable_threads(self.cfg.threads or cfg.threads) or cpu_cores()
        if self._choice is None:
            self._choice = choose(self.base, self.cfg.model, cfg, threads)
            self.log(f"decoding with {self._choice.reason}")
        folder = None
        if self._choice.engine == "ct2" and key:
            from earmark.decode.ct2_engine import CT2Decoder
            from earmark.models.ct2_folder import ct2_folder

            folder = ct2_folder(f"study:{key}", model, cache=self.out / "cache" / "ct2")
            dec = CT2Decoder(model, folder, cfg, compute_type=self._choice.quantize, threads=threads)
        else:
            dec = make_decoder(model, self.cfg.model, cfg, Candidate(self._choice.engine, self._choice.quantize),
                               threads)
        out: dict[int, Transcript] = {}
        try:
            for b in range(0, len(idx), CHUNK):
                part = idx[b : b + CHUNK]
                out.update(zip(part, dec.transcribe([read_clip(self.rows[i].audio) for i in part])))
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        return out

    def zero_shot(self) -> dict[int, "Transcript"]:
        """The base model's transcripts of every clip, decoded once, cached by chunk."""
        folder = self.out / "cache" / "zero_shot"
        folder.mkdir(parents=True, exist_ok=True)
        out: dict[int, Transcript] = {}
        for k, b in enumerate(range(0, len(self.rows), CHUNK)):
            path = folder / f"{k}.pkl"
            if not path.exists():
                t0 = time.perf_counter()
                part = self.decode(self.base, list(range(b, min(b + CHUNK, len(self.rows)))))
                _atomic(path, pickle.dumps(part))
                self.log(f"zero-shot decode, clips {b}-{b + len(part) - 1}: {time.perf_counter() - t0:.0f} s")
            out.update(pickle.loads(path.read_bytes()))
        return out

    # -- rounds -------------------------------------------------------------------------

    def folder(self, training: str, strategy: str, seed: int) -> Path:
        return self.out / "runs" / training / strategy / f"seed{seed}"

    def record(self, training: str, strategy: str, seed: int, rnd: int) -> dict | None:
        path = self.folder(training, strategy, seed) / f"round{rnd}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _measure(self, sp: Split, hyps: dict[int, "Transcript"], unreviewed: list[int],
                 corrected: list[tuple[list[float], Any]], ranked: bool = True) -> dict[str, Any]:
        """Test WER per speaker, the unreviewed pool's errors, and their estimate (as
        earmark reports it; ``ranked``: the corrections followed a ranked queue)."""
        from earmark.evaluate.calibration import estimate_unreviewed

        per_speaker: dict[str, list[int]] = {}
        for i in sp.test:
            e, n = clip_errors(self.rows[i].text, hyps[i].text)
            acc = per_speaker.setdefault(self.rows[i].speaker, [0, 0])
            acc[0] += e
            acc[1] += n
        pool_err = {i: clip_errors(self.rows[i].text, hyps[i].text) for i in unreviewed}
        errors, words = sum(e for e, _ in pool_err.values()), sum(n for _, n in pool_err.values())
        est = estimate_unreviewed([p for p, _ in corrected], [d for _, d in corrected],
                                  [[w.p for w in hyps[i].words] for i in unreviewed],
                                  [self.rows[i].duration for i in unreviewed], ranked, self.cfg.calibration_min_words)
        test_e = sum(v[0] for v in per_speaker.values())
        test_n = sum(v[1] for v in per_speaker.values())
        return {"test_wer": test_e / test_n if test_n else float("nan"), "test_speakers": per_speaker,
                "unreviewed_errors": errors, "unreviewed_words": words,
                "unreviewed_wer": errors / words if words else float("nan"),
                "unreviewed_wer_estimate": est.wer, "estimate_calibrated": est.calibrated,
                "pool_errors": {str(i): e for i, (e, _) in pool_err.items()}}

    def _write(self, training: str, strategy: str, seed: int, rnd: int, rec: dict,
               hyps: dict[int, "Transcript"] | None) -> None:
        folder = self.folder(training, strategy, seed)
        folder.mkdir(parents=True, exist_ok=True)
        if hyps is not None:
            _atomic(folder / f"round{rnd}.pkl", pickle.dumps(hyps))
        _atomic(folder / f"round{rnd}.json", json.dumps(rec).encode())

    def run(self, strategy: str, seed: int, zero: dict[int, "Transcript"], training: str | None = None,
            rounds: int | None = None) -> list[dict]:
        """Every round of one (training, strategy, seed) not written yet; all its records."""
        from earmark.evaluate.calibration import word_diff

        training = training or self.cfg.training
        rounds = self.cfg.rounds if rounds is None else rounds
        sp = self.splits[seed]
        pool_words = sum(clip_errors(self.rows[i].text, self.rows[i].text)[1] for i in sp.pool)
        if self.record(training, strategy, seed, 0) is None:
            rec = {"strategy": strategy, "seed": seed, "round": 0, "training": training, "picks": [],
                   "labeled_minutes": 0.0, "annotator_minutes": 0.0, "pool_words": pool_words,
                   **self._measure(sp, zero, list(sp.pool), [])}
            rec["errors_start"] = rec["errors_end"] = rec["unreviewed_errors"]
            self._write(training, strategy, seed, 0, rec, None)
        records = [self.record(training, strategy, seed, 0)]
        labeled: list[int] = []
        corrected: list[tuple[list[float], Any]] = []
        shown_all: dict[int, Any] = {}
        product = None
        for rnd in range(1, rounds + 1):
            prev = records[-1]
            rec = self.record(training, strategy, seed, rnd)
            if rec is not None:  # done earlier: replay what it reviewed
                for p in rec["picks"]:
                    labeled.append(p["clip"])
                    corrected.append((p["probs"], word_diff(p["words"], self.rows[p["clip"]].text)))
                records.append(rec)
                continue
            start = time.perf_counter()
            pkl = self.folder(training, strategy, seed) / f"round{rnd - 1}.pkl"
            current = zero if rnd == 1 else pickle.loads(pkl.read_bytes())
            done = set(labeled)
            unreviewed = [i for i in sp.pool if i not in done]
            picked = self._pick(strategy, seed, unreviewed, current, prev)
            picks, seconds = [], {}
            for i in picked:
                e, n = clip_errors(self.rows[i].text, current[i].text)
                seconds[i] = float(annotator_seconds(self.rows[i].duration, e, self.cfg.cost))
                words = [w.word for w in current[i].words]
                probs = [w.p for w in current[i].words]
                picks.append({"clip": i, "duration": self.rows[i].duration, "errors": e, "words": words,
                              "probs": probs, "seconds": seconds[i]})
                corrected.append((probs, word_diff(words, self.rows[i].text)))
            labeled += picked
            extra: dict[str, Any] = {}
            if training == "cheap":
                from earmark.study.training import EncoderCache, train_cheap

                cache = EncoderCache(self.out / "cache" / "enc", self.base, self.rows)
                model = train_cheap(self.base, self.rows, labeled, cache, self.cfg, seed * 1000 + rnd)
            else:
                from earmark.study.training import ProductLoop

                product = product or ProductLoop(self.out / "projects" / strategy / f"seed{seed}", self.rows,
                                                 sp.pool, self.cfg)
                shown_all = {i: current[i] for i in unreviewed}
                extra["finetune"] = product.round(self.rows, shown_all, picked, seconds)
                model = product.model()
            rest = [i for i in unreviewed if i not in set(picked)]
            hyps = self.decode(model, list(sp.test) + rest, f"{training}/{strategy}/seed{seed}/round{rnd}")
            rec = {"strategy": strategy, "seed": seed, "round": rnd, "training": training, "picks": picks,
                   "labeled_minutes": prev["labeled_minutes"] + sum(p["duration"] for p in picks) / 60,
                   "annotator_minutes": prev["annotator_minutes"] + sum(seconds.values()) / 60,
                   "pool_words": pool_words, "errors_start": prev["errors_end"],
                   **self._measure(sp, hyps, rest, corrected, strategy not in UNRANKED), **extra}
            rec["errors_end"] = rec["unreviewed_errors"]
            rec["seconds"] = time.perf_counter() - start
            self._write(training, strategy, seed, rnd, rec, hyps)
            records.append(rec)
            self.log(f"{training} seed {seed} {strategy:>26} round {rnd}: {rec['labeled_minutes']:5.2f} min, "
                     f"test WER {rec['test_wer']:.4f}, pool WER "
                     f"{rec['errors_end'] / pool_words:.4f} ({rec['seconds']:.0f} s)")
        return records

    def _pick(self, strategy: str, seed: int, unreviewed: list[int], current: dict[int, "Transcript"],
              prev: dict) -> list[int]:
        """The clips a strategy reviews this round, in review order."""
        from earmark.ranking.scoring import transcript_scores
        from earmark.ranking.strategies import Candidate, get_strategy

        budget = self.cfg.budget_minutes * 60
        durations = {i: self.rows[i].duration for i in unreviewed}
        if strategy == "oracle":
            errs = prev["pool_errors"]
            order = oracle_order([errs[str(i)] for i in unreviewed], [durations[i] for i in unreviewed])
            pos = take_budget(order, [durations[i] for i in unreviewed], budget)
            return [unreviewed[k] for k in pos]
        cands = [Candidate(i, durations[i], transcript_scores(current[i]), current[i].embedding or None)
                 for i in unreviewed]
        return [c.clip_id for c in get_strategy(strategy, seed=seed).select(cands, budget_seconds=budget)]
