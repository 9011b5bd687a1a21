"""Audio loading, validation and splitting: every bad input gets a clear reason."""

from __future__ import annotations

import re

import numpy as np
import pytest

from _support import SR, tone, write_wav
from earmark.audio import (
    check_audio, find_audio, load_audio, read_clip, rms_dbfs, split_points, wav_header_seconds,
)
from earmark.config import AudioConfig
from earmark.errors import UnreadableAudio


def test_resamples_to_16k_mono(tmp_path):
    stereo = np.stack([tone(1.0, sr=44100), tone(1.0, sr=44100)], axis=1)
    audio = load_audio(write_wav(tmp_path / "a.wav", stereo, sr=44100))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - SR) < 10


@pytest.mark.parametrize("fmt,ext", [("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_decodes_every_supported_format(tmp_path, fmt, ext):
    import soundfile as sf

    path = tmp_path / f"a.{ext}"
    sf.write(str(path), tone(1.5, sr=22050), 22050, format=fmt)
    audio = load_audio(path)
    assert 1.4 * SR < audio.size < 1.6 * SR


def test_garbage_file_is_unreadable_and_named(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00not really audio" * 10)
    with pytest.raises(UnreadableAudio, match="broken.wav.*cannot decode"):
        load_audio(bad)


def test_a_stored_clip_that_is_gone_or_damaged_is_named_with_what_to_do(tmp_path):
    with pytest.raises(UnreadableAudio, match=r"gone.flac: stored clip is missing; import its source file again"):
        read_clip(tmp_path / "gone.flac")
    bad = tmp_path / "damaged.flac"
    bad.write_bytes(b"fLaC" + b"\x00" * 64)
    with pytest.raises(UnreadableAudio, match=r"damaged.flac: stored clip is unreadable .*flag the clip"):
        read_clip(bad)


def test_empty_file_is_rejected(tmp_path):
    with pytest.raises(UnreadableAudio, match="empty"):
        load_audio(write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32)))


def test_silent_file_is_rejected(tmp_path):
    with pytest.raises(UnreadableAudio, match="silent"):
        load_audio(write_wav(tmp_path / "silent.wav", np.zeros(SR * 2, dtype=np.float32)))


def test_non_finite_samples_are_rejected(tmp_path):
    audio = tone(1.0)
    audio[100] = np.nan
    with pytest.raises(UnreadableAudio, match="NaN"):
        load_audio(write_wav(tmp_path / "nan.wav", audio, subtype="FLOAT"))


def test_too_long_file_is_refused_before_decoding(tmp_path):
    path = write_wav(tmp_path / "long.wav", tone(3.0))
    with pytest.raises(UnreadableAudio, match="longer than"):
        load_audio(path, AudioConfig(max_file_hours=1 / 3600))


def test_rms_dbfs():
    assert rms_dbfs(np.zeros(10)) == float("-inf")
    assert rms_dbfs(np.ones(10)) == pytest.approx(0.0)
    assert rms_dbfs(np.full(10, 0.1)) == pytest.approx(-20.0)


def test_check_audio_accepts_speech_level_signal():
    check_audio(tone(1.0, amp=0.05), "ok")  # no exception


def test_split_cuts_long_signal_in_its_pauses():
    # 10 s bursts separated by 1 s of silence, 76 s in all
    burst, gap = tone(10.0), np.zeros(SR, dtype=np.float32)
    signal = np.concatenate([burst, gap] * 7)[: 76 * SR]
    segments = split_points(signal)
    assert len(segments) >= 3
    assert all(s.duration <= 30.0 + 1e-6 for s in segments)
    # every cut lands inside a silent gap (gaps at 10-11 s, 21-22 s, ...)
    for s in segments[1:]:
        assert (s.offset % 11.0) >= 9.9, s.offset
    # no audio lost between segments
    ends = [s.offset + s.duration for s in segments]
    assert all(abs(a - b.offset) < 1e-6 for a, b in zip(ends, segments[1:]))


def test_split_keeps_short_signal_whole():
    assert len(split_points(tone(12.0))) == 1


def test_find_audio_is_recursive_and_filters_extensions(tmp_path):
    write_wav(tmp_path / "a" / "b" / "x.WAV", tone(0.5))
    write_wav(tmp_path / "y.flac", tone(0.5))
    (tmp_path / "notes.txt").write_text("hi")
    found = find_audio(tmp_path, AudioConfig().extensions)
    assert sorted(p.name for p in found) == ["x.WAV", "y.flac"]


def test_a_zero_byte_file_and_a_non_audio_file_get_a_reason(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(UnreadableAudio, match=r"zero.wav: empty file \(0 bytes\)"):
        load_audio(tmp_path / "zero.wav")
    (tmp_path / "notes.wav").write_text("meeting notes, not a recording\n")
    with pytest.raises(UnreadableAudio) as err:
        load_audio(tmp_path / "notes.wav")
    assert "cannot decode" in str(err.value)
    assert not re.search(r"\w+: \)", str(err.value)), "the reason is empty"


def test_a_very_short_file_is_too_short_not_empty(tmp_path):
    with pytest.raises(UnreadableAudio, match=r"too short \(0.05 s of audio, need at least 0.2 s, audio.min_clip_seconds\)"):
        load_audio(write_wav(tmp_path / "blip.wav", tone(0.05)))


def test_a_truncated_wav_is_rejected_with_both_durations(tmp_path):
    whole = write_wav(tmp_path / "whole.wav", tone(4.0)).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: 44 + 2 * 15_000])  # 44-byte header, then 15000 of 64000 samples
    with pytest.raises(UnreadableAudio, match=r"cut.wav: truncated file \(0.94 s of audio, the header says 4.00 s\)"):
        load_audio(cut)
    # a writer that left the length unknown (a streaming recorder) is not truncation
    data = bytearray(whole)
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    (tmp_path / "stream.wav").write_bytes(bytes(data))
    assert wav_header_seconds(tmp_path / "stream.wav") is None
    assert load_audio(tmp_path / "stream.wav").size == 4 * SR
