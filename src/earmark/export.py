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
export never leaves half a dataset under the final name. Each export folder holds a
``.earmark-export`` marker (its format); an existing folder is replaced only when it is
empty or holds nothing but what an export writes, so an export never deletes anything a
person put there.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from earmark.train.dataset import Example, correction_examples, current_split
from earmark.errors import BadConfig, NoCorrections, UnreadableAudio
from earmark.store.project import Project

FORMATS = ("jsonl", "nemo", "hf")
MARKER = ".earmark-export"  # in every export folder; holds the format
# the files an export writes at its top level (exports from before the marker hold only these)
EXPORT_FILES = {"manifest.jsonl", "train_manifest.json", "dev_manifest.json"}
PROTECTED = ("audio", "models")  # project folders an export must never replace or enter
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
    missing = [e for e in examples if not project.clip_path(e.audio_path).is_file()]
    if missing:  # every format points at the clips: an export with holes would fail its trainer
        raise UnreadableAudio(
            f"{project.root}: {len(missing)} corrected clip(s) have no stored audio (clip ids "
            f"{', '.join(str(e.clip_id) for e in missing[:10])}{' ...' if len(missing) > 10 else ''}; first "
            f"{project.clip_path(missing[0].audio_path)}); import their source files again (`earmark "
            "import` writes a known file's missing clips again), or flag those clips in the review app")
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
        Output folder; default ``PROJECT/exports/<fmt>``. It must be new, empty, or an
        earlier export (which is replaced).

    Raises
    ------
    NoCorrections
        Nothing corrected yet.
    BadConfig
        Unknown format, or an output folder that holds other files or the project.
    """
    if fmt not in WRITERS:
        raise BadConfig(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out).resolve() if out else project.root.resolve() / "exports" / fmt
    check_target(project, out)
    rows = _rows(project)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(out)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    except OSError as exc:  # the export is written beside ``out`` first, then moved into place
        raise BadConfig(f"{out}: cannot write there ({exc.strerror or exc}); choose a folder you "
                        "can write to with --out") from exc
    old = None
    try:
        (tmp / MARKER).write_text(fmt + "\n")  # first, so a killed export's leftover is known as ours
        files = WRITERS[fmt](project, rows, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; a dataset is meant to be shared
        if out.exists():
            # set the earlier export aside rather than delete it first: a kill between
            # the two renames leaves it whole (under the aside name), never half deleted
            old = out.parent / f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}"
            out.rename(old)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old is not None and old.exists() and out.exists():
            shutil.rmtree(old)
    return ExportResult(fmt, out, len(rows), sum(e.duration for e, _ in rows),
                        tuple(out / f.relative_to(tmp) for f in files))


def check_target(project: Project, out: Path) -> None:
    """Refuse an output folder whose replacement would delete anything but an export.

    Parameters
    ----------
    project
        The project being exported.
    out
        The output folder, resolved.

    Raises
    ------
    BadConfig
        ``out`` is a file, the project folder, a folder holding the project or the
        current folder, a folder inside the project's audio or models, or a folder with
        files that no earlier export wrote.
    """
    root = project.root.resolve()
    advice = "choose a new or empty folder for the export"
    if out == root:
        raise BadConfig(f"{out}: the project folder itself; an export replaces its output "
                        f"folder as a whole; {advice}")
    if root.is_relative_to(out):
        raise BadConfig(f"{out}: this folder holds the project {root}, and an export replaces "
                        f"its output folder as a whole; {advice}")
    for area in PROTECTED:
        if out.is_relative_to(root / area):
            raise BadConfig(f"{out}: inside the project's {area}/ folder; {advice}")
    if Path.cwd().resolve().is_relative_to(out):
        raise BadConfig(f"{out}: this is (or holds) the current folder, which an export "
                        f"replaces as a whole; {advice}")
    if out.exists() and not out.is_dir():
        raise BadConfig(f"{out}: a file, not a folder; {advice}")
    if out.is_dir() and not is_export(out):
        raise BadConfig(f"{out}: the folder holds files that no earmark export wrote, and an "
                        f"export replaces the whole folder; {advice}")


def is_export(folder: Path) -> bool:
    """Whether ``folder`` is empty or holds only what an export writes (and may be replaced).

    The marker alone is not enough: a file a person added to an earlier export (notes, a
    script) makes the folder theirs, and replacing it would delete that file.
    """
    for entry in folder.iterdir():
        if entry.is_file() and (entry.name == MARKER or entry.name in EXPORT_FILES):
            continue
        if entry.is_dir() and entry.name in HF_SPLITS.values() and all(
                f.is_file() and (f.name == "metadata.jsonl"
                                 or (f.name.startswith("clip") and f.suffix == ".flac"))
                for f in entry.iterdir()):
            continue
        return False
    return True


def _remove_leftovers(out: Path) -> None:
    """Clear what a killed export left beside ``out`` (only folders holding the marker).

    A half-written temporary folder is deleted; an earlier export set aside is put back
    when ``out`` is missing (the kill fell between the two renames), else deleted.
    """
    for prefix in (f".{out.name}.tmp-", f".{out.name}.old-"):
        for p in sorted(out.parent.glob(prefix + "*")):
            if not (p.is_dir() and (p / MARKER).is_file()):
                continue
            if prefix.endswith(".old-") and not out.exists():
                p.rename(out)
            else:
                shutil.rmtree(p)
