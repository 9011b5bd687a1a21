"""A project's model versions: finding one by name or spec, loading it, making one
active, and the rule that names the version a command starts from (the active one, or
else the project's base model).

Every stage that needs a version (ranking, evaluation, fine-tuning, the reports) asks
here, so none of them imports another stage for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from earmark.config import DecodeConfig
from earmark.errors import CorruptCheckpoint, ModelWeightsNotFound, UnfinishedModelVersion, UnknownModelVersion
from earmark.models.loading import load_checkpoint, load_model, looks_like_path, normalize_spec
from earmark.store.db import ModelVersion
from earmark.store.project import Project

if TYPE_CHECKING:
    import whisper


def active_or_base(project: Project) -> ModelVersion:
    """The active version; with none active yet, the version of the project's base model
    (``decode.model`` in ``earmark.json``), added if it is not a version yet but not made
    active."""
    store = project.store
    return store.active_model() or store.ensure_model_version(project.config.decode.model)


def find_version(project: Project, model: str | None) -> ModelVersion:
    """The version named (or with spec) ``model``; the active one when ``model`` is None.

    Raises
    ------
    UnknownModelVersion
        No such version; the message lists the known ones.
    UnfinishedModelVersion
        The version is a fine-tuning run that has not finished (no checkpoint yet).
    """
    if model is None:
        return active_or_base(project)
    mv = lookup_version(project, model)
    if mv is None:
        raise unknown_version(project, model)
    check_ready(project, mv)
    return mv


def lookup_version(project: Project, model: str) -> ModelVersion | None:
    """The version named ``model``, or whose spec it is (a path as given or made absolute)."""
    specs = {model, normalize_spec(model)}
    with project.store.session() as s:
        rows = s.scalars(select(ModelVersion).where(
            or_(ModelVersion.name == model, ModelVersion.spec.in_(specs))).order_by(ModelVersion.id)).all()
    # a name is what people type and see in `earmark status`, so it wins over a spec
    return next((m for m in rows if m.name == model), rows[0] if rows else None)


def unknown_version(project: Project, model: str) -> UnknownModelVersion:
    """The error for a version name that is not in ``project``, listing the known ones."""
    with project.store.session() as s:
        names = list(s.scalars(select(ModelVersion.name).order_by(ModelVersion.id)))
    return UnknownModelVersion(f"no model version {model!r} in {project.root}; known versions: "
                               f"{', '.join(names) or 'none'} (see `earmark models`)")


def check_ready(project: Project, mv: ModelVersion) -> None:
    """Raise :class:`UnfinishedModelVersion` when ``mv`` is a fine-tuning run still going.

    Its checkpoint does not exist yet, and loading it would say "no checkpoint file",
    which hides the cause and the remedy.
    """
    if mv.status == "training":
        raise UnfinishedModelVersion(
            f"model version {mv.name!r} of {project.root} is an unfinished fine-tuning run, with no "
            f"checkpoint yet; finish it with `earmark finetune {project.root} --resume`, or use "
            "another version or model")


def _other_models_hint(project: Project, mv: ModelVersion) -> str:
    """How to go on with another model when ``mv`` cannot load."""
    with project.store.session() as s:
        others = list(s.scalars(select(ModelVersion).where(
            ModelVersion.id != mv.id, ModelVersion.status != "training").order_by(ModelVersion.id)))
    # only versions that can load: not one whose checkpoint is gone too
    names = [o.name for o in others
             if not looks_like_path(spec := version_spec(project, o)) or Path(spec).is_file()]
    versions = f"a version ({', '.join(names)}) or " if names else ""
    return (f"To go on with another model, make it active with `earmark rank {project.root} "
            f"--model NAME`, NAME being {versions}a Whisper name such as tiny.en")


def version_spec(project: Project, mv: ModelVersion) -> str:
    """What loads a version: a fine-tuned one's checkpoint inside *this* project folder.

    Its record holds the path relative to the project, so a project copied or moved
    elsewhere loads its own checkpoints, not the ones of the folder it came from (the
    absolute path stored as its spec); other versions load from their spec.
    """
    relative = (mv.record or {}).get("checkpoint")
    return str(project.root / relative) if relative else mv.spec


def load_version(project: Project, mv: ModelVersion, device: str) -> "whisper.Whisper":
    """Load the model of a project's version.

    Raises
    ------
    UnfinishedModelVersion
        ``mv`` is a fine-tuning run that has not finished.
    CorruptCheckpoint, ModelWeightsNotFound
        Its checkpoint is damaged or gone; the message names the version, the file, and
        how to go on with another model.
    """
    check_ready(project, mv)
    spec = version_spec(project, mv)
    path = Path(spec).expanduser()
    if path.is_file():
        return load_checkpoint(path, device, remedy=f"It is the checkpoint of model version {mv.name}. "
                                                    + _other_models_hint(project, mv))
    if looks_like_path(spec):
        raise ModelWeightsNotFound(
            f"model version {mv.name!r} of {project.root}: its checkpoint {path} is gone (moved or "
            f"deleted); put it back. {_other_models_hint(project, mv)}")
    return load_model(spec, device)  # a Whisper name: its own messages say what to install


def switch_model(project: Project, model: str, device: str) -> tuple[ModelVersion, "whisper.Whisper | None"]:
    """Make ``model`` (a version's name, or a spec) the active version; return it and its model.

    The model is loaded before the project changes, so a name that is wrong, a path that
    does not exist or a damaged file leaves the active version and the version table as
    they were. A new spec is stored as :func:`~earmark.models.loading.normalize_spec` gives it (a
    checkpoint's absolute path), so the project works from any folder. The model comes
    back unloaded (None) when ``model`` is already the active version.
    """
    mv = lookup_version(project, model)
    active = project.store.active_model()
    if mv is not None and active is not None and mv.id == active.id:
        return mv, None
    if mv is not None:
        loaded = load_version(project, mv, device)
    else:
        try:
            loaded = load_model(model, device)  # its errors show the path as it was given
        except ModelWeightsNotFound as exc:
            if looks_like_path(model) or isinstance(exc, CorruptCheckpoint):
                raise
            # a mistyped version name ("ft-09") is more likely here than a Whisper name
            with project.store.session() as s:
                names = ", ".join(s.scalars(select(ModelVersion.name).order_by(ModelVersion.id)))
            raise ModelWeightsNotFound(f"{exc}; nor is it a version of this project (its versions: "
                                       f"{names or 'none yet'}; see `earmark models`)") from exc
        mv = project.store.ensure_model_version(normalize_spec(model))
    project.store.set_active(mv.id)
    return mv, loaded


def version_to_rank_with(project: Project, model: str | None,
                         decode: DecodeConfig) -> tuple[ModelVersion, "whisper.Whisper | None"]:
    """The version ``rank`` decodes with, made active, and its model if it was loaded.

    ``model`` (a version's name or a spec) when given; otherwise the active version, or,
    with none active yet, the base model (``decode.model``), which becomes active.
    """
    if model:
        return switch_model(project, model, decode.device)
    active = project.store.active_model()
    return (active, None) if active else switch_model(project, decode.model, decode.device)
