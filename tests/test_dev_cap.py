"""The dev split's cap on its share of the corrections (pure, fast)."""

from __future__ import annotations

import random

from earmark.config import FinetuneConfig
from earmark.train.dataset import Example, split_dev


def uneven(n_speakers: int, seed: int) -> list[Example]:
    """Speakers with 1 to 12 clips each, as a review queue leaves them."""
    rng = random.Random(seed)
    out: list[Example] = []
    for s in range(n_speakers):
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 6, 12])):
            i = len(out)
            out.append(Example(i, f"a/{i}.flac", f"text {i}", 3.0, f"spk{seed}-{s}", 100 + i))
    return out


def test_the_dev_share_stays_under_the_cap_with_uneven_speakers():
    for seed in range(30):
        ex = uneven(60, seed)
        split = split_dev(ex, fraction=0.3, min_clips=8, max_fraction=0.2)
        assert 0 < len(split.dev) <= 0.2 * len(ex), (seed, len(split.dev), len(ex))
        assert not {e.speaker for e in split.train} & {e.speaker for e in split.dev}
        assert len(split.dev) >= 8  # the cap leaves room for the minimum here


def test_without_the_cap_the_same_speakers_take_more():
    # the cap is what holds the share down: the uncapped split of the same clips exceeds it
    shares = [len(split_dev(ex, 0.3, 8).dev) / len(ex) for ex in (uneven(60, s) for s in range(30))]
    assert max(shares) > 0.2


def test_the_default_config_caps_the_dev_split_at_a_fifth():
    cfg = FinetuneConfig()
    assert 0 < cfg.dev_max_fraction <= 0.25 and not cfg.problems()
    assert any("dev_max_fraction" in p for p in FinetuneConfig(dev_max_fraction=0).problems())


def test_earlier_dev_groups_stay_even_past_the_cap():
    ex = uneven(60, 3)
    first = split_dev(ex[:80], fraction=0.3, min_clips=8, max_fraction=0.5)
    later = split_dev(ex, fraction=0.3, min_clips=8, max_fraction=0.05, previous=first.dev_groups)
    assert set(first.dev_groups) <= set(later.dev_groups)
    assert {e.clip_id for e in first.dev} <= {e.clip_id for e in later.dev}
    # nothing new joins once the held-out groups alone pass the cap
    assert len(later.dev) == sum(e.group in set(first.dev_groups) for e in ex)


def test_a_small_set_still_gets_a_dev_split_within_the_cap():
    ex = [Example(i, f"a/{i}.flac", "t", 3.0, f"spk{i // 2}", i) for i in range(10)]  # 5 speakers x 2
    split = split_dev(ex, fraction=0.01, min_clips=8, max_fraction=0.2)
    assert len(split.dev) == 2 and len(split.train) == 8  # one speaker: the cap's 2 clips
    # a cap smaller than any speaker: the smallest speaker is held out anyway
    lone = ex + [Example(10, "a/10.flac", "t", 3.0, "solo", 10)]
    split = split_dev(lone, fraction=0.01, min_clips=8, max_fraction=0.05)
    assert [e.speaker for e in split.dev] == ["solo"]


def test_groups_too_big_for_the_cap_are_skipped_for_smaller_ones():
    big = [Example(i, f"a/{i}.flac", "t", 3.0, "big", i) for i in range(30)]
    small = [Example(30 + i, f"a/{30 + i}.flac", "t", 3.0, f"s{i}", 30 + i) for i in range(20)]
    split = split_dev(big + small, fraction=0.99, min_clips=8, max_fraction=0.2)
    assert "big" not in {e.speaker for e in split.dev} and 8 <= len(split.dev) <= 10
