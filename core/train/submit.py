"""Submitting a training run as a job: the one path the CLI (``alignscope train``) and the Train page
take. Cheap to import (no torch, no TRL): everything that can be checked before a worker starts is
checked here, so bad input is a one-line error and no job, no run folder.

The job (kind ``train``, run by :func:`alignscope.train.trainer.run_job` in a worker process) records the
data's spec (source and fingerprint, so edited data is refused), the selection's absolute path and
every field of the resolved config (``config.to_dict()``), so a run's job says exactly what it
trains with, defaults included.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alignscope.jobs import JobStore
from alignscope.models import check_model_spec
from alignscope.train.config import TrainConfig, TrainError

__all__ = ["train_job_config", "submit_training"]


def train_job_config(data: Any, config: TrainConfig, *, selection: str | os.PathLike | None = None) -> dict[str, Any]:
    """Validate ``config`` (and the model spec, and the selection against ``data`` and the split)
    and return the ``train`` job's config: ``{"data": data.spec(), "selection": ABS_PATH|None,
    "method": ..., **every config field}``. Raises a one-line :class:`TrainError`/``ModelError``."""
    from alignscope.train.trainset import training_set

    if not isinstance(config, TrainConfig):
        raise TrainError(f"config must be a training config (alignscope.train.config.train_config), "
                         f"got {type(config).__name__}")
    config.validate()
    check_model_spec(config.model)
    path = str(Path(selection).expanduser().resolve()) if selection else None
    # Reads the selection and applies the split: an empty, mismatched or all-held-out selection fails
    # here, before any job exists.
    training_set(data, path, method=config.method, test_fraction=config.test_fraction,
                 split_seed=config.split_seed, pair_rule=config.pair_rule)
    return {"data": data.spec(), "selection": path, **config.to_dict()}


def submit_training(data: Any, config: TrainConfig, *, selection: str | os.PathLike | None = None,
                    out: str | os.PathLike | None = None, store: Any = None, overwrite: bool = False) -> str:
    """Check everything (:func:`train_job_config`), then queue a ``train`` job on ``store``
    (default: the :class:`alignscope.jobs.JobStore` of ``ALIGNSCOPE_HOME``) and return its id.

    ``data``: a :class:`alignscope.data.preferences.PreferenceData`; ``config``: from
    :func:`alignscope.train.config.train_config`; ``out``: the run directory (default
    ``runs/<job id>`` in the store's home); an existing file, or a non-empty folder without
    ``overwrite``, is refused before anything is written."""
    run_dir = Path(out).expanduser().resolve() if out is not None else None
    if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
        raise TrainError(f"--out {run_dir}: is a file; give a run folder")
    job_config = train_job_config(data, config, selection=selection)
    if run_dir is not None and run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise TrainError(f"{run_dir}: exists and is not empty (pass --force to reuse it)")
    store = store if store is not None else JobStore()
    return store.submit("train", job_config, run_dir=run_dir, overwrite=overwrite)
