"""Find, load, validate and resample audio; split long files at silences.

Everything leaves this module as float32 mono at 16 kHz (``SAMPLE_RATE``). Problems
raise :class:`~earmark.errors.UnreadableAudio` with the file name and the reason, so
the importer can record the file as rejected and go on.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earmark.config import SAMPLE_RATE, AudioConfig
from earmark.errors import UnreadableAudio

# a WAV decoding to less than this share of the length its header declares was cut short
# (a writer a few bytes off stays well above it)
TRUNCATED_FRACTION = 0.9


@dataclass(frozen=True)
class Segment:
    """A span of a decoded file, in seconds from its start."""

    offset: float
    duration: float


def find_audio(folder: Path, extensions: tuple[str, ...], skip_marker: str | None = None,
               problems: list[str] | None = None) -> list[Path]:
    """Return every entry with an audio extension below ``folder`` (recursively), sorted.

    Links to folders are not followed (a link back up would loop). A folder below
    ``folder`` holding a file named ``skip_marker`` is left out with all it holds: an
    earmark project kept among the recordings must not have its own clips, exports and
    snapshots imported as new audio.

    Parameters
    ----------
    problems
        When given, one line is appended for each folder that could not be listed (its
        files are missing from the result) and for each folder named like an audio file
        (searched as a folder), so that neither is left out unsaid.
    """
    exts = {e.lower() for e in extensions}
    found = []

    def unlisted(exc: OSError) -> None:
        if problems is not None:
            problems.append(f"{exc.filename}: cannot list this folder ({exc.strerror or exc}), so "
                            "none of its files were imported; make it readable (chmod +rx) and "
                            "import again")

    for here, dirs, files in os.walk(folder, onerror=unlisted):
        if skip_marker and skip_marker in files and Path(here) != folder:
            dirs.clear()
            continue
        if problems is not None:
            problems += [f"{Path(here) / d}: a folder named like an audio file; searched as a folder, "
                         "not imported as a recording" for d in dirs if Path(d).suffix.lower() in exts]
        # everything but folders, broken links and pipes included: the import names them
        # as rejected instead of leaving them out unsaid
        found += [Path(here) / f for f in files if Path(f).suffix.lower() in exts]
    return sorted(found)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hash a file's bytes, so that the same content is imported once."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def probe_duration(path: Path) -> float | None:
    """Duration in seconds read from the header, or None where the header has none."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:
        return None
    return info.frames / info.samplerate if info.samplerate else None


def load_audio(path: Path, cfg: AudioConfig = AudioConfig()) -> np.ndarray:
    """Decode a file to float32 mono at 16 kHz and check it holds usable sound.

    Parameters
    ----------
    path
        Any file soundfile (libsndfile) or, failing that, librosa/audioread decodes.
    cfg
        Limits: the longest file accepted, and what counts as empty or silent.

    Returns
    -------
    np.ndarray, shape (n_samples,), float32 at 16 kHz.

    Raises
    ------
    UnreadableAudio
        Undecodable, too long, empty, non-finite, or silent; the message says which.
    """
    path = Path(path)
    header_seconds = probe_duration(path)
    if header_seconds is not None and header_seconds > cfg.max_file_hours * 3600:
        raise UnreadableAudio(
            f"{path}: {header_seconds / 3600:.1f} h is longer than the {cfg.max_file_hours:g} h limit; "
            "cut it into parts, or raise audio.max_file_hours in the project's earmark.json and "
            "import it again"
        )
    if _size(path) == 0:  # decoders fail on it with an empty message (EOFError: )
        raise UnreadableAudio(f"{path}: empty file (0 bytes); copy or export the file again")
    try:
        audio, rate = _decode(path)
    except Exception as exc:  # decoders raise many unrelated types
        # libsndfile's error_string omits the path, which the message already starts with
        detail = str(getattr(exc, "error_string", None) or exc).strip()
        reason = f"{type(exc).__name__}: {detail}" if detail else "not an audio file this build can decode"
        if "not a regular file" in detail and path.is_file():
            # libsndfile says so of a regular file its MP3 reader finds no frame in, which
            # sends the person looking for a missing file
            reason = "no audio stream found in it" + (", it holds text" if _looks_like_text(path) else "")
            raise UnreadableAudio(f"{path}: not decodable audio ({reason}); check it is really "
                                  f"{path.suffix.lstrip('.') or 'an audio'} audio, not another kind "
                                  "of file renamed") from exc
        raise UnreadableAudio(f"{path}: cannot decode audio ({reason}); "
                              "check the file is a wav, flac, ogg or mp3 file and not truncated") from exc
    declared = wav_header_seconds(path)
    decoded = audio.size / rate if rate else 0.0
    if declared is not None and decoded < TRUNCATED_FRACTION * declared:
        raise UnreadableAudio(f"{path}: truncated file ({decoded:.2f} s of audio, the header says "
                              f"{declared:.2f} s); copy or export the file again")
    if not np.isfinite(audio).all():  # checked before resampling, which would smear it
        raise UnreadableAudio(f"{path}: contains NaN or infinite samples; re-export the file")
    if rate <= 0:  # a damaged header; resampling would divide by it
        raise UnreadableAudio(f"{path}: the header gives a sample rate of {rate} Hz, which no "
                              "recording has; the header is damaged: export the file again")
    if rate != SAMPLE_RATE and audio.size:
        import librosa

        try:
            audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
        except (ValueError, ArithmeticError, MemoryError) as exc:  # an absurd rate in the header
            raise UnreadableAudio(f"{path}: cannot resample from the {rate} Hz its header gives "
                                  f"({type(exc).__name__}: {exc}); export the file again at a usual "
                                  "rate (16000, 44100 or 48000 Hz)") from exc
    check_audio(audio, str(path), cfg)
    return audio.astype(np.float32, copy=False)


def _looks_like_text(path: Path) -> bool:
    """True when the file's first bytes are printable UTF-8 text."""
    try:
        with open(path, "rb") as f:
            head = f.read(256).decode("utf-8")
    except (OSError, UnicodeDecodeError):  # a multi-byte character cut at 256 bytes: say nothing
        return False
    return bool(head) and all(ch.isprintable() or ch in "\r\n\t" for ch in head)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def wav_header_seconds(path: Path) -> float | None:
    """Duration the RIFF header of a WAV file declares for its ``data`` chunk.

    libsndfile reports the frames actually present, so a file cut short in a copy
    decodes without complaint; the header still holds the length it was written with.

    Returns
    -------
    float or None
        Seconds, or None for a file that is not RIFF/WAVE PCM, or whose writer left the
        length unknown (0 or 0xFFFFFFFF, as streaming recorders and RF64 do).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            rate = block_align = 0
            for _ in range(64):  # a real header has a handful of chunks before "data"
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if cid == b"data":
                    if not rate or not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size / block_align / rate
                if cid == b"fmt " and size >= 16:
                    fmt = f.read(16)
                    if len(fmt) < 16:
                        return None
                    rate = int.from_bytes(fmt[4:8], "little")
                    block_align = int.from_bytes(fmt[12:14], "little")
                    f.seek(size - 16 + (size & 1), 1)
                else:
                    f.seek(size + (size & 1), 1)  # chunks are padded to an even size
    except OSError:
        return None
    return None


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Samples (mono float32) and rate: libsndfile first, audioread for anything else."""
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        # a mono file's one column as is: mean() would copy a long file once more
        return (audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1)), int(rate)
    except sf.LibsndfileError as err:
        import warnings

        import librosa

        with warnings.catch_warnings():  # librosa warns that it falls back; we know
            warnings.simplefilter("ignore")
            try:
                audio, rate = librosa.load(str(path), sr=None, mono=True)
            except Exception as fallback:
                if str(fallback).strip():
                    raise
                raise err from fallback  # audioread's NoBackendError says nothing; libsndfile does
        return audio.astype(np.float32), int(rate)


def check_audio(audio: np.ndarray, name: str, cfg: AudioConfig = AudioConfig()) -> None:
    """Raise :class:`UnreadableAudio` if ``audio`` is empty, non-finite or silent."""
    seconds = audio.size / SAMPLE_RATE
    if audio.size == 0:
        raise UnreadableAudio(f"{name}: empty (the file holds no audio samples)")
    if seconds < cfg.min_clip_seconds:
        raise UnreadableAudio(f"{name}: too short ({seconds:.2f} s of audio, need at least "
                              f"{cfg.min_clip_seconds:g} s, audio.min_clip_seconds)")
    if not np.isfinite(audio).all():
        raise UnreadableAudio(f"{name}: contains NaN or infinite samples; re-export the file")
    if rms_dbfs(audio) < cfg.silence_dbfs:
        raise UnreadableAudio(f"{name}: silent (RMS {rms_dbfs(audio):.0f} dBFS, below "
                              f"{cfg.silence_dbfs:g} dBFS, audio.silence_dbfs); nothing to transcribe")


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for digital silence)."""
    # summed in float64 a block at a time: squaring a long file at once in float64 would
    # take twice the memory of the file itself
    step = 1 << 20
    squares = sum(float(np.square(audio[i : i + step], dtype=np.float64).sum())
                  for i in range(0, audio.size, step))
    rms = float(np.sqrt(squares / audio.size)) if audio.size else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def split_points(audio: np.ndarray, cfg: AudioConfig = AudioConfig()) -> list[Segment]:
    """Cut a long signal into segments of at most ``cfg.max_clip_seconds`` at silences.

    Each cut is placed at the quietest 20 ms frame (by smoothed RMS) in the last
    ``cfg.split_search_seconds`` of the window, so words are rarely cut in half.
    Segments that are silent are dropped.

    Returns
    -------
    list[Segment]
        In order; a signal no longer than the limit gives one segment.
    """
    total = audio.size / SAMPLE_RATE
    if total <= cfg.max_clip_seconds:
        return [Segment(0.0, total)]
    hop = SAMPLE_RATE // 50  # 20 ms frames
    n_frames = audio.size // hop
    frames = audio[: n_frames * hop].reshape(n_frames, hop)
    energy = np.empty(n_frames)
    step = 1 << 16  # frames at a time: a whole long file in float64 would be twice its size
    for i in range(0, n_frames, step):
        energy[i : i + step] = np.sqrt(np.square(frames[i : i + step], dtype=np.float64).mean(axis=1))
    # smooth over ~200 ms so a cut lands in a pause, not between two phonemes
    energy = np.convolve(energy, np.ones(10) / 10, mode="same")

    max_f = int(cfg.max_clip_seconds * 50)
    search_f = max(1, int(min(cfg.split_search_seconds, cfg.max_clip_seconds / 2) * 50))
    cuts = [0]
    while n_frames - cuts[-1] > max_f:
        lo, hi = cuts[-1] + max_f - search_f, cuts[-1] + max_f
        cuts.append(lo + int(np.argmin(energy[lo:hi])))
    cuts.append(n_frames)

    segments = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        piece = audio[a * hop : b * hop]
        if piece.size / SAMPLE_RATE >= cfg.min_clip_seconds and rms_dbfs(piece) >= cfg.silence_dbfs:
            segments.append(Segment(a / 50, (b - a) / 50))
    return segments


def slice_audio(audio: np.ndarray, seg: Segment) -> np.ndarray:
    """Return the samples of ``seg``."""
    a = int(round(seg.offset * SAMPLE_RATE))
    return audio[a : a + int(round(seg.duration * SAMPLE_RATE))]


def write_clip(path: Path, audio: np.ndarray) -> None:
    """Store a clip as 16 kHz 16-bit FLAC (lossless for 16-bit sources, ~half of WAV)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    # one temporary name per process: two imports of the same file write the same clip
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.part.flac")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    tmp.replace(path)  # atomic: a killed import never leaves half a clip


def clip_is_sound(path: Path) -> bool:
    """Whether a stored clip is there and its header reads as a 16 kHz file (a quick
    check, not a decode: a clip cut short inside passes)."""
    import soundfile as sf

    try:
        return sf.info(str(path)).samplerate == SAMPLE_RATE
    except (OSError, RuntimeError):
        return False


def read_clip(path: Path, data: bytes | None = None) -> np.ndarray:
    """Read a stored clip (already 16 kHz mono) as float32.

    ``data``: the file's bytes, read on another machine (a Ray driver ships them to its
    actors); ``path`` then only names the clip in messages.
    """
    import io

    import soundfile as sf

    try:
        audio, sr = sf.read(io.BytesIO(data) if data is not None else str(path), dtype="float32",
                            always_2d=False)
    except (OSError, RuntimeError) as e:  # soundfile's LibsndfileError is a RuntimeError
        reason = "missing" if data is None and not Path(path).exists() else f"unreadable ({e})"
        raise UnreadableAudio(f"{path}: stored clip is {reason}; import its source file again "
                              "(`earmark import` writes a known file's missing or damaged clips again), restore "
                              "the project's audio folder from a backup, or flag the clip in the "
                              "review app so it is left out") from e
    if sr != SAMPLE_RATE:  # stored clips are always 16 kHz; anything else is tampering
        raise UnreadableAudio(f"{path}: stored clip is {sr} Hz, expected {SAMPLE_RATE}; re-import it")
    return audio
