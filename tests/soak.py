"""A soak of one SQLite project: annotators, a rank and a fine-tune at once, each killed.

Shared by ``tests/test_soak.py`` and ``benchmarks/bench_reliability.py``. Eight
annotator processes save corrections as fast as they can, while ``earmark rank`` and
``earmark finetune --mode decoder`` run on the same project with the real tiny.en model;
then each process is killed with SIGKILL in turn. :func:`verify` then checks that no
acknowledged correction is lost or doubled and that the database is sound.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data_samples"

#: one annotator: open a random clip, save a correction whose text is unique, then log it
#: (a save is logged only once it has returned, so every logged text must be stored)
ANNOTATOR = r"""
import json, os, random, sys, time
from earmark.review import workflow as review
from earmark.errors import CorrectedMeanwhile, DatabaseBusy
from earmark.store.project import open_project

root, who, log = sys.argv[1], sys.argv[2], sys.argv[3]
project = open_project(root)
rng = random.Random(who)
with project.store.session() as s:
    from sqlalchemy import select
    from earmark.store.db import Clip
    clips = list(s.scalars(select(Clip.id)))
n = 0
with open(log, "a") as out:
    while True:
        n += 1
        text = f"{who} correction {n}"
        try:
            item = review.open_clip(project, rng.choice(clips))
            cid = review.save_correction(project, item, text, annotator=who, seconds_spent=1.0)
        except (CorrectedMeanwhile, DatabaseBusy):
            continue  # someone saved the clip meanwhile, or a writer held the file: try again
        out.write(json.dumps({"id": cid, "text": text}) + "\n")
        out.flush()
        time.sleep(0.02)
"""


@dataclass
class SoakResult:
    """What a soak did and what :func:`verify` found."""

    saved: int = 0  # corrections the annotators were told were saved
    stored: int = 0  # corrections in the database afterwards
    lost: int = 0  # acknowledged but missing
    doubled: int = 0  # texts stored more than once
    integrity: str = ""  # PRAGMA integrity_check's answer
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _env() -> dict[str, str]:
    src = str(REPO / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


def run_soak(root: Path, *, run_seconds: float = 20.0, annotators: int = 8) -> SoakResult:
    """Run the soak on a new project at ``root`` and check it; see the module docstring.

    Parameters
    ----------
    root
        A folder that does not exist yet.
    run_seconds
        How long everything runs before the first kill; the kills follow two seconds apart.
    """
    started = time.perf_counter()
    env = _env()
    cli = [sys.executable, "-m", "earmark.cli.main"]
    subprocess.run([*cli, "init", str(root)], env=env, check=True, capture_output=True)
    subprocess.run([*cli, "import", str(root), str(SAMPLES / "manifest.jsonl"), "-q"], env=env, check=True,
                   capture_output=True)
    logs = [root.parent / f"annotator{i}.jsonl" for i in range(annotators)]
    procs: list[tuple[str, subprocess.Popen]] = []
    for i, log in enumerate(logs):
        procs.append((f"annotator{i}", subprocess.Popen(
            [sys.executable, "-c", ANNOTATOR, str(root), f"ann{i}", str(log)], env=env,
            stderr=subprocess.PIPE, text=True)))
    procs.append(("rank", subprocess.Popen([*cli, "rank", str(root), "-q", "--threads", "1"], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    time.sleep(3)  # the fine-tune needs corrections to start from
    procs.append(("finetune", subprocess.Popen(
        [*cli, "finetune", str(root), "--mode", "decoder", "--max-steps", "2", "--epochs", "1",
         "--batch-size", "4", "--threads", "1", "-q"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    time.sleep(run_seconds)
    result = SoakResult()
    for name, proc in procs:  # each killed in turn, as a crash or an OOM killer would
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        err = proc.stderr.read() if proc.stderr else ""
        if "Traceback" in err:
            result.problems.append(f"{name} crashed: {err[-800:]}")
        time.sleep(2 if name.startswith(("rank", "finetune")) else 0.3)
    verify(root, logs, result)
    result.seconds = time.perf_counter() - started
    return result


def verify(root: Path, logs: list[Path], result: SoakResult) -> SoakResult:
    """Check the project after the kills: corrections once each, queue and versions sound."""
    acknowledged = [json.loads(line)["text"] for log in logs if log.exists()
                    for line in log.read_text().splitlines() if line.endswith("}")]
    result.saved = len(acknowledged)
    db = root / "earmark.db"
    with sqlite3.connect(db, timeout=30) as conn:
        result.integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        texts = [r[0] for r in conn.execute("SELECT text FROM corrections")]
        result.stored = len(texts)
        counts: dict[str, int] = {}
        for t in texts:
            counts[t] = counts.get(t, 0) + 1
        result.doubled = sum(1 for n in counts.values() if n > 1)
        result.lost = sum(1 for t in acknowledged if t not in counts)
        ranks = [r[0] for r in conn.execute("SELECT rank FROM queue ORDER BY rank")]
        if ranks != list(range(1, len(ranks) + 1)):
            result.problems.append(f"queue ranks are not 1..{len(ranks)}")
        orphans = conn.execute("SELECT count(*) FROM queue WHERE clip_id NOT IN (SELECT id FROM clips)").fetchone()[0]
        if orphans:
            result.problems.append(f"{orphans} queue rows of unknown clips")
        active = conn.execute("SELECT count(*) FROM model_versions WHERE active").fetchone()[0]
        if active != 1:
            result.problems.append(f"{active} active model versions, not 1")
        bad_status = conn.execute("SELECT count(*) FROM model_versions WHERE status NOT IN "
                                  "('ready', 'training', 'rejected')").fetchone()[0]
        if bad_status:
            result.problems.append(f"{bad_status} model versions in an unknown state")
        dangling = conn.execute("SELECT count(*) FROM transcripts WHERE model_version_id NOT IN "
                                "(SELECT id FROM model_versions)").fetchone()[0]
        if dangling:
            result.problems.append(f"{dangling} transcripts of unknown model versions")
    return result
