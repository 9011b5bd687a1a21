"""Domain exceptions. Each message says what went wrong and what to do about it."""

from __future__ import annotations


class EarmarkError(Exception):
    """Base class for every error earmark raises on purpose.

    The CLI prints the message of these errors without a traceback, so the message
    must name the file or field involved and the action that fixes it.
    """


class UnreadableAudio(EarmarkError):
    """An audio file cannot be decoded, or holds nothing usable (empty, silent, NaN)."""


class ModelWeightsNotFound(EarmarkError):
    """Whisper weights for a model spec are neither cached nor installable offline."""


class ProjectNotFound(EarmarkError):
    """The folder given as PROJECT has no earmark project in it."""


class ProjectExists(EarmarkError):
    """``earmark init`` was asked to create a project where one already exists."""


class CorruptDatabase(EarmarkError):
    """The project database cannot be opened or read."""


class SchemaTooNew(EarmarkError):
    """The database was written by a newer earmark than the one running."""


class PoolExhausted(EarmarkError):
    """No clip is left to rank, review or select."""


class NothingRanked(PoolExhausted):
    """The review queue is empty because ``earmark rank`` has not run yet."""


class DatabaseBusy(EarmarkError):
    """The project database stayed locked by another writer past the wait limit."""


class InvalidReview(EarmarkError):
    """A review action with a wrong value: an empty text, an unknown flag or clip, no name."""


class NoCorrections(EarmarkError):
    """Fine-tuning or evaluation needs corrections and there are none."""


class UnknownStrategy(EarmarkError):
    """A selection strategy name is not in the registry."""


class BadManifest(EarmarkError):
    """A manifest file (JSONL or CSV) is malformed."""


class UnknownModelVersion(EarmarkError):
    """A model version name (or spec) is not in the project."""


class NothingToResume(EarmarkError):
    """``earmark finetune --resume`` found no unfinished fine-tuning run."""


class BadConfig(EarmarkError):
    """A configuration value is out of range or names an unknown option."""


class CorruptCheckpoint(ModelWeightsNotFound):
    """A checkpoint file cannot be read, or holds no Whisper model (truncated, not torch)."""


class UnfinishedModelVersion(UnknownModelVersion):
    """A model version is a fine-tuning run still in progress: it has no checkpoint yet."""


class RunInProgress(EarmarkError):
    """Another process is training the same fine-tuning run."""


class CorrectedMeanwhile(EarmarkError):
    """Someone else corrected or flagged a clip after the annotator opened it.

    Saving anyway would make the annotator's text the one used for training without
    their having seen the other one. ``newest_id`` is the id of the newest of those
    corrections: saving an item whose ``seen_correction_id`` is that id replaces them
    on purpose (both texts stay in the history).
    """

    def __init__(self, message: str, newest_id: int) -> None:
        super().__init__(message)
        self.newest_id = newest_id


class MissingExtra(EarmarkError):
    """An optional dependency is not installed; the message names the extra to install."""


class ClusterUnavailable(EarmarkError):
    """A Ray cluster cannot be reached, or has no resources to run on."""


class EarmarkWarning(UserWarning):
    """Something left out that the user should hear of (an unknown key in ``earmark.json``,
    manifest rows without a text); the command goes on. The CLI prints it as one line."""
