"""Find, load, validate and resample audio; split long files at silences.

Everything leaves this module as float32 mono at 16 kHz (``SAMPLE_RATE``). Problems
raise :class:`~earmark.errors.UnreadableAudio` with the file name and the reason, so
the importer can record the file as rejected and go on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import SAMPLE_RATE, AudioConfig
from .errors import UnreadableAudio


@dataclass(frozen=True)
class Segment:
    """A span of a decoded file, in seconds from its start."""

    offset: float
    duration: float


def find_audio(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Return every audio file below ``folder`` (recursively), sorted by path."""
    exts = {e.lower() for e in extensions}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts)


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
            "cut it into parts or raise AudioConfig.max_file_hours"
        )
    try:
        audio, rate = _decode(path)
    except Exception as exc:  # decoders raise many unrelated types
        raise UnreadableAudio(f"{path}: cannot decode audio ({type(exc).__name__}: {exc}); "
                              "check the file is a wav, flac, ogg or mp3 file and not truncated") from exc
    if not np.isfinite(audio).all():  # checked before resampling, which would smear it
        raise UnreadableAudio(f"{path}: contains NaN or infinite samples; re-export the file")
    if rate != SAMPLE_RATE and audio.size:
        import librosa

        audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    check_audio(audio, str(path), cfg)
    return audio.astype(np.float32, copy=False)


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Samples (mono float32) and rate: libsndfile first, audioread for anything else."""
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return audio.mean(axis=1), int(rate)
    except sf.LibsndfileError:
        import warnings

        import librosa

        with warnings.catch_warnings():  # librosa warns that it falls back; we know
            warnings.simplefilter("ignore")
            audio, rate = librosa.load(str(path), sr=None, mono=True)
        return audio.astype(np.float32), int(rate)


def check_audio(audio: np.ndarray, name: str, cfg: AudioConfig = AudioConfig()) -> None:
    """Raise :class:`UnreadableAudio` if ``audio`` is empty, non-finite or silent."""
    seconds = audio.size / SAMPLE_RATE
    if seconds < cfg.min_clip_seconds:
        raise UnreadableAudio(f"{name}: empty ({seconds:.2f} s of audio, need at least "
                              f"{cfg.min_clip_seconds:g} s)")
    if not np.isfinite(audio).all():
        raise UnreadableAudio(f"{name}: contains NaN or infinite samples; re-export the file")
    if rms_dbfs(audio) < cfg.silence_dbfs:
        raise UnreadableAudio(f"{name}: silent (RMS {rms_dbfs(audio):.0f} dBFS, below "
                              f"{cfg.silence_dbfs:g} dBFS); nothing to transcribe")


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
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
    energy = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
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
    tmp = path.with_suffix(".part.flac")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    tmp.replace(path)  # atomic: a killed import never leaves half a clip


def read_clip(path: Path) -> np.ndarray:
    """Read a stored clip (already 16 kHz mono) as float32."""
    import soundfile as sf

    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except (OSError, RuntimeError) as e:  # soundfile's LibsndfileError is a RuntimeError
        reason = "missing" if not path.exists() else f"unreadable ({e})"
        raise UnreadableAudio(f"{path}: stored clip is {reason}; restore the project's audio "
                              "folder from a backup, or import the source file again") from e
    if sr != SAMPLE_RATE:  # stored clips are always 16 kHz; anything else is tampering
        raise UnreadableAudio(f"{path}: stored clip is {sr} Hz, expected {SAMPLE_RATE}; re-import it")
    return audio
