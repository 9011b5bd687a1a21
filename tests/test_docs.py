"""The docs a newcomer reads stay short, and what they point at exists."""

from __future__ import annotations

import re
import subprocess
import sys

from _support import REPO

README = REPO / "README.md"
BENCH_README = REPO / "benchmarks" / "README.md"
RESULTS = REPO / "benchmarks" / "results"


def test_readme_is_under_1500_words():
    words = len(README.read_text().split())
    assert words < 1500, f"README.md has {words} words; move details into docs/"


def test_benchmarks_readme_is_under_300_lines():
    lines = len(BENCH_README.read_text().splitlines())
    assert lines < 300, f"benchmarks/README.md has {lines} lines; move old runs to history.md"


def test_local_links_of_the_readmes_and_docs_exist():
    pages = [README, *sorted((REPO / "benchmarks").glob("*.md")), *sorted((REPO / "docs").glob("*.md"))]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(REPO)}: {target}")
    assert not missing, missing


def test_every_result_file_the_benchmark_table_names_is_there():
    named = set(re.findall(r"`([\w-]+\.(?:json|png))`", BENCH_README.read_text()))
    assert {"ranking_quality.json", "rank_throughput.json", "finetune.json", "simulate.json",
            "rank_memory_10k.json"} <= named
    assert not [n for n in named if not (RESULTS / n).is_file()]


def test_the_readme_command_table_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "earmark.cli", "--help"], capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.split("positional arguments:")[1].split("options:")[0]
    commands = set(re.findall(r"^ {4}([a-z][a-z-]*)(?: |$)", listed, re.M))
    assert len(commands) >= 10, listed
    rows = set(re.findall(r"^\| `([a-z][a-z-]*)` \|", README.read_text(), re.M))
    assert commands == rows, f"missing from README: {commands - rows}; not commands: {rows - commands}"
