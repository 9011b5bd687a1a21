"""Reading a saved training state safely: a state file in a project folder may come from
someone else, and unpickling it must not run their code."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def load_state_file(path: "str | os.PathLike[str]", device: Any = "cpu") -> dict[str, Any]:
    """Read a training state written by :meth:`Trainer.save_state`, without running code.

    ``torch.load`` with ``weights_only=False`` unpickles anything, so a state file put in
    a project folder by someone else could run a program. Only tensors, plain values and
    the few numpy types of numpy's random state (a uint32 array) are allowed here.

    Raises
    ------
    Exception
        The file is damaged, or holds anything else (``pickle.UnpicklingError``).
    """
    import torch

    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location=device, weights_only=True)
