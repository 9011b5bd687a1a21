"""Export the corrected data for other trainers.

Every clip's newest unflagged correction is written with its split (the same dev split
fine-tuning holds out) in one of three layouts:

- ``jsonl``: ``manifest.jsonl``, one object a line: ``audio`` (absolute path),
  ``text``, ``duration``, ``speaker``, ``split``, ``clip_id``, ``correction_id``; the
  same columns ``earmark import`` reads, so another project can import it;
- ``nemo``: NeMo ASR manifests ``train_manifest.json`` and ``dev_manifest.json``,
  JSON lines with ``audio_filepath`` (absolute), ``duration`` and ``text``;
- ``hf``: a Hugging Face ``audiofolder`` dataset: ``train/`` and ``validation/``
  folders holding the FLAC clips and a ``metadata.jsonl`` (``file_name``,
  ``transcription``, ``speaker``, ``duration``); load it with
  ``datasets.load_dataset("audiofolder", data_dir=OUT)``.

The output folder is written beside its final place and renamed into it, so a killed
export never leaves half a dataset under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .dataset import Example, correction_examples, current_split
from .errors import BadConfig, NoCorrections
from .project import Project

FORMATS = ("jsonl", "nemo", "hf")
HF_SPLITS = {"train": "train", "dev": "validation"}  # audiofolder's split folder names


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    format: str
    path: Path  # the output folder
    clips: int
    seconds: float  # audio in the export
    files: tuple[Path, ...]  # the manifests (and metadata files) written


def _rows(project: Project) -> list[tuple[Example, str]]:
    """(example, "train" | "dev") for every corrected clip."""
    examples = correction_examples(project)
    if not examples:
        raise NoCorrections(f"{project.root}: nothing to export: no saved corrections yet "
                            f"(flags do not count); correct clips with `earmark review {project.root}`")
    try:
        dev = {e.clip_id for e in current_split(project).dev}
    except NoCorrections:  # a single correction: too few to hold out, all of it is train
        dev = set()
    return [(e, "dev" if e.clip_id in dev else "train") for e in examples]


def _write_lines(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def _jsonl(project: Project, rows: list[tuple[Example, str]], out: Path) -> list[Path]:
    return [_write_lines(out / "manifest.jsonl", [
        {"audio": str(project.clip_path(e.audio_path).resolve()), "text": e.text,
         "duration": round(e.duration, 3), "speaker": e.speaker, "split": split,
         "clip_id": e.clip_id, "correction_id": e.correction_id} for e, split in rows])]


def _nemo(project: Project, rows: list[tuple[Example, str]], out: Path) -> list[Path]:
    files = []
    for split in ("train", "dev"):
        files.append(_write_lines(out / f"{split}_manifest.json", [
            {"audio_filepath": str(project.clip_path(e.audio_path).resolve()),
             "duration": round(e.duration, 3), "text": e.text} for e, s in rows if s == split]))
    return files


def _hf(project: Project, rows: list[tuple[Example, str]], out: Path) -> list[Path]:
    files = []
    for split, folder in HF_SPLITS.items():
        chosen = [e for e, s in rows if s == split]
        if not chosen:
            continue
        (out / folder).mkdir()
        meta = []
        for e in chosen:
            name = f"clip{e.clip_id:06d}.flac"
            src = project.clip_path(e.audio_path)
            try:  # a hard link costs no space; copy across file systems
                os.link(src, out / folder / name)
            except OSError:
                shutil.copy2(src, out / folder / name)
            meta.append({"file_name": name, "transcription": e.text, "speaker": e.speaker,
                         "duration": round(e.duration, 3)})
        files.append(_write_lines(out / folder / "metadata.jsonl", meta))
    return files


WRITERS = {"jsonl": _jsonl, "nemo": _nemo, "hf": _hf}


def export(project: Project, fmt: str = "jsonl", out: Path | str | None = None) -> ExportResult:
    """Write the corrected data as a JSONL manifest, NeMo manifests or an audiofolder.

    Parameters
    ----------
    project
        An open project with corrections.
    fmt
        ``"jsonl"``, ``"nemo"`` or ``"hf"``.
    out
        Output folder (replaced if it exists); default ``PROJECT/exports/<fmt>``.

    Raises
    ------
    NoCorrections
        Nothing corrected yet.
    BadConfig
        Unknown format.
    """
    if fmt not in WRITERS:
        raise BadConfig(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    rows = _rows(project)
    out = Path(out) if out else project.root / "exports" / fmt
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        files = WRITERS[fmt](project, rows, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; a dataset is meant to be shared
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return ExportResult(fmt, out, len(rows), sum(e.duration for e, _ in rows),
                        tuple(out / f.relative_to(tmp) for f in files))
