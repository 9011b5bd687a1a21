"""The study's clips and their speaker-disjoint (pool, dev, test) split per seed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earmark.errors import BadConfig, BadManifest

MAX_CLIP_SECONDS = 30.0  # Whisper's window: a longer clip would be cut, its reference not


@dataclass(frozen=True)
class Row:
    """One clip of the study: its place in the manifest is its id (file order)."""

    index: int
    audio: str  # absolute path
    text: str
    speaker: str
    duration: float  # seconds


@dataclass(frozen=True)
class Split:
    """Indices into the study's rows, speaker-disjoint."""

    seed: int
    pool: tuple[int, ...]
    dev: tuple[int, ...]
    test: tuple[int, ...]


def read_rows(path: Path | str) -> list[Row]:
    """The manifest's rows, each checked: audio, text, speaker and a duration of at most 30 s
    (read from the file when the row gives none).

    Raises
    ------
    BadManifest
        A row without its audio, text or speaker, or with a duration missing, not a
        number or over 30 s; the message names the file, the line and the field.
    """
    from earmark.sources import manifest_records

    path = Path(path)
    rows = []
    for n, r in manifest_records(path):
        for name in ("audio", "text", "speaker"):
            if not isinstance(r.get(name), str) or not r[name].strip():
                raise BadManifest(f"{path}:{n}: '{name}' is missing or empty; the study needs audio, "
                                  "text and speaker on every row")
        audio = (path.parent / r["audio"]).resolve()
        d = r.get("duration")
        if d is None:  # read from the file's header
            d = _duration(audio, f"{path}:{n}")
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not d > 0:
            raise BadManifest(f"{path}:{n}: 'duration' is {d!r}; give each clip's length in seconds")
        if d > MAX_CLIP_SECONDS:
            raise BadManifest(f"{path}:{n}: 'duration' is {d:g} s, over Whisper's {MAX_CLIP_SECONDS:g} s "
                              "window; split the recording into clips of at most 30 s")
        rows.append(Row(len(rows), str(audio), r["text"], r["speaker"], float(d)))
    return rows


def _duration(audio: Path, where: str) -> float:
    import soundfile as sf

    try:
        return float(sf.info(str(audio)).duration)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one line
        raise BadManifest(f"{where}: cannot read {audio} ({exc.__class__.__name__}); fix the 'audio' "
                          "path or give the clip's 'duration'") from None


def choose_speakers(rows: list[Row], n: int, seed: int = 0) -> list[Row]:
    """The rows of ``n`` speakers drawn with ``seed`` (all when ``n`` is 0), re-indexed."""
    names = sorted({r.speaker for r in rows})
    if n and n < len(names):
        keep = set(random.Random(seed).sample(names, n))
        rows = [r for r in rows if r.speaker in keep]
    return [Row(i, r.audio, r.text, r.speaker, r.duration) for i, r in enumerate(rows)]


def split(rows: list[Row], seed: int, n_test: int, n_dev: int) -> Split:
    """Speakers shuffled with ``seed``: the first ``n_test`` test, the next ``n_dev`` dev, the
    rest the pool.

    Raises
    ------
    BadConfig
        Too few speakers to leave a pool; the message names the flags.
    """
    names = sorted({r.speaker for r in rows})
    if n_test < 1 or n_dev < 0 or n_test + n_dev >= len(names):
        raise BadConfig(f"the manifest has {len(names)} speakers, too few for --test-speakers {n_test} "
                        f"and --dev-speakers {n_dev} and a pool; lower them, or use a manifest with more speakers "
                        "(or a larger --speakers)")
    random.Random(seed).shuffle(names)
    test, dev = set(names[:n_test]), set(names[n_test : n_test + n_dev])
    return Split(seed, tuple(r.index for r in rows if r.speaker not in test | dev),
                 tuple(r.index for r in rows if r.speaker in dev),
                 tuple(r.index for r in rows if r.speaker in test))


def as_dicts(rows: list[Row]) -> list[dict[str, Any]]:
    """Rows in the form :func:`earmark.simulate.study.encode_study` reads."""
    return [{"audio": r.audio, "text": r.text, "speaker": r.speaker, "id": str(r.index)} for r in rows]
