"""Training data from corrections: examples, the dev split, replay clips, packed windows.

The dev split is held out by speaker when speakers are known (a speaker's clips are
all in one split, so dev WER measures how the model does on new voices), else by clip.
It is stable across rounds: a group's place is decided by a hash of its name, and every
group that was ever in a dev split (as written in the model versions' records) stays
there, so dev WER before and after a round, and across rounds, compare.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from earmark.config import DecodeConfig, FinetuneConfig
from earmark.decode.packing import pack_windows
from earmark.errors import NoCorrections
from earmark.store.db import Clip, Correction, ModelVersion, TranscriptRow
from earmark.store.project import Project

DEV_SALT = "earmark-dev-v1"  # changing it would move every group: never change it


@dataclass(frozen=True)
class Example:
    """One clip with the text to learn: a correction, or a replayed transcript."""

    clip_id: int
    audio_path: str  # relative to the project folder
    text: str
    duration: float  # seconds
    speaker: str | None
    correction_id: int | None  # None for a replayed clip

    @property
    def group(self) -> str:
        """The unit of the dev split: the speaker when known, else the clip."""
        return f"speaker:{self.speaker}" if self.speaker else f"clip:{self.clip_id}"


@dataclass(frozen=True)
class Split:
    """Corrections divided into a training part and a held-out dev part."""

    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    dev_groups: tuple[str, ...]  # every group placed in dev (kept for later rounds)
    by: str  # "speaker" or "clip"


def _example(corr: Correction, clip: Clip) -> Example:
    return Example(clip_id=clip.id, audio_path=clip.audio_path, text=(corr.text or "").strip(),
                   duration=clip.duration, speaker=clip.speaker, correction_id=corr.id)


def correction_examples(project: Project, correction_ids: Sequence[int] | None = None) -> list[Example]:
    """Examples from the newest unflagged correction of every clip, in correction order.

    Parameters
    ----------
    correction_ids
        Use exactly these corrections instead (a resumed run uses the set it started with).
    """
    if correction_ids is None:
        corrections = project.store.latest_corrections()
    else:
        with project.store.session() as s:
            corrections = list(s.scalars(select(Correction).where(Correction.id.in_(list(correction_ids)))
                                         .order_by(Correction.id)))
    ids = [c.clip_id for c in corrections]
    with project.store.session() as s:
        clips = {c.id: c for c in s.scalars(select(Clip).where(Clip.id.in_(ids)))}
    return [_example(c, clips[c.clip_id]) for c in corrections if c.flag is None and c.clip_id in clips]


def _unit(group: str) -> float:
    """A stable number in [0, 1) for a group name."""
    return int(hashlib.sha1(f"{DEV_SALT}:{group}".encode()).hexdigest()[:12], 16) / 16**12


def split_dev(examples: Sequence[Example], fraction: float, min_clips: int,
              previous: Sequence[str] = (), max_fraction: float = 1.0) -> Split:
    """Hold out a dev split, by speaker when speakers are known.

    Parameters
    ----------
    examples
        The corrected clips.
    fraction
        A group goes to dev when its hash falls below this (about this share of groups).
    min_clips
        Groups are added in hash order until dev holds at least this many clips, as
        long as training keeps at least half of the clips.
    previous
        Groups that were in dev before; they stay in dev.
    max_fraction
        New groups join dev (by hash, then to fill up to ``min_clips``) only while dev
        stays within this share of the clips; groups held out before stay even past it.
        Uneven speakers make a share of speakers a poor guide to a share of clips, and
        every dev clip is one the gated run does not learn from.

    Raises
    ------
    NoCorrections
        Fewer than two corrected clips: nothing to train on and check with at once.
    """
    if len(examples) < 2:
        raise NoCorrections(
            f"fine-tuning needs at least 2 corrected clips (one to learn from, one to check "
            f"on); {len(examples)} saved so far; correct more clips with `earmark review`")
    by = "speaker"
    if len({e.group for e in examples}) < 2:
        # one speaker: a speaker split would leave nothing to train on
        examples = [Example(e.clip_id, e.audio_path, e.text, e.duration, None, e.correction_id)
                    for e in examples]
        by = "clip"
    groups: dict[str, list[Example]] = {}
    for e in examples:
        groups.setdefault(e.group, []).append(e)
    keep = set(previous)
    # a clip held out by itself before its speaker was known (a manifest imported later
    # can add speakers) keeps its speaker's group in dev, so no dev clip ever trains
    dev = {g for g, members in groups.items()
           if g in keep or any(f"clip:{e.clip_id}" in keep for e in members)}
    n_dev = sum(len(groups[g]) for g in dev)
    cap = min(max_fraction, 0.5) * len(examples)  # training keeps at least half the clips
    for g in sorted(set(groups) - dev, key=_unit):  # hash order: stable as corrections grow
        if _unit(g) >= fraction and n_dev >= min_clips:
            break
        if n_dev + len(groups[g]) <= cap:  # a group too big to fit: a smaller one may
            dev.add(g)
            n_dev += len(groups[g])
    if n_dev == 0:  # everything tiny: hold out the smallest group anyway
        dev.add(min(groups, key=lambda g: (len(groups[g]), _unit(g))))
    if len(dev) == len(groups):  # previous groups took everything: train on the newest
        dev.discard(max(groups, key=lambda g: max(e.correction_id or 0 for e in groups[g])))
    train = tuple(e for e in examples if e.group not in dev)
    held = tuple(e for e in examples if e.group in dev)
    return Split(train=train, dev=held, dev_groups=tuple(sorted(dev | (keep & set(groups)))), by=by)


def previous_dev_groups(project: Project) -> list[str]:
    """Every group any earlier fine-tuning run held out (from the versions' records)."""
    with project.store.session() as s:
        records = list(s.scalars(select(ModelVersion.record)))
    out: set[str] = set()
    for r in records:
        out.update((r or {}).get("dev_groups", []))
    return sorted(out)


def current_split(project: Project, cfg: FinetuneConfig | None = None) -> Split:
    """The dev split the next fine-tuning run would use (and ``evaluate`` uses)."""
    cfg = cfg or project.config.finetune
    return split_dev(correction_examples(project), cfg.dev_fraction, cfg.dev_min_clips,
                     previous_dev_groups(project), cfg.dev_max_fraction)


def replay_examples(project: Project, model_version_id: int, n: int) -> list[Example]:
    """The ``n`` uncorrected clips the model was surest of, with its own transcripts.

    Only clips the version has transcribed (by ``earmark rank``) qualify; clips with a
    hallucination flag or an empty transcript are skipped.
    """
    if n <= 0:
        return []
    with project.store.session() as s:
        touched = select(Correction.clip_id)
        rows = s.execute(select(Clip, TranscriptRow).join(TranscriptRow, TranscriptRow.clip_id == Clip.id)
                         .where(TranscriptRow.model_version_id == model_version_id,
                                Clip.id.not_in(touched))
                         .order_by(TranscriptRow.avg_logprob.desc(), Clip.id)).all()
    out = []
    for clip, tr in rows:
        if tr.text.strip() and not (tr.scores or {}).get("flags"):
            out.append(Example(clip.id, clip.audio_path, tr.text.strip(), clip.duration,
                               clip.speaker, None))
            if len(out) == n:
                break
    return out


def pack_epoch(durations: Sequence[float], rng: random.Random, decode: DecodeConfig,
               pack: bool, stretch: float = 1.0) -> list[list[int]]:
    """Shuffle clips and pack them into 30 s windows the way decoding packs them.

    Parameters
    ----------
    durations
        Seconds per clip.
    rng
        Shuffles the order (seeded per epoch by the caller).
    decode
        The packing settings decoding uses (window fill, gap), so training sees the
        same kind of windows the model will transcribe.
    pack
        False: one clip per window.
    stretch
        Longest a clip may become by augmentation (1/slowest speed factor); windows
        are filled with that margin so no stretched clip runs past 30 s.

    Returns
    -------
    list of windows, each a list of indices into ``durations``.
    """
    order = list(range(len(durations)))
    rng.shuffle(order)
    cfg = DecodeConfig(pack=pack, pack_gap_seconds=decode.pack_gap_seconds,
                       pack_window_seconds=decode.pack_window_seconds / stretch)
    groups = pack_windows([durations[i] for i in order], cfg)
    return [[order[k] for k in g] for g in groups]
