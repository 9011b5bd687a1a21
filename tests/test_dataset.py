"""The dev split and training windows (pure, fast)."""

from __future__ import annotations

import random

import pytest

from earmark.config import DecodeConfig
from earmark.train.dataset import Example, pack_epoch, split_dev
from earmark.errors import NoCorrections


def examples(n: int, speakers: int | None) -> list[Example]:
    return [Example(clip_id=i, audio_path=f"a/{i}.flac", text=f"text {i}", duration=3.0,
                    speaker=(f"spk{i % speakers}" if speakers else None), correction_id=100 + i)
            for i in range(n)]


def test_split_by_speaker_keeps_each_speaker_on_one_side():
    split = split_dev(examples(60, 12), fraction=0.2, min_clips=8)
    assert split.by == "speaker"
    train_spk = {e.speaker for e in split.train}
    dev_spk = {e.speaker for e in split.dev}
    assert train_spk and dev_spk and not train_spk & dev_spk
    assert len(split.dev) >= 8 and len(split.train) + len(split.dev) == 60


def test_split_by_clip_when_speakers_are_unknown():
    split = split_dev(examples(40, None), fraction=0.2, min_clips=4)
    assert split.by == "speaker"  # groups are clips: the unit is one clip each
    assert all(g.startswith("clip:") for g in split.dev_groups)
    assert 4 <= len(split.dev) < 20


def test_one_speaker_falls_back_to_a_clip_split():
    split = split_dev(examples(10, 1), fraction=0.2, min_clips=3)
    assert split.by == "clip" and len(split.train) >= 5 and len(split.dev) >= 1


def test_split_is_stable_as_corrections_grow():
    everything = examples(90, 20)  # later rounds add clips of old and new speakers
    first = split_dev(everything[:30], fraction=0.2, min_clips=6)
    later = split_dev(everything, fraction=0.2, min_clips=6, previous=first.dev_groups)
    assert set(first.dev_groups) <= set(later.dev_groups)
    # no clip that was held out before is trained on later
    assert {e.clip_id for e in first.dev} <= {e.clip_id for e in later.dev}
    again = split_dev(everything, fraction=0.2, min_clips=6, previous=first.dev_groups)
    assert again == later


def test_a_clip_held_out_before_its_speaker_was_known_keeps_its_speaker_in_dev():
    unknown = examples(40, None)
    first = split_dev(unknown, fraction=0.2, min_clips=4)
    # a manifest imported later names the speakers of the same clips
    known = [Example(e.clip_id, e.audio_path, e.text, e.duration, f"spk{e.clip_id % 8}", e.correction_id)
             for e in unknown]
    later = split_dev(known, fraction=0.2, min_clips=4, previous=first.dev_groups)
    assert {e.clip_id for e in first.dev} <= {e.clip_id for e in later.dev}
    assert not {e.speaker for e in later.train} & {e.speaker for e in later.dev}
    # without the earlier split, the same speakers alone would not hold those clips out
    fresh = split_dev(known, fraction=0.2, min_clips=4)
    assert not {e.clip_id for e in first.dev} <= {e.clip_id for e in fresh.dev}


def test_too_few_corrections_raise_an_actionable_error():
    with pytest.raises(NoCorrections, match="at least 2"):
        split_dev(examples(1, 1), fraction=0.2, min_clips=3)


def test_pack_epoch_fills_windows_like_decoding():
    durations = [3.0] * 20
    windows = pack_epoch(durations, random.Random(0), DecodeConfig(), pack=True)
    assert sorted(i for w in windows for i in w) == list(range(20))
    for w in windows:  # clips + 1 s gaps fit the 28 s window
        assert 3.0 * len(w) + (len(w) - 1) <= 28.0
    stretched = pack_epoch(durations, random.Random(0), DecodeConfig(), pack=True, stretch=1 / 0.9)
    assert max(len(w) for w in stretched) < max(len(w) for w in windows)
    assert all(len(w) == 1 for w in pack_epoch(durations, random.Random(0), DecodeConfig(), pack=False))
    assert windows == pack_epoch(durations, random.Random(0), DecodeConfig(), pack=True)


def test_replay_takes_the_surest_uncorrected_clips_with_the_models_text(tmp_path):
    import json

    from sqlalchemy import select

    from _support import sample_rows
    from earmark.train.dataset import replay_examples
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.store.db import Clip, Correction, TranscriptRow

    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in sample_rows()[:5]))
    project = init_project(tmp_path / "proj")
    import_audio(project, manifest, progress=False)
    mv = project.store.active_model()
    with project.store.session() as s:
        clips = list(s.scalars(select(Clip).order_by(Clip.id)))
        # stored transcripts as `rank` writes them: surest first is clip 3, then 1, then 0
        for clip, (text, lp, flags) in zip(clips, [("zero", -0.5, []), ("one", -0.2, []),
                                                   ("two", -0.1, ["loop"]), ("three", -0.05, []),
                                                   ("four", -0.01, [])]):
            s.add(TranscriptRow(clip_id=clip.id, model_version_id=mv.id, text=text, tokens=[], words=[],
                             avg_logprob=lp, no_speech_prob=0.0, compression_ratio=1.0,
                             scores={"flags": flags}))
        s.add(Correction(clip_id=clips[4].id, text="corrected", annotator="a"))  # not replayed
    got = replay_examples(project, mv.id, 3)
    assert [e.text for e in got] == ["three", "one", "zero"]
    assert all(e.correction_id is None for e in got)
    assert replay_examples(project, mv.id, 0) == []
