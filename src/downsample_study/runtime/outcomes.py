"""What a job that did not complete records in its ``results.json``: its failure or its
stop, with where it stopped and the checkpoint it resumes from."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from downsample_study.errors import Interrupted, StorageError, UserError
from downsample_study.layout import CHECKPOINTS, LAST
from downsample_study.results import Resources, Results, Status, write_results
from downsample_study.training.tracking import RunIdentity

log = logging.getLogger("downsample_study")


def record(output_dir: Path, results: Results) -> None:
    """Write the job's results; a disk that refuses them costs a line, not the sweep."""
    try:
        write_results(output_dir, results)
    except StorageError as err:
        log.error("error: %s", err)


def failure(cfg: DictConfig, identity: RunIdentity, err: BaseException,
                slot_index: int | None, **fields) -> Results:
    user_error = isinstance(err, (UserError, Interrupted))
    return Results(
        config=OmegaConf.to_container(cfg, resolve=False, enum_to_str=True),
        overrides=identity.name,
        group=identity.group,
        error=str(err) if user_error else f"{type(err).__name__}: {err}",
        traceback=None if user_error else traceback.format_exc(),
        resources=Resources(slot=slot_index),
        **fields,
    )


def interrupted(cfg, identity, stop: Interrupted, stopped_at: dict[str, int] | None,
                slot_index, output_dir: Path, **fields) -> Results:
    last = Path(output_dir) / CHECKPOINTS / LAST
    results = failure(cfg, identity, stop, slot_index, status=Status.interrupted,
                       signal=stop.name, stopped_at=stopped_at,
                       resume_checkpoint=str(last) if last.is_file() else None, **fields)
    at = results.stopped_at
    results.error = f"stopped by {stop.name}" + (
        f" at epoch {at['epoch']}, step {at['step']}" if at else " before training")
    return results
