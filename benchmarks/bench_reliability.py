"""Reliability: hostile inputs and commands, and a kill -9 soak (issue #23).

Runs the hostile cases of ``tests/hostile.py`` (the same ones the tests run): every file
of a hostile folder and of a hostile manifest through ``import``, and every hostile
command line through ``earmark.cli.main.main``; then the soak of ``tests/soak.py`` (eight
annotators, a rank and a decoder fine-tune on one project, each killed with SIGKILL).

Writes ``benchmarks/results/reliability.json``::

    python benchmarks/bench_reliability.py
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import write_result  # noqa: E402
from hostile import hostile_commands, hostile_files, hostile_manifest, run_cli  # noqa: E402
from soak import run_soak  # noqa: E402


def main() -> dict:
    from earmark.ingest import import_audio
    from earmark.store.project import init_project

    figures = {"bad_inputs_tried": 0, "tracebacks": 0, "clear_errors": 0}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = hostile_files(tmp / "src")
        manifest = hostile_manifest(tmp / "src", cases)
        bad = [c for c in cases if not c.good]
        for source, n_bad in ((tmp / "src", len(bad) + 1), (manifest, len(bad) + 2)):
            project = init_project(tmp / f"proj_{source.suffix or 'folder'}")
            figures["bad_inputs_tried"] += n_bad  # the bad files (and the manifest's extra rows)
            try:
                report = import_audio(project, source, progress=False)
                figures["clear_errors"] += len(report.rejected) + len(report.warnings)
            except Exception:  # noqa: BLE001 - what is counted
                traceback.print_exc()
                figures["tracebacks"] += 1
        project = init_project(tmp / "proj_cli")
        project.store.dispose()
        for argv in hostile_commands(tmp, project.root):
            r = run_cli(argv)
            figures["bad_inputs_tried"] += 1
            figures["tracebacks"] += bool(r.crashed or "Traceback" in r.err)
            figures["clear_errors"] += r.clear_error
            if not r.clear_error:
                print(f"not one clear line: {argv}: exit {r.code}: {r.err.strip()[-300:]}{r.crashed[-300:]}")
        soak = run_soak(tmp / "soak" / "proj", run_seconds=20.0)
    figures.update(corrections_lost=soak.lost, corrections_doubled=soak.doubled,
                   soak_corrections_saved=soak.saved, soak_corrections_stored=soak.stored,
                   soak_integrity_ok=int(soak.integrity == "ok"), soak_problems=len(soak.problems),
                   soak_seconds=round(soak.seconds, 1))
    for k, v in figures.items():
        print(f"{k:24s} {v}")
    write_result("reliability", figures)
    return figures


if __name__ == "__main__":
    main()
