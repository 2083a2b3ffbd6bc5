"""Whether a job folder's ``results.json`` (skipped by a re-run) or checkpoint (resumed from)
is this job's; refused when another configuration wrote it (``config/defining.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from downsample_study.config.defining import config_differences, listed
from downsample_study.errors import NewerResultsError, OtherJobError, ResultsError, UserError
from downsample_study.layout import CHECKPOINTS, CONFIG_FILE, RESULTS_FILE
from downsample_study.results import Results, read_results
from downsample_study.storage import read_yaml


def completed_results(folder: Path, config: dict[str, Any]) -> Results | None:
    """The results in ``folder`` if this job (``config``, resolved) completed there, else None;
    ``OtherJobError`` if another configuration did. A failed or stopped run is run again, from
    its checkpoint, which ``SameJob`` checks."""
    try:
        results = read_results(Path(folder) / RESULTS_FILE)
    except NewerResultsError as err:  # not this version's to replace
        raise OtherJobError(f"{err}; or run this job into another folder") from None
    except ResultsError:
        return None
    if not results.completed:
        return None
    earlier = results.config
    differences = config_differences(earlier, config)
    if differences and not config_differences(earlier, config, training_length=False):
        raise OtherJobError(f"{folder}: holds the results of this job trained for another "
                            f"length ({listed(differences)}); delete its {RESULTS_FILE} to "
                            f"train it on from its last checkpoint, or run it into another "
                            f"folder")
    if differences:
        raise OtherJobError(f"{folder}: holds the results of a run of another configuration "
                            f"({listed(differences)}); run this job into another folder, or "
                            f"delete that one to run it here")
    return results


def differences_from_its_job(folder: Path, earlier: dict[str, Any]) -> list[str]:
    """How ``earlier`` (the run recorded in ``folder``) differs from the folder's job as last
    composed (``.hydra/config.yaml``): what a re-run refused for another configuration leaves.
    Empty where that config cannot be read or resolved."""
    try:
        job = OmegaConf.to_container(read_yaml(Path(folder) / CONFIG_FILE),
                                     resolve=True, enum_to_str=True)
    except (UserError, OmegaConfBaseException):
        return []
    return config_differences(earlier, job) if isinstance(job, dict) else []


class SameJob(Callback):
    """Keeps the job's config in its checkpoints and refuses to resume from one another config
    saved (a job killed before its ``results.json``, its YAML edited since). A longer
    ``trainer.max_epochs`` goes on from a shorter run's checkpoint."""

    def __init__(self, config: dict[str, Any], output_dir: Path):
        """``config``: the job's (a pack's) resolved configuration, as plain data."""
        self.config, self.output_dir = config, output_dir

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.config}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        earlier = state_dict.get("config") or {}
        if differences := config_differences(earlier, self.config, training_length=False):
            raise OtherJobError(
                f"{self.output_dir / CHECKPOINTS}: saved by a run of another configuration "
                f"({listed(differences)}); delete it to train this job from the start")
