"""The Python API: a finished run (``job/finished.py``) or a sweep as objects, and a config
composed as the command line composes it. Examples: README.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from downsample_study.errors import ConfigError, ResultsError, not_a_folder, path_of
from downsample_study.layout import SWEEP_FILE


def compose(overrides: Sequence[str] | str = ()) -> DictConfig:
    """The config ``python -m downsample_study OVERRIDES`` runs with, resolved and validated
    (a ``ConfigError`` naming the key otherwise); one override may be passed as a string."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from downsample_study.config.hydra_versions import VERSION_BASE
    from downsample_study.config.messages import composition_message
    from downsample_study.config.store import CONFIG_DIR, register_configs
    from downsample_study.config.validate import validate

    overrides = [overrides] if isinstance(overrides, str) else list(overrides)
    if wrong := [o for o in overrides if not isinstance(o, str)]:
        raise ConfigError(f"overrides: expected strings such as 'downsample=stride2', got "
                          f"{wrong[0]!r} ({type(wrong[0]).__name__})")
    register_configs()
    try:
        if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its config folder
            cfg = hydra_compose("config", overrides=overrides)
        else:
            with initialize_config_dir(str(CONFIG_DIR), job_name="downsample_study",
                                       **VERSION_BASE):
                cfg = hydra_compose("config", overrides=overrides)
    except Exception as err:
        message = composition_message(err, overrides)
        if message is None:
            raise
        raise ConfigError(message) from None
    validate(cfg)
    OmegaConf.resolve(cfg)
    return cfg


def load_sweep(folder: str | Path):
    """One row per job of the sweep in ``folder`` (a pandas DataFrame): folder, status, error,
    flattened results and ``config.*``; a ``ResultsError`` if ``folder`` is not a sweep's."""
    import pandas as pd

    from downsample_study.report.variants import flatten
    from downsample_study.sweeps.folder import SweepFolder

    folder = path_of(folder, "a sweep folder")
    if not folder.is_dir():
        raise ResultsError(f"{folder}: {not_a_folder(folder)} (pass a sweep folder, e.g. "
                           f"multirun/<date>/<time>)")
    sweep = SweepFolder(folder)
    if not sweep.is_sweep():
        raise ResultsError(f"{folder}: not a sweep folder (no {SWEEP_FILE} and no job "
                           f"folders in it)")
    rows = []
    for job in sweep.jobs():
        row = {"job": job.name, "status": str(job.status), "error": job.error}
        if job.results is not None:
            data = job.results.to_dict()
            config = data.pop("config")
            for key in ("provenance", "traceback", "schema_version", "status"):
                data.pop(key)
            row = {**row, **flatten(data), **flatten(config, "config."),
                   "error": job.error or data.get("error")}
        rows.append(row)
    return pd.DataFrame(rows)
