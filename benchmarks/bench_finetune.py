"""Benchmark: does fine-tuning tiny.en on ~10 minutes of corrections lower test WER?

speechocean762 (read speech of Mandarin-L1 children and adults) is split by speaker,
with a seed, into a training pool and held-out test speakers. About ten minutes of the
pool's clips are imported into a temporary project and their references saved as
corrections (in sentence case, as a reviewer would type them; WER is computed after
Whisper's normalizer, so case does not count). Then:

1. zero-shot test WER of tiny.en;
2. for each mode (full = the default, decoder, lora): fine-tune from tiny.en with
   ``earmark.train.finetune`` and measure the test WER of the new version and the wall time
   of the whole ``finetune`` call (dev evaluations and saving included).

``--tune`` runs configurations (``--config "lr=1e-4,epochs=3"``, repeatable) and
reports the dev WER (the dev split held out from the corrections) and the WER on a
tuning set: the clips of pool speakers held out, like the test speakers, before the
~10 minutes are chosen. Never the test speakers: that is how the defaults were chosen.
``--curve`` also decodes the tuning set after every epoch, beside the run's own dev WER.

Writes ``benchmarks/results/finetune.json`` (flat keys) unless ``--tune`` or ``--out -``;
the machine is shared, so CPU seconds and the load average are recorded beside wall time.
Each relative reduction comes with a 95 % interval over test speakers drawn again
(``*_low``, ``*_high``; ``earmark.evaluate.metrics.relative_reduction``): 25 speakers are few,
and the figure moves with who they are.

``--seeds 0,1,2`` repeats all of it on several speaker splits (one per seed) and adds the
default (full) fine-tune's relative reduction as the mean over them
(``relative_wer_reduction_mean_splits``, its interval drawing splits and test speakers
again, and the per-split figures), and, from the same runs, what their gated weights (what
``--no-refit`` saves) cut (``relative_wer_reduction_no_refit_mean_splits``, and the
paired ``refit_gain_mean_splits``). The other keys are the first split's.

``--openai-transcribe`` also decodes the test set with openai-whisper's ``transcribe()``
(zero-shot and each mode), since earmark's packed decoder starts from a lower zero-shot
WER; ``--select queue`` trains on the head of earmark's review queue instead of random
minutes.

    .venv/bin/python benchmarks/bench_finetune.py
    .venv/bin/python benchmarks/bench_finetune.py --select queue --modes full --openai-transcribe
    .venv/bin/python benchmarks/bench_finetune.py --select queue --modes full --seeds 0,1,2
    .venv/bin/python benchmarks/bench_finetune.py --tune --config "lr=3e-5" --config "lr=1e-4"
    .venv/bin/python benchmarks/bench_finetune.py --tune --curve --select queue --modes full
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "speechocean762"


def parse_config(text: str) -> dict:
    """"lr=1e-4,epochs=3,augment=False" -> {"lr": 1e-4, "epochs": 3, "augment": False}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, value = part.split("=", 1)
        try:
            out[key.strip()] = json.loads(value.strip().replace("True", "true").replace("False", "false"))
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def split_speakers(rows: list[dict], n_test: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(pool rows, test rows): whole speakers, chosen with ``seed``."""
    speakers = sorted({r["speaker"] for r in rows})
    random.Random(seed).shuffle(speakers)
    test = set(speakers[:n_test])
    return [r for r in rows if r["speaker"] not in test], [r for r in rows if r["speaker"] in test]


def select_minutes(rows: list[dict], minutes: float, seed: int) -> list[dict]:
    """Random clips of the pool until ``minutes`` of audio."""
    rows = list(rows)
    random.Random(seed + 1).shuffle(rows)
    out, total = [], 0.0
    for r in rows:
        if total >= minutes * 60:
            break
        out.append(r)
        total += r["duration"]
    return out


def write_manifest(rows: list[dict], path: Path) -> Path:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps({"audio": str(DATA / r["audio"]), "text": r["text"],
                                "speaker": r["speaker"]}) + "\n")
    return path


def sentence_case(text: str) -> str:
    t = " ".join(text.split()).lower()
    return t[:1].upper() + t[1:]


def make_project(root: Path, rows: list[dict]):
    """A project holding ``rows`` with their references saved as corrections."""
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.store.db import Clip, Correction

    project = init_project(root)
    import_audio(project, write_manifest(rows, root.parent / "train.jsonl"), progress=False)
    with project.store.session() as s:
        for clip in s.scalars(select(Clip).order_by(Clip.id)):
            s.add(Correction(clip_id=clip.id, text=sentence_case(clip.reference_text or ""),
                             annotator="benchmark-oracle"))
    return project


def make_queue_project(root: Path, pool: list[dict], minutes: float):
    """The whole pool imported and ranked by tiny.en; the head of the review queue, up to
    ``minutes`` of audio, corrected with the references (what earmark's loop would have
    people correct first). Returns the project and the corrected rows."""
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.ranking.rank import rank
    from earmark.store.db import Clip, Correction, QueueEntry

    project = init_project(root)
    import_audio(project, write_manifest(pool, root.parent / "pool.jsonl"), progress=False)
    rank(project, progress=True)
    chosen, total = [], 0.0
    with project.store.session() as s:
        for clip in s.scalars(select(Clip).join(QueueEntry, QueueEntry.clip_id == Clip.id)
                              .order_by(QueueEntry.rank)):
            if total >= minutes * 60:
                break
            s.add(Correction(clip_id=clip.id, text=sentence_case(clip.reference_text or ""),
                             annotator="benchmark-oracle"))
            chosen.append({"speaker": clip.speaker, "duration": clip.duration, "text": clip.reference_text})
            total += clip.duration
    return project, chosen


def openai_transcribe_wer(spec: str, manifest: Path) -> dict:
    """Corpus WER/CER of a model version decoded by openai-whisper's own ``transcribe()``.

    Clip by clip, greedy with its temperature fallback, as a user of openai-whisper
    would decode: a second measure beside earmark's packed decoder, which already
    removes part of the zero-shot model's errors (context from the neighbouring clips,
    re-decoding suspect output) and so leaves fine-tuning less to fix.
    """
    from earmark.evaluate.heldout import manifest_clips
    from earmark.evaluate.metrics import error_rates
    from earmark.models.loading import load_model

    import torch

    model = load_model(spec, "cpu")
    clips = manifest_clips(manifest)
    audios, refs = clips.audios, clips.references
    # transcribe() samples at a higher temperature when greedy output looks wrong: seeded,
    # so that two runs give the same figure
    torch.manual_seed(0)
    start = time.perf_counter()
    hyps = [model.transcribe(a, language="en", fp16=False, verbose=None)["text"] for a in audios]
    er = error_rates(refs, hyps)
    return {"wer": round(er.wer, 4), "cer": round(er.cer, 4), "seconds": round(time.perf_counter() - start, 1),
            "clip_errors": er.clip_errors}


def scored_speakers(rows: list[dict]) -> list[str]:
    """The speaker of each clip WER scores, in manifest order (rows without a text are
    not evaluated): the groups of :func:`reduction_interval`."""
    from earmark.evaluate.metrics import scored_groups

    rows = [r for r in rows if r.get("text")]
    return scored_groups([r["text"] for r in rows], [r["speaker"] for r in rows])


def reduction_interval(name: str, before, after, speakers: list[str]) -> dict:
    """``NAME_low`` and ``NAME_high``: the 95 % interval of the relative WER reduction when
    the test speakers are drawn again (whole speakers, with replacement)."""
    from earmark.evaluate.metrics import relative_reduction

    r = relative_reduction(before, after, speakers)
    return {f"{name}_low": round(r.low, 4), f"{name}_high": round(r.high, 4)}


class Curve:
    """Decodes a manifest each time a run scores its dev split: the held-out WER of every
    epoch's weights beside the dev WER the run itself sees (``--curve``, tuning only,
    since it also costs time)."""

    def __init__(self, manifest: Path):
        from earmark.evaluate.heldout import manifest_clips

        clips = manifest_clips(manifest)
        self.audios, self.refs = clips.audios, clips.references
        self.points: list[dict] = []

    def __enter__(self) -> "Curve":
        from earmark.evaluate.heldout import evaluate_audio
        from earmark.train.trainer import Trainer

        self.original, curve = Trainer.dev_score, self

        def dev_score(trainer, as_saved: bool = False):
            score = curve.original(trainer, as_saved)
            if as_saved:  # the per-epoch evaluation, not the parent's or the final one
                held = evaluate_audio(trainer.model, curve.audios, curve.refs, trainer.decode)
                curve.points.append({"step": trainer.state.step, "dev_wer": round(score["wer"], 4),
                                     "wer": round(held.wer, 4)})
                print(json.dumps({"curve": curve.points[-1]}), flush=True)
            return score

        Trainer.dev_score = dev_score
        return self

    def __exit__(self, *exc) -> None:
        from earmark.train.trainer import Trainer

        Trainer.dev_score = self.original


class GatedScore:
    """Decodes the test set with a run's gated weights just before the refit replaces them:
    what ``--no-refit`` would have saved (the same run up to the refit), so the refit's
    effect is measured on the same training, paired."""

    def __init__(self, manifest: Path):
        from earmark.evaluate.heldout import manifest_clips

        clips = manifest_clips(manifest)
        self.audios, self.refs = clips.audios, clips.references
        self.errors: list[int] | None = None
        self.wer: float | None = None

    def __enter__(self) -> "GatedScore":
        import earmark.train.finetune as ft
        from earmark.evaluate.heldout import evaluate_audio

        self.original, score = ft.refit, self

        def refit(project, run, trainer, progress=True):
            held = evaluate_audio(trainer.model, score.audios, score.refs, project.config.decode)
            score.errors, score.wer = list(held.rates.clip_errors), held.wer
            print(json.dumps({"gated_test_wer": round(held.wer, 4)}), flush=True)
            return score.original(project, run, trainer, progress)

        ft.refit = refit
        return self

    def __exit__(self, *exc) -> None:
        import earmark.train.finetune as ft

        ft.refit = self.original


def run_mode(project, base_id: int, cfg, test_manifest: Path | None, reference: bool = False,
             curve: bool = False, errors: dict | None = None) -> dict:
    """Fine-tune from the base model with ``cfg``; test WER of the result (if a manifest).

    ``errors`` receives the test set's word errors per clip, by decoder ("earmark",
    "openai_transcribe").
    """
    import contextlib

    from earmark.evaluate.heldout import evaluate
    from earmark.train.finetune import finetune

    errors = {} if errors is None else errors

    project.store.set_active(base_id)  # every mode starts from zero-shot tiny.en
    load = os.getloadavg()[0]
    tracker = Curve(test_manifest) if curve and test_manifest is not None else None
    gated = GatedScore(test_manifest) if test_manifest is not None and cfg.refit and not curve else None
    start, cpu = time.perf_counter(), time.process_time()
    with tracker or contextlib.nullcontext(), gated or contextlib.nullcontext():
        res = finetune(project, cfg, progress=True)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    # the machine is shared: CPU seconds and the load average say how much it was
    out = {"version": res.version, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
           "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2), "steps": res.steps,
           "train_seconds": round(res.train_seconds, 1), "dev_wer_before": round(res.dev_wer_before, 4),
           "dev_wer_after": round(res.dev_wer_after, 4), "activated": res.activated,
           "stopped_early": res.stopped_early, "dev_clips": res.dev_clips, "train_clips": res.train_clips,
           "decode_speed_before": round(res.decode_speed_before, 2),
           "decode_speed_after": round(res.decode_speed_after, 2),
           "drift": round(res.drift, 4) if res.drift_clips else None, "drift_clips": res.drift_clips,
           "refit_clips": res.refit_clips, "refit_steps": res.refit_steps}
    if gated is not None and gated.errors is not None and res.refit_steps:  # the decode included
        errors["gated"] = gated.errors
        out["test_wer_gated"] = round(gated.wer, 4)
    if tracker is not None:  # wall time then includes the extra decoding
        out["curve"] = tracker.points
    if test_manifest is not None:
        ev = evaluate(project, model=res.version, manifest=test_manifest)
        errors["earmark"] = ev.rates.clip_errors
        out.update(test_wer=round(ev.wer, 4), test_cer=round(ev.cer, 4),
                   test_error_auc=round(ev.confidence.auc, 4), test_ece=round(ev.confidence.ece, 4),
                   test_decode_seconds=round(ev.decode_seconds, 1))
        if reference:
            from earmark.models.versions import find_version

            ow = openai_transcribe_wer(find_version(project, res.version).spec, test_manifest)
            errors["openai_transcribe"] = ow["clip_errors"]
            out.update(test_wer_openai_transcribe=ow["wer"], test_cer_openai_transcribe=ow["cer"])
    print(json.dumps({"mode": cfg.mode, **out}), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="corrected audio to train on")
    ap.add_argument("--test-speakers", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default="",
                    help="several speaker splits, e.g. 0,1,2 (each seed its own split; each figure is "
                         "also reported as the mean over them)")
    ap.add_argument("--modes", default="full,decoder,lora")
    ap.add_argument("--config", action="append", default=[],
                    help="FinetuneConfig overrides, e.g. 'lr=1e-4,epochs=3' (repeat to compare)")
    ap.add_argument("--lora-lr", type=float, default=None, help="lr for lora mode (default: config's x10)")
    ap.add_argument("--tune", action="store_true",
                    help="report dev WER (from the training pool) only; never touch the test speakers")
    ap.add_argument("--tune-speakers", type=int, default=20,
                    help="--tune: pool speakers held out (before selection) as the tuning set")
    ap.add_argument("--curve", action="store_true",
                    help="--tune: also decode the tuning set at every dev evaluation (every epoch)")
    ap.add_argument("--select", choices=("random", "queue"), default="random",
                    help="which ~10 minutes get corrected: random pool clips (default), or the head "
                         "of earmark's review queue after ranking the whole pool with tiny.en")
    ap.add_argument("--openai-transcribe", action="store_true",
                    help="also measure test WER of zero-shot and fine-tuned models with openai-whisper's "
                         "transcribe(), clip by clip")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", default="finetune",
                    help="result name: benchmarks/results/NAME.json ('-': write nothing)")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()] or [args.seed]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_ft_"))
    command = " ".join(["benchmarks/bench_finetune.py", *(argv if argv is not None else sys.argv[1:])])
    splits = []
    for seed in seeds:
        if args.seeds:  # each split in its own folder, kept: a split done is not done again
            results, extra = cached_split(replace_seed(args, seed), work / f"split{seed}")
        else:
            results, extra = run_split(replace_seed(args, seed), work)
        splits.append((seed, results, extra))
    results = {**splits[0][1], "command": command}  # the first split's figures under the usual keys
    if len(seeds) > 1:
        results.update(over_splits(splits))
    if not args.tune and args.out != "-":
        from common import write_result  # adds the date and the machine

        print(f"wrote {write_result(args.out, results)}")
    return 0


def replace_seed(args: argparse.Namespace, seed: int) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "seed": seed})


def over_splits(splits: list[tuple[int, dict, dict]]) -> dict:
    """The default (full) fine-tune's relative WER reduction as the mean over speaker splits,
    with and (where the refit ran on every split) without the refit; per-split figures."""
    from split_means import SplitErrors, mean_difference, mean_figures, mean_reduction

    out: dict = {"seeds": [seed for seed, _, _ in splits]}
    full = [(seed, r, e) for seed, r, e in splits if "earmark" in e.get("full", {})]
    if len(full) < len(splits):
        return out
    after = [SplitErrors(e["zero_shot"], e["full"]["earmark"], e["speakers"]) for _, _, e in full]
    out.update(mean_figures("relative_wer_reduction", mean_reduction(after)))
    out["splits"] = [{"seed": seed, "zero_shot_wer": r["zero_shot_wer"], "wer": r["wer_full"],
                      "wer_no_refit": r.get("test_wer_gated_full"), "dev_clips": r["dev_clips_full"],
                      "train_clips": r["train_clips_full"], "refit_clips": r["refit_clips_full"],
                      "refit_steps": r["refit_steps_full"], "steps": r["steps_full"],
                      "activated": r["activated_full"], "corrected_clips": r["train_clips_total"],
                      "test_speakers": r["test_speakers"]} for seed, r, _ in full]
    if all("gated" in e["full"] for _, _, e in full):  # the same runs' gated weights (= --no-refit)
        gated = [SplitErrors(e["zero_shot"], e["full"]["gated"], e["speakers"]) for _, _, e in full]
        out.update(mean_figures("relative_wer_reduction_no_refit", mean_reduction(gated)))
        out.update(mean_figures("refit_gain", mean_difference(after, gated)))
    print(json.dumps({k: v for k, v in out.items() if k != "splits"}), flush=True)
    return out


def cached_split(args: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    """:func:`run_split`, its figures kept in ``work/split.json``: a split measured before
    (by this command or another process with the same ``--workdir``) is read back, so the
    splits can run side by side and the mean be taken once all are there."""
    cache = work / "split.json"
    if cache.is_file():
        data = json.loads(cache.read_text())
        return data["results"], data["extra"]
    results, extra = run_split(args, work)
    cache.write_text(json.dumps({"results": results, "extra": extra}))
    return results, extra


def reuse_queue_project(root: Path):
    """A queue project ranked and corrected by an earlier (killed) run of this split, and
    its corrected rows; None when there is none (ranking the pool is the slow part)."""
    from earmark.store.db import Clip, Correction
    from earmark.store.project import open_project

    if not (root / "earmark.db").is_file():
        return None
    project = open_project(root)
    active = project.store.active_model()
    if active is not None and active.name != project.config.decode.model:
        return None  # a fine-tune finished there: start the split over
    with project.store.session() as s:
        chosen = [{"speaker": c.speaker, "duration": c.duration, "text": c.reference_text}
                  for c in s.scalars(select(Clip).join(Correction, Correction.clip_id == Clip.id)
                                     .order_by(Correction.id))]
    return (project, chosen) if chosen else None


def run_split(args: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    """One speaker split (``args.seed``): zero-shot and fine-tuned test WER per mode.

    Returns the flat figures and, for :func:`over_splits`, the test set's word errors per
    clip (zero-shot, and per mode and decoder) and each scored clip's speaker.
    """
    import torch

    from earmark.config import FinetuneConfig
    from earmark.evaluate.heldout import evaluate

    rows = [json.loads(l) for l in (DATA / "manifest.jsonl").read_text().splitlines() if l.strip()]
    pool, test = split_speakers(rows, args.test_speakers, args.seed)
    if args.tune:
        # tuning speakers leave the pool before the ~10 minutes are chosen, like the test
        # speakers: the queue takes the hardest speakers first, so the pool speakers it
        # left over would be the easy ones and say little about the test set
        pool, tune = split_speakers(pool, args.tune_speakers, args.seed + 1)
    work.mkdir(parents=True, exist_ok=True)
    reused = reuse_queue_project(work / "proj") if args.select == "queue" and args.seeds else None
    if reused is not None:  # its unfinished fine-tuning run continues where it stopped
        project, chosen = reused
    elif args.select == "queue":
        if (work / "proj").exists():  # killed before its corrections were saved
            import shutil

            shutil.rmtree(work / "proj")
        project, chosen = make_queue_project(work / "proj", pool, args.minutes)
    else:
        chosen = select_minutes(pool, args.minutes, args.seed)
        project = make_project(work / "proj", chosen)
    base = project.store.active_model()
    test_manifest = None if args.tune else write_manifest(test, work / "test.jsonl")
    if args.tune:  # measure on held-out pool speakers, never on test
        test_manifest = write_manifest(tune, work / "tune.jsonl")
        test = tune
    info = {"train_clips_total": len(chosen), "train_minutes": round(sum(r["duration"] for r in chosen) / 60, 2),
            "train_speakers": len({r["speaker"] for r in chosen}), "test_clips": len(test),
            "test_speakers": len({r["speaker"] for r in test}),
            "test_minutes": round(sum(r["duration"] for r in test) / 60, 2)}
    print(json.dumps(info), flush=True)

    results: dict = {**info, "select": args.select, "seed": args.seed, "threads": torch.get_num_threads()}
    extra: dict = {"zero_shot": None, "speakers": None}
    if test_manifest is not None:  # the test set, or with --tune the tuning set
        start = time.perf_counter()
        zs = evaluate(project, model=base.name, manifest=test_manifest)
        zero_shot_errors = {"earmark": zs.rates.clip_errors}
        extra["zero_shot"] = list(zs.rates.clip_errors)
        results.update(zero_shot_wer=round(zs.wer, 4), zero_shot_cer=round(zs.cer, 4),
                       zero_shot_error_auc=round(zs.confidence.auc, 4),
                       zero_shot_ece=round(zs.confidence.ece, 4),
                       zero_shot_decode_seconds=round(time.perf_counter() - start, 1))
        print(json.dumps({"zero_shot_wer": results["zero_shot_wer"]}), flush=True)
        if args.openai_transcribe and not args.tune:
            ow = openai_transcribe_wer(base.spec, test_manifest)
            zero_shot_errors["openai_transcribe"] = ow["clip_errors"]
            results.update(zero_shot_wer_openai_transcribe=ow["wer"], zero_shot_cer_openai_transcribe=ow["cer"],
                           openai_transcribe_seconds=ow["seconds"])
            print(json.dumps({"zero_shot_wer_openai_transcribe": ow["wer"]}), flush=True)

    speakers = scored_speakers(test)  # the groups of every reduction's interval
    extra["speakers"] = speakers
    configs = [parse_config(c) for c in args.config] or [{}]
    for k, overrides in enumerate(configs):
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            cfg = replace(FinetuneConfig(), mode=mode, **overrides)
            if mode == "lora" and "lr" not in overrides:
                cfg = replace(cfg, lr=args.lora_lr or cfg.lr * 10)
            errors: dict = {}
            out = run_mode(project, base.id, cfg, test_manifest,
                           reference=args.openai_transcribe and not args.tune, curve=args.curve and args.tune,
                           errors=errors)
            tag = mode if len(configs) == 1 else f"{mode}_{k}"
            extra[tag] = errors
            if test_manifest is not None:
                for decoder, after in errors.items():
                    if decoder not in zero_shot_errors:  # the gated weights: see over_splits
                        continue
                    suffix = "" if decoder == "earmark" else f"_{decoder}"
                    out.update(reduction_interval(f"relative_reduction{suffix}", zero_shot_errors[decoder],
                                                  after, speakers))
            results[f"config_{tag}"] = {"mode": mode, "lr": cfg.lr, "epochs": cfg.epochs,
                                        "augment": cfg.augment, "interpolate": cfg.interpolate,
                                        "encoder_lr_scale": cfg.encoder_lr_scale, "refit": cfg.refit,
                                        "dev_max_fraction": cfg.dev_max_fraction, **overrides}
            for key, value in out.items():
                results[f"{key}_{tag}"] = value
            if "test_wer" in out:
                results[f"wer_{tag}"] = out["test_wer"]
    if "wer_full" in results and "zero_shot_wer" in results:
        results["finetuned_wer"] = results["wer_full"]
        results["relative_wer_reduction"] = round(
            (results["zero_shot_wer"] - results["wer_full"]) / results["zero_shot_wer"], 4)
        results["relative_wer_reduction_low"] = results.get("relative_reduction_low_full")
        results["relative_wer_reduction_high"] = results.get("relative_reduction_high_full")
    if "test_wer_openai_transcribe_full" in results and "zero_shot_wer_openai_transcribe" in results:
        zs, ft = results["zero_shot_wer_openai_transcribe"], results["test_wer_openai_transcribe_full"]
        results["finetuned_wer_openai_transcribe"] = ft
        results["relative_wer_reduction_openai_transcribe"] = round((zs - ft) / zs, 4)
        results["relative_wer_reduction_openai_transcribe_low"] = results.get(
            "relative_reduction_openai_transcribe_low_full")
        results["relative_wer_reduction_openai_transcribe_high"] = results.get(
            "relative_reduction_openai_transcribe_high_full")

    print(f"\n{'(tuning set: pool speakers held out before selection)' if args.tune else ''}")
    print("| mode | test WER | rel. reduction | dev WER before -> after | wall s |")
    print("|---|---|---|---|---|")
    if "zero_shot_wer" in results:
        print(f"| zero-shot tiny.en | {results['zero_shot_wer']:.3f} | - | - | - |")
    for key in sorted(k for k in results if k.startswith("config_")):
        tag = key.removeprefix("config_")
        wer = results.get(f"wer_{tag}")
        rel = (f"{(results['zero_shot_wer'] - wer) / results['zero_shot_wer']:.1%}"
               if wer is not None and "zero_shot_wer" in results else "-")
        if f"relative_reduction_low_{tag}" in results:  # other test speakers like these
            rel += (f" (95 %: {results[f'relative_reduction_low_{tag}']:.1%}"
                    f" to {results[f'relative_reduction_high_{tag}']:.1%})")
        print(f"| {tag} {results[key]} | {wer if wer is not None else '-'} | {rel} | "
              f"{results[f'dev_wer_before_{tag}']:.3f} -> {results[f'dev_wer_after_{tag}']:.3f} | "
              f"{results[f'seconds_{tag}']:.0f} |")
    return results, extra


if __name__ == "__main__":
    sys.exit(main())
