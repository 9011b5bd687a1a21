"""The review workflow over the store: leases, corrections, flags, round progress and
each clip's history.

The Streamlit pages in ``app/`` only call these functions (and the queries of
:mod:`earmark.review.dashboard`), so everything the app does can be done (and tested) from
Python. Three rules hold here:

* A clip shown to one annotator is *leased* to them (:func:`next_clip`); the lease is
  taken with one conditional insert-or-update, so two sessions never hold the same clip,
  and an expired lease simply loses that condition and returns the clip to the queue.
* Corrections and flags are appended, never updated: re-correcting a clip, or two people
  saving the same clip, leaves every text in the history (:func:`clip_history`).
* A save never silently wins over another annotator's: when someone else corrected or
  flagged the clip after it was opened, the save is refused with
  :class:`~earmark.errors.CorrectedMeanwhile`, and goes through only once the annotator
  has seen their text and chosen to replace it.
* Database locks become :class:`~earmark.errors.DatabaseBusy` with a message a person
  can act on, never a driver traceback.

This module gathers the workflow in one namespace for the app; the work is done in
:mod:`.items` (what a page shows, reading a clip), :mod:`.leases`, :mod:`.corrections`
(saving texts and flags) and :mod:`.progress` (the round's progress, a clip's history).
"""

from earmark.review.corrections import Work, flag, max_words, save_correction
from earmark.review.items import (AUDIO_MISSING, FLAG_REASONS, HYPOTHESIS_WARNINGS, PROJECT_ENV, ClipHistory,
                                  HistoryEntry, ReviewItem, RoundProgress, Word, annotator_of, as_utc,
                                  clip_name, clip_wav, dialect_insert, domain_errors, open_clip, score_name)
from earmark.review.leases import holder_id, next_clip, release, renew, skip
from earmark.review.progress import clip_history, round_progress

__all__ = ["AUDIO_MISSING", "FLAG_REASONS", "HYPOTHESIS_WARNINGS", "PROJECT_ENV", "ClipHistory",
           "HistoryEntry", "ReviewItem", "RoundProgress", "Word", "annotator_of", "as_utc", "clip_history",
           "clip_name", "clip_wav", "dialect_insert", "domain_errors", "flag", "holder_id", "max_words",
           "next_clip", "open_clip", "release", "renew", "round_progress", "save_correction", "score_name",
           "skip", "Work"]
