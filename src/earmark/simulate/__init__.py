"""The active-learning loop replayed with reference transcripts as the annotator.

For each seed the manifest's speakers are split into a pool, a dev set and a test set
(speaker-disjoint). Round 0 scores the zero-shot model; every later round ranks the
unlabeled pool with the current model, lets a strategy pick clips until the round's
budget of audio minutes is spent, takes the references as the corrections, fine-tunes
the base model (decoder only) on everything labeled so far, and scores the result.

Compute is the constraint, so the encoder runs once per clip: in decoder-only
fine-tuning it is frozen, and its outputs serve the ranking, the training, the
evaluation and the diversity strategy's embeddings (mean over the clip's own frames)
for the whole run. Each clip sits alone at the start of its window; decoding and
training keep only the encoder positions that cover the clip plus a margin.

The clips and their splits are :mod:`.study`, one seed's rounds :mod:`.rounds`, what the
curves show :mod:`.summary`, and the whole run :mod:`.run`.
"""

from earmark.simulate.rounds import corpus_wer, error_detection, run_seed
from earmark.simulate.run import simulate
from earmark.simulate.study import RoundResult, Study, as_typed, read_study_manifest, split_speakers
from earmark.simulate.summary import (best_strategy, curve_area, mean_curves, minutes_to_reach, summarize, verdict,
                                      write_outputs)

__all__ = ["RoundResult", "Study", "as_typed", "best_strategy", "corpus_wer", "curve_area", "error_detection",
           "mean_curves", "minutes_to_reach", "read_study_manifest", "run_seed", "simulate", "split_speakers",
           "summarize", "verdict", "write_outputs"]
